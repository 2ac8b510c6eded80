// The CPU kernels' 8-lane helpers (src/kernels/cpu/vec8.h): exp8 against std::exp, bf16 widening,
// the fixed-order lane sum.
#include "vec8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "vortex/core/dtype.h"

namespace vortex::cpu::detail {
namespace {

std::vector<float> exp8_of(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i + 8 <= x.size(); i += 8) store8(y.data() + i, exp8(load8(x.data() + i)));
  return y;
}

TEST(Vec8, ExpWithinTwoUlpOfLibm) {
  std::vector<float> x;
  for (float v = -87.0f; v <= 88.0f; v += 0.0137f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-7f, -1e-7f, 0.5f, -0.5f, 0.34657359f, -0.34657359f})
    x.push_back(v);
  while (x.size() % 8 != 0) x.push_back(1.0f);
  const std::vector<float> y = exp8_of(x);
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = std::exp(static_cast<double>(x[i]));
    const double ulp = std::nextafter(static_cast<float>(ref), INFINITY) - static_cast<float>(ref);
    worst = std::max(worst, std::abs(y[i] - ref) / ulp);
  }
  EXPECT_LE(worst, 2.0);  // 0.92 ulp measured
  EXPECT_EQ(exp8_of({0, 0, 0, 0, 0, 0, 0, 0})[3], 1.0f);
}

TEST(Vec8, ExpFlushesBelowTheNormalRangeAndOfMinusInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> y = exp8_of({-inf, -1e30f, -100.0f, -87.5f, -87.0f, 0.0f, 88.0f, 1.0f});
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], 0.0f);
  EXPECT_GT(y[4], 0.0f);
  EXPECT_TRUE(std::isfinite(y[6]));
  EXPECT_NEAR(y[7], std::exp(1.0f), 2e-7f);
}

TEST(Vec8, WidensBf16ExactlyAndSumsLanesInAFixedOrder) {
  const std::vector<float> v = {1.5f, -2.25f, 3e-5f, 65504.0f, -0.0f, 7.0f, 1e20f, -1e-20f};
  std::vector<uint16_t> h(8);
  for (size_t i = 0; i < 8; ++i) h[i] = f32_to_bf16(v[i]);
  std::vector<float> w(8);
  store8(w.data(), load8(h.data()));
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(w[i], bf16_to_f32(h[i])) << i;
  const V8 x = load8(v.data());
  EXPECT_EQ(hsum8(x), ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])));
  EXPECT_EQ(hmax8(x), 1e20f);
}

}  // namespace
}  // namespace vortex::cpu::detail
