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

__global__ void __launch_bounds__(32)
    l2_prefetch_pages_kernel(const PageTableView pt, const char* __restrict__ pool,
                             uint32_t page_bytes, float fraction) {
  for (int32_t b = blockIdx.x; b < pt.batch_size; b += gridDim.x) {
    const int32_t first = pt.page_indptr[b];
    const int32_t n = pt.page_indptr[b + 1] - first;
    const int32_t lim = min(n, static_cast<int32_t>(ceilf(static_cast<float>(n) * fraction)));
    for (int32_t i = threadIdx.x; i < lim; i += 32) {
      const char* row = pool + static_cast<size_t>(pt.page_indices[first + i]) * page_bytes;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(row), "r"(page_bytes)
                   : "memory");
#else
      for (uint32_t off = 0; off < page_bytes; off += 128) {
        asm volatile("prefetch.global.L2 [%0];" ::"l"(row + off));
      }
#endif
    }
  }
}

}  // namespace

cudaError_t l2_prefetch_pages(const PageTableView& pt, const void* pool, size_t page_bytes,
                              float fraction, int ctas, cudaStream_t stream) {
  if (pool == nullptr || pt.batch_size <= 0 || !(fraction > 0.0f)) return cudaSuccess;
  if (page_bytes == 0 || page_bytes % 16 != 0 || page_bytes > (size_t{1} << 20)) {
    return cudaErrorInvalidValue;
  }
  const int grid = std::max(1, std::min(ctas, pt.batch_size));
  l2_prefetch_pages_kernel<<<grid, 32, 0, stream>>>(pt, static_cast<const char*>(pool),
                                                    static_cast<uint32_t>(page_bytes),
                                                    std::min(fraction, 1.0f));
  return cudaGetLastError();
}

cudaError_t l2_prefetch(const void* p, size_t bytes, int ctas, cudaStream_t stream) {
  if (p == nullptr || bytes < 16) return cudaSuccess;
  // At least 32 KiB per CTA: fewer, busier CTAs take fewer SM slots from the kernels beside them.
  const size_t most = std::max<size_t>(1, bytes >> 15);
  const int grid = static_cast<int>(std::min<size_t>(most, static_cast<size_t>(std::max(ctas, 1))));
  l2_prefetch_kernel<<<grid, 32, 0, stream>>>(p, bytes);
  return cudaGetLastError();
}

}  // namespace vortex::cuda
