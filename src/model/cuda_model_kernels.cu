// Internal to CudaModel: seeded random fills on the device (see cuda_model_kernels.h). The value
// arithmetic uses round-to-nearest intrinsics so that it matches the host formula bit for bit.
#include <algorithm>

#include "cuda_model_kernels.h"
#include "vortex/core/check.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"

namespace vortex::detail {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

__device__ __forceinline__ float synthetic_value(uint64_t stream_key, int64_t i, float mean,
                                                 float half_width) {
  const uint64_t bits = splitmix64(stream_key + static_cast<uint64_t>(i));
  const float unit = __fmul_rn(static_cast<float>(bits >> 40), 1.0f / 16777216.0f);
  return __fadd_rn(mean, __fmul_rn(__fsub_rn(__fmul_rn(2.0f, unit), 1.0f), half_width));
}

template <typename T>
__global__ void fill_kernel(T* __restrict__ out, int64_t n, uint64_t stream_key, int64_t first,
                            float mean, float half_width) {
  vortex::gpu::pdl_enter();
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float v = synthetic_value(stream_key, first + i, mean, half_width);
    if constexpr (sizeof(T) == 2) {
      out[i] = __float2bfloat16_rn(v);
    } else {
      out[i] = v;
    }
  }
}

template <typename T>
void launch_fill(T* out, int64_t n, uint64_t stream_key, int64_t first, float mean,
                 float half_width, cudaStream_t stream) {
  VORTEX_CHECK(n >= 0);
  if (n == 0) return;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 132 * 32);
  (void)vortex::gpu::launch_kernel(fill_kernel<T>, static_cast<unsigned>(blocks), kThreads, 0,
                                   stream, out, n, stream_key, first, mean, half_width);
  VORTEX_CUDA_CHECK(cudaGetLastError());
}

__global__ void accumulate_kernel(const int32_t* value, int32_t times, long long* acc) {
  vortex::gpu::pdl_enter();
  *acc += static_cast<long long>(*value) * times;
}

}  // namespace

void accumulate_count(const int32_t* value, int32_t times, long long* acc, cudaStream_t stream) {
  (void)vortex::gpu::launch_kernel(accumulate_kernel, 1, 1, 0, stream, value, times, acc);
  VORTEX_CUDA_CHECK(cudaGetLastError());
}

void fill_synthetic_bf16(__nv_bfloat16* out, int64_t n, uint64_t stream_key, int64_t first,
                         float mean, float half_width, cudaStream_t stream) {
  launch_fill(out, n, stream_key, first, mean, half_width, stream);
}

void fill_synthetic_f32(float* out, int64_t n, uint64_t stream_key, int64_t first, float mean,
                        float half_width, cudaStream_t stream) {
  launch_fill(out, n, stream_key, first, mean, half_width, stream);
}

}  // namespace vortex::detail
