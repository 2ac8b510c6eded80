// Hugging Face directories: config.json mapping, tensor names, save_safetensors -> load round
// trips (F32 / BF16 / sharded), the GGUF->HF RoPE row permutation, and clean errors.
#include "vortex/model/hf_checkpoint.h"

#include <gtest/gtest.h>

#include <random>

#include "test_files.h"
#include "vortex/core/dtype.h"
#include "vortex/model/hf_config.h"
#include "vortex/model/hf_tensor_names.h"
#include "vortex/model/safetensors_writer.h"

namespace vortex {
namespace {

using testing::TempDir;

ModelConfig tiny_qwen3() {
  ModelConfig c;
  c.arch = Arch::kQwen3;
  c.name = "tiny-qwen3";
  c.vocab_size = 50;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 2;
  c.num_q_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;  // != hidden / heads, as in real Qwen3
  c.rms_norm_eps = 1e-6f;
  c.rope.theta = 1000000.0f;
  c.max_context = 1024;
  c.qk_norm = true;
  c.bos_token_id = -1;
  c.eos_token_ids = {7, 9};
  return c;
}

WeightMap random_weights(const ModelConfig& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.1f);
  WeightMap w;
  for (const ExpectedWeight& e : expected_weights(c)) {
    Tensor t = Tensor::empty(e.shape, DType::kF32).value();
    for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = n(rng);
    w.put(e.name, t);
  }
  return w;
}

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_q_heads, b.num_q_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope.theta, b.rope.theta);
  EXPECT_EQ(a.rope.scaling, b.rope.scaling);
  EXPECT_EQ(a.rope.factor, b.rope.factor);
  EXPECT_EQ(a.max_context, b.max_context);
  EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
}

TEST(HfConfig, ParsesLlamaWithLlama3Scaling) {
  const char* text = R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "max_position_embeddings": 131072, "hidden_act": "silu",
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": false, "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "attention_bias": false})";
  auto c = parse_hf_config(text, "config.json");
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->arch, Arch::kLlama);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_kv_heads, 8);
  EXPECT_EQ(c->rope.style, RopeStyle::kHalfSplit);
  EXPECT_EQ(c->rope.scaling, RopeScaling::kLlama3);
  EXPECT_EQ(c->rope.factor, 8.0f);
  EXPECT_EQ(c->rope.original_max_position, 8192);
  EXPECT_EQ(c->rope.theta, 500000.0f);
  EXPECT_EQ(c->max_context, 131072);
  EXPECT_EQ(c->bos_token_id, 128000);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  EXPECT_TRUE(c->validate().is_ok());
}

TEST(HfConfig, ParsesQwenVariantsAndLinearScaling) {
  auto q2 = parse_hf_config(R"({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 100,
      "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": true,
      "use_sliding_window": false, "rope_scaling": {"type": "linear", "factor": 4.0},
      "eos_token_id": 5})",
                            "q2");
  ASSERT_TRUE(q2) << q2.status().to_string();
  EXPECT_EQ(q2->arch, Arch::kQwen2);
  EXPECT_TRUE(q2->qkv_bias);
  EXPECT_TRUE(q2->tie_embeddings);
  EXPECT_EQ(q2->head_dim, 16);
  EXPECT_EQ(q2->rope.scaling, RopeScaling::kLinear);
  EXPECT_EQ(q2->rope.factor, 4.0f);
  EXPECT_EQ(q2->eos_token_ids, (std::vector<int32_t>{5}));

  auto q3 = parse_hf_config(R"({"model_type": "qwen3", "vocab_size": 100, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
      "head_dim": 32, "rope_scaling": null})",
                            "q3");
  ASSERT_TRUE(q3) << q3.status().to_string();
  EXPECT_EQ(q3->arch, Arch::kQwen3);
  EXPECT_TRUE(q3->qk_norm);
  EXPECT_EQ(q3->head_dim, 32);
  EXPECT_EQ(q3->num_kv_heads, 4);  // defaults to the query heads
}

TEST(HfConfig, ErrorsNameTheKey) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    auto c = parse_hf_config(text, "my/config.json");
    ASSERT_FALSE(c) << "expected an error containing '" << needle << "'";
    EXPECT_NE(c.status().message().find(needle), std::string::npos) << c.status().message();
    EXPECT_NE(c.status().message().find("my/config.json"), std::string::npos);
  };
  const std::string base = R"("architectures": ["LlamaForCausalLM"], "vocab_size": 10,
      "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2)";
  expect_error("{" + base + R"(, "hidden_size": "big"})", "'hidden_size' must be a positive");
  expect_error("{" + base + "}", "'hidden_size' is missing");
  expect_error("{" + base + R"(, "hidden_size": 8, "rope_scaling": {"rope_type": "yarn"}})",
               "'yarn'");
  expect_error("{" + base + R"(, "hidden_size": 8, "hidden_act": "gelu"})", "hidden_act");
  expect_error("{" + base + R"(, "hidden_size": 8, "attention_bias": true})", "attention_bias");
  expect_error("{" + base + R"(, "hidden_size": 8, "eos_token_id": [1, "x"]})", "eos_token_id");
  expect_error(R"({"architectures": ["MistralForCausalLM"]})", "'MistralForCausalLM'");
  expect_error("{oops", "not a valid JSON object");
}

