// The real default model, SmolLM2-135M-Instruct Q4_1 GGUF: config mapping, tokenizer metadata,
// full load, tensors bit-exact against the gguf package, alias resolution, and truncated copies
// of its header. Skips when the file is not downloaded (scripts/fetch_model.sh).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "test_files.h"
#include "vortex/core/dtype.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/gguf_checkpoint.h"

namespace vortex {
namespace {

class SmolLM2 : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::smollm2_path();
    if (path_.empty()) GTEST_SKIP() << "SmolLM2 GGUF not downloaded; run scripts/fetch_model.sh";
  }
  std::string path_;
};

TEST_F(SmolLM2, ConfigAndTokenizerMetadata) {
  auto g = GgufFile::open(path_);
  ASSERT_TRUE(g) << g.status().to_string();
  auto c = gguf_model_config(*g);
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->arch, Arch::kLlama);
  EXPECT_EQ(c->num_layers, 30);
  EXPECT_EQ(c->hidden_size, 576);
  EXPECT_EQ(c->intermediate_size, 1536);
  EXPECT_EQ(c->num_q_heads, 9);
  EXPECT_EQ(c->num_kv_heads, 3);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->group_size(), 3);
  EXPECT_EQ(c->vocab_size, 49152);
  EXPECT_EQ(c->rope.theta, 100000.0f);
  EXPECT_EQ(c->rope.style, RopeStyle::kAdjacentPairs);
  EXPECT_EQ(c->rope.scaling, RopeScaling::kNone);
  EXPECT_EQ(c->max_context, 8192);
  EXPECT_FLOAT_EQ(c->rms_norm_eps, 1e-5f);
  EXPECT_TRUE(c->tie_embeddings);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{2, 0}));  // <|im_end|>, <|endoftext|>

  auto t = gguf_tokenizer_spec(*g);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->model, "gpt2");
  EXPECT_EQ(t->pre, "smollm");
  EXPECT_EQ(t->tokens.size(), 49152u);
  EXPECT_EQ(t->tokens[1], "<|im_start|>");
  EXPECT_EQ(t->tokens[2], "<|im_end|>");
  EXPECT_EQ(t->merges.size(), 48900u);
  EXPECT_EQ(t->merges[0], "Ġ t");
  EXPECT_EQ(t->token_types.size(), 49152u);
  EXPECT_EQ(t->token_types[0], 3);
  EXPECT_EQ(t->bos_id, 1);
  EXPECT_EQ(t->eos_id, 2);
  EXPECT_EQ(t->unk_id, 0);
  EXPECT_EQ(t->pad_id, 2);
  EXPECT_FALSE(t->add_bos);
  EXPECT_NE(t->chat_template.find("<|im_start|>"), std::string::npos);
}

TEST_F(SmolLM2, LoadsFullyAndMatchesGgufPackage) {
  const auto t0 = std::chrono::steady_clock::now();
  auto ck = load_checkpoint(path_);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(ck) << ck.status().to_string();
  std::printf("SmolLM2 full load (mmap + dequantize to fp32): %.2f s\n", secs);
  EXPECT_EQ(ck->weights.all().size(), 2u + 30u * 9u);  // token_embd, output_norm, 9 per layer
  EXPECT_TRUE(check_weights(ck->config, ck->weights, path_).is_ok());
  EXPECT_EQ(ck->weights.get("token_embd")->shape(), (Shape{49152, 576}));
  EXPECT_EQ(ck->weights.get("blk.0.attn_k")->shape(), (Shape{192, 576}));
  EXPECT_EQ(ck->weights.get("blk.29.ffn_down")->shape(), (Shape{576, 1536}));

  const std::string py = testing::venv_python();
  if (py.empty()) GTEST_SKIP() << "no .venv; skipping the gguf package cross-check";
  testing::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> names = {
      {"token_embd.weight", "token_embd"},      // Q8_0
      {"blk.0.attn_q.weight", "blk.0.attn_q"},  // Q4_1
      {"blk.17.ffn_down.weight", "blk.17.ffn_down"},
      {"blk.29.attn_norm.weight", "blk.29.attn_norm"},  // F32
  };
  std::string cmd =
      py + " " + VORTEX_SOURCE_DIR + "/tests/unit/model_loaders/gguf_tensor_reference.py " + path_;
  for (const auto& [g, c] : names) cmd += " " + g + ":" + dir.file(c + ".f32");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  for (const auto& [g, c] : names) {
    auto ref = testing::read_file(dir.file(c + ".f32"));
    auto t = ck->weights.get(c);
    ASSERT_TRUE(t);
    ASSERT_EQ(ref.size(), t->nbytes()) << c;
    EXPECT_EQ(std::memcmp(ref.data(), t->data(), ref.size()), 0) << c << " differs from gguf";
  }
}

TEST_F(SmolLM2, AliasResolvesThroughModelDir) {
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  const char* old = std::getenv("VORTEX_MODEL_DIR");
  const std::string saved = old ? old : "";
  ::setenv("VORTEX_MODEL_DIR", dir.c_str(), 1);
  auto p = resolve_model_path("smollm2-135m");
  ASSERT_TRUE(p) << p.status().to_string();
  EXPECT_EQ(*p, path_);

  testing::TempDir empty;
  ::setenv("VORTEX_MODEL_DIR", empty.path().c_str(), 1);
  auto missing = load_checkpoint("smollm2-135m");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("scripts/fetch_model.sh"), std::string::npos);
  if (old) {
    ::setenv("VORTEX_MODEL_DIR", saved.c_str(), 1);
  } else {
    ::unsetenv("VORTEX_MODEL_DIR");
  }
}

// Copies of the first N bytes of the real file: every cut fails with the file and an offset.
TEST_F(SmolLM2, TruncatedCopiesFailCleanly) {
  auto g = GgufFile::open(path_);
  ASSERT_TRUE(g);
  const uint64_t data = g->data_offset(), size = g->file_size();
  const uint64_t cuts[] = {0,    3,           4,        23,        24,
                           100,  1000,        100000,   1500000,   data - 1,
                           data, data + 4096, size / 2, size - 32, size - 1};
  std::ifstream in(path_, std::ios::binary);
  std::vector<char> buf(static_cast<size_t>(size));
  in.read(buf.data(), static_cast<std::streamsize>(size));
  testing::TempDir dir;
  const std::string cut = dir.file("cut.gguf");
  for (uint64_t n : cuts) {
    {
      std::ofstream out(cut, std::ios::binary | std::ios::trunc);
      out.write(buf.data(), static_cast<std::streamsize>(n));
    }
    auto ck = load_checkpoint(cut);
    ASSERT_FALSE(ck) << "a copy of " << n << " bytes loaded";
    const std::string m = ck.status().message();
    EXPECT_NE(m.find("cut.gguf"), std::string::npos) << n << ": " << m;
    if (n >= 4) {
      EXPECT_NE(m.find("byte offset"), std::string::npos) << n << ": " << m;
    }
  }
}

}  // namespace
}  // namespace vortex
