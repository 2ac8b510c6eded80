// A tiny llama / qwen2 / qwen3 GGUF built in memory (Q8_0 embeddings, F32 elsewhere) for the
// loader tests and the fuzzer, with the fp32 values each canonical tensor should load as.
#pragma once

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "test_files.h"
#include "vortex/core/dtype.h"
#include "vortex/model/dequant.h"

namespace vortex::testing {

struct TinySpec {
  std::string arch = "llama";
  bool tied = true;
  int layers = 2, hidden = 32, ffn = 64, heads = 4, kv_heads = 2, head_dim = 8;
  bool skip_tensor = false;  // drop blk.1.ffn_up.weight
  bool wrong_shape = false;  // blk.0.attn_k.weight with 3 KV heads
};

// The canonical fp32 values written into the file, to compare with what the loader returns.
using Values = std::map<std::string, std::vector<float>>;

inline std::vector<float> random_vec(std::mt19937& rng, size_t n) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

inline const std::vector<std::string> kTokens = {
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "Ġ", "ab", "Ġa"};

inline GgufBuilder tiny_gguf(const TinySpec& s, Values* values) {
  std::mt19937 rng(7);
  GgufBuilder b;
  const std::string a = s.arch + ".";
  b.kv_str("general.architecture", s.arch);
  b.kv_str("general.name", "tiny " + s.arch);
  b.kv_u32(a + "block_count", static_cast<uint32_t>(s.layers));
  b.kv_u32(a + "context_length", 512);
  b.kv_u32(a + "embedding_length", static_cast<uint32_t>(s.hidden));
  b.kv_u32(a + "feed_forward_length", static_cast<uint32_t>(s.ffn));
  b.kv_u32(a + "attention.head_count", static_cast<uint32_t>(s.heads));
  b.kv_u32(a + "attention.head_count_kv", static_cast<uint32_t>(s.kv_heads));
  b.kv_u32(a + "attention.key_length", static_cast<uint32_t>(s.head_dim));
  b.kv_f32(a + "rope.freq_base", 50000.0f);
  b.kv_f32(a + "attention.layer_norm_rms_epsilon", 1e-6f);
  b.kv_str("tokenizer.ggml.model", "gpt2");
  b.kv_str("tokenizer.ggml.pre", "smollm");
  b.kv_str_array("tokenizer.ggml.tokens", kTokens);
  b.kv_i32_array("tokenizer.ggml.token_type", {3, 3, 3, 1, 1, 1, 1, 1});
  b.kv_str_array("tokenizer.ggml.merges", {"a b", "Ġ a"});
  b.kv_u32("tokenizer.ggml.bos_token_id", 1);
  b.kv_u32("tokenizer.ggml.eos_token_id", 2);
  b.kv_bool("tokenizer.ggml.add_bos_token", false);
  b.kv_str("tokenizer.chat_template", "{% for m in messages %}<|im_start|>{% endfor %}");

  const uint64_t h = static_cast<uint64_t>(s.hidden), f = static_cast<uint64_t>(s.ffn);
  const uint64_t q = static_cast<uint64_t>(s.heads * s.head_dim);
  const uint64_t kv = static_cast<uint64_t>(s.kv_heads * s.head_dim);
  auto f32 = [&](const std::string& canon, std::vector<uint64_t> dims, const std::string& suffix) {
    size_t n = 1;
    for (auto d : dims) n *= d;
    auto v = random_vec(rng, n);
    b.tensor_f32(canon + suffix, dims, v);
    (*values)[canon] = v;
  };
  // token_embd as Q8_0 (rows of 32): its expected values come from dequantize().
  {
    std::vector<uint8_t> q8(kTokens.size() * (h / 32) * 34);
    for (auto& x : q8) x = static_cast<uint8_t>(rng());
    for (size_t blk = 0; blk < q8.size() / 34; ++blk) {
      const uint16_t d = f32_to_f16(0.01f * static_cast<float>(blk + 1));
      std::memcpy(&q8[blk * 34], &d, 2);
    }
    std::vector<float> v(kTokens.size() * h);
    EXPECT_TRUE(dequantize(8, q8, v).is_ok());
    b.tensor("token_embd.weight", {h, kTokens.size()}, 8, q8);
    (*values)["token_embd"] = v;
  }
  f32("output_norm", {h}, ".weight");
  if (!s.tied) f32("output", {h, kTokens.size()}, ".weight");
  for (int i = 0; i < s.layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    f32(p + "attn_norm", {h}, ".weight");
    f32(p + "attn_q", {h, q}, ".weight");
    f32(p + "attn_k", {h, s.wrong_shape && i == 0 ? kv / 2 * 3 : kv}, ".weight");
    f32(p + "attn_v", {h, kv}, ".weight");
    if (s.arch == "qwen2") {
      f32(p + "attn_q.bias", {q}, "");
      f32(p + "attn_k.bias", {kv}, "");
      f32(p + "attn_v.bias", {kv}, "");
    }
    if (s.arch == "qwen3") {
      f32(p + "attn_q_norm", {static_cast<uint64_t>(s.head_dim)}, ".weight");
      f32(p + "attn_k_norm", {static_cast<uint64_t>(s.head_dim)}, ".weight");
    }
    f32(p + "attn_output", {q, h}, ".weight");
    f32(p + "ffn_norm", {h}, ".weight");
    f32(p + "ffn_gate", {h, f}, ".weight");
    if (!(s.skip_tensor && i == 1)) f32(p + "ffn_up", {h, f}, ".weight");
    f32(p + "ffn_down", {f, h}, ".weight");
  }
  return b;
}

}  // namespace vortex::testing
