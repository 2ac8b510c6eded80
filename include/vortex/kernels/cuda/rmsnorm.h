// CUDA RMSNorm kernels (fp32 math): the block pre-norm fused with the residual add, the plain norm
// of the fp32 residual stream, and the per-head q/k norm of Qwen3.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace vortex::cuda {

/// out[n, d] = x / sqrt(mean(x²) + eps) · weight, rounded to bf16.
///   x [n, d] f32 (row stride d)   weight [d] f32   out [n, d] bf16
void rms_norm(const float* x, const float* weight, int64_t n, int32_t d, float eps,
              __nv_bfloat16* out, cudaStream_t stream);

/// residual[n, d] += add (when `add` is non-null); out = rms_norm(residual) · weight.
///   residual [n, d] f32 (updated in place)   add [n, d] bf16 or null   out [n, d] bf16
void add_rms_norm(float* residual, const __nv_bfloat16* add, const float* weight, int64_t n,
                  int32_t d, float eps, __nv_bfloat16* out, cudaStream_t stream);

/// Like rms_norm but gathers rows: out[i] = rms_norm(x[rows[i]]) for i < n (the final norm of only
/// the tokens whose logits are wanted).   rows [n] int32 indices into x
void rms_norm_rows(const float* x, const int32_t* rows, const float* weight, int64_t n, int32_t d,
                   float eps, __nv_bfloat16* out, cudaStream_t stream);

/// Per-head RMSNorm in place (Qwen3 q/k norm): for each token t < n and head h < heads, the D
/// values at x + t * row_stride + h * D are normalised and scaled by weight[D].
///   x bf16, row stride `row_stride` elements   weight [D] f32
void head_rms_norm(__nv_bfloat16* x, int64_t row_stride, int64_t n, int32_t heads, int32_t head_dim,
                   const float* weight, float eps, cudaStream_t stream);

}  // namespace vortex::cuda
