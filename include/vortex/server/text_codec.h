// TextCodec: what the server needs from a tokenizer — prompt encoding, chat rendering, streaming
// detokenization, token text for logprobs and the end-of-turn ids. One implementation wraps the
// model's BPE tokenizer and chat template; a byte-level one serves synthetic models that carry no
// vocabulary (token id = byte value).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"

namespace vortex {
struct Checkpoint;
}

namespace vortex::server {

/// One chat message as the API receives it.
struct ChatTurn {
  std::string role;
  std::string content;
};

/// Incremental detokenizer of one generation: always returns complete UTF-8.
class TokenTextStream {
 public:
  virtual ~TokenTextStream() = default;
  /// The text completed by one more token (empty while a character is unfinished).
  virtual std::string push(int32_t token) = 0;
  /// The end of the generation: any unfinished character as U+FFFD.
  virtual std::string flush() = 0;
};

class TextCodec {
 public:
  virtual ~TextCodec() = default;
  /// "bpe:<family>" or "bytes".
  virtual std::string name() const = 0;
  /// Token ids of a completion prompt (BOS added when the vocabulary asks for it).
  virtual std::vector<int32_t> encode_prompt(std::string_view text) const = 0;
  /// Token ids of a chat conversation rendered with the model's template, ending with the
  /// assistant header. Errors name the bad message.
  virtual Expected<std::vector<int32_t>> encode_chat(std::span<const ChatTurn> messages) const = 0;
  /// A fresh streaming detokenizer (control tokens such as <|im_end|> produce no text).
  virtual std::unique_ptr<TokenTextStream> text_stream() const = 0;
  /// The text of one token for logprobs (invalid UTF-8 replaced).
  virtual std::string token_text(int32_t token) const = 0;
  /// Tokens that end a turn besides the model's EOS (e.g. <|im_end|>): generation stops there.
  virtual std::vector<int32_t> end_of_turn_ids() const = 0;
};

/// Byte-level codec for models without a vocabulary: token b is byte b (needs vocab >= 256).
/// Chat is rendered as "<role>: <content>\n" lines ending with "assistant: ".
std::unique_ptr<TextCodec> make_byte_codec();

/// The codec for a checkpoint: its BPE tokenizer and chat template, or the byte codec for a
/// byte-level vocabulary without merges (synthetic models). Errors name the checkpoint.
Expected<std::unique_ptr<TextCodec>> make_text_codec(const Checkpoint& checkpoint);

}  // namespace vortex::server
