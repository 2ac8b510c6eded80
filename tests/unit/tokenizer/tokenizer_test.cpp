// Tests of Tokenizer on small synthetic vocabularies: merging against a textbook BPE, special
// tokens, BOS handling, decode, spec validation and tokenizer.json parsing.
#include "vortex/model/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "test_support.h"

namespace vortex {
namespace {

// "Ġ" is the byte-level form of ' '.
const std::vector<std::string> kMerges = {"a a",  "a b",  "b c",  "aa a",  "ab c",
                                          "c a",  "Ġ a",  "Ġ b",  "Ġa b",  "b b",
                                          "aa b", "bb c", "ca b", "aaa b", "Ġab c"};

Tokenizer make(const TokenizerSpec& spec) {
  auto tok = Tokenizer::from_spec(spec);
  EXPECT_TRUE(tok.has_value()) << tok.status().to_string();
  return std::move(tok).value();
}

std::vector<int32_t> byte_ids(const Tokenizer& tok, std::string_view word) {
  std::vector<int32_t> ids;
  for (char c : word) ids.push_back(tok.token_to_id(c == ' ' ? "\xC4\xA0" : std::string(1, c)));
  return ids;
}

TEST(Tokenizer, MergesMatchTextbookBpeOnRandomWords) {
  const Tokenizer tok = make(test::synthetic_spec(kMerges, {}, "gpt2"));
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> letter(0, 2);
  std::uniform_int_distribution<int> length(1, 14);
  for (int t = 0; t < 2000; ++t) {
    std::string word = t % 2 == 0 ? " " : "";
    const int n = length(rng);
    for (int i = 0; i < n; ++i) word.push_back(static_cast<char>('a' + letter(rng)));
    const std::vector<int32_t> want = test::reference_bpe(tok, kMerges, byte_ids(tok, word));
    ASSERT_EQ(tok.encode(word), want) << "word '" << word << "'";
    ASSERT_EQ(tok.decode(want), word);
  }
}

TEST(Tokenizer, EqualRanksMergeLeftmostFirst) {
  const Tokenizer tok = make(test::synthetic_spec({"a a"}, {}, "gpt2"));
  const int32_t aa = tok.token_to_id("aa");
  const int32_t a = tok.token_to_id("a");
  EXPECT_EQ(tok.encode("aaa"), (std::vector<int32_t>{aa, a}));
  EXPECT_EQ(tok.encode("aaaaa"), (std::vector<int32_t>{aa, aa, a}));
}

TEST(Tokenizer, CachedAndUncachedWordsAgree) {
  const Tokenizer tok = make(test::synthetic_spec(kMerges, {}, "gpt2"));
  const std::string word = "abcabcaab";
  const std::vector<int32_t> first = tok.encode(word);
  EXPECT_EQ(tok.encode(word), first);  // from the cache
  // A word longer than the cache limit takes the uncached path.
  std::string long_word;
  for (int i = 0; i < 30; ++i) long_word += word;
  const std::vector<int32_t> got = tok.encode(long_word);
  EXPECT_EQ(got, test::reference_bpe(tok, kMerges, byte_ids(tok, long_word)));
}

TEST(Tokenizer, ConcurrentEncodesAgreeWithSerialOnes) {
  // encode is const and shares the word cache and the PCRE2 code between threads.
  const Tokenizer tok = make(test::synthetic_spec(kMerges, {"<|end|>"}, "llama3"));
  std::mt19937 rng(17);
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back(test::random_utf8(rng, 40) + "<|end|> ab ca");
  std::vector<std::vector<int32_t>> serial;
  {
    const Tokenizer fresh = make(test::synthetic_spec(kMerges, {"<|end|>"}, "llama3"));
    for (const std::string& t : texts) serial.push_back(fresh.encode(t));
  }
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int rep = 0; rep < 3; ++rep) {
        for (size_t i = 0; i < texts.size(); ++i)
          mismatches[w] += tok.encode(texts[i]) != serial[i];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(Tokenizer, SpecialTokensAreMatchedWholeAndLongestFirst) {
  const Tokenizer tok =
      make(test::synthetic_spec(kMerges, {"<|im_start|>", "<|a|>", "<|a|>b"}, "gpt2"));
  const int32_t im_start = tok.token_to_id("<|im_start|>");
  const int32_t a_b = tok.token_to_id("<|a|>b");
  ASSERT_GE(im_start, 0);
  const std::vector<int32_t> ids = tok.encode("<|im_start|>ab<|a|>bc");
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids[0], im_start);
  EXPECT_EQ(ids[1], tok.token_to_id("ab"));
  EXPECT_EQ(ids[2], a_b);
  EXPECT_EQ(ids[3], tok.token_to_id("c"));
  EXPECT_TRUE(tok.is_special(im_start));
  EXPECT_TRUE(tok.is_control(im_start));

  // Without parse_special the same text is ordinary bytes.
  const std::vector<int32_t> plain = tok.encode("<|im_start|>", false, /*parse_special=*/false);
  EXPECT_GT(plain.size(), 1u);
  for (int32_t id : plain) EXPECT_FALSE(tok.is_special(id));
  EXPECT_EQ(tok.decode(plain), "<|im_start|>");
}

TEST(Tokenizer, NamesLikeSpecialTokensAreSpecialEvenIfTypedNormal) {
  TokenizerSpec spec = test::synthetic_spec({}, {}, "gpt2");
  spec.tokens.push_back("<|im_end|>");
  spec.token_types.push_back(1);
  const Tokenizer tok = make(spec);
  const int32_t id = tok.token_to_id("<|im_end|>");
  EXPECT_EQ(tok.encode("x<|im_end|>"), (std::vector<int32_t>{tok.token_to_id("x"), id}));
  EXPECT_TRUE(tok.is_end_of_generation(id));
}

TEST(Tokenizer, BosIsAddedOnlyWhenAskedAndConfigured) {
  TokenizerSpec spec = test::synthetic_spec({}, {"<s>", "</s>"}, "gpt2");
  spec.bos_id = static_cast<int32_t>(spec.tokens.size()) - 2;
  spec.eos_id = spec.bos_id + 1;
  spec.add_bos = true;
  const Tokenizer tok = make(spec);
  EXPECT_EQ(tok.encode("x", /*add_special=*/true).front(), spec.bos_id);
  EXPECT_EQ(tok.encode("x", /*add_special=*/false).size(), 1u);
  EXPECT_TRUE(tok.is_end_of_generation(spec.eos_id));
  EXPECT_FALSE(tok.is_end_of_generation(spec.bos_id));
  spec.add_bos = false;
  EXPECT_EQ(make(spec).encode("x", /*add_special=*/true).size(), 1u);
}

TEST(Tokenizer, DecodeSkipsControlTokensOnRequestAndIgnoresBadIds) {
  const Tokenizer tok = make(test::synthetic_spec(kMerges, {"<|end|>"}, "gpt2"));
  std::vector<int32_t> ids = tok.encode("ab<|end|> c");
  EXPECT_EQ(tok.decode(ids), "ab<|end|> c");
  EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), "ab c");
  ids.push_back(-5);
  ids.push_back(tok.vocab_size() + 10);
  EXPECT_EQ(tok.decode(ids), "ab<|end|> c");
  EXPECT_EQ(tok.token_bytes(tok.vocab_size()), "");
  EXPECT_EQ(tok.token_bytes(tok.token_to_id("\xC4\xA0")), " ");
}

