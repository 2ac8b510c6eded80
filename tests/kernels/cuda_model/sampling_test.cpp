// GPU tests of device sampling against a brute-force host reference written here: greedy argmax
// with ties/NaN/-inf, penalties, top-k / top-p / min-p truncation by sorting, the seeded Philox
// draw, the empirical distribution, and determinism.
#include "vortex/kernels/cuda/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <vector>

#include "gpu_test_util.h"

namespace vortex::testing {
namespace {

using cuda::SamplingRow;

struct PenaltyList {
  std::vector<int32_t> tokens, counts;
};

void apply_penalties(std::vector<float>& row, const SamplingRow& p, const PenaltyList& pen) {
  for (size_t e = 0; e < pen.tokens.size(); ++e) {
    float& v = row[static_cast<size_t>(pen.tokens[e])];
    if (p.repetition_penalty != 1.0f)
      v = v > 0.0f ? v / p.repetition_penalty : v * p.repetition_penalty;
    v -= p.frequency_penalty * static_cast<float>(pen.counts[e]) +
         (pen.counts[e] > 0 ? p.presence_penalty : 0.0f);
  }
}

int32_t argmax_lowest(const std::vector<float>& row) {
  int32_t arg = -1;
  for (size_t i = 0; i < row.size(); ++i) {
    if (std::isnan(row[i])) continue;
    if (arg < 0 || row[i] > row[static_cast<size_t>(arg)]) arg = static_cast<int32_t>(i);
  }
  return arg < 0 || row[static_cast<size_t>(arg)] == -INFINITY ? 0 : arg;
}

struct Expected {
  int32_t token = 0;
  std::set<int32_t> kept;  // the truncated support (sampled rows)
  // Sampled rows: the draw scaled to the kept mass, the kept mass, and per kept token the end of
  // its interval of the running mass (token i is drawn when end(i - 1) <= target < end(i)).
  uint64_t target = 0, total = 0;
  std::map<int32_t, uint64_t> cum_end;
};

/// floor(x * y / 2^64), written with 32-bit halves (independent of the device's __umul64hi).
uint64_t mul_high64(uint64_t x, uint64_t y) {
  const uint64_t x0 = x & 0xffffffffu, x1 = x >> 32, y0 = y & 0xffffffffu, y1 = y >> 32;
  const uint64_t p00 = x0 * y0, p01 = x0 * y1, p10 = x1 * y0, p11 = x1 * y1;
  const uint64_t mid = (p00 >> 32) + (p01 & 0xffffffffu) + (p10 & 0xffffffffu);
  return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

/// Brute force by sorting: the kept set and the token the Philox draw picks.
Expected reference_sample(std::vector<float> row, const SamplingRow& p, const PenaltyList& pen) {
  apply_penalties(row, p, pen);
  Expected e;
  const int32_t arg = argmax_lowest(row);
  if (!(p.temperature > 0.0f) || p.top_k == 1) {
    e.token = arg;
    e.kept = {arg};
    return e;
  }
  const float m = row[static_cast<size_t>(arg)], inv_t = 1.0f / p.temperature;
  const size_t n = row.size();
  std::vector<uint64_t> mass(n);
  std::vector<float> w(n);
  for (size_t i = 0; i < n; ++i) {
    w[i] = std::isnan(row[i]) ? 0.0f : std::exp((row[i] - m) * inv_t);
    mass[i] = static_cast<uint64_t>(std::nearbyint(w[i] * 67108864.0f));
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto val = [&](size_t i) { return std::isnan(row[i]) ? -INFINITY : row[i]; };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return val(a) > val(b); });
  float threshold = -std::numeric_limits<float>::max();
  bool any_threshold = false;
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
    threshold = val(order[static_cast<size_t>(p.top_k - 1)]);
    any_threshold = true;
  }
  if (p.top_p < 1.0f) {
    uint64_t kept_mass = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!any_threshold || val(i) >= threshold) kept_mass += mass[i];
    }
    const double t = std::ceil(static_cast<double>(p.top_p) * static_cast<double>(kept_mass));
    const uint64_t want = t < 1.0 ? 1 : static_cast<uint64_t>(t);
    uint64_t cum = 0;
    for (size_t r = 0; r < n;) {  // groups of equal values, largest first
      size_t r2 = r;
      while (r2 < n && val(order[r2]) == val(order[r])) cum += mass[order[r2++]];
      if (cum >= want) {
        const float tp = val(order[r]);
        if (!any_threshold || tp > threshold) threshold = tp;
        any_threshold = true;
        break;
      }
      r = r2;
    }
  }
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool keep =
        (!any_threshold || val(i) >= threshold) && !std::isnan(row[i]) && w[i] >= p.min_p;
    if (keep) {
      e.kept.insert(static_cast<int32_t>(i));
      total += mass[i];
    }
  }
  // The documented convention (sampling.h): r = floor(draw * total / 2^64), then the first kept
  // token in vocabulary order whose running mass exceeds r.
  const uint64_t target = mul_high64(cuda::philox_draw(p.seed, p.offset), total);
  e.target = target;
  e.total = total;
  uint64_t acc = 0;
  bool found = false;
  for (size_t i = 0; i < n; ++i) {
    if (!e.kept.count(static_cast<int32_t>(i))) continue;
    acc += mass[i];
    e.cum_end[static_cast<int32_t>(i)] = acc;
    if (!found && acc > target) {
      e.token = static_cast<int32_t>(i);
      found = true;
    }
  }
  return e;
}

