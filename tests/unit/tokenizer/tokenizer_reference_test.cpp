// The tokenizer on the real SmolLM2 vocabulary against the HF `tokenizers` library built from the
// same GGUF vocab/merges (hf_reference.py): ids, decoded text, pre-tokenizer pieces of all four
// regex families, tokenizer.json loading, streaming decode, and encoding speed.
// Skips with a clear message when .venv or the model file is missing.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>

#include "test_support.h"
#include "vortex/model/pretokenizer.h"
#include "vortex/model/tokenizer.h"
#include "vortex/model/utf8_stream.h"

namespace vortex {
namespace {

const char* const kPreNames[] = {"gpt2", "smollm", "llama3", "qwen2"};

class TokenizerReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto ref = test::find_reference(&skip_reason_, "tokenizer");
    if (!ref) return;
    texts_ = std::make_unique<std::vector<std::string>>(test::tricky_corpus());
    std::mt19937 rng(2024);
    for (int i = 0; i < 300; ++i)
      texts_->push_back(test::random_utf8(rng, 1 + i % 50, /*assigned_only=*/true));
    const std::string dir = ref->work_dir;
    test::write_json_file(dir + "/request.json", {{"texts", *texts_}, {"names", kPreNames}});
    std::string log;
    if (!test::run_reference(
            *ref, "bundle '" + ref->gguf + "' '" + dir + "/request.json' '" + dir + "'", &log)) {
      failure_ = "hf_reference.py failed:\n" + log;
      return;
    }
    dir_ = dir;
    auto tok = Tokenizer::from_spec(test::spec_from_dump(test::read_json_file(dir + "/spec.json")));
    if (!tok.has_value()) {
      failure_ = tok.status().to_string();
      return;
    }
    tokenizer_ = std::make_unique<Tokenizer>(std::move(tok).value());
  }
  static void TearDownTestSuite() {
    tokenizer_.reset();
    texts_.reset();
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(failure_.empty()) << failure_;
  }

  inline static std::string skip_reason_;
  inline static std::string failure_;
  inline static std::string dir_;
  inline static std::unique_ptr<Tokenizer> tokenizer_;
  inline static std::unique_ptr<std::vector<std::string>> texts_;
};

