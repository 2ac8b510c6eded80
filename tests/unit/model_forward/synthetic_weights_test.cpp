// Tests of the synthetic presets and seeded weights: shapes from BENCHMARKS.md, determinism,
// scale, and errors for unknown presets.
#include "vortex/model/synthetic_weights.h"

#include <gtest/gtest.h>

#include <cmath>

#include "vortex/model/checkpoint.h"

namespace vortex {
namespace {

TEST(SyntheticConfig, BenchmarkShapes) {
  struct Row {
    const char* name;
    int32_t layers, hidden, hq, hkv, dim, ffn, vocab;
  };
  for (const Row& r : {Row{"qwen3-1.7b", 28, 2048, 16, 8, 128, 6144, 151936},
                       Row{"qwen3-8b", 36, 4096, 32, 8, 128, 12288, 151936},
                       Row{"llama-3.1-8b", 32, 4096, 32, 8, 128, 14336, 128256},
                       Row{"smollm2-135m", 30, 576, 9, 3, 64, 1536, 49152}}) {
    auto c = synthetic_config(r.name);
    ASSERT_TRUE(c.has_value()) << c.status().to_string();
    EXPECT_EQ(c->num_layers, r.layers) << r.name;
    EXPECT_EQ(c->hidden_size, r.hidden) << r.name;
    EXPECT_EQ(c->num_q_heads, r.hq) << r.name;
    EXPECT_EQ(c->num_kv_heads, r.hkv) << r.name;
    EXPECT_EQ(c->head_dim, r.dim) << r.name;
    EXPECT_EQ(c->intermediate_size, r.ffn) << r.name;
    EXPECT_EQ(c->vocab_size, r.vocab) << r.name;
    EXPECT_EQ(c->name, std::string("synthetic:") + r.name);
    EXPECT_TRUE(c->validate().is_ok()) << r.name;
  }
  EXPECT_TRUE(synthetic_config("qwen3-8b")->qk_norm);
  EXPECT_EQ(synthetic_config("llama-3.1-8b")->rope.scaling, RopeScaling::kLlama3);
  EXPECT_TRUE(synthetic_config("tiny-qwen2")->qkv_bias);
  EXPECT_EQ(synthetic_config("synthetic:tiny-llama")->hidden_size, 64);
  for (const std::string& p : synthetic_presets()) {
    EXPECT_TRUE(synthetic_config(p).has_value()) << p;
  }
}

TEST(SyntheticConfig, UnknownPresetListsKnownOnes) {
  auto c = synthetic_config("qwen9-1t");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.status().message().find("qwen9-1t"), std::string::npos);
  EXPECT_NE(c.status().message().find("tiny-llama"), std::string::npos);
}

TEST(SyntheticWeights, DeterministicPerSeedAndScaledByFanIn) {
  const ModelConfig c = synthetic_config("tiny-qwen2").value();
  auto a = synthetic_weights(c, 7), b = synthetic_weights(c, 7), d = synthetic_weights(c, 8);
  ASSERT_TRUE(a.has_value() && b.has_value() && d.has_value());
  EXPECT_FALSE(a->contains("output"));  // tied
  EXPECT_TRUE(a->contains("blk.1.attn_v.bias"));
  for (const auto& [name, t] : a->all()) {
    const Tensor& u = b->all().at(name);
    const Tensor& w = d->all().at(name);
    ASSERT_EQ(t.numel(), u.numel());
    int same_seed_diff = 0, other_seed_diff = 0;
    for (int64_t i = 0; i < t.numel(); ++i) {
      same_seed_diff += t.data_as<float>()[i] != u.data_as<float>()[i];
      other_seed_diff += t.data_as<float>()[i] != w.data_as<float>()[i];
    }
    EXPECT_EQ(same_seed_diff, 0) << name;
    EXPECT_GT(other_seed_diff, t.numel() / 2) << name;
  }
  // A [ffn, hidden] matrix: zero mean, std 1/sqrt(hidden).
  const Tensor& gate = a->all().at("blk.0.ffn_gate");
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < gate.numel(); ++i) {
    sum += gate.data_as<float>()[i];
    sq += gate.data_as<float>()[i] * static_cast<double>(gate.data_as<float>()[i]);
  }
  const double mean = sum / gate.numel(), stddev = std::sqrt(sq / gate.numel() - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(stddev, 1.0 / std::sqrt(64.0), 0.005);
  const Tensor& norm = a->all().at("blk.0.attn_norm");
  for (int64_t i = 0; i < norm.numel(); ++i) EXPECT_NEAR(norm.data_as<float>()[i], 1.0f, 0.1f);
}

TEST(SyntheticCheckpoint, LoadsThroughLoadCheckpointWithSeed) {
  auto a = load_checkpoint("synthetic:tiny-llama@3");
  ASSERT_TRUE(a.has_value()) << a.status().to_string();
  EXPECT_EQ(a->config.name, "synthetic:tiny-llama");
  EXPECT_TRUE(check_weights(a->config, a->weights, a->source).is_ok());
  ASSERT_EQ(a->tokenizer.tokens.size(), 256u);
  EXPECT_EQ(a->tokenizer.tokens['A'], "A");
  EXPECT_EQ(a->tokenizer.tokens[' '], "\xC4\xA0");  // GPT-2 byte alphabet: space is U+0120
  const WeightMap direct = synthetic_weights(a->config, 3).value();
  const Tensor& x = a->weights.all().at("blk.1.ffn_down");
  const Tensor& y = direct.all().at("blk.1.ffn_down");
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(x.data_as<float>()[i], y.data_as<float>()[i]);
  EXPECT_FALSE(load_checkpoint("synthetic:no-such-preset").has_value());
}

}  // namespace
}  // namespace vortex