TEST(HfConfig, WriterRoundTrips) {
  ModelConfig c = tiny_qwen3();
  c.rope.scaling = RopeScaling::kLlama3;
  c.rope.factor = 8.0f;
  c.rope.original_max_position = 512;
  auto text = hf_config_json(c);
  ASSERT_TRUE(text) << text.status().to_string();
  auto back = parse_hf_config(*text, "rt");
  ASSERT_TRUE(back) << back.status().to_string();
  expect_same_config(c, *back);
  EXPECT_EQ(back->rope.original_max_position, 512);
  EXPECT_EQ(back->name, "tiny-qwen3");
}

TEST(HfTensorNames, MapBothWays) {
  EXPECT_EQ(hf_to_canonical("model.embed_tokens.weight"), "token_embd");
  EXPECT_EQ(hf_to_canonical("lm_head.weight"), "output");
  EXPECT_EQ(hf_to_canonical("model.layers.12.self_attn.k_proj.bias"), "blk.12.attn_k.bias");
  EXPECT_EQ(hf_to_canonical("model.layers.0.self_attn.q_norm.weight"), "blk.0.attn_q_norm");
  EXPECT_EQ(hf_to_canonical("model.layers.3.mlp.down_proj.weight"), "blk.3.ffn_down");
  EXPECT_FALSE(hf_to_canonical("model.layers.3.self_attn.rotary_emb.inv_freq"));
  EXPECT_FALSE(hf_to_canonical("model.layers.03.mlp.up_proj.weight"));
  EXPECT_FALSE(hf_to_canonical("model.layers.x.mlp.up_proj.weight"));
  EXPECT_FALSE(hf_to_canonical("model.layers."));
  for (const ExpectedWeight& e : expected_weights(tiny_qwen3())) {
    auto hf = canonical_to_hf(e.name);
    ASSERT_TRUE(hf) << e.name;
    EXPECT_EQ(hf_to_canonical(*hf), e.name);
  }
}

void expect_weights_equal(const WeightMap& a, const WeightMap& b, DType stored) {
  ASSERT_EQ(a.all().size(), b.all().size());
  for (const auto& [name, t] : a.all()) {
    auto u = b.get(name);
    ASSERT_TRUE(u) << name;
    ASSERT_EQ(u->shape(), t.shape()) << name;
    for (int64_t i = 0; i < t.numel(); ++i) {
      const float v = t.data_as<float>()[i];
      const float want = stored == DType::kBF16 ? bf16_to_f32(f32_to_bf16(v)) : v;
      ASSERT_EQ(u->data_as<float>()[i], want) << name << "[" << i << "]";
    }
  }
}

TEST(HfCheckpoint, SyntheticQwen3RoundTrips) {
  const ModelConfig c = tiny_qwen3();
  const WeightMap w = random_weights(c, 11);
  struct Variant {
    DType dtype;
    int shards;
  };
  for (Variant v : {Variant{DType::kF32, 1}, Variant{DType::kBF16, 1}, Variant{DType::kF32, 3}}) {
    TempDir dir;
    const std::string d = dir.file("qwen3");
    ASSERT_TRUE(save_safetensors(d, w, c, {v.dtype, v.shards}).is_ok());
    EXPECT_EQ(std::filesystem::exists(d + "/model.safetensors.index.json"), v.shards > 1);
    auto ck = load_checkpoint(d);
    ASSERT_TRUE(ck) << ck.status().to_string();
    expect_same_config(c, ck->config);
    EXPECT_EQ(ck->config.rope.style, RopeStyle::kHalfSplit);
    EXPECT_EQ(ck->source, d);
    EXPECT_EQ(ck->tokenizer.eos_id, 7);
    EXPECT_EQ(ck->tokenizer.eot_ids, (std::vector<int32_t>{9}));
    expect_weights_equal(w, ck->weights, v.dtype);
    // A path to one of the .safetensors files loads its directory.
    if (v.shards == 1) {
      auto again = load_checkpoint(d + "/model.safetensors");
      ASSERT_TRUE(again) << again.status().to_string();
    }
  }
}

