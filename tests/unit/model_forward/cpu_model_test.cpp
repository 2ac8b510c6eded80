// Tests of CpuModel: logits against the from-scratch double reference, chunked prefill vs one
// chunk vs token-by-token decode, ragged batches vs requests alone, bf16 vs f32 KV, long
// generations staying finite, and errors for bad batches and weights.
#include "vortex/model/cpu_model.h"

#include <gtest/gtest.h>

#include "model_harness.h"
#include "reference_forward.h"

namespace vortex::testing {
namespace {

ModelConfig preset(const char* name) { return synthetic_config(name).value(); }

std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

TEST(CpuModel, LogitsMatchTheDenseReference) {
  ModelConfig adjacent = preset("tiny-llama");
  adjacent.rope.style = RopeStyle::kAdjacentPairs;
  adjacent.rope.scaling = RopeScaling::kLinear;
  adjacent.rope.factor = 2.0f;
  for (const ModelConfig& c :
       {preset("tiny-llama"), preset("tiny-qwen2"), preset("tiny-qwen3"), adjacent}) {
    ModelHarness h(c, 3, 4, DType::kF32, 64);
    const auto tokens = random_tokens(37, c.vocab_size, 5);
    const auto ref = reference_logits(c, h.weights, tokens);
    PageTable pt(4);
    // Prefill the first 30 tokens, then decode the rest one at a time.
    const std::vector<int32_t> prompt(tokens.begin(), tokens.begin() + 30);
    EXPECT_LT(rel_l2(h.prefill(pt, prompt, 30), to_float(ref[29])), 1e-5) << c.name;
    for (size_t t = 30; t < tokens.size(); ++t) {
      EXPECT_LT(rel_l2(h.decode(pt, tokens[t]), to_float(ref[t])), 1e-5) << c.name << " pos " << t;
    }
  }
}

TEST(CpuModel, ChunkedPrefillEqualsOneChunkEqualsTokenByToken) {
  for (const char* name : {"tiny-llama", "tiny-qwen3"}) {
    const ModelConfig c = preset(name);
    ModelHarness h(c, 11, 16, DType::kF32, 64);
    const auto tokens = random_tokens(70, c.vocab_size, 12);
    PageTable one(16), chunked(16), stepwise(16);
    const auto a = h.prefill(one, tokens, tokens.size());
    const auto b = h.prefill(chunked, tokens, 13);
    const auto d = h.prefill(stepwise, tokens, 1);
    EXPECT_LT(rel_l2(b, a), 1e-5) << name;
    EXPECT_LT(rel_l2(d, a), 1e-5) << name;
    EXPECT_EQ(one.num_tokens(), 70);
    // Continue all three with the same decode token.
    const auto a2 = h.decode(one, 7), b2 = h.decode(chunked, 7), d2 = h.decode(stepwise, 7);
    EXPECT_LT(rel_l2(b2, a2), 1e-5) << name;
    EXPECT_LT(rel_l2(d2, a2), 1e-5) << name;
  }
}

TEST(CpuModel, RaggedBatchEqualsEachRequestAlone) {
  const ModelConfig c = preset("tiny-qwen2");
  ModelHarness h(c, 21, 8, DType::kF32, 128);
  const auto pa = random_tokens(20, c.vocab_size, 1), pb = random_tokens(33, c.vocab_size, 2),
             pc = random_tokens(5, c.vocab_size, 3), pd = random_tokens(9, c.vocab_size, 4);
  // Alone: a, c decode one token after their prompt; b and d prefill (d in a mid-prompt chunk).
  PageTable a1(8), b1(8), c1(8), d1(8);
  h.prefill(a1, pa, pa.size());
  h.prefill(c1, pc, pc.size());
  const auto ra = h.decode(a1, 17), rc = h.decode(c1, 99);
  const auto rb = h.prefill(b1, pb, pb.size());
  // Together, in one step: decode a, prefill b, decode c, a no-logits chunk of d.
  PageTable a2(8), b2(8), c2(8), d2(8);
  h.prefill(a2, pa, pa.size());
  h.prefill(c2, pc, pc.size());
  const int32_t ta = 17, tc = 99;
  const auto out = h.forward(
      {ModelHarness::chunk(a2, &ta, 1), ModelHarness::chunk(b2, pb.data(), 33),
       ModelHarness::chunk(c2, &tc, 1), ModelHarness::chunk(d2, pd.data(), 9, /*want=*/false)});
  const auto V = static_cast<size_t>(c.vocab_size);
  ASSERT_EQ(out.size(), 3 * V);
  EXPECT_LT(rel_l2({out.begin(), out.begin() + V}, ra), 1e-5);
  EXPECT_LT(rel_l2({out.begin() + V, out.begin() + 2 * V}, rb), 1e-5);
  EXPECT_LT(rel_l2({out.begin() + 2 * V, out.end()}, rc), 1e-5);
  EXPECT_EQ(d2.num_tokens(), 9);
  // d's K/V were written although it wanted no logits: its continuation matches d alone.
  h.prefill(d1, pd, pd.size());
  EXPECT_LT(rel_l2(h.decode(d2, 5), h.decode(d1, 5)), 1e-5);
}

TEST(CpuModel, Bf16KvStaysCloseToF32) {
  const ModelConfig c = preset("tiny-qwen3");
  ModelHarness f32(c, 4, 16, DType::kF32, 32), bf16(c, 4, 16, DType::kBF16, 32);
  const auto tokens = random_tokens(50, c.vocab_size, 9);
  PageTable a(16), b(16);
  const auto la = f32.prefill(a, tokens, 50), lb = bf16.prefill(b, tokens, 50);
  EXPECT_LT(rel_l2(lb, la), 2e-2);
  EXPECT_GT(rel_l2(lb, la), 0.0);  // the bf16 path really rounds
  EXPECT_LT(rel_l2(bf16.decode(b, 3), f32.decode(a, 3)), 2e-2);
}

TEST(CpuModel, TwoThousandGreedyDecodeStepsStayFinite) {
  for (const char* name : {"tiny-llama", "tiny-qwen3"}) {
    const ModelConfig c = preset(name);
    ModelHarness h(c, 1, 16, DType::kBF16, 140);
    PageTable pt(16);
    std::vector<float> logits = h.prefill(pt, random_tokens(8, c.vocab_size, 1), 8);
    std::vector<int32_t> seen(static_cast<size_t>(c.vocab_size), 0);
    for (int step = 0; step < 2000; ++step) {
      for (float x : logits) ASSERT_TRUE(std::isfinite(x)) << name << " step " << step;
      const int32_t next = argmax(logits);
      seen[static_cast<size_t>(next)] = 1;
      logits = h.decode(pt, next);
    }
    const float spread = *std::max_element(logits.begin(), logits.end()) -
                         *std::min_element(logits.begin(), logits.end());
    EXPECT_GT(spread, 0.1f) << name;  // logits did not collapse
    EXPECT_LT(spread, 1e3f) << name;  // nor blow up
    EXPECT_EQ(pt.num_tokens(), 2008);
  }
}

TEST(CpuModel, BadBatchesAreErrorsNotCrashes) {
  const ModelConfig c = preset("tiny-llama");
  ModelHarness h(c, 1, 16, DType::kF32, 4);
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  PageTable pt(16);
  ASSERT_TRUE(pt.reserve(4, h.cache->pool()).is_ok());
  const int32_t bad_token = c.vocab_size, ok_token = 1;
  auto run = [&](SequenceChunk chunk) {
    return h.model->forward(ForwardBatch{{chunk}}, *h.cache, logits.data(), nullptr);
  };
  EXPECT_FALSE(run({&bad_token, 1, 0, &pt}).is_ok());     // out of vocabulary
  EXPECT_FALSE(run({&ok_token, 1, 3, &pt}).is_ok());      // start_pos != table size
  EXPECT_FALSE(run({&ok_token, 0, 0, &pt}).is_ok());      // no tokens
  EXPECT_FALSE(run({&ok_token, 1, 0, nullptr}).is_ok());  // no page table
  PageTable unreserved(16);
  EXPECT_FALSE(run({&ok_token, 1, 0, &unreserved}).is_ok());
  PageTable other_page_size(8);
  EXPECT_FALSE(run({&ok_token, 1, 0, &other_page_size}).is_ok());
  EXPECT_FALSE(h.model->forward(ForwardBatch{{{&ok_token, 1, 0, &pt}}}, *h.cache, nullptr, nullptr)
                   .is_ok());  // logits wanted, no buffer
  // A cache built for another model.
  KVCacheConfig kc = h.cache->config();
  kc.head_dim *= 2;
  auto wrong = KVCache::create(kc, 4);
  ASSERT_TRUE(wrong.has_value());
  EXPECT_FALSE(
      h.model->forward(ForwardBatch{{{&ok_token, 1, 0, &pt}}}, *wrong, logits.data(), nullptr)
          .is_ok());
  EXPECT_EQ(pt.num_tokens(), 0);  // nothing was committed
  EXPECT_TRUE(run({&ok_token, 1, 0, &pt}).is_ok());
  EXPECT_EQ(pt.num_tokens(), 1);
}

TEST(CpuModel, CreateChecksWeights) {
  const ModelConfig c = preset("tiny-qwen3");
  WeightMap w = synthetic_weights(c, 1).value();
  WeightMap missing;
  for (const auto& [name, t] : w.all()) {
    if (name != "blk.1.attn_k_norm") missing.put(name, t);
  }
  auto m = CpuModel::create(c, missing);
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.status().message().find("blk.1.attn_k_norm"), std::string::npos);
  WeightMap wrong = w;
  wrong.put("blk.0.ffn_up", Tensor::zeros(Shape{3, 3}, DType::kF32).value());
  m = CpuModel::create(c, wrong);
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.status().message().find("blk.0.ffn_up"), std::string::npos);
  ModelConfig bad = c;
  bad.num_kv_heads = 3;  // 8 q heads are not a multiple of 3
  EXPECT_FALSE(CpuModel::create(bad, w).has_value());
}

}  // namespace
}  // namespace vortex::testing