/// Runs sample_tokens over `rows` (each a copy of the logits of `rows_logits`).
std::vector<int32_t> run_gpu(const std::vector<std::vector<float>>& logits,
                             const std::vector<SamplingRow>& params,
                             const std::vector<PenaltyList>& pens, std::vector<float>* logprobs) {
  const int32_t rows = static_cast<int32_t>(logits.size());
  const int32_t vocab = static_cast<int32_t>(logits[0].size());
  std::vector<float> flat;
  for (const auto& r : logits) flat.insert(flat.end(), r.begin(), r.end());
  std::vector<int32_t> indptr{0}, toks, counts;
  for (const auto& p : pens) {
    toks.insert(toks.end(), p.tokens.begin(), p.tokens.end());
    counts.insert(counts.end(), p.counts.begin(), p.counts.end());
    indptr.push_back(static_cast<int32_t>(toks.size()));
  }
  auto dlogits = DeviceArray<float>::upload(flat);
  auto dparams = DeviceArray<SamplingRow>::upload(params);
  auto dindptr = DeviceArray<int32_t>::upload(indptr);
  auto dtoks = DeviceArray<int32_t>::upload(toks);
  auto dcounts = DeviceArray<int32_t>::upload(counts);
  DeviceArray<int32_t> out(static_cast<size_t>(rows));
  DeviceArray<float> lp(static_cast<size_t>(rows));
  out.poison();
  lp.poison();
  cuda::PenaltyView pv{dindptr.data(), dtoks.data(), dcounts.data()};
  cuda::sample_tokens(dlogits.data(), rows, vocab, dparams.data(), pv, out.data(),
                      logprobs != nullptr ? lp.data() : nullptr, nullptr);
  if (logprobs != nullptr) *logprobs = lp.download();
  return out.download();
}

TEST(CudaSampling, GreedyPicksLowestIndexAmongTiesAndSkipsNaN) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  std::vector<std::vector<float>> logits;
  std::vector<SamplingRow> params;
  std::vector<int32_t> expect;
  for (int32_t vocab : {5, 1000, 151936}) {
    for (int trial = 0; trial < 4; ++trial) {
      auto row = random_floats(static_cast<size_t>(vocab), rng, 3.0f);
      std::uniform_int_distribution<int32_t> pos(0, vocab - 1);
      const int32_t a = pos(rng), b = pos(rng);
      row[static_cast<size_t>(a)] = 100.0f;
      row[static_cast<size_t>(b)] = 100.0f;  // tie: the lower index wins
      row[static_cast<size_t>(pos(rng))] = std::numeric_limits<float>::quiet_NaN();
      row[static_cast<size_t>(pos(rng))] = -INFINITY;
      logits.push_back(row);
      params.push_back(SamplingRow{});
      expect.push_back(argmax_lowest(row));
    }
  }
  // Every logit -inf: token 0.
  logits.push_back(std::vector<float>(151936, -INFINITY));
  params.push_back(SamplingRow{});
  expect.push_back(0);
  // Rows must share the vocabulary size: split by size.
  size_t i = 0;
  while (i < logits.size()) {
    size_t j = i;
    while (j < logits.size() && logits[j].size() == logits[i].size()) ++j;
    std::vector<std::vector<float>> l(logits.begin() + static_cast<long>(i),
                                      logits.begin() + static_cast<long>(j));
    std::vector<SamplingRow> p(params.begin() + static_cast<long>(i),
                               params.begin() + static_cast<long>(j));
    const auto got = run_gpu(l, p, std::vector<PenaltyList>(l.size()), nullptr);
    for (size_t r = 0; r < got.size(); ++r) EXPECT_EQ(got[r], expect[i + r]) << "row " << i + r;
    i = j;
  }
}

