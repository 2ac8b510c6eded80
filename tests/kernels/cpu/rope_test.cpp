// Tests of cpu::rope and cpu::rope_inv_freq: frequencies against HF's formulas written out here in
// double precision, the rotation against complex multiplication, both channel pairings, and the
// relative-position property.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <numbers>
#include <random>
#include <vector>

#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {
namespace {

std::vector<double> reference_inv_freq(const RopeConfig& r, int d) {
  std::vector<double> f(static_cast<size_t>(d / 2));
  for (int i = 0; i < d / 2; ++i) f[i] = 1.0 / std::pow(static_cast<double>(r.theta), 2.0 * i / d);
  if (r.scaling == RopeScaling::kLinear) {
    for (auto& x : f) x /= r.factor;
  } else if (r.scaling == RopeScaling::kLlama3) {
    const double low_wl = r.original_max_position / static_cast<double>(r.low_freq_factor);
    const double high_wl = r.original_max_position / static_cast<double>(r.high_freq_factor);
    for (auto& x : f) {
      const double wl = 2 * std::numbers::pi / x;
      if (wl < high_wl) continue;  // high frequency: unchanged
      if (wl > low_wl) {
        x /= r.factor;  // low frequency: scaled
        continue;
      }
      const double smooth = (r.original_max_position / wl - r.low_freq_factor) /
                            (r.high_freq_factor - r.low_freq_factor);
      x = (1 - smooth) * x / r.factor + smooth * x;
    }
  }
  return f;
}

RopeConfig llama31_rope() {
  RopeConfig r;
  r.theta = 500000.0f;
  r.scaling = RopeScaling::kLlama3;
  r.factor = 8.0f;
  r.low_freq_factor = 1.0f;
  r.high_freq_factor = 4.0f;
  r.original_max_position = 8192;
  return r;
}

TEST(CpuRopeInvFreq, MatchesHfFormulas) {
  RopeConfig plain;
  plain.theta = 100000.0f;
  RopeConfig linear = plain;
  linear.scaling = RopeScaling::kLinear;
  linear.factor = 4.0f;
  for (const RopeConfig& r : {plain, linear, llama31_rope()}) {
    for (int d : {16, 64, 128}) {
      std::vector<float> got(static_cast<size_t>(d / 2));
      rope_inv_freq(r, d, got.data());
      const auto ref = reference_inv_freq(r, d);
      for (int i = 0; i < d / 2; ++i) EXPECT_NEAR(got[i], ref[i], 2e-6 * ref[i]) << d << " " << i;
    }
  }
}

TEST(CpuRopeInvFreq, Llama3KeepsHighAndScalesLowFrequencies) {
  std::vector<float> base(64), scaled(64);
  RopeConfig plain = llama31_rope();
  plain.scaling = RopeScaling::kNone;
  rope_inv_freq(plain, 128, base.data());
  rope_inv_freq(llama31_rope(), 128, scaled.data());
  EXPECT_FLOAT_EQ(scaled[0], base[0]);           // wavelength 2π: unchanged
  EXPECT_FLOAT_EQ(scaled[63], base[63] / 8.0f);  // longest wavelength: divided by factor
  for (int i = 1; i < 64; ++i) EXPECT_LT(scaled[i], scaled[i - 1]);  // still monotone
}

// x[n, heads, D] rotated by complex multiplication, for either pairing.
std::vector<float> reference_rope(const std::vector<float>& x, const std::vector<int32_t>& pos,
                                  int heads, int d, const RopeConfig& r) {
  const auto f = reference_inv_freq(r, d);
  std::vector<float> out = x;
  for (size_t t = 0; t < pos.size(); ++t) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < d / 2; ++i) {
        const int a = r.style == RopeStyle::kAdjacentPairs ? 2 * i : i;
        const int b = r.style == RopeStyle::kAdjacentPairs ? 2 * i + 1 : i + d / 2;
        const size_t base = (t * heads + h) * d;
        std::complex<double> z(x[base + a], x[base + b]);
        // HF forms the angle as an fp32 product (position · inv_freq); so does the kernel.
        const float angle = static_cast<float>(pos[t]) * static_cast<float>(f[i]);
        z *= std::polar(1.0, static_cast<double>(angle));
        out[base + a] = static_cast<float>(z.real());
        out[base + b] = static_cast<float>(z.imag());
      }
    }
  }
  return out;
}

TEST(CpuRope, MatchesComplexRotationForBothPairings) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist;
  const int n = 6, heads = 3, d = 32;
  std::vector<float> x(n * heads * d);
  for (auto& v : x) v = dist(rng);
  const std::vector<int32_t> pos = {0, 1, 7, 100, 4095, 31};
  for (RopeStyle style : {RopeStyle::kHalfSplit, RopeStyle::kAdjacentPairs}) {
    RopeConfig r;
    r.theta = 10000.0f;
    r.style = style;
    auto got = x;
    rope(got.data(), pos.data(), n, heads, d, r);
    const auto ref = reference_rope(x, pos, heads, d, r);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-5) << i;
  }
}

TEST(CpuRope, AdjacentPairsEqualsHalfSplitUnderTheGgufPermutation) {
  // llama.cpp's converter permutes Q/K rows so that channel i of half i < D/2 lands at 2i and
  // channel i + D/2 at 2i + 1; rotating the permuted vector by adjacent pairs must equal
  // permuting the half-split rotation.
  std::mt19937 rng(6);
  std::normal_distribution<float> dist;
  const int d = 64;
  std::vector<float> x(d), permuted(d);
  for (auto& v : x) v = dist(rng);
  for (int i = 0; i < d / 2; ++i) {
    permuted[2 * i] = x[i];
    permuted[2 * i + 1] = x[i + d / 2];
  }
  const int32_t pos = 123;
  RopeConfig half;
  RopeConfig adjacent;
  adjacent.style = RopeStyle::kAdjacentPairs;
  rope(x.data(), &pos, 1, 1, d, half);
  rope(permuted.data(), &pos, 1, 1, d, adjacent);
  for (int i = 0; i < d / 2; ++i) {
    EXPECT_FLOAT_EQ(permuted[2 * i], x[i]);
    EXPECT_FLOAT_EQ(permuted[2 * i + 1], x[i + d / 2]);
  }
}

TEST(CpuRope, DotProductDependsOnlyOnRelativePosition) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  const int d = 64;
  std::vector<float> q(d), k(d);
  for (auto& v : q) v = dist(rng);
  for (auto& v : k) v = dist(rng);
  auto rotated_dot = [&](int32_t pq, int32_t pk) {
    auto a = q, b = k;
    RopeConfig r;
    rope(a.data(), &pq, 1, 1, d, r);
    rope(b.data(), &pk, 1, 1, d, r);
    double s = 0;
    for (int i = 0; i < d; ++i) s += static_cast<double>(a[i]) * b[i];
    return s;
  };
  EXPECT_NEAR(rotated_dot(10, 3), rotated_dot(107, 100), 1e-3);
  EXPECT_NEAR(rotated_dot(5, 5), rotated_dot(0, 0), 1e-3);
}

}  // namespace
}  // namespace vortex::cpu
