// Dequantization: hand-built blocks with known values for every supported type (encoded from the
// GGML block layouts independently of the decoder), the size/validation contract, and a bit-exact
// cross-check of random blocks against the `gguf` package's dequantize (skipped without .venv).
#include "vortex/model/dequant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "test_files.h"
#include "vortex/core/dtype.h"

namespace vortex {
namespace {

std::vector<float> run(GgmlType t, const std::vector<uint8_t>& block, size_t n) {
  std::vector<float> out(n, -12345.0f);  // poisoned
  Status s = dequantize(static_cast<uint32_t>(t), block, out);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return out;
}

void put_f16(std::vector<uint8_t>& b, size_t at, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(&b[at], &h, 2);
}

TEST(Dequant, F32F16BF16) {
  std::vector<float> f = {1.5f, -0.0f, 3e38f, 1e-40f};
  std::vector<uint8_t> fb(16);
  std::memcpy(fb.data(), f.data(), 16);
  EXPECT_EQ(run(GgmlType::kF32, fb, 4), f);

  const uint16_t halves[] = {0x3C00, 0x8000, 0x0001, 0x7C00, 0xFBFF, 0x3555, 0x7E01};
  std::vector<uint8_t> hb(sizeof(halves));
  std::memcpy(hb.data(), halves, sizeof(halves));
  auto h = run(GgmlType::kF16, hb, 7);
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_TRUE(h[1] == 0.0f && std::signbit(h[1]));
  EXPECT_EQ(h[2], std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(h[3], INFINITY);
  EXPECT_EQ(h[4], -65504.0f);
  EXPECT_EQ(h[5], 0.333251953125f);
  EXPECT_TRUE(std::isnan(h[6]));
  EXPECT_EQ(f32_bits(h[6]), 0x7FC02000u);  // payload kept

  const uint16_t bf[] = {0x3F80, 0xC000, 0x4049};
  std::vector<uint8_t> bb(6);
  std::memcpy(bb.data(), bf, 6);
  auto b = run(GgmlType::kBF16, bb, 3);
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -2.0f);
  EXPECT_EQ(b[2], 3.140625f);
}

TEST(Dequant, Q4_0AndQ4_1) {
  std::vector<uint8_t> b(18);
  put_f16(b, 0, 0.5f);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  auto y = run(GgmlType::kQ4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f);
    EXPECT_EQ(y[j + 16], (15 - j - 8) * 0.5f);
  }
  std::vector<uint8_t> b1(20);
  put_f16(b1, 0, 0.25f);
  put_f16(b1, 2, -1.0f);
  for (int j = 0; j < 16; ++j) b1[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  auto y1 = run(GgmlType::kQ4_1, b1, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y1[j], j * 0.25f - 1.0f);
    EXPECT_EQ(y1[j + 16], (15 - j) * 0.25f - 1.0f);
  }
}

// 5-bit values q[e] = (7e) % 32 packed as low nibbles (element j and j + 16 share byte j) and a
// 32-bit mask of high bits (bit e for element e).
void pack_q5(const int* q, uint8_t* qh4, uint8_t* qs16) {
  uint32_t qh = 0;
  for (int e = 0; e < 32; ++e) qh |= static_cast<uint32_t>(q[e] >> 4) << e;
  std::memcpy(qh4, &qh, 4);
  for (int j = 0; j < 16; ++j)
    qs16[j] = static_cast<uint8_t>((q[j] & 15) | ((q[j + 16] & 15) << 4));
}

TEST(Dequant, Q5_0AndQ5_1) {
  int q[32];
  for (int e = 0; e < 32; ++e) q[e] = (7 * e) % 32;
  std::vector<uint8_t> b(22);
  put_f16(b, 0, 1.0f);
  pack_q5(q, &b[2], &b[6]);
  auto y = run(GgmlType::kQ5_0, b, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], static_cast<float>(q[e] - 16)) << e;

  std::vector<uint8_t> b1(24);
  put_f16(b1, 0, 0.5f);
  put_f16(b1, 2, 2.0f);
  pack_q5(q, &b1[4], &b1[8]);
  auto y1 = run(GgmlType::kQ5_1, b1, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y1[e], q[e] * 0.5f + 2.0f) << e;
}