TEST(CudaSampling, PenaltiesChangeTheGreedyChoiceLikeTheReference) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(2);
  const int32_t vocab = 4096, rows = 24;
  std::vector<std::vector<float>> logits;
  std::vector<SamplingRow> params;
  std::vector<PenaltyList> pens;
  std::uniform_int_distribution<int32_t> tok(0, vocab - 1);
  for (int32_t r = 0; r < rows; ++r) {
    auto row = random_floats(vocab, rng, 2.0f);
    SamplingRow p;
    p.repetition_penalty = r % 3 == 0 ? 1.0f : 1.3f;
    p.frequency_penalty = r % 2 == 0 ? 0.5f : 0.0f;
    p.presence_penalty = r % 4 == 1 ? 1.5f : 0.0f;
    PenaltyList pen;
    std::set<int32_t> used;
    // The top tokens are penalised so the choice moves.
    std::vector<size_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                      [&](size_t a, size_t b) { return row[a] > row[b]; });
    for (int j = 0; j < 5; ++j) used.insert(static_cast<int32_t>(order[static_cast<size_t>(j)]));
    for (int j = 0; j < 20; ++j) used.insert(tok(rng));
    for (int32_t t : used) {
      pen.tokens.push_back(t);
      pen.counts.push_back(static_cast<int32_t>(rng() % 3));
    }
    logits.push_back(row);
    params.push_back(p);
    pens.push_back(pen);
  }
  std::vector<float> lp;
  const auto got = run_gpu(logits, params, pens, &lp);
  for (int32_t r = 0; r < rows; ++r) {
    auto row = logits[static_cast<size_t>(r)];
    apply_penalties(row, params[static_cast<size_t>(r)], pens[static_cast<size_t>(r)]);
    const int32_t want = argmax_lowest(row);
    EXPECT_EQ(got[static_cast<size_t>(r)], want) << "row " << r;
    double z = 0.0;
    for (float v : row) z += std::exp(static_cast<double>(v) - row[static_cast<size_t>(want)]);
    EXPECT_NEAR(lp[static_cast<size_t>(r)], -std::log(z), 1e-4) << "row " << r;
  }
}

TEST(CudaSampling, TruncatedDrawsMatchTheSortingReference) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  for (int32_t vocab : {64, 5000, 151936}) {
    std::vector<std::vector<float>> logits;
    std::vector<SamplingRow> params;
    const int32_t rows = 48;
    for (int32_t r = 0; r < rows; ++r) {
      auto row = random_floats(static_cast<size_t>(vocab), rng, r % 2 == 0 ? 1.0f : 4.0f);
      if (r % 5 == 0) {  // ties around the cut
        for (int j = 0; j < 8; ++j) row[static_cast<size_t>(rng() % vocab)] = 2.5f;
      }
      SamplingRow p;
      p.temperature = r % 3 == 0 ? 0.7f : (r % 3 == 1 ? 1.0f : 1.5f);
      p.top_k = r % 4 == 0 ? 0 : (r % 4 == 1 ? 1 + static_cast<int32_t>(rng() % 50) : 40);
      p.top_p = r % 6 < 3 ? 1.0f : 0.3f + 0.1f * static_cast<float>(r % 7);
      p.min_p = r % 5 == 2 ? 0.05f : 0.0f;
      p.seed = 1000 + static_cast<uint64_t>(r);
      p.offset = static_cast<uint64_t>(r * 7);
      logits.push_back(row);
      params.push_back(p);
    }
    const auto got = run_gpu(logits, params, std::vector<PenaltyList>(rows), nullptr);
    int exact = 0, outside = 0;
    std::ostringstream report;  // every differing row, printed on failure
    for (int32_t r = 0; r < rows; ++r) {
      const SamplingRow& p = params[static_cast<size_t>(r)];
      const Expected e = reference_sample(logits[static_cast<size_t>(r)], p, {});
      const int32_t g = got[static_cast<size_t>(r)];
      const bool same = g == e.token, in = e.kept.count(g) != 0;
      exact += same ? 1 : 0;
      outside += in ? 0 : 1;
      if (same) continue;
      // Where the device's token lies in the reference's running mass: a draw moved by exp
      // rounding lands within a few units of the boundary between the two tokens.
      report << "  row " << r << " T=" << p.temperature << " top_k=" << p.top_k
             << " top_p=" << p.top_p << " min_p=" << p.min_p << " kept=" << e.kept.size()
             << " total=" << e.total << " target=" << e.target << ": device " << g;
      if (in) {
        const auto it = e.cum_end.find(g);
        const uint64_t end = it->second;
        const uint64_t begin = it == e.cum_end.begin() ? 0 : std::prev(it)->second;
        report << " [" << begin << ", " << end << ")";
      } else {
        report << " (outside the kept set)";
      }
      report << ", reference " << e.token << " [..., " << e.cum_end.at(e.token) << ")\n";
    }
    // expf on the device and std::exp here may differ in the last bit, which moves the masses by a
    // few units and so the scaled draw: only a draw that close to a boundary changes; more is a
    // bug.
    EXPECT_GE(exact, rows - 2) << "vocab " << vocab << ": " << rows - exact
                               << " draws differ from the reference:\n"
                               << report.str();
    EXPECT_LE(outside, 1) << "vocab " << vocab << ":\n" << report.str();
  }
}

