// Dequantization of GGML block formats to fp32. Each format is written from the GGML block layout
// (ggml-common.h): scales are fp16 unless noted, quants are packed low nibble first. The
// arithmetic order matches the reference (d * q + m, d * sc * q, ...) so results are bit-exact;
// this file is compiled with -ffp-contract=off so no FMA changes the rounding.
#include "vortex/model/dequant.h"

#include <cstring>

#include "vortex/core/dtype.h"

namespace vortex {
namespace {

constexpr int64_t kQK = 32;     // elements per block of the legacy formats
constexpr int64_t kQK_K = 256;  // elements per super-block of the K formats

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

float load_f16(const uint8_t* p) { return f16_bits_to_f32(load_u16(p)); }

// Q4_0: d(f16) qs[16]; x[j] = (lo(qs[j]) - 8) * d, x[j + 16] = (hi(qs[j]) - 8) * d.
void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>((qs[j] & 0x0F) - 8);
    y[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

// Q4_1: d(f16) m(f16) qs[16]; x = nibble * d + m.
void dequant_q4_1(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
    y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

// Q5_0: d(f16) qh(u32 LE: bit j = 5th bit of element j) qs[16]; x = (q5 - 16) * d.
void dequant_q5_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const uint32_t qh = load_u32(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = d * static_cast<float>(lo - 16);
    y[j + 16] = d * static_cast<float>(hi - 16);
  }
}

// Q5_1: d(f16) m(f16) qh(u32) qs[16]; x = q5 * d + m.
void dequant_q5_1(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  const uint32_t qh = load_u32(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = d * static_cast<float>(lo) + m;
    y[j + 16] = d * static_cast<float>(hi) + m;
  }
}

// Q8_0: d(f16) qs[32] int8; x = q * d.
void dequant_q8_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// The 12-byte packed 6-bit (scale, min) pairs of Q4_K / Q5_K, for sub-block j in [0, 8).
void k_scale_min(const uint8_t* s, int j, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
    *mn = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Q4_K: d(f16) dmin(f16) scales[12] qs[128]; 8 sub-blocks of 32; x = d*sc * q - dmin*m.
// Each 32-byte run of qs holds two sub-blocks: low nibbles first, then high nibbles.
void dequant_q4_k(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float dmin = load_f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int is = 0; is < 8; is += 2) {
    uint8_t sc, mn;
    k_scale_min(scales, is, &sc, &mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    k_scale_min(scales, is + 1, &sc, &mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) y[32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
    y += 64;
  }
}

// Q5_K: d(f16) dmin(f16) scales[12] qh[32] qs[128]; as Q4_K with a 5th bit: bit i of qh[l] is
// the high bit of element l of sub-block i.
void dequant_q5_k(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float dmin = load_f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  for (int is = 0; is < 8; is += 2) {
    uint8_t sc, mn;
    k_scale_min(scales, is, &sc, &mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    k_scale_min(scales, is + 1, &sc, &mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) {
      const int q = (ql[l] & 0x0F) | (((qh[l] >> is) & 1) << 4);
      y[l] = d1 * static_cast<float>(q) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      const int q = (ql[l] >> 4) | (((qh[l] >> (is + 1)) & 1) << 4);
      y[32 + l] = d2 * static_cast<float>(q) - m2;
    }
    ql += 32;
    y += 64;
  }
}

// Q6_K: ql[128] qh[64] scales[16](int8) d(f16); 16 sub-blocks of 16; x = d*sc * (q6 - 32).
// Per half (128 elements): ql holds 64 bytes, qh 32 bytes; element l + 32*k takes the low/high
// nibble of ql[l] or ql[l + 32] and 2 bits (2k) of qh[l].
void dequant_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_f16(b + 208);
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = (d * static_cast<float>(sc[is])) * static_cast<float>(q1);
      y[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
      y[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
      y[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

using BlockFn = void (*)(const uint8_t*, float*);

BlockFn block_fn(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kQ4_0:
      return dequant_q4_0;
    case GgmlType::kQ4_1:
      return dequant_q4_1;
    case GgmlType::kQ5_0:
      return dequant_q5_0;
    case GgmlType::kQ5_1:
      return dequant_q5_1;
    case GgmlType::kQ8_0:
      return dequant_q8_0;
    case GgmlType::kQ4_K:
      return dequant_q4_k;
    case GgmlType::kQ5_K:
      return dequant_q5_k;
    case GgmlType::kQ6_K:
      return dequant_q6_k;
    default:
      return nullptr;
  }
}

struct TypeRow {
  uint32_t id;
  GgmlTypeTraits traits;
};

// Sizes from the GGML type table; `dequantizable` marks what this file implements.
constexpr TypeRow kTypes[] = {
    {0, {"F32", 1, 4, true}},
    {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", kQK, 18, true}},
    {3, {"Q4_1", kQK, 20, true}},
    {6, {"Q5_0", kQK, 22, true}},
    {7, {"Q5_1", kQK, 24, true}},
    {8, {"Q8_0", kQK, 34, true}},
    {9, {"Q8_1", kQK, 40, false}},
    {10, {"Q2_K", kQK_K, 84, false}},
    {11, {"Q3_K", kQK_K, 110, false}},
    {12, {"Q4_K", kQK_K, 144, true}},
    {13, {"Q5_K", kQK_K, 176, true}},
    {14, {"Q6_K", kQK_K, 210, true}},
    {15, {"Q8_K", kQK_K, 292, false}},
    {16, {"IQ2_XXS", kQK_K, 66, false}},
    {17, {"IQ2_XS", kQK_K, 74, false}},
    {18, {"IQ3_XXS", kQK_K, 98, false}},
    {19, {"IQ1_S", kQK_K, 50, false}},
    {20, {"IQ4_NL", kQK, 18, false}},
    {21, {"IQ3_S", kQK_K, 110, false}},
    {22, {"IQ2_S", kQK_K, 82, false}},
    {23, {"IQ4_XS", kQK_K, 136, false}},
    {24, {"I8", 1, 1, false}},
    {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},
    {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, false}},
    {29, {"IQ1_M", kQK_K, 56, false}},
    {30, {"BF16", 1, 2, true}},
    {34, {"TQ1_0", kQK_K, 54, false}},
    {35, {"TQ2_0", kQK_K, 66, false}},
    {39, {"MXFP4", kQK, 17, false}},
};

}  // namespace

float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return bits_f32(sign | 0x7F800000u | (mant << 13));  // inf / NaN (payload kept)
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in fp32.
    const float v = static_cast<float>(mant) * 5.9604644775390625e-08f;
    return bits_f32(f32_bits(v) | sign);
  }
  return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type) {
  for (const TypeRow& r : kTypes) {
    if (r.id == type) return r.traits;
  }
  return std::nullopt;
}

std::string ggml_type_name(uint32_t type) {
  auto t = ggml_type_traits(type);
  return t ? std::string(t->name) : "unknown type " + std::to_string(type);
}

std::string ggml_supported_types() {
  std::string s;
  for (const TypeRow& r : kTypes) {
    if (!r.traits.dequantizable) continue;
    if (!s.empty()) s += ", ";
    s += r.traits.name;
  }
  return s;
}

Status dequantize(uint32_t type, std::span<const uint8_t> src, std::span<float> dst) {
  auto traits = ggml_type_traits(type);
  if (!traits || !traits->dequantizable) {
    return unsupported("cannot dequantize tensors of " + ggml_type_name(type) +
                       "; supported types: " + ggml_supported_types());
  }
  const uint64_t n = dst.size();
  if (n % static_cast<uint64_t>(traits->block_size) != 0) {
    return invalid_argument(std::to_string(n) + " elements is not a multiple of the " +
                            traits->name + " block size " + std::to_string(traits->block_size));
  }
  const uint64_t blocks = n / static_cast<uint64_t>(traits->block_size);
  if (src.size() != blocks * static_cast<uint64_t>(traits->type_size)) {
    return invalid_argument(std::string(traits->name) + " data of " + std::to_string(n) +
                            " elements needs " +
                            std::to_string(blocks * static_cast<uint64_t>(traits->type_size)) +
                            " bytes, got " + std::to_string(src.size()));
  }
  const uint8_t* s = src.data();
  float* y = dst.data();
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32:
      if (n) std::memcpy(y, s, n * 4);
      return Status::ok();
    case GgmlType::kF16:
      for (uint64_t i = 0; i < n; ++i) y[i] = f16_bits_to_f32(load_u16(s + 2 * i));
      return Status::ok();
    case GgmlType::kBF16:
      for (uint64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(load_u16(s + 2 * i));
      return Status::ok();
    default:
      break;
  }
  BlockFn fn = block_fn(type);
  if (fn == nullptr) return internal_error("no block decoder for " + ggml_type_name(type));
  for (uint64_t i = 0; i < blocks; ++i) {
    fn(s + i * static_cast<uint64_t>(traits->type_size), y + i * traits->block_size);
  }
  return Status::ok();
}

}  // namespace vortex