TEST(Dequant, Q8_0) {
  std::vector<uint8_t> b(34);
  put_f16(b, 0, 0.125f);
  for (int e = 0; e < 32; ++e) b[2 + e] = static_cast<uint8_t>(static_cast<int8_t>(e * 8 - 128));
  auto y = run(GgmlType::kQ8_0, b, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], (e * 8 - 128) * 0.125f);
}

// Packs 8 six-bit scales and mins into the 12 bytes of Q4_K / Q5_K: bytes 0-3 hold the low 6
// bits of scales 0-3 (top 2 bits: high bits of scales 4-7), bytes 4-7 the same for mins, bytes
// 8-11 the low nibbles of scales 4-7 (low) and mins 4-7 (high).
void pack_k_scales(const int* sc, const int* mn, uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
}

TEST(Dequant, Q4_K) {
  int sc[8], mn[8], q[256];
  for (int j = 0; j < 8; ++j) {
    sc[j] = 10 + 7 * j;  // up to 59: exercises the high 2 bits
    mn[j] = 63 - 5 * j;
  }
  for (int e = 0; e < 256; ++e) q[e] = (5 * e) % 16;
  std::vector<uint8_t> b(144);
  put_f16(b, 0, 1.0f);
  put_f16(b, 2, 0.5f);
  pack_k_scales(sc, mn, &b[4]);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      b[16 + 32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
    }
  }
  auto y = run(GgmlType::kQ4_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(y[e], static_cast<float>(sc[e / 32] * q[e]) - 0.5f * mn[e / 32]) << e;
  }
}

TEST(Dequant, Q5_K) {
  int sc[8], mn[8], q[256];
  for (int j = 0; j < 8; ++j) {
    sc[j] = 63 - 6 * j;
    mn[j] = 3 + 8 * j;
  }
  for (int e = 0; e < 256; ++e) q[e] = (11 * e + 3) % 32;
  std::vector<uint8_t> b(176);
  put_f16(b, 0, 0.25f);
  put_f16(b, 2, 2.0f);
  pack_k_scales(sc, mn, &b[4]);
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32, l = e % 32;
    b[16 + l] = static_cast<uint8_t>(b[16 + l] | ((q[e] >> 4) << sub));  // qh: bit sub of byte l
    const int c = sub / 2;
    b[48 + 32 * c + l] =
        static_cast<uint8_t>(b[48 + 32 * c + l] | ((q[e] & 15) << (sub % 2 == 0 ? 0 : 4)));
  }
  auto y = run(GgmlType::kQ5_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(y[e], 0.25f * sc[e / 32] * q[e] - 2.0f * mn[e / 32]) << e;
  }
}

TEST(Dequant, Q6_K) {
  int q[256], sc[16];
  for (int e = 0; e < 256; ++e) q[e] = (13 * e + 1) % 64;
  for (int i = 0; i < 16; ++i) sc[i] = (i % 2 ? -1 : 1) * (i * 8 + 1);  // -121 .. 121
  std::vector<uint8_t> b(210);
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const int e1 = 128 * h + l, e2 = e1 + 32, e3 = e1 + 64, e4 = e1 + 96;
      b[64 * h + l] = static_cast<uint8_t>((q[e1] & 15) | ((q[e3] & 15) << 4));
      b[64 * h + l + 32] = static_cast<uint8_t>((q[e2] & 15) | ((q[e4] & 15) << 4));
      b[128 + 32 * h + l] = static_cast<uint8_t>((q[e1] >> 4) | ((q[e2] >> 4) << 2) |
                                                 ((q[e3] >> 4) << 4) | ((q[e4] >> 4) << 6));
    }
  }
  for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<uint8_t>(static_cast<int8_t>(sc[i]));
  put_f16(b, 208, 0.5f);
  auto y = run(GgmlType::kQ6_K, b, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.5f * sc[e / 16] * (q[e] - 32)) << e;
}

TEST(Dequant, ValidatesSizesAndTypes) {
  std::vector<float> out(32);
  std::vector<uint8_t> b(18);
  EXPECT_TRUE(dequantize(2, b, out).is_ok());
  EXPECT_FALSE(dequantize(2, std::vector<uint8_t>(17), out).is_ok());  // short
  std::vector<float> odd(31);
  EXPECT_FALSE(dequantize(2, b, odd).is_ok());  // not whole blocks
  std::vector<float> k_out(256);
  Status s = dequantize(10, std::vector<uint8_t>(84), k_out);  // Q2_K
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("Q2_K"), std::string::npos);
  EXPECT_NE(s.message().find("Q6_K"), std::string::npos);  // lists what is supported
  EXPECT_FALSE(dequantize(12345, {}, std::span<float>()).is_ok());
  EXPECT_EQ(ggml_type_name(12), "Q4_K");
  EXPECT_EQ(ggml_type_traits(14)->type_size, 210);
  EXPECT_FALSE(ggml_type_traits(5));  // removed Q4_2
}