TEST(Tokenizer, IgnoreMergesTakesWholeWordTokens) {
  // "bca" is in the vocabulary but the merges cannot build it: Llama-3 takes it whole.
  TokenizerSpec spec = test::synthetic_spec(kMerges, {}, "qwen2");
  spec.tokens.push_back("bca");
  spec.token_types.push_back(1);
  const int32_t bca = static_cast<int32_t>(spec.tokens.size()) - 1;
  EXPECT_NE(make(spec).encode("bca"), std::vector<int32_t>{bca});
  spec.pre = "llama3";
  EXPECT_EQ(make(spec).encode("bca"), std::vector<int32_t>{bca});
  spec.pre = "qwen2";
  spec.ignore_merges = true;
  EXPECT_EQ(make(spec).encode("bca"), std::vector<int32_t>{bca});
}

TEST(Tokenizer, AddSpacePrefix) {
  TokenizerSpec spec = test::synthetic_spec(kMerges, {}, "gpt2");
  spec.add_space_prefix = true;
  const Tokenizer tok = make(spec);
  EXPECT_EQ(tok.decode(tok.encode("ab")), " ab");
  EXPECT_EQ(tok.decode(tok.encode(" ab")), " ab");
}

TEST(Tokenizer, InvalidUtf8RoundTripsByteByByte) {
  const Tokenizer tok = make(test::synthetic_spec(kMerges, {}, "llama3"));
  const std::string s = "ab\xFF\xFE c\xE4\xB8";
  EXPECT_EQ(tok.decode(tok.encode(s)), s);
}

