// block_topk's score arithmetic, shared by the indexer kernels (block_topk_flow.cu) and the fused
// layer (block_topk_fused.cu): one definition keeps their scores -- and so their selections --
// bitwise equal. Device code only.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "../common/device_utils.cuh"

namespace vortex::gpu::centroid {

/// q̄[d] of a row: the mean over its g query heads (`q` points at the first head, heads D apart),
/// summed in head order, then divided by g.
template <typename QT>
__device__ __forceinline__ float mean_query(const QT* q, int d, int32_t g, int D) {
  float acc = 0.f;
  for (int32_t j = 0; j < g; ++j) {
    if constexpr (sizeof(QT) == 4) {
      acc += q[j * D + d];
    } else {
      acc += __bfloat162float(q[j * D + d]);
    }
  }
  return acc / static_cast<float>(g);
}

/// <q̄, centroid> of one page: each of the kLpt lanes of the page holds 8 dims of q̄ (`qv`) and the
/// matching 16-byte piece of the bf16 centroid (`raw`); every lane of the group gets the sum.
template <int kLpt>
__device__ __forceinline__ float dot(const float (&qv)[8], const uint4& raw) {
  float c[8];
  detail::unpack_bf16x8(raw, c);
  float acc = 0.f;
#pragma unroll
  for (int e = 0; e < 8; ++e) acc = fmaf(qv[e], c[e], acc);
  return detail::group_sum<kLpt>(acc);
}

}  // namespace vortex::gpu::centroid
