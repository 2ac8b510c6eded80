// CUDA allocator. Built into every configuration: without CUDA it reports that no device exists.
#include "vortex/core/cuda_allocator.h"

#include <map>
#include <memory>
#include <mutex>
#include <string>

#if defined(VORTEX_WITH_CUDA)
#include "vortex/core/cuda_check.h"
#endif

namespace vortex {

#if defined(VORTEX_WITH_CUDA)
namespace {

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int ordinal) : ordinal_(ordinal) {}
  Expected<void*> allocate(size_t bytes, size_t /*alignment: cudaMalloc gives 256*/) override {
    if (bytes == 0) return static_cast<void*>(nullptr);
    VORTEX_CUDA_RETURN_IF_ERROR(cudaSetDevice(ordinal_));
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return out_of_memory("cudaMalloc of " + std::to_string(bytes) + " bytes on cuda:" +
                           std::to_string(ordinal_) + " failed (" + cudaGetErrorString(err) +
                           "); lower --kv-memory-fraction or the batch size");
    }
    return p;
  }
  void deallocate(void* ptr, size_t /*bytes*/) override {
    if (ptr != nullptr) VORTEX_CUDA_CHECK(cudaFree(ptr));
  }
  Device device() const override { return Device::cuda(ordinal_); }

 private:
  int ordinal_;
};

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

Expected<Allocator*> cuda_allocator(int ordinal) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<CudaAllocator>> allocators;
  if (ordinal < 0 || ordinal >= cuda_device_count()) {
    return not_found("CUDA device " + std::to_string(ordinal) + " not present (" +
                     std::to_string(cuda_device_count()) + " visible); use --device cpu");
  }
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = allocators[ordinal];
  if (!slot) slot = std::make_unique<CudaAllocator>(ordinal);
  return static_cast<Allocator*>(slot.get());
}

#else

int cuda_device_count() { return 0; }
Expected<Allocator*> cuda_allocator(int ordinal) {
  return unsupported("this build has no CUDA backend (device " + std::to_string(ordinal) +
                     "); rebuild with the cuda preset or use --device cpu");
}

#endif

}  // namespace vortex
