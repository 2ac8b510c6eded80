// Tests of PreTokenizer: hand-checked splits for each named regex, the invariants every split must
// keep (pieces concatenate to the input, invalid bytes stay alone), and pattern handling.
#include "vortex/model/pretokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "test_support.h"

namespace vortex {
namespace {

using Pieces = std::vector<std::string>;

Pieces split(const PreTokenizer& pre, std::string_view text) {
  std::vector<std::string_view> views;
  pre.split(text, &views);
  return Pieces(views.begin(), views.end());
}

TEST(PreTokenizer, Gpt2Splits) {
  const PreTokenizer pre = PreTokenizer::from_name("gpt2");
  EXPECT_EQ(split(pre, "Hello world's 12345 "), (Pieces{"Hello", " world", "'s", " 12345", " "}));
  // A whitespace run keeps its last space for the next word; a tab before a letter stands alone.
  EXPECT_EQ(split(pre, "a   b\tc"), (Pieces{"a", "  ", " b", "\t", "c"}));
  EXPECT_EQ(split(pre, "x!!  "), (Pieces{"x", "!!", "  "}));
  EXPECT_EQ(split(pre, ""), Pieces{});
}

TEST(PreTokenizer, SmolLmIsolatesEveryDigit) {
  const PreTokenizer pre = PreTokenizer::from_name("smollm");
  EXPECT_EQ(split(pre, "in 2024!"), (Pieces{"in", " ", "2", "0", "2", "4", "!"}));
  EXPECT_EQ(split(pre, "x1y"), (Pieces{"x", "1", "y"}));
}

TEST(PreTokenizer, Llama3GroupsDigitsByThreeAndKeepsNewlinesTogether) {
  const PreTokenizer pre = PreTokenizer::from_name("llama-bpe");
  EXPECT_EQ(split(pre, "1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(split(pre, "I'M here\n\n  now"), (Pieces{"I", "'M", " here", "\n\n", " ", " now"}));
  EXPECT_EQ(split(pre, "a\tb"), (Pieces{"a", "\tb"}));  // a non-letter may lead a word
  EXPECT_EQ(split(pre, "foo.\n\nbar"), (Pieces{"foo", ".\n\n", "bar"}));
}

TEST(PreTokenizer, Qwen2SplitsSingleDigits) {
  const PreTokenizer pre = PreTokenizer::from_name("qwen2");
  EXPECT_EQ(split(pre, "x 123"), (Pieces{"x", " ", "1", "2", "3"}));
}

TEST(PreTokenizer, ContractionsAreCaseInsensitiveLikeHf) {
  // HF's Oniguruma folds U+017F (long s) to 's' inside (?i:...), and so does PCRE2.
  const PreTokenizer pre = PreTokenizer::from_name("llama3");
  EXPECT_EQ(split(pre,
                  "'\xC5\xBF"
                  "ab"),
            (Pieces{"'\xC5\xBF", "ab"}));
  EXPECT_EQ(split(pre, "'Sab"), (Pieces{"'S", "ab"}));
  EXPECT_EQ(split(pre, "x'LL"), (Pieces{"x", "'LL"}));
  // GPT-2's contractions are case-sensitive.
  EXPECT_EQ(split(PreTokenizer::from_name("gpt2"), "x'LL"), (Pieces{"x", "'", "LL"}));
}

TEST(PreTokenizer, UnknownNameFallsBackToGpt2) {
  EXPECT_TRUE(pretokenizer_patterns("no-such-tokenizer").empty());
  const PreTokenizer pre = PreTokenizer::from_name("no-such-tokenizer");
  EXPECT_EQ(pre.patterns(), pretokenizer_patterns("gpt2"));
}

TEST(PreTokenizer, NamesShareTables) {
  EXPECT_EQ(pretokenizer_patterns("llama3"), pretokenizer_patterns("smaug-bpe"));
  EXPECT_EQ(pretokenizer_patterns("smollm").size(), 2u);
  EXPECT_NE(pretokenizer_patterns("llama3"), pretokenizer_patterns("qwen2"));
}

TEST(PreTokenizer, BadPatternIsAnErrorNamingIt) {
  auto pre = PreTokenizer::from_patterns({"(unclosed"});
  ASSERT_FALSE(pre.has_value());
  EXPECT_NE(pre.status().message().find("(unclosed"), std::string::npos);
}

TEST(PreTokenizer, EmptyMatchesOnlyMarkSplitPoints) {
  // A lookahead-only pattern matches empty strings: it splits before every 'b'.
  auto pre = PreTokenizer::from_patterns({"(?=b)"});
  ASSERT_TRUE(pre.has_value());
  EXPECT_EQ(split(*pre, "abab"), (Pieces{"a", "ba", "b"}));
}

TEST(PreTokenizer, InvalidUtf8BytesBecomeOwnPieces) {
  const PreTokenizer pre = PreTokenizer::from_name("gpt2");
  EXPECT_EQ(split(pre,
                  "ab\xFF"
                  "cd \xE4\xB8 x"),
            (Pieces{"ab", "\xFF", "cd", " ", "\xE4", "\xB8", " x"}));
}

TEST(PreTokenizer, PiecesConcatenateToInput) {
  std::mt19937 rng(3);
  for (const char* name : {"gpt2", "smollm", "llama3", "qwen2"}) {
    const PreTokenizer pre = PreTokenizer::from_name(name);
    for (int t = 0; t < 300; ++t) {
      const std::string s =
          t % 4 == 0 ? test::random_bytes(rng, 30) : test::random_utf8(rng, 1 + t % 40);
      std::vector<std::string_view> views;
      pre.split(s, &views);
      std::string joined;
      for (std::string_view v : views) {
        EXPECT_FALSE(v.empty());
        joined += v;
      }
      ASSERT_EQ(joined, s) << name << " case " << t;
    }
  }
}

TEST(PreTokenizer, LongRunsSplitWithoutError) {
  // Long uniform runs exercise PCRE2's backtracking (\s+(?!\S)) and JIT stack.
  const PreTokenizer pre = PreTokenizer::from_name("llama3");
  const std::string spaces(200000, ' ');
  EXPECT_EQ(split(pre, spaces + "x"), (Pieces{std::string(199999, ' '), " x"}));
  const std::string letters(200000, 'a');
  EXPECT_EQ(split(pre, letters), Pieces{letters});
}

}  // namespace
}  // namespace vortex