TEST(HfCheckpoint, ReadsTokenizerFilesAndGenerationConfig) {
  TempDir dir;
  const std::string d = dir.file("m");
  ModelConfig c = tiny_qwen3();
  c.tie_embeddings = true;
  ASSERT_TRUE(save_safetensors(d, random_weights(c, 2), c).is_ok());
  testing::write_text(d + "/generation_config.json",
                      R"({"eos_token_id": [3, 4], "bos_token_id": 1})");
  testing::write_text(d + "/tokenizer_config.json",
                      R"({"add_bos_token": true, "chat_template": "{{ messages }}"})");
  testing::write_text(d + "/tokenizer.json", "{}");
  auto ck = load_checkpoint(d);
  ASSERT_TRUE(ck) << ck.status().to_string();
  EXPECT_EQ(ck->config.eos_token_ids, (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(ck->config.bos_token_id, 1);
  EXPECT_TRUE(ck->config.tie_embeddings);
  EXPECT_FALSE(ck->weights.contains("output"));
  EXPECT_EQ(ck->tokenizer.bos_id, 1);
  EXPECT_EQ(ck->tokenizer.eos_id, 3);
  EXPECT_TRUE(ck->tokenizer.add_bos);
  EXPECT_EQ(ck->tokenizer.chat_template, "{{ messages }}");
  EXPECT_EQ(ck->tokenizer_json_path, d + "/tokenizer.json");

  testing::write_text(d + "/tokenizer_config.json",
                      R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                            {"name": "default", "template": "D"}]})");
  ck = load_checkpoint(d);
  ASSERT_TRUE(ck) << ck.status().to_string();
  EXPECT_EQ(ck->tokenizer.chat_template, "D");
}

TEST(HfCheckpoint, MissingAndInconsistentTensorsAreNamed) {
  TempDir dir;
  const ModelConfig c = tiny_qwen3();
  const WeightMap w = random_weights(c, 5);
  const std::string d = dir.file("m");
  ASSERT_TRUE(save_safetensors(d, w, c).is_ok());
  // Rewrite the weights without one tensor.
  std::vector<std::pair<std::string, Tensor>> ts;
  for (const auto& [name, t] : w.all()) {
    if (name != "blk.1.ffn_gate") ts.emplace_back(*canonical_to_hf(name), t);
  }
  ASSERT_TRUE(write_safetensors(d + "/model.safetensors", ts).is_ok());
  auto ck = load_checkpoint(d);
  ASSERT_FALSE(ck);
  EXPECT_NE(ck.status().message().find("'model.layers.1.mlp.gate_proj.weight' is missing"),
            std::string::npos)
      << ck.status().message();

  // An untied config without lm_head.
  ts.clear();
  for (const auto& [name, t] : w.all()) {
    if (name != "output") ts.emplace_back(*canonical_to_hf(name), t);
  }
  ASSERT_TRUE(write_safetensors(d + "/model.safetensors", ts).is_ok());
  ck = load_checkpoint(d);
  ASSERT_FALSE(ck);
  EXPECT_NE(ck.status().message().find("tie_word_embeddings is false"), std::string::npos);

  // A wrong shape.
  ts.clear();
  for (const auto& [name, t] : w.all()) {
    ts.emplace_back(*canonical_to_hf(name),
                    name == "blk.0.attn_q_norm" ? Tensor::zeros(Shape{8}, DType::kF32).value() : t);
  }
  ASSERT_TRUE(write_safetensors(d + "/model.safetensors", ts).is_ok());
  ck = load_checkpoint(d);
  ASSERT_FALSE(ck);
  EXPECT_NE(ck.status().message().find("has shape [8], expected [16]"), std::string::npos)
      << ck.status().message();
}

TEST(HfCheckpoint, HostileIndexIsRejected) {
  TempDir dir;
  const ModelConfig c = tiny_qwen3();
  const std::string d = dir.file("m");
  ASSERT_TRUE(save_safetensors(d, random_weights(c, 5), c, {DType::kF32, 2}).is_ok());
  const std::string index = d + "/model.safetensors.index.json";
  testing::write_text(index, R"({"weight_map": {"lm_head.weight": "../evil.safetensors"}})");
  auto ck = load_checkpoint(d);
  ASSERT_FALSE(ck);
  EXPECT_NE(ck.status().message().find("same directory"), std::string::npos);

  testing::write_text(index,
                      R"({"weight_map": {"nope.weight": "model-00001-of-00002.safetensors"}})");
  ck = load_checkpoint(d);
  ASSERT_FALSE(ck);
  EXPECT_NE(ck.status().message().find("'nope.weight'"), std::string::npos);

  testing::write_text(index, R"({"weight_map": 3})");
  EXPECT_FALSE(load_checkpoint(d));
  testing::write_text(d + "/config.json", "{");
  ck = load_checkpoint(d);
  ASSERT_FALSE(ck);
  EXPECT_NE(ck.status().message().find("config.json"), std::string::npos);
}

