// cuda::embedding_lookup: one block per token, 16-byte loads of the bf16 row, fp32 stores.
#include <cuda_bf16.h>

#include "vortex/core/check.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/embedding.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"

namespace vortex::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void embedding_kernel(const __nv_bfloat16* __restrict__ table, int32_t vocab, int32_t d,
                                 const int32_t* __restrict__ ids,
                                 const int32_t* __restrict__ prev_tokens,
                                 const int32_t* __restrict__ prev_index, float* __restrict__ out) {
  vortex::gpu::pdl_enter();
  const int64_t i = blockIdx.x;
  int32_t id = ids[i];
  if (prev_index != nullptr && prev_index[i] >= 0) id = prev_tokens[prev_index[i]];
  float* dst = out + i * d;  // [d]
  if (id < 0 || id >= vocab) {
    for (int32_t c = threadIdx.x; c < d; c += blockDim.x) dst[c] = 0.0f;
    return;
  }
  const __nv_bfloat16* src = table + static_cast<int64_t>(id) * d;  // [d]
  if (d % 8 == 0) {
    for (int32_t c = threadIdx.x * 8; c < d; c += blockDim.x * 8) {
      const uint4 raw = *reinterpret_cast<const uint4*>(src + c);
      const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
      float4 lo, hi;
      float2 f0 = __bfloat1622float2(pairs[0]), f1 = __bfloat1622float2(pairs[1]);
      float2 f2 = __bfloat1622float2(pairs[2]), f3 = __bfloat1622float2(pairs[3]);
      lo = make_float4(f0.x, f0.y, f1.x, f1.y);
      hi = make_float4(f2.x, f2.y, f3.x, f3.y);
      *reinterpret_cast<float4*>(dst + c) = lo;
      *reinterpret_cast<float4*>(dst + c + 4) = hi;
    }
  } else {
    for (int32_t c = threadIdx.x; c < d; c += blockDim.x) dst[c] = __bfloat162float(src[c]);
  }
}

}  // namespace

void embedding_lookup(const __nv_bfloat16* table, int32_t vocab, int32_t d, const int32_t* ids,
                      const int32_t* prev_tokens, const int32_t* prev_index, int64_t n, float* out,
                      cudaStream_t stream) {
  VORTEX_CHECK(d > 0 && vocab > 0 && n >= 0);
  VORTEX_CHECK(prev_index == nullptr || prev_tokens != nullptr);
  if (n == 0) return;
  (void)vortex::gpu::launch_kernel(embedding_kernel, static_cast<unsigned>(n), kThreads, 0, stream,
                                   table, vocab, d, ids, prev_tokens, prev_index, out);
  VORTEX_CUDA_CHECK(cudaGetLastError());
}

}  // namespace vortex::cuda
