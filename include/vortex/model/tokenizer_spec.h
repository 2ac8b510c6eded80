// TokenizerSpec: the vocabulary a checkpoint carries, in loader-neutral form. The GGUF loader fills
// it from `tokenizer.ggml.*` metadata, the HF loader from tokenizer.json; Tokenizer consumes it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vortex {

struct TokenizerSpec {
  std::string model = "gpt2";  ///< tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SPM)
  std::string pre;             ///< pre-tokenizer name: "gpt2", "llama3"/"llama-bpe", "qwen2", "smollm", ...
  std::vector<std::string> tokens;   ///< id -> token text (byte-level encoded for BPE)
  std::vector<std::string> merges;   ///< "a b" pairs in priority order
  std::vector<int32_t> token_types;  ///< 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  std::vector<int32_t> eot_ids;  ///< extra end-of-turn ids (e.g. <|im_end|>, <|eot_id|>)
  bool add_bos = false;          ///< prepend BOS when encoding a prompt
  std::string chat_template;     ///< the checkpoint's Jinja template text, used to pick a native template

  // Set by the tokenizer.json reader (tokenizer_spec_from_json); GGUF loaders may leave them as is.
  /// Explicit split regexes applied in order; when non-empty they override `pre`.
  std::vector<std::string> pre_patterns;
  /// A word that is itself a token skips merging (HF ignore_merges; implied by pre "llama3").
  bool ignore_merges = false;
  /// Prepend ' ' to text that lacks one (tokenizer.ggml.add_space_prefix, ByteLevel add_prefix_space).
  bool add_space_prefix = false;
};

}  // namespace vortex