TEST(HfCheckpoint, AdjacentPairRowsPermuteToHalfSplit) {
  // One head of D = 4: GGUF rows (i, s) = (0,0) (0,1) (1,0) (1,1) -> HF rows (s, i).
  Tensor w = Tensor::empty(Shape{8, 2}, DType::kF32).value();
  for (int i = 0; i < 16; ++i) w.data_as<float>()[i] = static_cast<float>(i / 2);  // row ids
  auto p = adjacent_to_half_split_rows(w, 2, 4);
  ASSERT_TRUE(p);
  const float want[] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(p->data_as<float>()[2 * r], want[r]);
    EXPECT_EQ(p->data_as<float>()[2 * r + 1], want[r]);
  }
  EXPECT_FALSE(adjacent_to_half_split_rows(w, 3, 4));

  // Saving a llama-GGUF-style checkpoint writes HF-layout Q/K; loading gives half-split RoPE.
  ModelConfig c = tiny_qwen3();
  c.arch = Arch::kLlama;
  c.qk_norm = false;
  c.rope.style = RopeStyle::kAdjacentPairs;
  const WeightMap gw = random_weights(c, 8);
  TempDir dir;
  ASSERT_TRUE(save_safetensors(dir.file("l"), gw, c).is_ok());
  auto ck = load_checkpoint(dir.file("l"));
  ASSERT_TRUE(ck) << ck.status().to_string();
  EXPECT_EQ(ck->config.rope.style, RopeStyle::kHalfSplit);
  auto k = adjacent_to_half_split_rows(*gw.get("blk.1.attn_k"), c.num_kv_heads, c.head_dim);
  ASSERT_TRUE(k);
  EXPECT_EQ(std::memcmp(k->data(), ck->weights.get("blk.1.attn_k")->data(), k->nbytes()), 0);
  EXPECT_EQ(std::memcmp(gw.get("blk.1.attn_v")->data(), ck->weights.get("blk.1.attn_v")->data(),
                        k->nbytes()),
            0);
}

TEST(Checkpoint, DispatchErrors) {
  TempDir dir;
  testing::write_text(dir.file("model.bin"), "hello");
  auto bin = load_checkpoint(dir.file("model.bin"));
  ASSERT_FALSE(bin);
  EXPECT_NE(bin.status().message().find("neither a GGUF file"), std::string::npos);
  auto none = load_checkpoint(dir.file("missing.gguf"));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(load_checkpoint(""));
  auto empty_dir = load_checkpoint(dir.path().string());
  ASSERT_FALSE(empty_dir);
  EXPECT_NE(empty_dir.status().message().find("config.json is missing"), std::string::npos);
  auto seed = load_checkpoint("synthetic:qwen3-1.7b@abc");
  ASSERT_FALSE(seed);
  EXPECT_NE(seed.status().message().find("seed"), std::string::npos);
  EXPECT_FALSE(load_checkpoint("synthetic:"));
}

TEST(ModelConfig, ValidateNamesTheBadField) {
  ModelConfig c = tiny_qwen3();
  EXPECT_TRUE(c.validate().is_ok());
  auto expect_bad = [](ModelConfig m, const std::string& field) {
    Status s = m.validate();
    ASSERT_FALSE(s.is_ok()) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  ModelConfig m = c;
  m.num_kv_heads = 3;
  expect_bad(m, "num_q_heads");
  m = c;
  m.head_dim = 15;
  expect_bad(m, "head_dim");
  m = c;
  m.vocab_size = 0;
  expect_bad(m, "vocab_size");
  m = c;
  m.rms_norm_eps = 0.0f;
  expect_bad(m, "rms_norm_eps");
  m = c;
  m.rope.theta = -1.0f;
  expect_bad(m, "rope.theta");
  m = c;
  m.eos_token_ids = {50};
  expect_bad(m, "eos_token_ids");
  m = c;
  m.bos_token_id = 99;
  expect_bad(m, "bos_token_id");
  m = c;
  m.rope.scaling = RopeScaling::kLlama3;
  m.rope.high_freq_factor = 0.5f;
  expect_bad(m, "high_freq_factor");
  m = c;
  m.vocab_size = 2000000000;
  m.hidden_size = 2000000000;
  expect_bad(m, "sizes");
}

}  // namespace
}  // namespace vortex
