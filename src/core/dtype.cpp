// Element-type names and the fp16/fp8 conversions (bit-exact, round to nearest even).
#include "vortex/core/dtype.h"

#include <algorithm>
#include <cmath>

namespace vortex {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
    case DType::kFP8E4M3:
      return "fp8_e4m3";
    case DType::kFP8E5M2:
      return "fp8_e5m2";
    case DType::kI32:
      return "i32";
    case DType::kI64:
      return "i64";
    case DType::kU8:
      return "u8";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view n) {
  if (n == "f32" || n == "float32" || n == "fp32") return DType::kF32;
  if (n == "f16" || n == "float16" || n == "fp16" || n == "half") return DType::kF16;
  if (n == "bf16" || n == "bfloat16") return DType::kBF16;
  if (n == "fp8_e4m3" || n == "float8_e4m3fn") return DType::kFP8E4M3;
  if (n == "fp8_e5m2" || n == "float8_e5m2") return DType::kFP8E5M2;
  if (n == "i32" || n == "int32") return DType::kI32;
  if (n == "i64" || n == "int64") return DType::kI64;
  if (n == "u8" || n == "uint8") return DType::kU8;
  return std::nullopt;
}

namespace {

// Generic fp32 -> small float with `ebits` exponent bits and `mbits` mantissa bits, round to
// nearest even. Returns the unsigned magnitude code; `max_code` is the largest finite code and
// `inf_code` the code for overflow (equal to max_code for satfinite formats).
uint32_t round_to_small_float(float af, int ebits, int mbits, uint32_t max_code,
                              uint32_t inf_code) {
  const int bias = (1 << (ebits - 1)) - 1;
  const uint32_t u = f32_bits(af);
  const int exp = static_cast<int>((u >> 23) & 0xff) - 127;
  const uint32_t mant = u & 0x7fffffu;
  if (af == 0.0f) return 0;
  // Target exponent field for normals; below 1-bias we produce subnormals.
  int e = exp + bias;
  uint32_t full = mant | 0x800000u;  // 24-bit significand with implicit one
  int shift;                         // how many low bits of `full` to drop
  uint32_t code_exp;
  if (e >= 1) {
    shift = 23 - mbits;
    code_exp = static_cast<uint32_t>(e);
  } else {
    shift = 23 - mbits + (1 - e);
    code_exp = 0;
    if (shift > 25) return 0;  // rounds to zero
  }
  uint32_t kept = full >> shift;
  const uint32_t rem = full & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (kept & 1u))) kept += 1;
  uint32_t code;
  if (code_exp == 0) {
    code = kept;  // subnormal; may carry into the smallest normal, which is the right code
  } else {
    // kept has the implicit bit at position mbits; a carry bumps the exponent.
    if (kept >> (mbits + 1)) {
      kept >>= 1;
      code_exp += 1;
    }
    code = (code_exp << mbits) | (kept & ((1u << mbits) - 1u));
  }
  if (code > max_code) return inf_code;
  return code;
}

float small_float_to_f32(uint32_t code, int ebits, int mbits) {
  const int bias = (1 << (ebits - 1)) - 1;
  const uint32_t e = code >> mbits;
  const uint32_t m = code & ((1u << mbits) - 1u);
  if (e == 0) return std::ldexp(static_cast<float>(m), 1 - bias - mbits);
  return std::ldexp(static_cast<float>(m | (1u << mbits)), static_cast<int>(e) - bias - mbits);
}

}  // namespace

uint16_t f32_to_f16(float f) {
  const uint32_t sign = (f32_bits(f) >> 16) & 0x8000u;
  const float af = std::fabs(f);
  if (std::isnan(f)) return static_cast<uint16_t>(sign | 0x7e00u);
  if (std::isinf(af)) return static_cast<uint16_t>(sign | 0x7c00u);
  return static_cast<uint16_t>(sign | round_to_small_float(af, 5, 10, 0x7bffu, 0x7c00u));
}

float f16_to_f32(uint16_t h) {
  const bool neg = h & 0x8000u;
  const uint32_t mag = h & 0x7fffu;
  float v;
  if ((mag >> 10) == 0x1f) {
    v = (mag & 0x3ffu) ? std::nanf("") : INFINITY;
  } else {
    v = small_float_to_f32(mag, 5, 10);
  }
  return neg ? -v : v;
}

