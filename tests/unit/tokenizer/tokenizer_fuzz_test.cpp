// Seeded fuzzing of encode / decode / streaming decode with random bytes and random UTF-8 on a
// synthetic vocabulary for each pre-tokenizer: nothing crashes, every id is in range, valid UTF-8
// round-trips exactly, any bytes round-trip through decode, and streaming output is valid UTF-8.
#include <gtest/gtest.h>

#include <random>

#include "test_support.h"
#include "vortex/model/tokenizer.h"
#include "vortex/model/utf8_stream.h"

namespace vortex {
namespace {

// Merges over frequent byte-level pieces (letters, spaces, the UTF-8 lead bytes of CJK / emoji).
const std::vector<std::string> kMerges = {"Ġ a", "Ġ b", "a b",  "e s", "Ġ Ġ", "ĠĠ Ġ", "Ċ Ċ",
                                          "ä ¸", "ð Ł", "ðŁ ĺ", "0 7", "' s", "Ġa b", "ĉ ĉ"};

void fuzz(const Tokenizer& tok, uint32_t seed, int iterations) {
  std::mt19937 rng(seed);
  for (int t = 0; t < iterations; ++t) {
    const bool utf8 = t % 2 == 0;
    std::string text =
        utf8 ? test::random_utf8(rng, 1 + t % 64) : test::random_bytes(rng, 1 + t % 64);
    if (t % 7 == 0) text += "<|im_start|>" + text + "<|im_end|>";
    const std::vector<int32_t> ids = tok.encode(text);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok.vocab_size());
    // Byte-level BPE encodes any bytes losslessly.
    ASSERT_EQ(tok.decode(ids), text) << "seed " << seed << " case " << t;

    Utf8StreamDecoder dec(tok);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = dec.push(id);
      ASSERT_TRUE(test::is_valid_utf8(piece));
      streamed += piece;
    }
    streamed += dec.flush();
    ASSERT_EQ(streamed, utf8 ? text : sanitize_utf8(text));

    // Random ids (as a sampler might produce) decode without crashing.
    std::uniform_int_distribution<int32_t> any_id(-3, tok.vocab_size() + 3);
    std::vector<int32_t> random_ids(8);
    for (int32_t& id : random_ids) id = any_id(rng);
    Utf8StreamDecoder dec2(tok, /*skip_special=*/t % 3 == 0);
    std::string out;
    for (int32_t id : random_ids) out += dec2.push(id);
    out += dec2.flush();
    ASSERT_TRUE(test::is_valid_utf8(out));
  }
}

TEST(TokenizerFuzz, RandomInputsRoundTrip) {
  uint32_t seed = 1;
  for (const char* pre : {"gpt2", "smollm", "llama3", "qwen2"}) {
    const TokenizerSpec spec = test::synthetic_spec(kMerges, {"<|im_start|>", "<|im_end|>"}, pre);
    auto tok = Tokenizer::from_spec(spec);
    ASSERT_TRUE(tok.has_value()) << tok.status().to_string();
    fuzz(*tok, seed++, 1500);
  }
}

}  // namespace
}  // namespace vortex
