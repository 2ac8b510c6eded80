// Every built-in flow's page selection through the runtime contract (run_cache_flow_cpu +
// select_pages_cpu) against a from-scratch reference written here: random and structured inputs,
// a planted high-scoring page, bos/eos always present, exactly `budget` distinct pages, dense rows
// within budget, dense layers, multi-step state (running_avg).
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <tuple>

#include "flow_world.h"
#include "vortex/flow/policy.h"

namespace vortex::flow::testing {
namespace {

// ---- reference scores ------------------------------------------------------------------------

struct Summary {
  std::vector<std::vector<float>> centroid, max, min;  // [sub-pages][D], rounded like the field
  float venergy = 0;
};

Summary summarize(const World& w, int32_t layer, int32_t page, int32_t head, int64_t sub) {
  const int64_t P = w.spec.page_size, D = w.spec.head_dim, per = P / sub;
  const auto k = w.tile(layer, page, head, false), v = w.tile(layer, page, head, true);
  Summary s;
  for (int64_t j = 0; j < sub; ++j) {
    std::vector<float> c(D), mx(D), mn(D);
    for (int64_t d = 0; d < D; ++d) {
      float sum = 0, hi = -INFINITY, lo = INFINITY;
      for (int64_t t = j * per; t < (j + 1) * per; ++t) {
        const float x = k[static_cast<size_t>(t * D + d)];
        sum += x;
        hi = std::max(hi, x);
        lo = std::min(lo, x);
      }
      c[d] = w.round_aux(sum / static_cast<float>(per));
      mx[d] = w.round_aux(hi);
      mn[d] = w.round_aux(lo);
    }
    s.centroid.push_back(c);
    s.max.push_back(mx);
    s.min.push_back(mn);
  }
  float energy = 0;
  for (int64_t t = 0; t < P; ++t) {
    float sq = 0;
    for (int64_t d = 0; d < D; ++d)
      sq += v[static_cast<size_t>(t * D + d)] * v[static_cast<size_t>(t * D + d)];
    energy += std::sqrt(sq);
  }
  s.venergy = w.round_aux(energy / static_cast<float>(P));
  return s;
}

using QRows = std::vector<std::vector<double>>;  // [G][D]

double dot(const std::vector<double>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
std::vector<double> mean_rows(const QRows& q) {
  std::vector<double> m(q[0].size(), 0.0);
  for (const auto& r : q) {
    for (size_t d = 0; d < r.size(); ++d) m[d] += r[d] / static_cast<double>(q.size());
  }
  return m;
}
double quest(const QRows& q, const Summary& s, int64_t masked) {
  double best = -INFINITY;
  for (const auto& qh : q) {
    for (size_t j = 0; j < s.max.size(); ++j) {
      double sum = 0;
      for (size_t d = 0; d < qh.size(); ++d) {
        const double x = static_cast<int64_t>(d) < masked ? 0.0 : qh[d];
        sum += std::max(x * s.max[j][d], x * s.min[j][d]);
      }
      best = std::max(best, sum);
    }
  }
  return best;
}

// State of running_avg: r per (layer, physical page, head), 0 after the cache flow's Fill.
using RunningState = std::map<std::tuple<int32_t, int32_t, int32_t>, float>;

std::vector<double> reference_scores(const std::string& flow, const World& w, int32_t layer,
                                     int32_t head, const std::vector<int32_t>& cand_pages,
                                     const QRows& q, RunningState* state) {
  const int64_t D = w.spec.head_dim;
  const int64_t sub =
      flow.rfind("lserve", 0) == 0 ? w.spec.page_size / std::min<int64_t>(w.spec.page_size, 16) : 1;
  std::vector<Summary> sums;
  for (int32_t p : cand_pages) sums.push_back(summarize(w, layer, p, head, sub));
  const auto qbar = mean_rows(q);
  std::vector<double> out(cand_pages.size());
  if (flow == "gqa_block_topk") {
    std::vector<double> best(cand_pages.size(), -INFINITY);
    for (const auto& qh : q) {
      std::vector<double> logit(cand_pages.size());
      double mx = -INFINITY, z = 0;
      for (size_t s = 0; s < sums.size(); ++s) {
        logit[s] = dot(qh, sums[s].centroid[0]) / std::sqrt(static_cast<double>(D));
        mx = std::max(mx, logit[s]);
      }
      for (double l : logit) z += std::exp(l - mx);
      for (size_t s = 0; s < sums.size(); ++s)
        best[s] = std::max(best[s], std::exp(logit[s] - mx) / z);
    }
    return best;
  }
  for (size_t s = 0; s < sums.size(); ++s) {
    const Summary& m = sums[s];
    if (flow == "block_topk") {
      out[s] = dot(qbar, m.centroid[0]);
    } else if (flow == "quest" || flow == "lserve_quest") {
      out[s] = quest(q, m, 0);
    } else if (flow == "masked_quest") {
      out[s] = quest(q, m, std::min<int64_t>(8, D));
    } else if (flow == "lserve_centroid") {
      out[s] = -INFINITY;
      for (const auto& c : m.centroid) out[s] = std::max(out[s], dot(qbar, c));
    } else if (flow == "venergy_centroid") {
      out[s] = dot(qbar, m.centroid[0]) * m.venergy;
    } else if (flow == "h2o_pages") {
      out[s] = dot(qbar, m.centroid[0]) + quest(q, m, 0);
    } else if (flow == "running_avg") {
      float& r = (*state)[{layer, cand_pages[s], head}];
      out[s] = 0.5 * r + dot(qbar, m.centroid[0]);
      r = w.round_aux(static_cast<float>(out[s]));  // the Save, rounded to the field's dtype
    } else {
      ADD_FAILURE() << "no reference for " << flow;
    }
  }
  return out;
}

// ---- checking one row ------------------------------------------------------------------------

// `got` (logical pages) against the reference; within `tol` of the k-th best score a page may go
// either way (fp32 vs double), everything else must match exactly. tol = 0: exact.
void expect_row(const std::vector<int64_t>& got, int64_t n, int64_t m, int32_t bos, int32_t eos,
                const std::vector<double>& scores, double tol, const std::string& ctx) {
  const auto want = reference_select(n, m, bos, eos, scores);
  const std::set<int64_t> uniq(got.begin(), got.end());
  ASSERT_EQ(uniq.size(), got.size()) << ctx << ": duplicate pages";
  ASSERT_TRUE(std::is_sorted(got.begin(), got.end())) << ctx << ": not in logical order";
  ASSERT_EQ(got.size(), want.size()) << ctx << ": not exactly min(n, budget) pages";
  if (n <= m || got == want) {
    EXPECT_EQ(got, want) << ctx;
    return;
  }
  ASSERT_GT(tol, 0.0) << ctx << ": selection differs from the reference";
  const int64_t eos_eff = std::max(eos, 1);
  for (int64_t p = 0; p < bos; ++p) EXPECT_TRUE(uniq.count(p)) << ctx << ": bos page " << p;
  for (int64_t p = n - eos_eff; p < n; ++p) EXPECT_TRUE(uniq.count(p)) << ctx << ": eos page " << p;
  std::vector<double> sorted = scores;
  std::sort(sorted.rbegin(), sorted.rend());
  const double kth = sorted[static_cast<size_t>(m - bos - eos_eff - 1)];
  for (size_t s = 0; s < scores.size(); ++s) {
    const bool in = uniq.count(bos + static_cast<int64_t>(s)) > 0;
    if (scores[s] > kth + tol) {
      EXPECT_TRUE(in) << ctx << ": missed candidate " << s;
    }
    if (scores[s] < kth - tol) {
      EXPECT_FALSE(in) << ctx << ": picked candidate " << s;
    }
  }
}

struct Case {
  WorldSpec spec;
  BudgetParams budget;
  KVGen gen;
  double tol = 0;      // 0: exact comparison
  int steps = 1;       // decode steps (fresh q each)
  bool plant = false;  // plant one high-scoring middle page per (request, head)
};

// Random queries; integer ones for exact tests; all-positive ones when a page is planted (the
// planted keys are all positive, so it wins under every scoring rule).
std::vector<float> make_q(const World& w, std::mt19937_64& rng, bool integer, bool positive) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int> ud(-1, 1);
  std::vector<float> q(static_cast<size_t>(w.batch()) * w.num_q_heads() * w.spec.head_dim);
  for (float& x : q) x = integer ? static_cast<float>(ud(rng)) : nd(rng);
  if (positive) {
    for (float& x : q) x = std::fabs(x) + 0.01f;
  }
  return q;
}

void run_case(const std::string& name, const Case& c) {
  auto program = load_flow(name);
  ASSERT_TRUE(program.has_value()) << program.status().to_string();
  World w = make_world(c.spec, **program, c.gen);
  const auto completed = w.completed_pages();
  std::mt19937_64 rng(c.spec.seed * 7 + 3);
  const bool integer = c.tol == 0;
  const int64_t D = c.spec.head_dim, G = c.spec.group;
  RunningState state;
  for (int32_t layer = 0; layer < c.spec.num_layers; ++layer) {
    ASSERT_TRUE(run_cache_flow_cpu(**program, c.budget, *w.cache, layer, completed).is_ok());
  }
  for (int step = 0; step < c.steps; ++step) {
    std::vector<float> q = make_q(w, rng, integer, c.plant);
    for (int32_t layer = 0; layer < c.spec.num_layers; ++layer) {
      Selection sel;
      Status st = select_pages_cpu(**program, c.budget, *w.cache, layer, q.data(), w.num_q_heads(),
                                   w.view(), &sel);
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      const int32_t rows = w.batch() * c.spec.num_kv_heads;
      ASSERT_EQ(sel.sel_indptr.size(), static_cast<size_t>(rows + 1));
      EXPECT_EQ(sel.view().num_rows, rows);
      int64_t cand = 0, selected = 0;
      for (int32_t b = 0; b < w.batch(); ++b) {
        const auto& pages = w.pages[static_cast<size_t>(b)];
        const int64_t n = static_cast<int64_t>(pages.size());
        const bool dense_layer = name == "dense" || c.budget.layer_is_dense(layer);
        const int64_t m = dense_layer ? n : c.budget.budget(n, layer);
        for (int32_t h = 0; h < c.spec.num_kv_heads; ++h) {
          const int32_t row = b * c.spec.num_kv_heads + h;
          std::vector<int64_t> got;
          for (int32_t i = sel.sel_indptr[row]; i < sel.sel_indptr[row + 1]; ++i) {
            auto it =
                std::find(pages.begin(), pages.end(), sel.sel_indices[static_cast<size_t>(i)]);
            ASSERT_NE(it, pages.end()) << "row " << row << " selected a page of another request";
            got.push_back(it - pages.begin());
          }
          if (n > 0) {
            EXPECT_EQ(got.back(), n - 1) << "the last page must always be attended";
          }
          const int64_t eos_eff = std::max(c.budget.eos, 1);
          std::vector<int32_t> cand_pages;
          for (int64_t p = c.budget.bos; p < n - eos_eff; ++p)
            cand_pages.push_back(pages[static_cast<size_t>(p)]);
          std::vector<double> scores(cand_pages.size(), 0.0);
          if (n > m && name == "streaming") {
            for (size_t s = 0; s < scores.size(); ++s) scores[s] = static_cast<double>(s);
          } else if (n > m) {
            QRows qr(static_cast<size_t>(G), std::vector<double>(static_cast<size_t>(D)));
            for (int64_t g = 0; g < G; ++g) {
              for (int64_t d = 0; d < D; ++d) {
                qr[g][d] = q[static_cast<size_t>(((b * w.num_q_heads()) + h * G + g) * D + d)];
              }
            }
            scores = reference_scores(name, w, layer, h, cand_pages, qr, &state);
          }
          double tol = c.tol;
          for (double s : scores) tol = c.tol > 0 ? std::max(tol, c.tol * (1 + std::fabs(s))) : 0;
          const std::string ctx = name + " step " + std::to_string(step) + " layer " +
                                  std::to_string(layer) + " request " + std::to_string(b) +
                                  " head " + std::to_string(h) + " n=" + std::to_string(n) +
                                  " m=" + std::to_string(m);
          expect_row(got, n, m, c.budget.bos, c.budget.eos, scores, tol, ctx);
          if (c.plant && n > m && name != "streaming" && n >= 4) {
            EXPECT_EQ(std::count(got.begin(), got.end(), n / 2), 1)
                << ctx << ": planted page missed";
          }
          cand += n;
          selected += static_cast<int64_t>(got.size());
        }
      }
      EXPECT_EQ(sel.candidate_pages, cand);
      EXPECT_EQ(sel.selected_pages, selected);
    }
  }
}

class BuiltinFlowTest : public ::testing::TestWithParam<std::string> {};

// Deterministic pseudo-random entries from a hash of the coordinates: roughly N(0, 1) (sum of
// four uniforms), cheap enough for every element of the cache.
KVGen random_gen(uint64_t seed) {
  return [seed](int32_t l, int32_t b, int32_t h, int64_t t, int32_t d, bool is_v) {
    uint64_t x = seed ^ (static_cast<uint64_t>(l) << 56) ^ (static_cast<uint64_t>(b) << 44) ^
                 (static_cast<uint64_t>(h) << 36) ^ (static_cast<uint64_t>(t) << 12) ^
                 (static_cast<uint64_t>(d) << 1) ^ (is_v ? 1u : 0u);
    float sum = 0;
    for (int i = 0; i < 4; ++i) {
      x += 0x9e3779b97f4a7c15ull;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      sum += static_cast<float>(z >> 40) / static_cast<float>(1 << 24) - 0.5f;
    }
    return sum * 1.7320508f;  // variance 4/12 -> 1
  };
}

TEST_P(BuiltinFlowTest, RandomInputsMatchReference) {
  for (DType kv : {DType::kF32, DType::kBF16}) {
    for (DType aux : {DType::kF32, DType::kBF16}) {
      Case c;
      c.spec.kv_dtype = kv;
      c.spec.aux_dtype = aux;
      c.spec.lengths = {0, 1, 16, 17, 6 * 16, 6 * 16 + 1, 20 * 16 + 5, 45 * 16};
      c.spec.seed = 11 + static_cast<uint64_t>(kv) * 3 + static_cast<uint64_t>(aux);
      c.budget.topk_val = 4;
      c.gen = random_gen(c.spec.seed);
      c.tol = 1e-4;
      c.steps = GetParam() == "running_avg" ? 3 : 1;
      SCOPED_TRACE(std::string(dtype_name(kv)) + " kv, " + std::string(dtype_name(aux)) + " aux");
      run_case(GetParam(), c);
    }
  }
}

TEST_P(BuiltinFlowTest, BudgetVariantsAndDenseLayers) {
  struct Variant {
    int32_t bos, eos, topk;
    float ratio;
    const char* policy;
  };
  for (const Variant& v :
       {Variant{0, 0, 3, 0.0f, nullptr}, Variant{2, 3, 2, 0.0f, nullptr},
        Variant{1, 1, 2, 0.5f, nullptr}, Variant{1, 2, 0, 0.0f, "layer == 0 ? 5 : pages / 3"}}) {
    Case c;
    c.spec.lengths = {3 * 16, 7 * 16 - 3, 33 * 16 + 1};
    c.spec.layers_skip = {};
    c.spec.num_layers = 3;
    c.spec.seed = 5;
    c.budget.bos = v.bos;
    c.budget.eos = v.eos;
    c.budget.topk_val = v.topk;
    c.budget.topk_ratio = v.ratio;
    c.budget.layers_skip = {2};
    if (v.policy) c.budget.policy = parse_policy(v.policy).value();
    c.gen = random_gen(99);
    c.tol = 1e-4;
    SCOPED_TRACE("bos " + std::to_string(v.bos) + " eos " + std::to_string(v.eos));
    run_case(GetParam(), c);
  }
}

TEST_P(BuiltinFlowTest, StructuredTiesAreExactAndDeterministic) {
  // Small integers: every score is exact in fp32 and double, so ties (many) must break exactly
  // towards the lower page index.
  Case c;
  c.spec.lengths = {12 * 16, 30 * 16 + 7};
  c.spec.page_size = GetParam().rfind("lserve", 0) == 0 ? 32 : 16;
  c.budget.block_size = c.spec.page_size;
  c.spec.seed = 21;
  c.budget.topk_val = 5;
  c.gen = [](int32_t, int32_t b, int32_t h, int64_t t, int32_t d, bool is_v) {
    if (is_v) return d == t % 32 ? static_cast<float>(1 + (t / 16 + b + h) % 3) : 0.0f;
    const int64_t p = t / 16;  // varies per 16 tokens and channel, with many exact ties
    return static_cast<float>((p * (d + 1) + p * p + (t % 4) * d + b + 2 * h) % 5 - 2);
  };
  c.tol = GetParam() == "gqa_block_topk" ? 1e-9 : 0.0;  // softmax: exp is not exact
  c.steps = GetParam() == "running_avg" ? 3 : 1;
  run_case(GetParam(), c);
}

TEST_P(BuiltinFlowTest, PlantedPageIsSelected) {
  Case c;
  c.spec.lengths = {10 * 16, 40 * 16 + 3};
  c.spec.seed = 8;
  c.budget.topk_val = 2;
  c.plant = true;
  c.tol = 1e-4;
  // Page n/2 of every request: all keys 4, values 3; everything else small random.
  const auto base = random_gen(8);
  const std::vector<int64_t> lengths = c.spec.lengths;
  c.gen = [base, lengths](int32_t l, int32_t b, int32_t h, int64_t t, int32_t d, bool is_v) {
    const int64_t n = (lengths[static_cast<size_t>(b)] + 15) / 16;
    if (t / 16 == n / 2) return is_v ? 3.0f : 4.0f;
    return base(l, b, h, t, d, is_v) * 0.25f;
  };
  run_case(GetParam(), c);
}

INSTANTIATE_TEST_SUITE_P(AllBuiltins, BuiltinFlowTest, ::testing::ValuesIn(builtin_flow_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace vortex::flow::testing
