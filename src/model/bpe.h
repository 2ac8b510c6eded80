// Byte-level BPE internals shared by the tokenizer sources: the GPT-2 byte <-> unicode alphabet and
// the rank-ordered merge table. Private to src/model (not a public header).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace vortex::bpe {

/// GPT-2's reversible map from the 256 byte values to printable code points: printable Latin-1
/// bytes map to themselves, the other 68 (controls, space, NBSP, soft hyphen) to U+0100 onwards.
class ByteAlphabet {
 public:
  static const ByteAlphabet& get();

  /// UTF-8 of the code point standing for byte `b`.
  const std::string& encode(uint8_t b) const { return byte_to_utf8_[b]; }
  /// Byte-level text of raw bytes (each byte replaced by its code point's UTF-8).
  std::string encode(std::string_view raw) const;
  /// The byte a code point stands for, or -1 when it is outside the alphabet.
  int decode(uint32_t code_point) const;
  /// Raw bytes of byte-level text; false (out untouched) when a code point is outside the alphabet.
  bool decode(std::string_view text, std::string* out) const;

 private:
  ByteAlphabet();
  std::array<std::string, 256> byte_to_utf8_;
  std::array<int16_t, 324> cp_to_byte_;  // code points < 324 cover the whole alphabet
};

/// The merge table of a BPE vocabulary: pair of token ids -> (rank, merged token id).
class MergeTable {
 public:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };

  void add(int32_t left, int32_t right, int32_t rank, int32_t merged);
  /// The merge of (left, right), or nullptr when the pair never merges.
  const Merge* find(int32_t left, int32_t right) const {
    auto it = table_.find(key(left, right));
    return it == table_.end() ? nullptr : &it->second;
  }
  size_t size() const { return table_.size(); }

  /// Applies merges to `ids` (the initial symbols of one word) lowest rank first, leftmost on ties,
  /// as HF tokenizers and llama.cpp do; `ids` is replaced by the merged symbols.
  void apply(std::vector<int32_t>* ids) const;

 private:
  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  std::unordered_map<uint64_t, Merge> table_;
};

/// Decodes one UTF-8 sequence at `s[*pos]`; returns the code point and advances *pos, or returns
/// -1 and advances *pos by one byte when the bytes there are not valid UTF-8.
int32_t next_code_point(std::string_view s, size_t* pos);

}  // namespace vortex::bpe
