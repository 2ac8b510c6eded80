// make_text_codec: the checkpoint's BPE tokenizer (GGUF metadata or tokenizer.json) with its chat
// template and streaming UTF-8 decoder behind the TextCodec interface.
#include <memory>

#include "vortex/core/logging.h"
#include "vortex/model/chat_template.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/tokenizer.h"
#include "vortex/model/utf8_stream.h"
#include "vortex/server/text_codec.h"

namespace vortex::server {
namespace {

class TokenizerTextStream : public TokenTextStream {
 public:
  explicit TokenizerTextStream(const Tokenizer& tok) : decoder_(tok, /*skip_special=*/true) {}
  std::string push(int32_t token) override { return decoder_.push(token); }
  std::string flush() override { return decoder_.flush(); }

 private:
  Utf8StreamDecoder decoder_;
};

class TokenizerCodec : public TextCodec {
 public:
  TokenizerCodec(Tokenizer tok, ChatTemplate tmpl) : tok_(std::move(tok)), tmpl_(std::move(tmpl)) {}

  std::string name() const override { return "bpe:" + std::string(tmpl_.name()); }
  std::vector<int32_t> encode_prompt(std::string_view text) const override {
    return tok_.encode(text, /*add_special=*/true, /*parse_special=*/true);
  }
  Expected<std::vector<int32_t>> encode_chat(std::span<const ChatTurn> messages) const override {
    std::vector<ChatMessage> msgs;
    msgs.reserve(messages.size());
    for (const ChatTurn& t : messages) msgs.push_back(ChatMessage{t.role, t.content, std::nullopt});
    VORTEX_ASSIGN_OR_RETURN(std::string text, tmpl_.render(msgs, /*add_generation_prompt=*/true));
    // The rendered text carries its own BOS / header tokens.
    return tok_.encode(text, /*add_special=*/false, /*parse_special=*/true);
  }
  std::unique_ptr<TokenTextStream> text_stream() const override {
    return std::make_unique<TokenizerTextStream>(tok_);
  }
  std::string token_text(int32_t token) const override {
    return sanitize_utf8(tok_.token_bytes(token));
  }
  std::vector<int32_t> end_of_turn_ids() const override { return tok_.end_of_generation_ids(); }

 private:
  Tokenizer tok_;
  ChatTemplate tmpl_;
};

}  // namespace

Expected<std::unique_ptr<TextCodec>> make_text_codec(const Checkpoint& checkpoint) {
  auto tok = checkpoint.tokenizer_json_path.empty()
                 ? Tokenizer::from_spec(checkpoint.tokenizer)
                 : Tokenizer::from_tokenizer_json(checkpoint.tokenizer_json_path);
  if (!tok.has_value())
    return tok.status().with_context("tokenizer of '" + checkpoint.source + "'");
  auto tmpl = ChatTemplate::detect(tok->chat_template(), checkpoint.config.arch);
  if (!tmpl.has_value()) {
    VORTEX_LOG_WARN("{}; chat requests use ChatML", tmpl.status().to_string());
    tmpl = ChatTemplate::chatml();
  }
  return std::unique_ptr<TextCodec>(
      std::make_unique<TokenizerCodec>(std::move(tok).value(), std::move(tmpl).value()));
}

}  // namespace vortex::server