// Random blocks (finite random fp16 scales, random quants) of every type, dequantized here and by
// gguf.quants.dequantize in Python: results must be bit-identical (NaN only from raw F16/BF16).
TEST(Dequant, MatchesGgufPythonPackageBitExactly) {
  const std::string py = testing::venv_python();
  if (py.empty()) GTEST_SKIP() << "no .venv (scripts/setup.sh creates it); skipping gguf check";
  struct Case {
    GgmlType type;
    const char* name;
    std::vector<int> f16_fields;  // byte offsets of fp16 scale fields in a block
  };
  const Case cases[] = {
      {GgmlType::kF32, "F32", {}},       {GgmlType::kF16, "F16", {}},
      {GgmlType::kBF16, "BF16", {}},     {GgmlType::kQ4_0, "Q4_0", {0}},
      {GgmlType::kQ4_1, "Q4_1", {0, 2}}, {GgmlType::kQ5_0, "Q5_0", {0}},
      {GgmlType::kQ5_1, "Q5_1", {0, 2}}, {GgmlType::kQ8_0, "Q8_0", {0}},
      {GgmlType::kQ4_K, "Q4_K", {0, 2}}, {GgmlType::kQ5_K, "Q5_K", {0, 2}},
      {GgmlType::kQ6_K, "Q6_K", {208}},
  };
  testing::TempDir dir;
  std::mt19937 rng(1234);
  std::string cmd = py + " " + VORTEX_SOURCE_DIR + "/tests/unit/model_loaders/dequant_reference.py";
  std::vector<std::vector<float>> ours;
  for (const Case& c : cases) {
    const auto tr = *ggml_type_traits(static_cast<uint32_t>(c.type));
    const int64_t blocks = tr.block_size == 1 ? 4096 : 64;
    std::vector<uint8_t> data(static_cast<size_t>(blocks * tr.type_size));
    for (auto& x : data) x = static_cast<uint8_t>(rng());
    for (int64_t bl = 0; bl < blocks; ++bl) {
      for (int off : c.f16_fields) {
        // Random finite half: any sign, exponent 0..30, any mantissa.
        uint16_t h = static_cast<uint16_t>(rng());
        if (((h >> 10) & 0x1F) == 0x1F) h = static_cast<uint16_t>(h & ~0x4000);
        std::memcpy(&data[static_cast<size_t>(bl * tr.type_size + off)], &h, 2);
      }
    }
    std::vector<float> y(static_cast<size_t>(blocks * tr.block_size));
    ASSERT_TRUE(dequantize(static_cast<uint32_t>(c.type), data, y).is_ok()) << c.name;
    ours.push_back(std::move(y));
    testing::write_file(dir.file(std::string(c.name) + ".in"), data);
    cmd += std::string(" ") + c.name + ":" + dir.file(std::string(c.name) + ".in") + ":" +
           dir.file(std::string(c.name) + ".out");
  }
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  for (size_t i = 0; i < std::size(cases); ++i) {
    std::vector<uint8_t> ref = testing::read_file(dir.file(std::string(cases[i].name) + ".out"));
    ASSERT_EQ(ref.size(), ours[i].size() * 4) << cases[i].name;
    int64_t mismatches = 0;
    for (size_t e = 0; e < ours[i].size(); ++e) {
      uint32_t r;
      std::memcpy(&r, &ref[e * 4], 4);
      const uint32_t o = f32_bits(ours[i][e]);
      const bool both_nan = std::isnan(bits_f32(r)) && std::isnan(ours[i][e]);
      if (r != o && !both_nan) {
        if (mismatches++ < 5) {
          ADD_FAILURE() << cases[i].name << " element " << e << ": ours " << ours[i][e] << " (0x"
                        << std::hex << o << ") vs gguf " << bits_f32(r) << " (0x" << r << std::dec
                        << ")";
        }
      }
    }
    EXPECT_EQ(mismatches, 0) << cases[i].name;
  }
}

}  // namespace
}  // namespace vortex
