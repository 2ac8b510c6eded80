// Tests of Sampler: greedy ties, the support sets of top-k / top-p / min-p found by sampling many
// times, sampling frequencies against the softmax, penalties, seeding, logprobs and validate().
#include "vortex/model/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <vector>

namespace vortex {
namespace {

const std::vector<int32_t> kNone;

std::map<int32_t, int> histogram(const SamplingParams& p, const std::vector<float>& logits,
                                 int draws) {
  Sampler s(p);
  std::map<int32_t, int> h;
  for (int i = 0; i < draws; ++i) ++h[s.sample(logits, kNone, kNone)];
  return h;
}

std::set<int32_t> support(const std::map<int32_t, int>& h) {
  std::set<int32_t> s;
  for (const auto& [t, n] : h) s.insert(t);
  return s;
}

// Probabilities 0.4, 0.25, 0.15, 0.1, 0.06, 0.04 at shuffled indices.
const std::vector<float> kLogits = {std::log(0.1f),  std::log(0.4f),  std::log(0.04f),
                                    std::log(0.25f), std::log(0.06f), std::log(0.15f)};

TEST(Sampler, GreedyIsArgmaxWithLowestIndexTies) {
  SamplingParams p;
  Sampler s(p);
  EXPECT_EQ(s.sample(kLogits, kNone, kNone), 1);
  const std::vector<float> ties = {0.5f, 2.0f, -1.0f, 2.0f, 2.0f};
  EXPECT_EQ(s.sample(ties, kNone, kNone), 1);
  const std::vector<float> with_nan = {std::nanf(""), 1.0f, 3.0f};
  EXPECT_EQ(s.sample(with_nan, kNone, kNone), 2);
}

TEST(Sampler, FrequenciesFollowTheTemperedSoftmax) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.seed = 42;
  const int draws = 40000;
  const auto h = histogram(p, kLogits, draws);
  double z = 0;
  for (float l : kLogits) z += std::exp(l / 0.7);
  for (int32_t t = 0; t < 6; ++t) {
    const double expected = std::exp(kLogits[t] / 0.7) / z;
    const double sd = std::sqrt(expected * (1 - expected) / draws);
    EXPECT_NEAR(h.count(t) ? h.at(t) / static_cast<double>(draws) : 0.0, expected, 5 * sd) << t;
  }
}

TEST(Sampler, TopKSupportIsTheKMostLikely) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 3;
  EXPECT_EQ(support(histogram(p, kLogits, 5000)), (std::set<int32_t>{1, 3, 5}));
  p.top_k = 1;
  EXPECT_EQ(support(histogram(p, kLogits, 500)), (std::set<int32_t>{1}));
  p.top_k = 100;  // larger than the vocabulary: everything
  EXPECT_EQ(support(histogram(p, kLogits, 20000)).size(), 6u);
}

TEST(Sampler, TopPSupportIsTheSmallestPrefixReachingP) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.6f;  // 0.4 + 0.25 = 0.65 >= 0.6
  EXPECT_EQ(support(histogram(p, kLogits, 5000)), (std::set<int32_t>{1, 3}));
  p.top_p = 0.85f;  // 0.4 + 0.25 + 0.15 + 0.1 = 0.9 >= 0.85 > 0.8
  EXPECT_EQ(support(histogram(p, kLogits, 8000)), (std::set<int32_t>{0, 1, 3, 5}));
  p.top_p = 0.01f;
  EXPECT_EQ(support(histogram(p, kLogits, 500)), (std::set<int32_t>{1}));
  // top-p over what top-k kept (renormalised): {0.4, 0.25} / 0.65 -> 0.615 >= 0.6.
  p.top_k = 2;
  p.top_p = 0.6f;
  EXPECT_EQ(support(histogram(p, kLogits, 2000)), (std::set<int32_t>{1}));
}

TEST(Sampler, MinPKeepsTokensAboveAFractionOfTheMax) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.3f;  // threshold 0.12: 0.4, 0.25, 0.15
  EXPECT_EQ(support(histogram(p, kLogits, 5000)), (std::set<int32_t>{1, 3, 5}));
  p.min_p = 1.0f;
  EXPECT_EQ(support(histogram(p, kLogits, 500)), (std::set<int32_t>{1}));
}

