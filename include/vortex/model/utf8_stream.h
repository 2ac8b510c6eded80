// Utf8StreamDecoder: turns generated token ids, one at a time, into text that is always complete
// UTF-8, holding back the bytes of a character split across tokens until it is finished.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vortex {

class Tokenizer;

/// `bytes` with every invalid UTF-8 sequence replaced by U+FFFD, one per maximal invalid subpart
/// (the Unicode / WHATWG rule, as Python's errors="replace" does). Valid input comes back
/// unchanged.
std::string sanitize_utf8(std::string_view bytes);

/// Streaming detokenizer. The concatenation of everything push() and flush() return equals
/// sanitize_utf8(tokenizer.decode(all ids)), whatever the split of characters across tokens.
class Utf8StreamDecoder {
 public:
  /// `tokenizer` must outlive the decoder. `skip_special` drops control tokens (e.g. <|im_end|>).
  explicit Utf8StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);

  /// Adds one token; returns the text completed by it (empty while a character is unfinished).
  std::string push(int32_t id);
  /// Adds raw bytes; returns the text they complete.
  std::string push_bytes(std::string_view bytes);
  /// Ends the stream: an unfinished character left over comes out as U+FFFD. The decoder is then
  /// empty and can start a new stream.
  std::string flush();
  /// Bytes held back (the start of an unfinished character; at most 3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace vortex