TEST(CudaSampling, EmpiricalDistributionMatchesSoftmaxOverTheKeptSet) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  const int32_t vocab = 16, draws = 8192;
  const auto base = random_floats(vocab, rng, 1.0f);
  SamplingRow p;
  p.temperature = 0.8f;
  p.top_k = 12;
  p.top_p = 0.9f;
  p.seed = 77;
  std::vector<std::vector<float>> logits(draws, base);
  std::vector<SamplingRow> params(draws, p);
  for (int32_t i = 0; i < draws; ++i)
    params[static_cast<size_t>(i)].offset = static_cast<uint64_t>(i);
  const auto got = run_gpu(logits, params, std::vector<PenaltyList>(draws), nullptr);
  const Expected e = reference_sample(base, p, {});
  double z = 0.0;
  const float m = *std::max_element(base.begin(), base.end());
  for (int32_t t : e.kept) z += std::exp((base[static_cast<size_t>(t)] - m) / p.temperature);
  std::map<int32_t, int> hist;
  for (int32_t t : got) hist[t]++;
  double tv = 0.0;
  for (int32_t t = 0; t < vocab; ++t) {
    const double want =
        e.kept.count(t) ? std::exp((base[static_cast<size_t>(t)] - m) / p.temperature) / z : 0.0;
    const double have = static_cast<double>(hist[t]) / draws;
    if (want == 0.0) {
      EXPECT_EQ(hist[t], 0) << "token " << t << " is outside the kept set";
    }
    tv += std::fabs(want - have);
  }
  EXPECT_LT(tv / 2, 0.04);
}

TEST(CudaSampling, SameSeedAndOffsetGiveTheSameTokens) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  const int32_t vocab = 32000;
  std::vector<std::vector<float>> logits;
  std::vector<SamplingRow> params;
  for (int r = 0; r < 8; ++r) {
    logits.push_back(random_floats(vocab, rng));
    SamplingRow p;
    p.temperature = 1.0f;
    p.top_p = 0.95f;
    p.seed = 42;
    p.offset = 3;
    params.push_back(p);
  }
  const auto a = run_gpu(logits, params, std::vector<PenaltyList>(8), nullptr);
  const auto b = run_gpu(logits, params, std::vector<PenaltyList>(8), nullptr);
  EXPECT_EQ(a, b);
}

TEST(CudaSampling, ScaledDrawIsTheHighHalfOfTheProduct) {
  // The reference's floor(x * y / 2^64) (the device uses __umul64hi).
  EXPECT_EQ(mul_high64(uint64_t{1} << 63, 6), 3u);
  EXPECT_EQ(mul_high64(~uint64_t{0}, ~uint64_t{0}), ~uint64_t{0} - 1);
  EXPECT_EQ(mul_high64(~uint64_t{0}, 1000), 999u);  // always below the total
  EXPECT_EQ(mul_high64(0x123456789abcdef0ull, 0xfedcba9876543210ull), 0x121fa00ad77d7422ull);
}

TEST(CudaSampling, PhiloxMatchesTheKnownAnswerOfRandom123) {
  // Random123 kat_vectors: philox4x32_10, counter 0, key 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
  EXPECT_EQ(cuda::philox_draw(0, 0), (uint64_t{0x6627e8d5u} << 32) | 0xe169c58du);
}

}  // namespace
}  // namespace vortex::testing
