// CPU numerics of every op against brute-force formulas written here from FLOW_SPEC, on random
// inputs with broadcasting, plus the selection helpers (ties, NaN) and Quest's upper-bound
// property.
#include "vortex/compiler/cpu_ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "vortex/compiler/interpreter.h"
#include "vortex/compiler/passes.h"
#include "vortex/compiler/selection.h"
#include "vortex/flow/op_catalogue.h"
#include "vortex/flow/registry.h"

namespace vortex::compiler {
namespace {

using flow::OpKind;
using flow::ResolvedAttrs;

Value random_value(int64_t L, int64_t d0, int64_t d1, std::mt19937& rng, float lo = -2,
                   float hi = 2) {
  std::uniform_real_distribution<float> u(lo, hi);
  Value v = Value::zeros(L, d0, d1);
  for (float& x : v.data) x = u(rng);
  return v;
}

Value eval(OpKind op, const ResolvedAttrs& a, std::vector<const Value*> in, int64_t d0,
           int64_t d1) {
  auto r = eval_op(op, a, in, d0, d1, 0);
  EXPECT_TRUE(r.has_value()) << r.status().to_string();
  return r.has_value() ? *r : Value{};
}

using Formula = std::function<double(int64_t l, int64_t i, int64_t j)>;

void expect_close(const Value& got, int64_t L, int64_t d0, int64_t d1, const Formula& want,
                  const char* what, double tol = 1e-5) {
  ASSERT_EQ(got.L, L) << what;
  ASSERT_EQ(got.d0, d0) << what;
  ASSERT_EQ(got.d1, d1) << what;
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t i = 0; i < d0; ++i) {
      for (int64_t j = 0; j < d1; ++j) {
        const double w = want(l, i, j);
        EXPECT_NEAR(got.at(l, i, j), w, tol * (1 + std::fabs(w)))
            << what << " at [" << l << ", " << i << ", " << j << "]";
      }
    }
  }
}

// Broadcasting read written independently of Value::get.
double bget(const Value& v, int64_t l, int64_t i, int64_t j) {
  return v.data[static_cast<size_t>(((v.L > 1 ? l : 0) * v.d0 + (v.d0 > 1 ? i : 0)) * v.d1 +
                                    (v.d1 > 1 ? j : 0))];
}

TEST(CpuOps, GeMM) {
  std::mt19937 rng(1);
  const Value x = random_value(1, 3, 8, rng), y = random_value(5, 2, 8, rng);
  expect_close(
      eval(OpKind::kGeMM, {}, {&x, &y}, 2, 3), 5, 2, 3,
      [&](int64_t l, int64_t i, int64_t j) {
        double s = 0;
        for (int64_t k = 0; k < 8; ++k) s += bget(y, l, i, k) * bget(x, l, j, k);
        return s;
      },
      "GeMM");
}

TEST(CpuOps, Reductions) {
  std::mt19937 rng(2);
  const Value x = random_value(4, 6, 5, rng);
  for (OpKind op : {OpKind::kSum, OpKind::kMean, OpKind::kMax, OpKind::kMin, OpKind::kL2Norm}) {
    for (int dim : {0, 1, 2}) {
      ResolvedAttrs a;
      a.dim = dim;
      const int64_t n = dim == 0 ? 4 : dim == 1 ? 6 : 5;
      const Value r = eval(op, a, {&x}, dim == 1 ? 1 : 6, dim == 2 ? 1 : 5);
      expect_close(
          r, dim == 0 ? 1 : 4, dim == 1 ? 1 : 6, dim == 2 ? 1 : 5,
          [&](int64_t l, int64_t i, int64_t j) {
            double acc = op == OpKind::kMax ? -1e300 : op == OpKind::kMin ? 1e300 : 0;
            for (int64_t t = 0; t < n; ++t) {
              const double v = x.at(dim == 0 ? t : l, dim == 1 ? t : i, dim == 2 ? t : j);
              if (op == OpKind::kMax)
                acc = std::max(acc, v);
              else if (op == OpKind::kMin)
                acc = std::min(acc, v);
              else if (op == OpKind::kL2Norm)
                acc += v * v;
              else
                acc += v;
            }
            if (op == OpKind::kMean) acc /= static_cast<double>(n);
            if (op == OpKind::kL2Norm) acc = std::sqrt(acc);
            return acc;
          },
          flow::op_info(op).name.data());
    }
  }
}

