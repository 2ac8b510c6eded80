// cuda::l2_prefetch: CTA i of n prefetches part i of n (l2_prefetch_device.cuh).
#include <algorithm>
#include <cstdint>

#include "vortex/kernels/cuda/l2_prefetch.h"
#include "vortex/kernels/cuda/l2_prefetch_device.cuh"

namespace vortex::cuda {
namespace {

__global__ void __launch_bounds__(32) l2_prefetch_kernel(const void* p, uint64_t bytes) {
  gpu::l2_prefetch_part(p, bytes, blockIdx.x, gridDim.x, threadIdx.x);
}

}  // namespace

cudaError_t l2_prefetch(const void* p, size_t bytes, int ctas, cudaStream_t stream) {
  if (p == nullptr || bytes < 16) return cudaSuccess;
  // At least 32 KiB per CTA: fewer, busier CTAs take fewer SM slots from the kernels beside them.
  const size_t most = std::max<size_t>(1, bytes >> 15);
  const int grid = static_cast<int>(std::min<size_t>(most, static_cast<size_t>(std::max(ctas, 1))));
  l2_prefetch_kernel<<<grid, 32, 0, stream>>>(p, bytes);
  return cudaGetLastError();
}

}  // namespace vortex::cuda
