// PreTokenizer: splits text into the words that byte-level BPE merges within, using the regexes of
// the GPT-2, Llama-3, Qwen2 and SmolLM tokenizers (PCRE2, UTF + Unicode properties).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"

namespace vortex {

/// The split regexes of a named pre-tokenizer (GGUF `tokenizer.ggml.pre`), applied in order; each
/// one further splits the pieces of the one before. Empty when the name is unknown.
///   gpt2, mpt, olmo                                   GPT-2 regex
///   smollm, starcoder, refact, command-r              each digit alone, then the GPT-2 regex
///   llama3, llama-v3, llama-bpe, smaug-bpe, dbrx      Llama-3 regex (digits in runs of 1-3)
///   qwen2, stablelm2, deepseek-r1-qwen                Llama-3 regex with single digits
std::vector<std::string> pretokenizer_patterns(std::string_view name);

/// A sequence of regex splits with HF "Isolated" semantics: every match becomes a piece and so does
/// every stretch of text between matches. Immutable and safe to share between threads.
class PreTokenizer {
 public:
  /// The pre-tokenizer with this name; an unknown name falls back to GPT-2 with a logged warning.
  static PreTokenizer from_name(std::string_view name);
  /// Compiles explicit patterns (e.g. from tokenizer.json); an error names the bad pattern.
  static Expected<PreTokenizer> from_patterns(const std::vector<std::string>& patterns);

  /// Appends the pieces of `text` to *pieces as views into `text`; their concatenation is `text`.
  /// Bytes that are not valid UTF-8 become one-byte pieces of their own and never reach a regex.
  void split(std::string_view text, std::vector<std::string_view>* pieces) const;

  /// The patterns in application order (empty: the text stays whole).
  const std::vector<std::string>& patterns() const { return patterns_; }

  struct Regex;  ///< a compiled PCRE2 pattern (defined in the .cpp)

 private:
  std::vector<std::string> patterns_;
  std::vector<std::shared_ptr<const Regex>> regexes_;
};

}  // namespace vortex
