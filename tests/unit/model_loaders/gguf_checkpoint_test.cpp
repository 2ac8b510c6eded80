// GGUF -> Checkpoint on tiny llama / qwen2 / qwen3 files built in the test: metadata mapping,
// tokenizer spec, RoPE styles and scaling, tied embeddings, and shape/presence errors.
#include "vortex/model/gguf_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>

#include "test_files.h"
#include "tiny_gguf.h"
#include "vortex/core/dtype.h"
#include "vortex/model/dequant.h"

namespace vortex {
namespace {

using testing::GgufBuilder;
using testing::kTokens;
using testing::TempDir;
using testing::tiny_gguf;
using testing::TinySpec;
using testing::Values;

Expected<Checkpoint> load_tiny(const TempDir& dir, const GgufBuilder& b) {
  testing::write_file(dir.file("tiny.gguf"), b.build());
  return load_gguf_checkpoint(dir.file("tiny.gguf"));
}

void expect_weights_equal(const Checkpoint& ck, const Values& values) {
  EXPECT_EQ(ck.weights.all().size(), values.size());
  for (const auto& [name, v] : values) {
    auto t = ck.weights.get(name);
    ASSERT_TRUE(t) << name;
    ASSERT_EQ(static_cast<size_t>(t->numel()), v.size()) << name;
    EXPECT_EQ(std::memcmp(t->data(), v.data(), v.size() * 4), 0) << name;
  }
}

TEST(GgufCheckpoint, TinyLlamaMapsConfigTokenizerAndWeights) {
  TempDir dir;
  Values values;
  auto ck = load_tiny(dir, tiny_gguf(TinySpec{}, &values));
  ASSERT_TRUE(ck) << ck.status().to_string();
  const ModelConfig& c = ck->config;
  EXPECT_EQ(c.arch, Arch::kLlama);
  EXPECT_EQ(c.name, "tiny llama");
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.intermediate_size, 64);
  EXPECT_EQ(c.num_q_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 8);
  EXPECT_EQ(c.max_context, 512);
  EXPECT_EQ(c.rope.theta, 50000.0f);
  EXPECT_EQ(c.rope.style, RopeStyle::kAdjacentPairs);
  EXPECT_EQ(c.rope.scaling, RopeScaling::kNone);
  EXPECT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{2, 0}));  // eos, then <|endoftext|>

  const TokenizerSpec& t = ck->tokenizer;
  EXPECT_EQ(t.model, "gpt2");
  EXPECT_EQ(t.pre, "smollm");
  EXPECT_EQ(t.tokens, kTokens);
  EXPECT_EQ(t.merges, (std::vector<std::string>{"a b", "Ġ a"}));
  EXPECT_EQ(t.token_types, (std::vector<int32_t>{3, 3, 3, 1, 1, 1, 1, 1}));
  EXPECT_EQ(t.bos_id, 1);
  EXPECT_EQ(t.eos_id, 2);
  EXPECT_EQ(t.unk_id, -1);
  EXPECT_EQ(t.eot_ids, (std::vector<int32_t>{0}));
  EXPECT_FALSE(t.add_bos);
  EXPECT_EQ(t.chat_template, "{% for m in messages %}<|im_start|>{% endfor %}");
  EXPECT_TRUE(ck->tokenizer_json_path.empty());
  EXPECT_EQ(ck->source, dir.file("tiny.gguf"));
  EXPECT_FALSE(ck->weights.contains("output"));
  expect_weights_equal(*ck, values);
  EXPECT_TRUE(check_weights(c, ck->weights, "tiny").is_ok());
}

TEST(GgufCheckpoint, Qwen2AndQwen3UseHalfSplitWithBiasesOrNorms) {
  TempDir dir;
  for (const char* arch : {"qwen2", "qwen3"}) {
    TinySpec s;
    s.arch = arch;
    s.tied = false;
    Values values;
    auto ck = load_tiny(dir, tiny_gguf(s, &values));
    ASSERT_TRUE(ck) << ck.status().to_string();
    EXPECT_EQ(ck->config.rope.style, RopeStyle::kHalfSplit) << arch;
    EXPECT_EQ(ck->config.arch, std::string(arch) == "qwen2" ? Arch::kQwen2 : Arch::kQwen3);
    EXPECT_EQ(ck->config.qkv_bias, std::string(arch) == "qwen2");
    EXPECT_EQ(ck->config.qk_norm, std::string(arch) == "qwen3");
    EXPECT_FALSE(ck->config.tie_embeddings);
    EXPECT_TRUE(ck->weights.contains("output"));
    EXPECT_EQ(ck->weights.contains("blk.1.attn_v.bias"), std::string(arch) == "qwen2");
    EXPECT_EQ(ck->weights.contains("blk.1.attn_k_norm"), std::string(arch) == "qwen3");
    expect_weights_equal(*ck, values);
  }
}

