// Tests of sanitize_utf8 and Utf8StreamDecoder against a by-definition reference of UTF-8's
// maximal-subpart replacement, with every possible chunking of the input.
#include "vortex/model/utf8_stream.h"

#include <gtest/gtest.h>

#include <random>
#include <unordered_set>

#include "test_support.h"

namespace vortex {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

// Every prefix (1..4 bytes) of every well-formed UTF-8 sequence, built by encoding each scalar
// value; key = length << 32 | packed bytes.
const std::unordered_set<uint64_t>& valid_prefixes() {
  static const std::unordered_set<uint64_t> prefixes = [] {
    std::unordered_set<uint64_t> set;
    for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      const std::string s = test::utf8(cp);
      uint64_t packed = 0;
      for (size_t k = 0; k < s.size(); ++k) {
        packed = (packed << 8) | static_cast<uint8_t>(s[k]);
        set.insert((static_cast<uint64_t>(k + 1) << 32) | packed);
      }
    }
    return set;
  }();
  return prefixes;
}

// Unicode's "maximal subpart" replacement, straight from the definition: at each position take the
// longest prefix of a well-formed sequence; emit it if complete, else one U+FFFD for it (or for one
// byte when no sequence starts here).
std::string reference_sanitize(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t longest = 0;
    uint64_t packed = 0;
    for (size_t k = 0; k < 4 && i + k < s.size(); ++k) {
      packed = (packed << 8) | static_cast<uint8_t>(s[i + k]);
      if (!valid_prefixes().count((static_cast<uint64_t>(k + 1) << 32) | packed)) break;
      longest = k + 1;
    }
    const bool complete = longest > 0 && test::is_valid_utf8(s.substr(i, longest));
    if (complete) {
      out += s.substr(i, longest);
    } else {
      out += kFffd;
    }
    i += longest == 0 ? 1 : longest;
  }
  return out;
}

TEST(SanitizeUtf8, ValidTextIsUnchanged) {
  for (const std::string& s : test::tricky_corpus()) EXPECT_EQ(sanitize_utf8(s), s);
}

TEST(SanitizeUtf8, KnownInvalidSequences) {
  EXPECT_EQ(sanitize_utf8("\xE2\x82\x41"), kFffd + "A");            // truncated 3-byte, then ASCII
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), kFffd + kFffd);              // overlong '/'
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), kFffd + kFffd + kFffd);  // surrogate D800
  EXPECT_EQ(sanitize_utf8("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // > U+10FFFF
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x98"), kFffd);  // truncated emoji: one U+FFFD
  EXPECT_EQ(sanitize_utf8("\x80"), kFffd);
  EXPECT_EQ(sanitize_utf8("a\xFF"
                          "b"),
            "a" + kFffd + "b");
}

TEST(SanitizeUtf8, MatchesDefinitionOnRandomBytes) {
  std::mt19937 rng(7);
  for (int t = 0; t < 3000; ++t) {
    std::string s = test::random_bytes(rng, 1 + t % 12);
    if (t % 2 == 0) s = test::random_utf8(rng, 3) + s + test::random_utf8(rng, 2);
    ASSERT_EQ(sanitize_utf8(s), reference_sanitize(s)) << "case " << t;
  }
}

// A tokenizer is needed only for push(id); the byte-level tests use push_bytes.
Tokenizer byte_tokenizer() {
  return std::move(Tokenizer::from_spec(test::synthetic_spec({}, {"<|end|>"}, "gpt2")).value());
}

TEST(Utf8StreamDecoder, HoldsBackSplitCharactersUntilComplete) {
  const Tokenizer tok = byte_tokenizer();
  Utf8StreamDecoder dec(tok);
  const std::string emoji = "\xF0\x9F\x98\x80";
  EXPECT_EQ(dec.push_bytes("a" + emoji.substr(0, 1)), "a");
  EXPECT_EQ(dec.pending_bytes(), 1u);
  EXPECT_EQ(dec.push_bytes(emoji.substr(1, 2)), "");
  EXPECT_EQ(dec.pending_bytes(), 3u);
  EXPECT_EQ(dec.push_bytes(emoji.substr(3) + "b"), emoji + "b");
  EXPECT_EQ(dec.pending_bytes(), 0u);
  EXPECT_EQ(dec.flush(), "");
}

TEST(Utf8StreamDecoder, FlushTurnsAnUnfinishedCharacterIntoReplacement) {
  const Tokenizer tok = byte_tokenizer();
  Utf8StreamDecoder dec(tok);
  EXPECT_EQ(dec.push_bytes("x\xE4\xB8"), "x");
  EXPECT_EQ(dec.flush(), kFffd);
  EXPECT_EQ(dec.pending_bytes(), 0u);
  EXPECT_EQ(dec.push_bytes("ok"), "ok");  // usable again after flush
}

TEST(Utf8StreamDecoder, InvalidBytesAreReplacedImmediately) {
  const Tokenizer tok = byte_tokenizer();
  Utf8StreamDecoder dec(tok);
  EXPECT_EQ(dec.push_bytes("\xFF"), kFffd);
  EXPECT_EQ(dec.push_bytes("\xE2\x82"), "");
  EXPECT_EQ(dec.push_bytes("A"), kFffd + "A");
}

TEST(Utf8StreamDecoder, AnyChunkingEqualsWholeSanitize) {
  const Tokenizer tok = byte_tokenizer();
  std::mt19937 rng(11);
  for (int t = 0; t < 2000; ++t) {
    const std::string s = t % 3 == 0 ? test::random_bytes(rng, 20) : test::random_utf8(rng, 12);
    Utf8StreamDecoder dec(tok);
    std::string streamed;
    size_t pos = 0;
    std::uniform_int_distribution<size_t> step(0, 5);
    while (pos < s.size()) {
      const size_t n = std::min(step(rng), s.size() - pos);
      const std::string out = dec.push_bytes(s.substr(pos, n));
      EXPECT_TRUE(test::is_valid_utf8(out));
      streamed += out;
      pos += n;
    }
    streamed += dec.flush();
    ASSERT_EQ(streamed, reference_sanitize(s)) << "case " << t;
  }
}

TEST(Utf8StreamDecoder, TokensOneAtATimeReproduceText) {
  const Tokenizer tok = byte_tokenizer();
  for (const std::string& s : test::tricky_corpus()) {
    const std::vector<int32_t> ids = tok.encode(s);
    Utf8StreamDecoder dec(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += dec.push(id);
    streamed += dec.flush();
    EXPECT_EQ(streamed, s);
  }
}

TEST(Utf8StreamDecoder, SkipSpecialDropsControlTokens) {
  const Tokenizer tok = byte_tokenizer();
  const std::vector<int32_t> ids = tok.encode("hi<|end|>");
  Utf8StreamDecoder keep(tok);
  Utf8StreamDecoder skip(tok, /*skip_special=*/true);
  std::string kept;
  std::string skipped;
  for (int32_t id : ids) {
    kept += keep.push(id);
    skipped += skip.push(id);
  }
  EXPECT_EQ(kept, "hi<|end|>");
  EXPECT_EQ(skipped, "hi");
}

}  // namespace
}  // namespace vortex