TEST(CpuOps, InterleavedReductions) {
  std::mt19937 rng(3);
  const Value x = random_value(1, 8, 6, rng);
  for (OpKind op : {OpKind::kMeanInterleave, OpKind::kMaxInterleave, OpKind::kMinInterleave,
                    OpKind::kL2NormInterleave}) {
    for (int dim : {1, 2}) {
      ResolvedAttrs a;
      a.dim = dim;
      a.k = 2;
      const int64_t d0 = dim == 1 ? 4 : 8, d1 = dim == 2 ? 3 : 6;
      expect_close(
          eval(op, a, {&x}, d0, d1), 1, d0, d1,
          [&](int64_t, int64_t i, int64_t j) {
            std::vector<double> g;
            for (int64_t t = 0; t < 2; ++t) {
              g.push_back(dim == 1 ? x.at(0, i * 2 + t, j) : x.at(0, i, j * 2 + t));
            }
            if (op == OpKind::kMeanInterleave) return (g[0] + g[1]) / 2;
            if (op == OpKind::kMaxInterleave) return std::max(g[0], g[1]);
            if (op == OpKind::kMinInterleave) return std::min(g[0], g[1]);
            return std::sqrt(g[0] * g[0] + g[1] * g[1]);
          },
          flow::op_info(op).name.data());
    }
  }
}

TEST(CpuOps, PageAxisOps) {
  std::mt19937 rng(4);
  const Value x = random_value(7, 2, 3, rng, 0.1f, 3.0f);
  ResolvedAttrs sm;
  sm.scale = 0.7;
  expect_close(
      eval(OpKind::kSoftmax, sm, {&x}, 2, 3), 7, 2, 3,
      [&](int64_t l, int64_t i, int64_t j) {
        double z = 0;
        for (int64_t t = 0; t < 7; ++t) z += std::exp(0.7 * x.at(t, i, j));
        return std::exp(0.7 * x.at(l, i, j)) / z;
      },
      "Softmax");
  expect_close(
      eval(OpKind::kNormalize, {}, {&x}, 2, 3), 7, 2, 3,
      [&](int64_t l, int64_t i, int64_t j) {
        double z = 0;
        for (int64_t t = 0; t < 7; ++t) z += x.at(t, i, j);
        return x.at(l, i, j) / z;
      },
      "Normalize");
  for (int64_t K : {1, 3, 4}) {
    ResolvedAttrs cv;
    cv.tensor.shape = {K, 1, 3};
    for (int64_t t = 0; t < K * 3; ++t) cv.tensor.data.push_back(0.25f * static_cast<float>(t + 1));
    expect_close(
        eval(OpKind::kConv1d, cv, {&x}, 2, 3), 7, 2, 3,
        [&](int64_t s, int64_t i, int64_t j) {
          double acc = 0;
          for (int64_t t = 0; t < K; ++t) {
            const int64_t src = s + t - K / 2;  // centred, zero padded
            if (src >= 0 && src < 7)
              acc += cv.tensor.data[static_cast<size_t>(t * 3 + j)] * x.at(src, i, j);
          }
          return acc;
        },
        "Conv1d");
  }
}

TEST(CpuOps, BinaryElementwiseWithBroadcasting) {
  std::mt19937 rng(5);
  const Value x = random_value(1, 3, 4, rng), y = random_value(5, 1, 4, rng);
  Value y_eq = y;
  y_eq.data[0] = x.data[0];  // an exact equality for the Where* ops
  ResolvedAttrs add;
  add.alpha = 0.5;
  add.beta = -2;
  struct Case {
    OpKind op;
    std::function<double(double, double)> f;
  };
  auto mask = [](bool p) { return p ? 0.0 : -1e30; };
  const std::vector<Case> cases = {
      {OpKind::kMultiply, [](double a, double b) { return a * b; }},
      {OpKind::kMaximum, [](double a, double b) { return std::max(a, b); }},
      {OpKind::kMinimum, [](double a, double b) { return std::min(a, b); }},
      {OpKind::kAdd, [](double a, double b) { return 0.5 * a - 2 * b; }},
      {OpKind::kWhereEqual, [&](double a, double b) { return mask(a == b); }},
      {OpKind::kWhereNotEqual, [&](double a, double b) { return mask(a != b); }},
      {OpKind::kWhereGreater, [&](double a, double b) { return mask(a > b); }},
      {OpKind::kWhereGreaterEqual, [&](double a, double b) { return mask(a >= b); }},
      {OpKind::kWhereLess, [&](double a, double b) { return mask(a < b); }},
      {OpKind::kWhereLessEqual, [&](double a, double b) { return mask(a <= b); }},
  };
  for (const auto& c : cases) {
    expect_close(
        eval(c.op, add, {&x, &y_eq}, 3, 4), 5, 3, 4,
        [&](int64_t l, int64_t i, int64_t j) { return c.f(bget(x, l, i, j), bget(y_eq, l, i, j)); },
        flow::op_info(c.op).name.data());
  }
}

