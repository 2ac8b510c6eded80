// cuda::silu_mul: a grid-stride loop over 8-channel groups (16-byte loads and stores) when the FFN
// width allows, scalar otherwise.
#include <cuda_bf16.h>

#include <algorithm>

#include "vortex/core/check.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/activation.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"

namespace vortex::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float silu(float g) { return g / (1.0f + __expf(-g)); }

__global__ void silu_mul_vec8(const __nv_bfloat16* __restrict__ gate_up, int64_t n, int32_t ffn,
                              __nv_bfloat16* __restrict__ out) {
  vortex::gpu::pdl_enter();
  const int32_t groups = ffn / 8;
  const int64_t total = n * groups;
  for (int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = idx / groups;
    const int32_t c = static_cast<int32_t>(idx % groups) * 8;
    const __nv_bfloat16* row = gate_up + t * 2 * ffn;  // [2 ffn]
    const uint4 g_raw = *reinterpret_cast<const uint4*>(row + c);
    const uint4 u_raw = *reinterpret_cast<const uint4*>(row + ffn + c);
    const __nv_bfloat162* g = reinterpret_cast<const __nv_bfloat162*>(&g_raw);
    const __nv_bfloat162* u = reinterpret_cast<const __nv_bfloat162*>(&u_raw);
    uint4 o_raw;
    __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(&o_raw);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 gf = __bfloat1622float2(g[j]);
      const float2 uf = __bfloat1622float2(u[j]);
      o[j] = __floats2bfloat162_rn(silu(gf.x) * uf.x, silu(gf.y) * uf.y);
    }
    *reinterpret_cast<uint4*>(out + t * ffn + c) = o_raw;
  }
}

__global__ void silu_mul_scalar(const __nv_bfloat16* __restrict__ gate_up, int64_t n, int32_t ffn,
                                __nv_bfloat16* __restrict__ out) {
  vortex::gpu::pdl_enter();
  const int64_t total = n * ffn;
  for (int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = idx / ffn;
    const int32_t c = static_cast<int32_t>(idx % ffn);
    const float g = __bfloat162float(gate_up[t * 2 * ffn + c]);
    const float u = __bfloat162float(gate_up[t * 2 * ffn + ffn + c]);
    out[idx] = __float2bfloat16_rn(silu(g) * u);
  }
}

}  // namespace

void silu_mul(const __nv_bfloat16* gate_up, int64_t n, int32_t ffn, __nv_bfloat16* out,
              cudaStream_t stream) {
  VORTEX_CHECK(n >= 0 && ffn > 0);
  if (n == 0) return;
  const bool vec = ffn % 8 == 0;
  const int64_t work = vec ? n * (ffn / 8) : n * ffn;
  const int64_t blocks = std::min<int64_t>((work + kThreads - 1) / kThreads, 65536);
  if (vec) {
    (void)vortex::gpu::launch_kernel(silu_mul_vec8, static_cast<unsigned>(blocks), kThreads, 0,
                                     stream, gate_up, n, ffn, out);
  } else {
    (void)vortex::gpu::launch_kernel(silu_mul_scalar, static_cast<unsigned>(blocks), kThreads, 0,
                                     stream, gate_up, n, ffn, out);
  }
  VORTEX_CUDA_CHECK(cudaGetLastError());
}

}  // namespace vortex::cuda