TEST(GgufCheckpoint, MissingOrMisshapenTensorsAreNamed) {
  TempDir dir;
  Values values;
  TinySpec s;
  s.skip_tensor = true;
  auto ck = load_tiny(dir, tiny_gguf(s, &values));
  ASSERT_FALSE(ck);
  EXPECT_NE(ck.status().message().find("'blk.1.ffn_up.weight' is missing"), std::string::npos)
      << ck.status().message();

  s = TinySpec{};
  s.wrong_shape = true;
  ck = load_tiny(dir, tiny_gguf(s, &values));
  ASSERT_FALSE(ck);
  EXPECT_NE(
      ck.status().message().find("'blk.0.attn_k.weight' has shape [24, 32], expected [16, 32]"),
      std::string::npos)
      << ck.status().message();

  s = TinySpec{};
  s.arch = "qwen2";  // qwen2 files must carry q/k/v biases: drop them by claiming llama tensors
  GgufBuilder b = tiny_gguf(TinySpec{}, &values);
  std::vector<uint8_t> bytes = b.build();
  // Rewrite the architecture string "llama" -> "qwen9" in place (same length).
  for (size_t i = 0; i + 5 <= bytes.size(); ++i) {
    if (std::memcmp(&bytes[i], "llama", 5) == 0) {
      std::memcpy(&bytes[i], "qwen9", 5);
      break;
    }
  }
  testing::write_file(dir.file("arch.gguf"), bytes);
  auto bad_arch = load_gguf_checkpoint(dir.file("arch.gguf"));
  ASSERT_FALSE(bad_arch);
  EXPECT_EQ(bad_arch.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(bad_arch.status().message().find("'qwen9'"), std::string::npos);
}

TEST(GgufCheckpoint, MissingRequiredMetadataIsNamed) {
  TempDir dir;
  GgufBuilder b;
  b.kv_str("general.architecture", "llama");
  b.kv_u32("llama.block_count", 1);
  testing::write_file(dir.file("meta.gguf"), b.build());
  auto ck = load_gguf_checkpoint(dir.file("meta.gguf"));
  ASSERT_FALSE(ck);
  EXPECT_NE(ck.status().message().find("'llama.embedding_length' is missing"), std::string::npos)
      << ck.status().message();
}

TEST(GgufCheckpoint, LinearRopeScaling) {
  TempDir dir;
  Values values;
  GgufBuilder b = tiny_gguf(TinySpec{}, &values);
  b.kv_str("llama.rope.scaling.type", "linear");
  b.kv_f32("llama.rope.scaling.factor", 2.0f);
  auto ck = load_tiny(dir, b);
  ASSERT_TRUE(ck) << ck.status().to_string();
  EXPECT_EQ(ck->config.rope.scaling, RopeScaling::kLinear);
  EXPECT_EQ(ck->config.rope.factor, 2.0f);

  GgufBuilder y = tiny_gguf(TinySpec{}, &values);
  y.kv_str("llama.rope.scaling.type", "yarn");
  auto bad = load_tiny(dir, y);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("'yarn'"), std::string::npos);
}

// Llama-3.1 GGUFs carry RoPE scaling as a rope_freqs tensor of per-pair divisors.
std::vector<float> llama3_factors(double theta, int head_dim, double factor, double orig) {
  std::vector<float> out;
  for (int i = 0; i < head_dim / 2; ++i) {
    const double wavelen = 2 * std::numbers::pi * std::pow(theta, 2.0 * i / head_dim);
    if (wavelen < orig / 4) {
      out.push_back(1.0f);
    } else if (wavelen > orig / 1) {
      out.push_back(static_cast<float>(factor));
    } else {
      const double smooth = (orig / wavelen - 1) / (4 - 1);
      out.push_back(static_cast<float>(1 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

TEST(GgufCheckpoint, Llama3RopeFreqsAreRecognised) {
  TempDir dir;
  Values values;
  GgufBuilder b = tiny_gguf(TinySpec{}, &values);
  // theta 50000, head_dim 8: pair 0 high-frequency, pair 2 in the blend, pair 3 low-frequency.
  const auto fr = llama3_factors(50000.0, 8, 8.0, 2048.0);
  ASSERT_EQ(fr[0], 1.0f);
  ASSERT_EQ(fr[3], 8.0f);
  ASSERT_TRUE(fr[2] > 1.0f && fr[2] < 8.0f);
  b.kv_u32("llama.rope.scaling.original_context_length", 2048);
  b.tensor_f32("rope_freqs.weight", {4}, fr);
  auto ck = load_tiny(dir, b);
  ASSERT_TRUE(ck) << ck.status().to_string();
  EXPECT_EQ(ck->config.rope.scaling, RopeScaling::kLlama3);
  EXPECT_EQ(ck->config.rope.factor, 8.0f);
  EXPECT_EQ(ck->config.rope.low_freq_factor, 1.0f);
  EXPECT_EQ(ck->config.rope.high_freq_factor, 4.0f);
  EXPECT_EQ(ck->config.rope.original_max_position, 2048);

  GgufBuilder odd = tiny_gguf(TinySpec{}, &values);
  odd.tensor_f32("rope_freqs.weight", {4}, {1.0f, 3.0f, 1.0f, 2.0f});
  auto bad = load_tiny(dir, odd);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace vortex
