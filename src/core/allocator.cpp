// CPU allocator and the Buffer RAII owner.
#include "vortex/core/allocator.h"

#include <cstdlib>
#include <string>

namespace vortex {
namespace {

class CpuAllocator final : public Allocator {
 public:
  Expected<void*> allocate(size_t bytes, size_t alignment) override {
    if (bytes == 0) return static_cast<void*>(nullptr);
    if (alignment < 64) alignment = 64;
    const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    void* p = std::aligned_alloc(alignment, rounded);
    if (p == nullptr) {
      return out_of_memory("cannot allocate " + std::to_string(bytes) +
                           " bytes of host memory; lower the KV memory budget or batch size");
    }
    return p;
  }
  void deallocate(void* ptr, size_t /*bytes*/) override { std::free(ptr); }
  Device device() const override { return Device::cpu(); }
};

}  // namespace

Allocator& cpu_allocator() {
  static CpuAllocator instance;
  return instance;
}

Expected<Buffer> Buffer::allocate(Allocator& alloc, size_t bytes, size_t alignment) {
  VORTEX_ASSIGN_OR_RETURN(void* p, alloc.allocate(bytes, alignment));
  Buffer b;
  b.alloc_ = &alloc;
  b.ptr_ = p;
  b.bytes_ = bytes;
  return b;
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    reset();
    alloc_ = o.alloc_;
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.alloc_ = nullptr;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void Buffer::reset() {
  if (alloc_ != nullptr && ptr_ != nullptr) alloc_->deallocate(ptr_, bytes_);
  alloc_ = nullptr;
  ptr_ = nullptr;
  bytes_ = 0;
}

}  // namespace vortex