uint8_t f32_to_fp8_e4m3(float f) {
  const uint32_t sign = (f32_bits(f) >> 24) & 0x80u;
  if (std::isnan(f)) return static_cast<uint8_t>(sign | 0x7fu);
  const float af = std::fabs(f);
  if (std::isinf(af)) return static_cast<uint8_t>(sign | 0x7eu);  // satfinite: 448
  return static_cast<uint8_t>(sign | round_to_small_float(af, 4, 3, 0x7eu, 0x7eu));
}

float fp8_e4m3_to_f32(uint8_t v) {
  const bool neg = v & 0x80u;
  const uint32_t mag = v & 0x7fu;
  const float r = (mag == 0x7fu) ? std::nanf("") : small_float_to_f32(mag, 4, 3);
  return neg ? -r : r;
}

uint8_t f32_to_fp8_e5m2(float f) {
  const uint32_t sign = (f32_bits(f) >> 24) & 0x80u;
  if (std::isnan(f)) return static_cast<uint8_t>(sign | 0x7fu);
  const float af = std::fabs(f);
  if (std::isinf(af)) return static_cast<uint8_t>(sign | 0x7cu);
  return static_cast<uint8_t>(sign | round_to_small_float(af, 5, 2, 0x7bu, 0x7cu));
}

float fp8_e5m2_to_f32(uint8_t v) {
  const bool neg = v & 0x80u;
  const uint32_t mag = v & 0x7fu;
  float r;
  if ((mag >> 2) == 0x1f) {
    r = (mag & 3u) ? std::nanf("") : INFINITY;
  } else {
    r = small_float_to_f32(mag, 5, 2);
  }
  return neg ? -r : r;
}

float load_as_f32(const void* data, DType t, size_t i) {
  switch (t) {
    case DType::kF32:
      return static_cast<const float*>(data)[i];
    case DType::kF16:
      return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::kBF16:
      return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::kFP8E4M3:
      return fp8_e4m3_to_f32(static_cast<const uint8_t*>(data)[i]);
    case DType::kFP8E5M2:
      return fp8_e5m2_to_f32(static_cast<const uint8_t*>(data)[i]);
    case DType::kI32:
      return static_cast<float>(static_cast<const int32_t*>(data)[i]);
    case DType::kI64:
      return static_cast<float>(static_cast<const int64_t*>(data)[i]);
    case DType::kU8:
      return static_cast<float>(static_cast<const uint8_t*>(data)[i]);
  }
  return 0.0f;
}

void load_range_as_f32(const void* data, DType t, size_t first, size_t n, float* out) {
  switch (t) {
    case DType::kF32: {
      const float* src = static_cast<const float*>(data) + first;
      std::copy(src, src + n, out);
      return;
    }
    case DType::kBF16: {
      const uint16_t* src = static_cast<const uint16_t*>(data) + first;
      for (size_t j = 0; j < n; ++j) out[j] = bf16_to_f32(src[j]);
      return;
    }
    default:
      for (size_t j = 0; j < n; ++j) out[j] = load_as_f32(data, t, first + j);
      return;
  }
}

void store_from_f32(void* data, DType t, size_t i, float v) {
  switch (t) {
    case DType::kF32:
      static_cast<float*>(data)[i] = v;
      return;
    case DType::kF16:
      static_cast<uint16_t*>(data)[i] = f32_to_f16(v);
      return;
    case DType::kBF16:
      static_cast<uint16_t*>(data)[i] = f32_to_bf16(v);
      return;
    case DType::kFP8E4M3:
      static_cast<uint8_t*>(data)[i] = f32_to_fp8_e4m3(v);
      return;
    case DType::kFP8E5M2:
      static_cast<uint8_t*>(data)[i] = f32_to_fp8_e5m2(v);
      return;
    case DType::kI32:
      static_cast<int32_t*>(data)[i] = static_cast<int32_t>(v);
      return;
    case DType::kI64:
      static_cast<int64_t*>(data)[i] = static_cast<int64_t>(v);
      return;
    case DType::kU8:
      static_cast<uint8_t*>(data)[i] = static_cast<uint8_t>(v);
      return;
  }
}

}  // namespace vortex
