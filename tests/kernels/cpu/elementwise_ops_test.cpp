// Tests of the dense CPU kernels (matmul, rms_norm, add_rms_norm, silu_mul, embedding) against
// brute-force loops written here, on random inputs with poisoned outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {
namespace {

std::vector<float> random_vec(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<float> poisoned(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

double rel_l2(const std::vector<float>& a, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - ref[i]) * (a[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

TEST(CpuMatmul, MatchesBruteForceWithAndWithoutBias) {
  std::mt19937 rng(1);
  // Every row count of the streaming kernel (1..24: groups of eight, each R) and the sliced sgemm
  // above it; m with partial blocks and weight-row tiles, k with a tail past the 8-wide vectors;
  // shapes big enough to run on several threads.
  std::vector<std::tuple<int, int, int>> shapes = {{1, 7, 5},  {3, 16, 64}, {17, 33, 129},
                                                   {64, 1, 3}, {2, 5, 1},   {40, 97, 70}};
  for (int n = 1; n <= 26; ++n) shapes.emplace_back(n, 70 + n, n % 2 == 0 ? 131 : 64);
  for (auto [n, m, k] : shapes) {
    auto x = random_vec(static_cast<size_t>(n * k), rng);
    auto w = random_vec(static_cast<size_t>(m * k), rng);
    auto bias = random_vec(static_cast<size_t>(m), rng);
    for (bool with_bias : {false, true}) {
      auto y = poisoned(static_cast<size_t>(n * m));
      matmul(x.data(), w.data(), with_bias ? bias.data() : nullptr, n, m, k, y.data());
      std::vector<double> ref(static_cast<size_t>(n * m));
      for (int r = 0; r < n; ++r) {
        for (int c = 0; c < m; ++c) {
          double s = with_bias ? bias[static_cast<size_t>(c)] : 0.0;
          for (int i = 0; i < k; ++i) {
            s += static_cast<double>(x[static_cast<size_t>(r * k + i)]) *
                 w[static_cast<size_t>(c * k + i)];
          }
          ref[static_cast<size_t>(r * m + c)] = s;
        }
      }
      EXPECT_LT(rel_l2(y, ref), 1e-5) << n << "x" << m << "x" << k << " bias " << with_bias;
    }
  }
}

// Up to 24 rows each y element is one fixed sequence of fused multiply-adds whatever the other rows
// are: a request's logits do not depend on the batch it decodes in.
TEST(CpuMatmul, FewRowsAreBatchInvariant) {
  std::mt19937 rng(3);
  const int m = 301, k = 203;
  auto w = random_vec(static_cast<size_t>(m * k), rng);
  auto bias = random_vec(static_cast<size_t>(m), rng);
  auto x = random_vec(static_cast<size_t>(24 * k), rng);
  std::vector<std::vector<float>> alone(24);
  for (int r = 0; r < 24; ++r) {
    alone[static_cast<size_t>(r)] = poisoned(static_cast<size_t>(m));
    matmul(x.data() + r * k, w.data(), bias.data(), 1, m, k, alone[static_cast<size_t>(r)].data());
  }
  for (int n = 2; n <= 24; ++n) {
    auto y = poisoned(static_cast<size_t>(n * m));
    matmul(x.data(), w.data(), bias.data(), n, m, k, y.data());
    for (int r = 0; r < n; ++r) {
      for (int c = 0; c < m; ++c) {
        ASSERT_EQ(y[static_cast<size_t>(r * m + c)], alone[static_cast<size_t>(r)][c])
            << "n " << n << " row " << r << " col " << c;
      }
    }
  }
}

TEST(CpuRmsNorm, MatchesBruteForce) {
  std::mt19937 rng(2);
  const int n = 5, d = 96;
  auto x = random_vec(n * d, rng, 3.0f);
  auto w = random_vec(d, rng);
  auto out = poisoned(n * d);
  rms_norm(x.data(), w.data(), n, d, 1e-6f, out.data());
  std::vector<double> ref(n * d);
  for (int r = 0; r < n; ++r) {
    double ss = 0;
    for (int i = 0; i < d; ++i) ss += x[r * d + i] * static_cast<double>(x[r * d + i]);
    const double inv = 1.0 / std::sqrt(ss / d + 1e-6);
    for (int i = 0; i < d; ++i) ref[r * d + i] = x[r * d + i] * inv * w[i];
  }
  EXPECT_LT(rel_l2(out, ref), 1e-6);
}

TEST(CpuAddRmsNorm, UpdatesResidualThenNormalises) {
  std::mt19937 rng(3);
  const int n = 4, d = 64;
  auto residual = random_vec(n * d, rng);
  auto x = random_vec(n * d, rng);
  auto w = random_vec(d, rng);
  std::vector<float> sum(n * d);
  for (int i = 0; i < n * d; ++i) sum[i] = residual[i] + x[i];
  auto expected = poisoned(n * d);
  rms_norm(sum.data(), w.data(), n, d, 1e-5f, expected.data());
  auto out = poisoned(n * d);
  add_rms_norm(residual.data(), x.data(), w.data(), n, d, 1e-5f, out.data());
  for (int i = 0; i < n * d; ++i) {
    EXPECT_FLOAT_EQ(residual[i], sum[i]);
    EXPECT_FLOAT_EQ(out[i], expected[i]);
  }
}

TEST(CpuSiluMul, MatchesFormulaIncludingLargeMagnitudes) {
  std::vector<float> gate = {0.0f, 1.0f, -1.0f, 20.0f, -20.0f, 100.0f, -100.0f, 0.5f};
  std::vector<float> up = {1.0f, 2.0f, 3.0f, 0.5f, 4.0f, 1.0f, 1.0f, -2.0f};
  auto out = poisoned(gate.size());
  silu_mul(gate.data(), up.data(), static_cast<int64_t>(gate.size()), out.data());
  for (size_t i = 0; i < gate.size(); ++i) {
    const double g = gate[i];
    const double ref = g / (1.0 + std::exp(-g)) * up[i];
    EXPECT_NEAR(out[i], ref, 1e-5 * std::max(1.0, std::fabs(ref))) << i;
    EXPECT_TRUE(std::isfinite(out[i]));
  }
}

TEST(CpuEmbedding, GathersRows) {
  std::mt19937 rng(4);
  const int vocab = 10, d = 8;
  auto table = random_vec(vocab * d, rng);
  std::vector<int32_t> ids = {3, 0, 9, 3};
  auto out = poisoned(ids.size() * d);
  embedding(table.data(), ids.data(), static_cast<int64_t>(ids.size()), d, out.data());
  for (size_t t = 0; t < ids.size(); ++t) {
    for (int i = 0; i < d; ++i) EXPECT_EQ(out[t * d + i], table[ids[t] * d + i]);
  }
}

}  // namespace
}  // namespace vortex::cpu
