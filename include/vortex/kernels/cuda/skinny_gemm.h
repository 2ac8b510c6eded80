// Skinny GEMM for decode steps: y[n, m] = x[n, k] · w[m, k]ᵀ (+ beta · y for fp32 output) for
// n <= 64 rows, the weight-streaming shape of a decode step, where the product is bound by reading
// w once. Tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate) with the weight rows loaded
// straight from global memory into mma fragments (16-byte loads, the next group in flight while
// one is multiplied), x staged once per CTA in shared memory, and one k permutation shared by
// both operands (a dot product does not depend on the order of its terms). A CTA's 8 warps cover
// 128 / k_groups output features x k_groups slices of its k range (reduced through shared memory
// in slice order); split-K over CTAs when that leaves too few CTAs to fill the GPU, reduced by
// the last CTA of each tile in split order or, for cluster cuts, by the CTAs of a thread-block
// cluster over distributed shared memory in split order, so results are deterministic. The first
// weights are requested before the kernel waits for its predecessor (programmatic dependent launch:
// weights do not depend on it). cuda::Gemm times every cut (skinny_gemm_shapes) against cuBLASLt
// per shape and keeps the fastest.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vortex/core/dtype.h"
#include "vortex/core/status.h"

namespace vortex::cuda {

/// Most rows (tokens) the skinny kernel takes.
constexpr int64_t kSkinnyMaxRows = 64;
/// Output features per CTA with one k group (8 warps x 16); 128 / k_groups in general.
constexpr int64_t kSkinnyTileRows = 128;

/// How a shape is cut: `tiles` CTAs along m (128 / k_groups features each), `splits` along k,
/// each split `k_per_split` wide (a multiple of 32 * k_groups; the last may be shorter) and cut
/// into k_groups equal slices, one per warp group of the CTA.
struct SkinnyGemmShape {
  int32_t tiles = 0;
  int32_t splits = 1;
  int32_t k_per_split = 0;
  int32_t k_groups = 1;  ///< 1, 2 or 4
  /// Split-K reduced inside a thread-block cluster (the splits of a tile, 2..8) over distributed
  /// shared memory instead of through global partials and a last-CTA sum; needs no workspace.
  bool cluster = false;
  bool operator==(const SkinnyGemmShape&) const = default;
};

/// Whether the kernel handles this product: 1 <= n <= 64, k a multiple of 32 (and short enough that
/// a split's x slice fits in shared memory), x and w 16-byte aligned, bf16 or fp32 output.
bool skinny_gemm_supported(const void* x, const void* w, DType y_dtype, int64_t n, int64_t m,
                           int64_t k);

/// The cut for `num_sms` multiprocessors with `k_groups` warp groups along k: split k (in halves,
/// keeping >= max(128, 64 * k_groups) columns per split) until there are about `ctas_per_sm` CTAs
/// per SM, and further until a split's x slice (and the k-group reduction) fits the CTA's shared
/// memory. tiles == 0: the shape cannot run (or k_groups is not 1, 2 or 4).
SkinnyGemmShape skinny_gemm_shape(int64_t n, int64_t m, int64_t k, int32_t num_sms,
                                  int32_t k_groups = 1, int32_t ctas_per_sm = 2);

/// The distinct cuts worth timing for a product: k_groups 1/2/4 x 1 or 2 CTAs per SM with the
/// global split-K reduction (the first is skinny_gemm_shape's default), then cluster-reduced cuts
/// for every split count 2..8 that fills between half of the SMs and two waves. Empty when the
/// kernel cannot run the shape.
std::vector<SkinnyGemmShape> skinny_gemm_shapes(int64_t n, int64_t m, int64_t k, int32_t num_sms);

/// "k_groups=2 splits=4 tiles=64 k_per_split=512", for logs and reports.
std::string describe(const SkinnyGemmShape& shape);

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