TEST_F(TokenizerReference, EncodeMatchesHfTokenizers) {
  const nlohmann::json hf = test::read_json_file(dir_ + "/encoded.json");
  ASSERT_EQ(hf.at("ids").size(), texts_->size());
  int mismatches = 0;
  for (size_t i = 0; i < texts_->size(); ++i) {
    const auto want = hf.at("ids")[i].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tokenizer_->encode((*texts_)[i]);
    EXPECT_EQ(got, want) << "text #" << i << ": '" << (*texts_)[i] << "'";
    mismatches += got != want;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_F(TokenizerReference, DecodeMatchesHfAndRoundTrips) {
  const nlohmann::json hf = test::read_json_file(dir_ + "/encoded.json");
  size_t covered = 0;
  for (size_t i = 0; i < texts_->size(); ++i) {
    const std::string& text = (*texts_)[i];
    const std::vector<int32_t> ids = tokenizer_->encode(text);
    // HF returns text with invalid UTF-8 replaced (Rust's from_utf8_lossy).
    EXPECT_EQ(sanitize_utf8(tokenizer_->decode(ids)), hf.at("decoded")[i].get<std::string>())
        << "text #" << i;
    // Exact round trip unless the text has a byte SmolLM2 has no token for (both drop it).
    if (test::vocab_covers(*tokenizer_, text)) {
      EXPECT_EQ(tokenizer_->decode(ids), text) << "text #" << i;
      ++covered;
    }
  }
  EXPECT_GT(covered, texts_->size() / 2);  // the round trip is checked on most texts
}

TEST_F(TokenizerReference, PreTokenizerPiecesMatchHf) {
  const nlohmann::json hf = test::read_json_file(dir_ + "/pieces.json");
  for (const char* name : kPreNames) {
    const PreTokenizer pre = PreTokenizer::from_name(name);
    for (size_t i = 0; i < texts_->size(); ++i) {
      std::vector<std::string_view> views;
      pre.split((*texts_)[i], &views);
      const std::vector<std::string> got(views.begin(), views.end());
      EXPECT_EQ(got, hf.at(name)[i].get<std::vector<std::string>>())
          << name << " text #" << i << ": '" << (*texts_)[i] << "'";
    }
  }
}

TEST_F(TokenizerReference, TokenizerJsonSavedByHfGivesTheSameIds) {
  auto from_json = Tokenizer::from_tokenizer_json(dir_ + "/tokenizer.json");
  ASSERT_TRUE(from_json.has_value()) << from_json.status().to_string();
  EXPECT_EQ(from_json->vocab_size(), tokenizer_->vocab_size());
  EXPECT_EQ(from_json->pre_patterns(), tokenizer_->pre_patterns());
  for (const std::string& text : *texts_) {
    EXPECT_EQ(from_json->encode(text), tokenizer_->encode(text)) << "'" << text << "'";
  }
}

TEST_F(TokenizerReference, SmolLm2SpecialsAndEndOfGeneration) {
  EXPECT_EQ(tokenizer_->encode("<|im_start|>"), std::vector<int32_t>{1});
  EXPECT_EQ(tokenizer_->encode("<|im_end|>"), std::vector<int32_t>{2});
  EXPECT_TRUE(tokenizer_->is_end_of_generation(2));  // eos = <|im_end|>
  EXPECT_TRUE(tokenizer_->is_end_of_generation(0));  // <|endoftext|>
  EXPECT_FALSE(tokenizer_->is_end_of_generation(1));
  EXPECT_FALSE(tokenizer_->add_bos());
}

TEST_F(TokenizerReference, StreamingOneTokenAtATimeReproducesText) {
  for (const std::string& text : *texts_) {
    const std::vector<int32_t> ids = tokenizer_->encode(text);
    Utf8StreamDecoder dec(*tokenizer_);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = dec.push(id);
      ASSERT_TRUE(test::is_valid_utf8(piece)) << "'" << text << "'";
      streamed += piece;
    }
    streamed += dec.flush();
    EXPECT_EQ(streamed, sanitize_utf8(tokenizer_->decode(ids)));
    if (test::vocab_covers(*tokenizer_, text)) {
      EXPECT_EQ(streamed, text);
    }
  }
  // An emoji is several byte tokens here: nothing may come out until its last byte.
  const std::string emoji = "\xF0\x9F\xA6\x9C";  // U+1F99C
  const std::vector<int32_t> ids = tokenizer_->encode(emoji);
  ASSERT_GT(ids.size(), 1u);
  Utf8StreamDecoder dec(*tokenizer_);
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_EQ(dec.push(ids[i]), "");
  EXPECT_EQ(dec.push(ids.back()), emoji);
}

TEST_F(TokenizerReference, Encodes50KilobytesQuickly) {
  std::string text;
  std::mt19937 rng(9);
  size_t i = 0;
  while (text.size() < 50 * 1024) {
    text += (*texts_)[i++ % texts_->size()];
    text += test::random_utf8(rng, 20);
  }
  // A fresh tokenizer, so the word cache starts empty.
  auto fresh =
      Tokenizer::from_spec(test::spec_from_dump(test::read_json_file(dir_ + "/spec.json")));
  ASSERT_TRUE(fresh.has_value());
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = fresh->encode(text);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(fresh->decode(ids), fresh->decode(tokenizer_->encode(text)));
  std::printf("encoded %zu bytes into %zu tokens in %.1f ms (cold cache)\n", text.size(),
              ids.size(), ms);
  // Loose bound: catches a quadratic regression without flaking on a loaded 2-core machine.
  EXPECT_LT(ms, 1000.0);
}

}  // namespace
}  // namespace vortex
