// GGML tensor element types (the `type` of a GGUF tensor info) and their dequantization to fp32.
// Block formats follow the GGML definitions: a block of `block_size` elements stored in
// `type_size` bytes; a row's element count must be a multiple of the block size.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "vortex/core/status.h"

namespace vortex {

/// GGML type ids as stored in GGUF files (the values are the on-disk ids).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

struct GgmlTypeTraits {
  const char* name;    ///< "Q4_K"
  int64_t block_size;  ///< elements per block
  int64_t type_size;   ///< bytes per block
  bool dequantizable;  ///< dequantize() supports it
};

/// Size facts of a GGML type id, or nullopt for an id this build does not know. Known ids include
/// types that cannot be dequantized here (IQ*, Q2_K, ...), so their tensors can still be skipped
/// over and reported by name.
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type);
/// "Q4_K", or "unknown type 99".
std::string ggml_type_name(uint32_t type);
/// Comma-separated names of the types dequantize() supports (for error messages).
std::string ggml_supported_types();

/// Dequantizes `dst.size()` elements of `type` from `src` to fp32. `dst.size()` must be a multiple
/// of the block size and `src.size()` exactly the matching byte count; otherwise, or for a type
/// that is not dequantizable, returns an error. Bit-exact with the GGML reference formulas.
Status dequantize(uint32_t type, std::span<const uint8_t> src, std::span<float> dst);

/// IEEE binary16 bits -> fp32, exact (NaN payloads and signs kept).
float f16_bits_to_f32(uint16_t h);

}  // namespace vortex