TEST(CpuOps, UnaryElementwise) {
  std::mt19937 rng(6);
  const Value x = random_value(3, 2, 5, rng, 0.1f, 2.0f);
  ResolvedAttrs a;
  a.a = 0.3;
  a.b = -1.5;
  struct Case {
    OpKind op;
    std::function<double(double)> f;
  };
  const std::vector<Case> cases = {
      {OpKind::kRelu, [](double v) { return v >= 0.3 ? v : -1.5; }},
      {OpKind::kSigmoid, [](double v) { return 1 / (1 + std::exp(-1.5 * v + 0.3)); }},
      {OpKind::kSilu, [](double v) { return v / (1 + std::exp(-1.5 * v + 0.3)); }},
      {OpKind::kAffine, [](double v) { return -1.5 * v + 0.3; }},
      {OpKind::kAbs, [](double v) { return std::fabs(-1.5 * v + 0.3); }},
      {OpKind::kExp, [](double v) { return std::exp(-1.5 * v + 0.3); }},
  };
  for (const auto& c : cases) {
    expect_close(
        eval(c.op, a, {&x}, 2, 5), 3, 2, 5,
        [&](int64_t l, int64_t i, int64_t j) { return c.f(x.at(l, i, j)); },
        flow::op_info(c.op).name.data());
  }
  ResolvedAttrs lg;
  lg.a = 0.5;
  lg.b = 2;
  expect_close(
      eval(OpKind::kLog, lg, {&x}, 2, 5), 3, 2, 5,
      [&](int64_t l, int64_t i, int64_t j) { return std::log(2 * x.at(l, i, j) + 0.5); }, "Log");
}

TEST(CpuOps, LayoutOps) {
  std::mt19937 rng(7);
  const Value x = random_value(1, 2, 3, rng), y = random_value(4, 3, 3, rng);
  ResolvedAttrs k12;
  k12.dims = {1, 2};
  expect_close(
      eval(OpKind::kKron, k12, {&x, &y}, 6, 9), 4, 6, 9,
      [&](int64_t l, int64_t r, int64_t c) {
        return bget(x, l, r / 3, c / 3) * bget(y, l, r % 3, c % 3);
      },
      "Kron(1,2)");
  ResolvedAttrs k1;
  k1.dims = {1};
  expect_close(
      eval(OpKind::kKron, k1, {&x, &y}, 6, 3), 4, 6, 3,
      [&](int64_t l, int64_t r, int64_t c) { return bget(x, l, r / 3, c) * bget(y, l, r % 3, c); },
      "Kron(1)");
  const Value z = random_value(4, 2, 2, rng);
  ResolvedAttrs k2;
  k2.dims = {2};
  expect_close(
      eval(OpKind::kKron, k2, {&x, &z}, 2, 6), 4, 2, 6,
      [&](int64_t l, int64_t r, int64_t c) { return bget(x, l, r, c / 2) * bget(z, l, r, c % 2); },
      "Kron(2)");
  expect_close(
      eval(OpKind::kTranspose, {}, {&y}, 3, 3), 4, 3, 3,
      [&](int64_t l, int64_t i, int64_t j) { return y.at(l, j, i); }, "Transpose");
  ResolvedAttrs rs;
  rs.shape = {-1, 9, 1};
  expect_close(
      eval(OpKind::kReshape, rs, {&y}, 9, 1), 4, 9, 1,
      [&](int64_t l, int64_t i, int64_t) { return y.at(l, i / 3, i % 3); }, "Reshape");
  ResolvedAttrs ms;
  ms.start = 1;
  ms.end = 3;
  ms.dim = 2;
  ms.a = 7;
  ms.b = -1;
  expect_close(
      eval(OpKind::kMaskSlice, ms, {&y}, 3, 3), 4, 3, 3,
      [&](int64_t, int64_t, int64_t j) { return j >= 1 && j < 3 ? 7.0 : -1.0; }, "MaskSlice");
}

