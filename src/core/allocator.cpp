// CPU allocator and the Buffer RAII owner.
#include "vortex/core/allocator.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace vortex {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

/// VORTEX_CPU_HUGEPAGES=off keeps large host buffers on 4 KiB pages.
bool huge_pages_wanted() {
  static const bool wanted = [] {
    const char* v = std::getenv("VORTEX_CPU_HUGEPAGES");
    return v == nullptr || (std::strcmp(v, "off") != 0 && std::strcmp(v, "0") != 0);
  }();
  return wanted;
}

class CpuAllocator final : public Allocator {
 public:
  // Buffers of 2 MiB and more (weights, the KV cache, activations of long prefills) start on a
  // 2 MiB boundary and are advised onto transparent huge pages: a decode step streams every weight
  // and every page of K/V once, and with 4 KiB pages each scattered page tile costs a TLB walk.
  // The size is not rounded (a partial last 2 MiB stays on small pages); where the kernel's THP
  // mode is "never" the advice is a no-op.
  Expected<void*> allocate(size_t bytes, size_t alignment) override {
    if (bytes == 0) return static_cast<void*>(nullptr);
    if (alignment < 64) alignment = 64;
    const bool huge = bytes >= kHugePage && alignment <= kHugePage && huge_pages_wanted();
    void* p = nullptr;
    if (huge) {
      if (posix_memalign(&p, kHugePage, bytes) != 0) p = nullptr;
    } else {
      p = std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
    }
    if (p == nullptr) {
      return out_of_memory("cannot allocate " + std::to_string(bytes) +
                           " bytes of host memory; lower the KV memory budget or batch size");
    }
#if defined(MADV_HUGEPAGE)
    if (huge) (void)madvise(p, bytes, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
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
