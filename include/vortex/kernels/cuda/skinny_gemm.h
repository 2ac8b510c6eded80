// Skinny GEMM for decode steps: y[n, m] = x[n, k] · w[m, k]ᵀ (+ beta · y for fp32 output) for
// n <= 64 rows, the weight-streaming shape of a decode step, where the product is bound by reading
// w once. Tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate) with the weight rows loaded
// straight from global memory into mma fragments (16-byte loads, the next group in flight while
// one is multiplied), x staged once per CTA in shared memory, and one k permutation shared by
// both operands (a dot product does not depend on the order of its terms). Split-K over CTAs
// when the output has too few 128-row tiles to fill the GPU, reduced by the last CTA of each tile
// in split order, so results are deterministic. cuda::Gemm picks it over cuBLASLt per shape when
// it measures faster.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "vortex/core/dtype.h"
#include "vortex/core/status.h"

namespace vortex::cuda {

/// Most rows (tokens) the skinny kernel takes.
constexpr int64_t kSkinnyMaxRows = 64;
/// Output features per CTA (8 warps x 16).
constexpr int64_t kSkinnyTileRows = 128;

/// How a shape is cut: `tiles` CTAs along m, `splits` along k, each split `k_per_split` wide
/// (a multiple of 32; the last may be shorter).
struct SkinnyGemmShape {
  int32_t tiles = 0;
  int32_t splits = 1;
  int32_t k_per_split = 0;
};

/// Whether the kernel handles this product: 1 <= n <= 64, k a multiple of 32 (and short enough that
/// a split's x slice fits in shared memory), x and w 16-byte aligned, bf16 or fp32 output.
bool skinny_gemm_supported(const void* x, const void* w, DType y_dtype, int64_t n, int64_t m,
                           int64_t k);

/// The cut for `num_sms` multiprocessors: split k (in halves, keeping >= 128 columns per split)
/// until there are about two CTAs per SM, and further until a split's x slice fits the CTA's
/// shared memory. tiles == 0: the shape cannot run.
SkinnyGemmShape skinny_gemm_shape(int64_t n, int64_t m, int64_t k, int32_t num_sms);

/// Device workspace bytes for `shape` (fp32 split partials + one counter per tile; 0 when not
/// split). Zero it once (skinny_gemm_init_workspace) before the first product; the kernel leaves
/// the counters zero again, so one workspace serves every later product of the shape on the
/// same stream (and graph replays).
size_t skinny_gemm_workspace_bytes(const SkinnyGemmShape& shape, int64_t n, int64_t m);
Status skinny_gemm_init_workspace(void* workspace, const SkinnyGemmShape& shape, int64_t n,
                                  int64_t m, cudaStream_t stream);

/// y[n, m] = x[n, k] · w[m, k]ᵀ, row-major, contiguous; fp32 output adds beta · y (bf16: beta
/// must be 0). `workspace` as above (may be null when shape.splits == 1).
Status skinny_gemm(const __nv_bfloat16* x, const __nv_bfloat16* w, void* y, DType y_dtype,
                   int64_t n, int64_t m, int64_t k, float beta, const SkinnyGemmShape& shape,
                   void* workspace, cudaStream_t stream);

}  // namespace vortex::cuda