TEST(Tokenizer, BytesWithoutATokenAreDropped) {
  TokenizerSpec spec = test::synthetic_spec({}, {}, "gpt2");
  const int32_t f1 = 0xF1;  // the synthetic vocabulary lists byte b as token b
  spec.tokens[f1] = "<unused-f1>";
  spec.token_types[f1] = 5;
  const Tokenizer tok = make(spec);
  EXPECT_EQ(tok.decode(tok.encode("a\xF1\x80\x80\x80"
                                  "b")),
            "a\x80\x80\x80"
            "b");
  EXPECT_FALSE(test::vocab_covers(tok, "\xF1"));
  EXPECT_TRUE(test::vocab_covers(tok, "ab"));
}

TEST(Tokenizer, RejectsBadSpecs) {
  TokenizerSpec spm = test::synthetic_spec({}, {}, "gpt2");
  spm.model = "llama";
  auto r = Tokenizer::from_spec(spm);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("SentencePiece"), std::string::npos);

  TokenizerSpec empty;
  EXPECT_FALSE(Tokenizer::from_spec(empty).has_value());

  TokenizerSpec types = test::synthetic_spec({}, {}, "gpt2");
  types.token_types.pop_back();
  EXPECT_FALSE(Tokenizer::from_spec(types).has_value());

  TokenizerSpec bos = test::synthetic_spec({}, {}, "gpt2");
  bos.bos_id = 100000;
  r = Tokenizer::from_spec(bos);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.status().message().find("bos id 100000"), std::string::npos);

  TokenizerSpec merge = test::synthetic_spec({}, {}, "gpt2");
  merge.merges = {"ab"};
  r = Tokenizer::from_spec(merge);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.status().message().find("'ab'"), std::string::npos);
}

TEST(Tokenizer, MergesOutsideTheVocabularyAreIgnored) {
  TokenizerSpec spec = test::synthetic_spec({"a b"}, {}, "gpt2");
  spec.merges.push_back("x yz");  // "yz" is not a token
  const Tokenizer tok = make(spec);
  EXPECT_EQ(tok.encode("abxyz").size(), 4u);  // ab x y z
}

// tokenizer.json ----------------------------------------------------------------------------------

