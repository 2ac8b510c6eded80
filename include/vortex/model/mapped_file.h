// MappedFile: a read-only memory mapping of a whole file (RAII), the way every checkpoint loader
// reads its bytes. Reads go through bounds-checked helpers; the raw span is for bulk tensor data
// whose extent was checked against size() first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "vortex/core/status.h"

namespace vortex {

class MappedFile {
 public:
  MappedFile() = default;
  /// Maps `path` read-only. A missing, unreadable or non-regular file gives a Status naming it.
  static Expected<MappedFile> open(const std::string& path);
  ~MappedFile() { reset(); }
  MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  /// All bytes of the file.
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  /// True when [offset, offset + n) lies inside the file (overflow-safe).
  bool in_bounds(uint64_t offset, uint64_t n) const {
    return offset <= size_ && n <= size_ - offset;
  }
  /// The bytes [offset, offset + n), or an error naming the file and the offset.
  Expected<std::span<const uint8_t>> slice(uint64_t offset, uint64_t n) const;
  /// Unmaps (idempotent).
  void reset();

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;  // false for an empty file (nothing to unmap)
  std::string path_;
};

}  // namespace vortex