TEST(CpuOps, StateAndConstants) {
  std::mt19937 rng(8);
  const Value x = random_value(3, 1, 2, rng);
  for (OpKind op : {OpKind::kLoad, OpKind::kSave, OpKind::kTopK, OpKind::kApproxTopK}) {
    expect_close(
        eval(op, {}, {&x}, 1, 2), 3, 1, 2,
        [&](int64_t l, int64_t i, int64_t j) { return x.at(l, i, j); },
        flow::op_info(op).name.data());
  }
  ResolvedAttrs fill;
  fill.value = 2.5;
  expect_close(
      eval(OpKind::kFill, fill, {}, 2, 3), 1, 2, 3, [](int64_t, int64_t, int64_t) { return 2.5; },
      "Fill");
  ResolvedAttrs p;
  p.tensor.shape = {2, 2, 3};
  for (int i = 0; i < 12; ++i) p.tensor.data.push_back(static_cast<float>(i));
  auto slice1 = eval_op(OpKind::kParameter, p, {}, 2, 3, 1);
  ASSERT_TRUE(slice1.has_value());
  expect_close(
      *slice1, 1, 2, 3, [](int64_t, int64_t i, int64_t j) { return 6.0 + i * 3 + j; },
      "Parameter layer 1");
  auto out_of_range = eval_op(OpKind::kParameter, p, {}, 2, 3, 2);
  ASSERT_FALSE(out_of_range.has_value());
  EXPECT_NE(out_of_range.status().message().find("one slice per layer"), std::string::npos);
}

TEST(Selection, TopCandidatesBreaksTiesLowAndRanksNaNLast) {
  const float nan = std::nanf("");
  const std::vector<float> s = {1, 3, nan, 3, 2, 3, -INFINITY, 0};
  EXPECT_EQ(top_candidates(s, 2), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(top_candidates(s, 4), (std::vector<int64_t>{1, 3, 4, 5}));
  EXPECT_EQ(top_candidates(s, 7), (std::vector<int64_t>{0, 1, 3, 4, 5, 6, 7}));
  EXPECT_EQ(top_candidates(s, 8).size(), 8u);
  EXPECT_TRUE(top_candidates(s, 0).empty());
}

TEST(Selection, CandidateRangeReservesTheLastPage) {
  EXPECT_EQ(candidate_range(10, 1, 0).last, 9);  // eos 0 still reserves the partial last page
  EXPECT_EQ(candidate_range(10, 2, 3).first, 2);
  EXPECT_EQ(candidate_range(10, 2, 3).last, 7);
  EXPECT_EQ(assemble_row(10, 2, 0, std::vector<int64_t>{0, 5}),
            (std::vector<int64_t>{0, 1, 2, 7, 9}));
}

// Quest's score is an upper bound of every true logit q_h . k_t of its page (property test, fp32
// K and fields; the bound holds exactly per term, so only summation rounding is allowed).
TEST(QuestProperty, ScoreBoundsEveryLogitOfThePage) {
  auto ir = flow::registered_flow_ir("quest");
  ASSERT_TRUE(ir.has_value());
  std::mt19937 rng(9);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t P = 16, D = 8 + 8 * (trial % 4), G = 1 + trial % 4;
    auto plan = compile_plan(*ir, flow::ShapeEnv{P, D, G});
    ASSERT_TRUE(plan.has_value()) << plan.status().to_string();
    const Value k = random_value(1, P, D, rng, -3, 3), q = random_value(1, G, D, rng, -3, 3);
    const TileReader read_kv = [&](int32_t, int64_t, float* dst) {
      std::copy(k.data.begin(), k.data.end(), dst);
    };
    auto tiles = run_cache_plan(plan->cache, read_kv, 0);
    ASSERT_TRUE(tiles.has_value());
    const TileReader read_fields = [&](int32_t f, int64_t, float* dst) {
      const auto& t = (*tiles)[static_cast<size_t>(f)];
      std::copy(t.begin(), t.end(), dst);
    };
    auto scores = run_indexer_plan(plan->indexer, q.data, 1, read_fields, 0);
    ASSERT_TRUE(scores.has_value());
    double magnitude = 0;
    for (int64_t h = 0; h < G; ++h) {
      for (int64_t t = 0; t < P; ++t) {
        double logit = 0, mag = 0;
        for (int64_t d = 0; d < D; ++d) {
          logit += static_cast<double>(q.at(0, h, d)) * k.at(0, t, d);
          mag += std::fabs(q.at(0, h, d) * k.at(0, t, d));
        }
        magnitude = std::max(magnitude, mag);
        EXPECT_GE(scores->scores[0], logit - 1e-5 * mag)
            << "trial " << trial << " head " << h << " token " << t;
      }
    }
  }
}

}  // namespace
}  // namespace vortex::compiler