class TokenizerJson : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(VORTEX_BINARY_DIR) / "tests" / "tokenizer_json" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  // A Llama-3-style tokenizer.json over the synthetic vocabulary.
  nlohmann::json llama3_json(bool array_merges) const {
    const TokenizerSpec spec = test::synthetic_spec(kMerges, {}, "gpt2");
    nlohmann::json vocab = nlohmann::json::object();
    for (size_t i = 0; i < spec.tokens.size(); ++i) vocab[spec.tokens[i]] = i;
    nlohmann::json merges = nlohmann::json::array();
    for (const std::string& m : kMerges) {
      const size_t sp = m.find(' ');
      if (array_merges) {
        merges.push_back({m.substr(0, sp), m.substr(sp + 1)});
      } else {
        merges.push_back(m);
      }
    }
    const int64_t n = static_cast<int64_t>(spec.tokens.size());
    const std::string split =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    return {
        {"version", "1.0"},
        {"added_tokens",
         {{{"id", n}, {"content", "<|begin_of_text|>"}, {"special", true}},
          {{"id", n + 1}, {"content", "<|eot_id|>"}, {"special", true}},
          {{"id", n + 2}, {"content", "<tool>"}, {"special", false}}}},
        {"normalizer", nullptr},
        {"pre_tokenizer",
         {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern", {{"Regex", split}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
        {"post_processor",
         {{"type", "Sequence"},
          {"processors",
           {{{"type", "ByteLevel"}, {"trim_offsets", false}},
            {{"type", "TemplateProcessing"},
             {"single",
              {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
               {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
             {"special_tokens",
              {{"<|begin_of_text|>",
                {{"id", "<|begin_of_text|>"},
                 {"ids", {n}},
                 {"tokens", {"<|begin_of_text|>"}}}}}}}}}}},
        {"decoder", {{"type", "ByteLevel"}}},
        {"model",
         {{"type", "BPE"},
          {"vocab", vocab},
          {"merges", merges},
          {"ignore_merges", true},
          {"byte_fallback", false}}},
    };
  }
  std::string write(const nlohmann::json& j, const std::string& name = "tokenizer.json") const {
    const std::string path = (dir_ / name).string();
    test::write_json_file(path, j);
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(TokenizerJson, ReadsLlama3StyleFile) {
  auto spec = tokenizer_spec_from_json(write(llama3_json(false)));
  ASSERT_TRUE(spec.has_value()) << spec.status().to_string();
  const int32_t n = static_cast<int32_t>(spec->tokens.size()) - 3;
  EXPECT_EQ(spec->pre, "llama3");
  EXPECT_TRUE(spec->ignore_merges);
  EXPECT_EQ(spec->bos_id, n);
  EXPECT_TRUE(spec->add_bos);
  EXPECT_EQ(spec->token_types[n], 3);
  EXPECT_EQ(spec->token_types[n + 2], 4);
  EXPECT_EQ(spec->merges, kMerges);

  auto tok = Tokenizer::from_tokenizer_json((dir_ / "tokenizer.json").string());
  ASSERT_TRUE(tok.has_value()) << tok.status().to_string();
  const std::vector<int32_t> ids = tok->encode("ab<tool> 123<|eot_id|>", /*add_special=*/true);
  EXPECT_EQ(ids.front(), n);
  EXPECT_EQ(tok->decode(ids), "<|begin_of_text|>ab<tool> 123<|eot_id|>");
  EXPECT_TRUE(tok->is_end_of_generation(n + 1));
  EXPECT_FALSE(tok->is_control(n + 2));  // a non-special added token is kept by skip_special
}

TEST_F(TokenizerJson, ArrayAndStringMergesAgree) {
  auto a = tokenizer_spec_from_json(write(llama3_json(true), "a.json"));
  auto b = tokenizer_spec_from_json(write(llama3_json(false), "b.json"));
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(a->merges, b->merges);
}

TEST_F(TokenizerJson, ReadsTokenizerConfigBeside) {
  write(llama3_json(false));
  write({{"bos_token", "<|begin_of_text|>"},
         {"eos_token", {{"content", "<|eot_id|>"}, {"lstrip", false}}},
         {"chat_template", "{{ '<|start_header_id|>' }}"}},
        "tokenizer_config.json");
  auto spec = tokenizer_spec_from_json((dir_ / "tokenizer.json").string());
  ASSERT_TRUE(spec.has_value()) << spec.status().to_string();
  EXPECT_EQ(spec->tokens[spec->eos_id], "<|eot_id|>");
  EXPECT_EQ(spec->chat_template, "{{ '<|start_header_id|>' }}");
}

TEST_F(TokenizerJson, RefusesWhatItCannotTokenizeFaithfully) {
  nlohmann::json j = llama3_json(false);
  j["model"]["type"] = "WordPiece";
  auto r = tokenizer_spec_from_json(write(j));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);

  j = llama3_json(false);
  j["model"]["byte_fallback"] = true;
  EXPECT_FALSE(tokenizer_spec_from_json(write(j)).has_value());

  j = llama3_json(false);
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  r = tokenizer_spec_from_json(write(j));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.status().message().find("Metaspace"), std::string::npos);

  j = llama3_json(false);
  j["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_FALSE(tokenizer_spec_from_json(write(j)).has_value());

  j = llama3_json(false);
  j["model"]["vocab"]["a"] = "not a number";
  r = tokenizer_spec_from_json(write(j));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(TokenizerJson, MissingOrBrokenFilesAreErrorsNamingThePath) {
  auto r = tokenizer_spec_from_json((dir_ / "absent.json").string());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("absent.json"), std::string::npos);

  const std::string path = (dir_ / "broken.json").string();
  {
    std::ofstream out(path);
    out << "{\"model\": {";
  }
  r = tokenizer_spec_from_json(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.status().message().find("broken.json"), std::string::npos);
}

}  // namespace
}  // namespace vortex
