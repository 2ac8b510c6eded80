// CpuModel logits against reference_forward.py (NumPy, float64, shares no code with Vortex): the
// prompt is prefilled in one chunk, then the remaining tokens are decoded one at a time, and every
// position's logits must match the reference's within relative L2 1e-3.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "test_files.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/cpu_model.h"
#include "vortex/model/hf_checkpoint.h"
#include "vortex/model/synthetic_weights.h"
#include "vortex/model/tokenizer.h"

namespace vortex {
namespace {

constexpr double kTolerance = 1e-3;

/// Logits [tokens.size() - prefill + 1][vocab] of positions prefill-1 .. n-1: prefill `prefill`
/// tokens in one chunk, then decode the rest one by one.
std::vector<std::vector<float>> vortex_logits(const Checkpoint& ck,
                                              const std::vector<int32_t>& tokens, size_t prefill) {
  auto model = CpuModel::create(ck.config, ck.weights);
  EXPECT_TRUE(model) << model.status().to_string();
  auto cache = KVCache::create((*model)->kv_cache_config(16, DType::kF32, {}), 16);
  EXPECT_TRUE(cache) << cache.status().to_string();
  PageTable pt(16);
  EXPECT_TRUE(pt.reserve(static_cast<int64_t>(tokens.size()), cache->pool()).is_ok());
  const auto V = static_cast<size_t>(ck.config.vocab_size);
  std::vector<std::vector<float>> rows;
  size_t done = 0;
  while (done < tokens.size()) {
    const size_t n = done == 0 ? prefill : 1;
    std::vector<float> logits(V);
    const ForwardBatch batch{{SequenceChunk{tokens.data() + done, static_cast<int32_t>(n),
                                            static_cast<int64_t>(done), &pt, nullptr, true}}};
    const Status s = (*model)->forward(batch, *cache, logits.data(), nullptr);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    rows.push_back(std::move(logits));
    done += n;
  }
  return rows;
}

/// reference_forward.py --all-positions for `model`: [n][vocab].
std::vector<std::vector<float>> reference_logits(const std::string& python,
                                                 const std::string& model,
                                                 const std::vector<int32_t>& tokens, size_t vocab,
                                                 const testing::TempDir& dir) {
  std::string ids;
  for (int32_t t : tokens) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  const std::string out = dir.file("reference.f32");
  const std::string cmd = python + " " + VORTEX_SOURCE_DIR +
                          "/tests/reference/reference_forward.py --model " + model + " --tokens " +
                          ids + " --all-positions --out " + out;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto bytes = testing::read_file(out);
  EXPECT_EQ(bytes.size(), tokens.size() * vocab * 4) << cmd;
  std::vector<std::vector<float>> rows(tokens.size(), std::vector<float>(vocab));
  for (size_t t = 0; t < tokens.size() && (t + 1) * vocab * 4 <= bytes.size(); ++t) {
    std::memcpy(rows[t].data(), bytes.data() + t * vocab * 4, vocab * 4);
  }
  return rows;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (static_cast<double>(a[i]) - ref[i]) * (static_cast<double>(a[i]) - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

void compare(const Checkpoint& ck, const std::string& model_path,
             const std::vector<int32_t>& tokens, size_t prefill) {
  const std::string python = testing::venv_python();
  testing::TempDir dir;
  const auto V = static_cast<size_t>(ck.config.vocab_size);
  const auto ref = reference_logits(python, model_path, tokens, V, dir);
  const auto got = vortex_logits(ck, tokens, prefill);
  ASSERT_EQ(got.size(), tokens.size() - prefill + 1);
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const size_t pos = prefill - 1 + i;
    const double err = rel_l2(got[i], ref[pos]);
    worst = std::max(worst, err);
    EXPECT_LE(err, kTolerance) << ck.config.name << " position " << pos;
  }
  std::printf("%s: worst relative L2 over %zu positions = %.3g\n", ck.config.name.c_str(),
              got.size(), worst);
}

TEST(ReferenceCpuForward, SmolLM2Gguf) {
  if (testing::venv_python().empty()) GTEST_SKIP() << "no .venv (scripts/setup.sh creates it)";
  const std::string path = testing::smollm2_path();
  if (path.empty()) GTEST_SKIP() << "SmolLM2 GGUF not downloaded (scripts/fetch_model.sh)";
  auto ck = load_checkpoint(path);
  ASSERT_TRUE(ck) << ck.status().to_string();
  ASSERT_EQ(ck->config.rope.style, RopeStyle::kAdjacentPairs);
  auto tok = Tokenizer::from_spec(ck->tokenizer);
  ASSERT_TRUE(tok) << tok.status().to_string();
  const auto tokens = tok->encode(
      "<|im_start|>user\nName three rivers in Europe, then count to 12345.<|im_end|>\n"
      "<|im_start|>assistant\nThe Danube,");
  ASSERT_GT(tokens.size(), 24u);
  compare(*ck, path, tokens, tokens.size() - 8);
}

TEST(ReferenceCpuForward, SyntheticCheckpointsSavedAsSafetensors) {
  if (testing::venv_python().empty()) GTEST_SKIP() << "no .venv (scripts/setup.sh creates it)";
  ModelConfig scaled = synthetic_config("tiny-llama").value();
  scaled.rope.scaling = RopeScaling::kLlama3;
  scaled.rope.factor = 8.0f;
  scaled.rope.original_max_position = 64;  // puts the 16-dim head's frequencies in all 3 bands
  scaled.name = "tiny-llama-llama3-rope";
  std::vector<ModelConfig> configs = {synthetic_config("tiny-qwen3").value(),
                                      synthetic_config("tiny-qwen2").value(), scaled};
  for (const ModelConfig& c : configs) {
    testing::TempDir dir;
    const WeightMap w = synthetic_weights(c, 17).value();
    ASSERT_TRUE(save_safetensors(dir.file("hf"), w, c).is_ok()) << c.name;
    auto ck = load_checkpoint(dir.file("hf"));
    ASSERT_TRUE(ck) << ck.status().to_string();
    ck->config.name = c.name;
    std::vector<int32_t> tokens;
    for (int i = 0; i < 40; ++i) tokens.push_back((i * 37 + 11) % c.vocab_size);
    compare(*ck, dir.file("hf"), tokens, 30);
  }
}

}  // namespace
}  // namespace vortex
