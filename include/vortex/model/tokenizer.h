// Tokenizer: byte-level BPE (the GGUF "gpt2" model: GPT-2, Llama-3, Qwen, SmolLM vocabularies)
// built from a TokenizerSpec or an HF tokenizer.json. Special tokens are matched whole before
// pre-tokenization; encode and decode are const and safe to call from several threads.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/model/pretokenizer.h"
#include "vortex/model/tokenizer_spec.h"

namespace vortex {

namespace bpe {
class MergeTable;
}

class Tokenizer {
 public:
  /// Builds the tokenizer; fails (naming the field) on a vocabulary that is not byte-level BPE,
  /// malformed merges, or special ids outside the vocabulary.
  static Expected<Tokenizer> from_spec(const TokenizerSpec& spec);
  /// Reads an HF tokenizer.json (and tokenizer_config.json beside it, when present) and builds the
  /// tokenizer. See tokenizer_spec_from_json for what is supported.
  static Expected<Tokenizer> from_tokenizer_json(const std::string& path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  /// Token ids of `text` (any bytes; invalid UTF-8 is encoded byte by byte; a byte the vocabulary
  /// has no token for is dropped, as HF does). `add_special` prepends
  /// BOS when the vocabulary asks for it (spec.add_bos). With `parse_special`, special-token text
  /// such as "<|im_start|>" inside `text` becomes that token; without it, it is ordinary text.
  std::vector<int32_t> encode(std::string_view text, bool add_special = false,
                              bool parse_special = true) const;

  /// The bytes of `ids` concatenated. Not necessarily valid UTF-8 (a token may end mid-character;
  /// use Utf8StreamDecoder for display). Ids outside the vocabulary decode to nothing;
  /// `skip_special` drops control tokens (BOS, EOS, <|im_start|>, ...).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  /// The bytes one token decodes to; empty for ids outside the vocabulary.
  std::string_view token_bytes(int32_t id) const;
  /// The token's text as stored in the vocabulary (byte-level encoded for ordinary tokens).
  std::string_view token_text(int32_t id) const;
  /// The id of a token's vocabulary text, or -1.
  int32_t token_to_id(std::string_view text) const;

  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  bool add_bos() const { return add_bos_; }
  /// Matched whole inside text (control and user-defined tokens, <|...|> names, BOS/EOS/EOT).
  bool is_special(int32_t id) const;
  /// A control token: dropped by decode(..., skip_special = true).
  bool is_control(int32_t id) const;
  /// EOS, the spec's end-of-turn ids and known end-of-turn tokens (<|im_end|>, <|eot_id|>, ...).
  bool is_end_of_generation(int32_t id) const;
  const std::vector<int32_t>& end_of_generation_ids() const { return eog_ids_; }
  /// The pre-tokenizer's split patterns, in order.
  const std::vector<std::string>& pre_patterns() const { return pre_.patterns(); }
  /// The checkpoint's chat template text (Jinja), for ChatTemplate::detect.
  const std::string& chat_template() const { return chat_template_; }

 private:
  struct SpecialToken {
    std::string text;
    int32_t id;
  };
  struct WordCache;
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  Tokenizer() = default;
  void encode_plain(std::string_view text, std::vector<int32_t>* out) const;
  void encode_word(std::string_view word, std::vector<int32_t>* out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>* out) const;

  std::vector<std::string> tokens_;  // [vocab] vocabulary text
  std::vector<std::string> bytes_;   // [vocab] decoded bytes
  std::vector<uint8_t> flags_;       // [vocab] kFlag* bits
  std::unordered_map<std::string, int32_t, TextHash, std::equal_to<>> token_ids_;
  std::array<int32_t, 256> byte_ids_{};  // token of each single byte, -1 if absent
  std::unique_ptr<bpe::MergeTable> merges_;
  PreTokenizer pre_;
  std::vector<SpecialToken> specials_;                            // longest first
  std::array<std::vector<int32_t>, 256> specials_by_first_byte_;  // indices into specials_
  std::unique_ptr<WordCache> cache_;
  std::vector<int32_t> eog_ids_;
  std::string chat_template_;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  bool add_bos_ = false;
  bool ignore_merges_ = false;
  bool add_space_prefix_ = false;
};

/// Reads an HF tokenizer.json into a TokenizerSpec. Supported: model BPE (byte-level, merges as
/// "a b" strings or [a, b] arrays, ignore_merges), added_tokens, pre_tokenizer ByteLevel / Split
/// (Isolated) / Digits / Sequence, post_processor TemplateProcessing / ByteLevel (a leading special
/// token sets BOS and add_bos). A normalizer other than NFC is refused; NFC is not applied (input
/// is taken as already NFC) and logged. tokenizer_config.json in the same directory, when present,
/// supplies bos/eos/pad tokens, add_bos_token and chat_template.
Expected<TokenizerSpec> tokenizer_spec_from_json(const std::string& path);

}  // namespace vortex
