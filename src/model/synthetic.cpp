// make_synthetic_checkpoint: a synthetic preset's config and seeded weights, with a byte-level
// tokenizer (256 byte tokens, no merges; ids past 255 are inert placeholder tokens).
#include "vortex/model/synthetic.h"

#include <string>

#include "vortex/model/synthetic_weights.h"

namespace vortex {
namespace {

/// UTF-8 encoding of a code point below 0x800 (all the byte-level alphabet needs).
std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

/// GPT-2's byte-level alphabet: printable bytes map to themselves, the others to 256 + n.
TokenizerSpec byte_level_spec(int32_t vocab_size) {
  TokenizerSpec spec;
  spec.model = "gpt2";
  spec.pre = "gpt2";
  uint32_t next_extra = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    spec.tokens.push_back(utf8(printable ? b : next_extra++));
    spec.token_types.push_back(1);
  }
  for (int32_t id = 256; id < vocab_size; ++id) {
    spec.tokens.push_back("<|synthetic_" + std::to_string(id) + "|>");
    spec.token_types.push_back(5);  // unused: never produced by encoding
  }
  return spec;
}

}  // namespace

Expected<Checkpoint> make_synthetic_checkpoint(const std::string& preset, uint64_t seed) {
  VORTEX_ASSIGN_OR_RETURN(ModelConfig config, synthetic_config(preset));
  if (config.vocab_size < 256) {
    return invalid_argument("synthetic preset '" + preset +
                            "' has fewer than 256 tokens; the byte-level tokenizer needs 256");
  }
  VORTEX_ASSIGN_OR_RETURN(WeightMap weights, synthetic_weights(config, seed));
  Checkpoint ck;
  ck.tokenizer = byte_level_spec(config.vocab_size);
  ck.config = std::move(config);
  ck.weights = std::move(weights);
  ck.source = ck.config.name + "@" + std::to_string(seed);
  return ck;
}

}  // namespace vortex
