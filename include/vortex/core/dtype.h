// Element types and exact conversions between fp32 and the 16-bit / 8-bit storage formats.
// Conversions round to nearest, ties to even; NaN stays NaN; overflow saturates to inf
// (fp8 e4m3 has no inf and saturates to +-448, the OCP "satfinite" convention).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace vortex {

enum class DType : uint8_t { kF32, kF16, kBF16, kFP8E4M3, kFP8E5M2, kI32, kI64, kU8 };

/// Bytes per element.
constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kFP8E4M3:
    case DType::kFP8E5M2:
    case DType::kU8:
      return 1;
    case DType::kI64:
      return 8;
  }
  return 0;
}

/// "f32", "f16", "bf16", "fp8_e4m3", "fp8_e5m2", "i32", "i64", "u8".
std::string_view dtype_name(DType t);
/// Inverse of dtype_name (also accepts "float32", "bfloat16", "float16").
std::optional<DType> parse_dtype(std::string_view name);
constexpr bool is_floating(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kFP8E4M3 ||
         t == DType::kFP8E5M2;
}

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

/// fp32 -> bf16 bits, round to nearest even.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // qNaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_f32(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

/// fp32 -> IEEE binary16 bits, round to nearest even (subnormals included).
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);
/// fp8 storage formats (OCP FP8): e4m3fn (bias 7, max 448, no inf) and e5m2 (bias 15).
uint8_t f32_to_fp8_e4m3(float f);
float fp8_e4m3_to_f32(uint8_t v);
uint8_t f32_to_fp8_e5m2(float f);
float fp8_e5m2_to_f32(uint8_t v);

/// Reads element `i` of a buffer of `t` as fp32 (integers are converted).
float load_as_f32(const void* data, DType t, size_t i);
/// Writes fp32 `v` to element `i` of a buffer of `t` (rounding as above).
void store_from_f32(void* data, DType t, size_t i, float v);
/// out[j] = element `first + j` of a buffer of `t` as fp32, j < n (one dtype dispatch per call).
void load_range_as_f32(const void* data, DType t, size_t first, size_t n, float* out);

}  // namespace vortex
