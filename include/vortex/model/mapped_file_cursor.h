// MappedFileCursor: a bounds-checked little-endian reader over a byte span, for binary headers
// (GGUF). Every read checks the remaining length first; a failed read returns a Status naming the
// file, the byte offset and what was being read, and never touches memory outside the span.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "vortex/core/status.h"

namespace vortex {

static_assert(std::endian::native == std::endian::little,
              "checkpoint formats are little-endian; big-endian hosts are not supported");

class MappedFileCursor {
 public:
  /// `name` is the file name used in error messages; `base_offset` is the file offset of bytes[0].
  MappedFileCursor(std::span<const uint8_t> bytes, std::string name, uint64_t base_offset = 0)
      : bytes_(bytes), name_(std::move(name)), base_(base_offset) {}

  /// File offset of the next byte to read.
  uint64_t offset() const { return base_ + pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  const std::string& name() const { return name_; }

  /// Reads one little-endian scalar (integer or float).
  template <typename T>
  Status read(T* out, std::string_view what) {
    static_assert(std::is_arithmetic_v<T>);
    if (remaining() < sizeof(T)) return truncated(sizeof(T), what);
    std::memcpy(out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::ok();
  }
  /// Reads `n` raw bytes into a string.
  Status read_bytes(uint64_t n, std::string* out, std::string_view what);
  /// Skips `n` bytes.
  Status skip(uint64_t n, std::string_view what);
  /// Moves to the absolute file offset `offset` (must lie inside the span or at its end).
  Status seek(uint64_t offset, std::string_view what);

  /// An invalid-argument error "<file>: at byte offset <off>: <message>".
  Status error_at(uint64_t offset, std::string_view message) const;
  /// error_at(offset(), message).
  Status error(std::string_view message) const { return error_at(offset(), message); }

 private:
  Status truncated(uint64_t need, std::string_view what) const;

  std::span<const uint8_t> bytes_;
  std::string name_;
  uint64_t base_ = 0;
  uint64_t pos_ = 0;
};

}  // namespace vortex