TEST(Sampler, PenaltiesFollowHfAndOpenAiConventions) {
  const std::vector<float> logits = {2.0f, -1.0f, 1.9f, 0.5f};
  const std::vector<int32_t> prompt = {0, 1}, generated = {3, 3};
  SamplingParams rep;
  rep.repetition_penalty = 2.0f;
  Sampler s(rep);
  // Token 0 (2.0 -> 1.0) loses to token 2 (1.9); token 1 (-1 -> -2).
  EXPECT_EQ(s.sample(logits, prompt, kNone), 2);
  double z = std::exp(1.0) + std::exp(-2.0) + std::exp(1.9) + std::exp(0.5);
  EXPECT_NEAR(s.last_logprob(0), 1.0 - std::log(z), 1e-5);
  EXPECT_NEAR(s.last_logprob(1), -2.0 - std::log(z), 1e-5);

  SamplingParams freq;
  freq.frequency_penalty = 0.5f;
  freq.presence_penalty = 0.25f;
  Sampler f(freq);
  EXPECT_EQ(f.sample(logits, prompt, generated), 0);  // prompt tokens are not penalised
  // Token 3: 0.5 - 2 * 0.5 - 0.25 = -0.75.
  z = std::exp(2.0) + std::exp(-1.0) + std::exp(1.9) + std::exp(-0.75);
  EXPECT_NEAR(f.last_logprob(3), -0.75 - std::log(z), 1e-5);
  EXPECT_EQ(f.last_logprob(99), -std::numeric_limits<float>::infinity());
}

TEST(Sampler, LogprobIsAfterTemperature) {
  SamplingParams p;
  p.temperature = 0.5f;
  p.top_k = 1;  // truncation does not change the reported distribution
  Sampler s(p);
  const int32_t t = s.sample(kLogits, kNone, kNone);
  EXPECT_EQ(t, 1);
  double z = 0;
  for (float l : kLogits) z += std::exp(l / 0.5);
  EXPECT_NEAR(s.last_logprob(1), kLogits[1] / 0.5 - std::log(z), 1e-5);
}

TEST(Sampler, SameSeedSameSequence) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.95f;
  auto run = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(kLogits, kNone, out));
    return out;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST(Sampler, ValidateNamesTheField) {
  auto msg = [](auto mutate) {
    SamplingParams p;
    mutate(p);
    const Status s = p.validate();
    EXPECT_FALSE(s.is_ok());
    return s.message();
  };
  EXPECT_TRUE(SamplingParams{}.validate().is_ok());
  EXPECT_NE(msg([](auto& p) { p.temperature = -1; }).find("temperature"), std::string::npos);
  EXPECT_NE(msg([](auto& p) { p.temperature = NAN; }).find("temperature"), std::string::npos);
  EXPECT_NE(msg([](auto& p) { p.top_p = 0; }).find("top_p"), std::string::npos);
  EXPECT_NE(msg([](auto& p) { p.top_p = 1.5f; }).find("top_p"), std::string::npos);
  EXPECT_NE(msg([](auto& p) { p.top_k = -2; }).find("top_k"), std::string::npos);
  EXPECT_NE(msg([](auto& p) { p.min_p = 2; }).find("min_p"), std::string::npos);
  EXPECT_NE(msg([](auto& p) { p.repetition_penalty = 0; }).find("repetition_penalty"),
            std::string::npos);
  EXPECT_NE(msg([](auto& p) { p.frequency_penalty = 3; }).find("frequency_penalty"),
            std::string::npos);
  EXPECT_NE(msg([](auto& p) { p.presence_penalty = -3; }).find("presence_penalty"),
            std::string::npos);
  EXPECT_NE(msg([](auto& p) { p.max_tokens = 0; }).find("max_tokens"), std::string::npos);
  EXPECT_NE(msg([](auto& p) { p.stop = {""}; }).find("stop"), std::string::npos);
  EXPECT_NE(msg([](auto& p) { p.stop_token_ids = {-1}; }).find("stop_token_ids"),
            std::string::npos);
}

}  // namespace
}  // namespace vortex
