// Shared helpers of the tokenizer tests: the tricky-string corpus, a small synthetic byte-level BPE
// vocabulary, a brute-force BPE reference, and the bridge to the Python reference
// (hf_reference.py).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "vortex/model/tokenizer.h"
#include "vortex/model/tokenizer_spec.h"

namespace vortex::test {

/// Valid UTF-8 strings that stress pre-tokenization and merging (whitespace runs, digits,
/// contractions, emoji with ZWJ, CJK, combining marks, mixed scripts, special tokens, "").
std::vector<std::string> tricky_corpus();

/// UTF-8 of a code point.
std::string utf8(uint32_t cp);
/// Random valid UTF-8 of `n` code points drawn from ASCII, Latin, CJK, emoji and whitespace, plus
/// one in ten from all of Unicode. `assigned_only` keeps those to code points PCRE2's Unicode
/// tables know (unassigned there may be assigned in HF's newer Oniguruma tables, which then
/// classify them differently; private use stays in).
std::string random_utf8(std::mt19937& rng, int n, bool assigned_only = false);
/// Random bytes (mostly not UTF-8).
std::string random_bytes(std::mt19937& rng, int n);
/// True when `s` is well-formed UTF-8 (independent check, code point by code point).
bool is_valid_utf8(const std::string& s);

/// GPT-2's byte-level character for byte `b` (written out independently of the implementation).
std::string byte_level_char(uint8_t b);
/// True when the vocabulary has a token for every byte of `text` (else encode drops some bytes).
bool vocab_covers(const Tokenizer& tok, const std::string& text);

/// A byte-level vocabulary: the 256 byte tokens, `merges` (in byte-level text, e.g. "Ġ t") with
/// their merged tokens, and the control tokens `specials` (ids 256 + merges.size() onwards).
TokenizerSpec synthetic_spec(const std::vector<std::string>& merges,
                             const std::vector<std::string>& specials, const std::string& pre);
/// Textbook BPE on one word's initial token ids: repeatedly merge the lowest-rank pair (leftmost
/// on ties), rescanning the whole word each time. O(n^2); the reference for MergeTable.
std::vector<int32_t> reference_bpe(const Tokenizer& tok, const std::vector<std::string>& merges,
                                   std::vector<int32_t> ids);

/// The Python reference: .venv/bin/python and the real model. `skip_reason` explains absence.
struct Reference {
  std::string python;
  std::string script;
  std::string gguf;      ///< empty when the model file is absent (need_model = false)
  std::string work_dir;  ///< scratch directory for request/response files
};
/// Without `need_model`, a missing model file leaves `gguf` empty instead of failing. `name` picks
/// the scratch directory, so test binaries running in parallel do not share files.
std::optional<Reference> find_reference(std::string* skip_reason, const std::string& name,
                                        bool need_model = true);
/// Runs `hf_reference.py <args>`; false (with the output in *log) when it fails.
bool run_reference(const Reference& ref, const std::string& args, std::string* log);
nlohmann::json read_json_file(const std::string& path);
void write_json_file(const std::string& path, const nlohmann::json& value);
/// TokenizerSpec from the JSON written by `hf_reference.py dump-spec`.
TokenizerSpec spec_from_dump(const nlohmann::json& dump);

}  // namespace vortex::test
