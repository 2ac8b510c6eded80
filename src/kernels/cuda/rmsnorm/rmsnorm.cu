// cuda RMSNorm kernels: one block per row for the hidden-size norms (the row stays in registers
// between the sum of squares and the scaling), one warp per head for the per-head norm.
#include <cuda_bf16.h>

#include "vortex/core/check.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"
#include "vortex/kernels/cuda/rmsnorm.h"

namespace vortex::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxPerThread = 16;  // float4 groups per thread: d <= kThreads * 4 * 16 = 16384

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// Sum over the block; every thread gets the result.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  __shared__ float total;
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < static_cast<int>(blockDim.x / 32) ? partial[lane] : 0.0f;
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

/// One block per row. Each thread holds up to kMaxPerThread float4 groups of the row.
/// kAdd: residual += add first (written back), then the norm.
template <bool kAdd>
__global__ void norm_kernel(float* __restrict__ x, const __nv_bfloat16* __restrict__ add,
                            const int32_t* __restrict__ rows, const float* __restrict__ weight,
                            int32_t d, float eps, __nv_bfloat16* __restrict__ out) {
  vortex::gpu::pdl_enter();
  const int64_t row = rows != nullptr ? rows[blockIdx.x] : blockIdx.x;
  float* xr = x + row * d;                           // [d]
  __nv_bfloat16* o = out + int64_t{blockIdx.x} * d;  // [d]
  const int groups = d / 4;                          // d % 4 == 0 (checked at launch)
  float4 v[kMaxPerThread];
  float sum_sq = 0.0f;
#pragma unroll
  for (int j = 0; j < kMaxPerThread; ++j) {
    const int g = threadIdx.x + j * kThreads;
    if (g < groups) {
      float4 a = reinterpret_cast<const float4*>(xr)[g];
      if constexpr (kAdd) {
        if (add != nullptr) {
          const __nv_bfloat162* ad = reinterpret_cast<const __nv_bfloat162*>(add + row * d) + 2 * g;
          const float2 p0 = __bfloat1622float2(ad[0]), p1 = __bfloat1622float2(ad[1]);
          a.x += p0.x;
          a.y += p0.y;
          a.z += p1.x;
          a.w += p1.y;
          reinterpret_cast<float4*>(xr)[g] = a;
        }
      }
      v[j] = a;
      sum_sq += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
    }
  }
  const float inv = rsqrtf(block_sum(sum_sq) / static_cast<float>(d) + eps);
#pragma unroll
  for (int j = 0; j < kMaxPerThread; ++j) {
    const int g = threadIdx.x + j * kThreads;
    if (g < groups) {
      const float4 w = reinterpret_cast<const float4*>(weight)[g];
      __nv_bfloat162* dst = reinterpret_cast<__nv_bfloat162*>(o) + 2 * g;
      dst[0] = __floats2bfloat162_rn(v[j].x * inv * w.x, v[j].y * inv * w.y);
      dst[1] = __floats2bfloat162_rn(v[j].z * inv * w.z, v[j].w * inv * w.w);
    }
  }
}

/// One warp per (token, head); head_dim <= 32 * 8.
__global__ void head_norm_kernel(__nv_bfloat16* __restrict__ x, int64_t row_stride, int64_t n,
                                 int32_t heads, int32_t head_dim, const float* __restrict__ weight,
                                 float eps) {
  vortex::gpu::pdl_enter();
  const int64_t item = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (item >= n * heads) return;
  const int64_t t = item / heads;
  const int32_t h = static_cast<int32_t>(item % heads);
  __nv_bfloat16* v = x + t * row_stride + int64_t{h} * head_dim;  // [D]
  float vals[8];
  float sum_sq = 0.0f;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int e = lane + 32 * j;
    vals[j] = e < head_dim ? __bfloat162float(v[e]) : 0.0f;
    sum_sq += vals[j] * vals[j];
  }
  const float inv = rsqrtf(warp_sum(sum_sq) / static_cast<float>(head_dim) + eps);
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int e = lane + 32 * j;
    if (e < head_dim) v[e] = __float2bfloat16_rn(vals[j] * inv * weight[e]);
  }
}

void check_dims(int64_t n, int32_t d) {
  VORTEX_CHECK_MSG(
      n >= 0 && d > 0 && d % 4 == 0 && d <= kThreads * 4 * kMaxPerThread,
      "rms_norm supports d % 4 == 0 and d <= " << kThreads * 4 * kMaxPerThread << ", got " << d);
}

}  // namespace

void rms_norm(const float* x, const float* weight, int64_t n, int32_t d, float eps,
              __nv_bfloat16* out, cudaStream_t stream) {
  check_dims(n, d);
  if (n == 0) return;
  (void)vortex::gpu::launch_kernel(norm_kernel<false>, static_cast<unsigned>(n), kThreads, 0,
                                   stream, const_cast<float*>(x), nullptr, nullptr, weight, d, eps,
                                   out);
  VORTEX_CUDA_CHECK(cudaGetLastError());
}

void add_rms_norm(float* residual, const __nv_bfloat16* add, const float* weight, int64_t n,
                  int32_t d, float eps, __nv_bfloat16* out, cudaStream_t stream) {
  check_dims(n, d);
  if (n == 0) return;
  (void)vortex::gpu::launch_kernel(norm_kernel<true>, static_cast<unsigned>(n), kThreads, 0, stream,
                                   residual, add, nullptr, weight, d, eps, out);
  VORTEX_CUDA_CHECK(cudaGetLastError());
}

void rms_norm_rows(const float* x, const int32_t* rows, const float* weight, int64_t n, int32_t d,
                   float eps, __nv_bfloat16* out, cudaStream_t stream) {
  check_dims(n, d);
  if (n == 0) return;
  (void)vortex::gpu::launch_kernel(norm_kernel<false>, static_cast<unsigned>(n), kThreads, 0,
                                   stream, const_cast<float*>(x), nullptr, rows, weight, d, eps,
                                   out);
  VORTEX_CUDA_CHECK(cudaGetLastError());
}

void head_rms_norm(__nv_bfloat16* x, int64_t row_stride, int64_t n, int32_t heads, int32_t head_dim,
                   const float* weight, float eps, cudaStream_t stream) {
  VORTEX_CHECK(n >= 0 && heads > 0 && head_dim > 0 && head_dim <= 256);
  const int64_t warps = n * heads;
  if (warps == 0) return;
  const int64_t blocks = (warps * 32 + kThreads - 1) / kThreads;
  (void)vortex::gpu::launch_kernel(head_norm_kernel, static_cast<unsigned>(blocks), kThreads, 0,
                                   stream, x, row_stride, n, heads, head_dim, weight, eps);
  VORTEX_CUDA_CHECK(cudaGetLastError());
}

}  // namespace vortex::cuda
