// Allocators: the only place raw memory of a device is obtained and released. Buffer is the RAII
// owner that every Tensor and pool holds.
#pragma once

#include <cstddef>
#include <memory>

#include "vortex/core/device.h"
#include "vortex/core/status.h"

namespace vortex {

class Allocator {
 public:
  virtual ~Allocator() = default;
  /// Allocates `bytes` (0 gives a null pointer) aligned to at least `alignment`.
  virtual Expected<void*> allocate(size_t bytes, size_t alignment) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual Device device() const = 0;
};

/// The process-wide CPU allocator (64-byte aligned, zero-initialised is NOT guaranteed).
Allocator& cpu_allocator();

/// Owns one allocation; moves, never copies.
class Buffer {
 public:
  Buffer() = default;
  static Expected<Buffer> allocate(Allocator& alloc, size_t bytes, size_t alignment = 256);
  ~Buffer() { reset(); }
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return ptr_; }
  size_t size() const { return bytes_; }
  Device device() const { return alloc_ ? alloc_->device() : Device::cpu(); }
  void reset();

 private:
  Allocator* alloc_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace vortex
