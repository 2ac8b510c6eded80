// Generator, text level: tokenizer and chat template of the checkpoint, prompt encoding, and
// streaming detokenization with stop strings on top of generate_ids.
#include <string>

#include "generate_impl.h"
#include "vortex/model/chat_template.h"
#include "vortex/model/tokenizer.h"
#include "vortex/model/utf8_stream.h"

namespace vortex {

Status Generator::Impl::load_text_side(const Checkpoint& checkpoint) {
  Expected<Tokenizer> tok = checkpoint.tokenizer_json_path.empty()
                                ? Tokenizer::from_spec(checkpoint.tokenizer)
                                : Tokenizer::from_tokenizer_json(checkpoint.tokenizer_json_path);
  if (!tok) return tok.status().with_context("tokenizer of '" + checkpoint.source + "'");
  tokenizer = std::make_unique<Tokenizer>(std::move(tok).value());
  auto chat = ChatTemplate::detect(tokenizer->chat_template(), checkpoint.config.arch);
  if (chat) {
    chat_template = std::make_unique<ChatTemplate>(std::move(chat).value());
  } else {
    chat_template_error = chat.status();
  }
  return Status::ok();
}

Expected<std::vector<int32_t>> Generator::encode_prompt(const GenerationRequest& request) const {
  const Impl& m = *impl_;
  if (!request.chat) {
    return m.tokenizer->encode(request.prompt, /*add_special=*/true, /*parse_special=*/true);
  }
  if (!m.chat_template) {
    return m.chat_template_error.with_context("--chat needs a chat template");
  }
  std::vector<ChatMessage> messages;
  if (!request.system.empty()) messages.push_back({"system", request.system, std::nullopt});
  messages.push_back({"user", request.prompt, std::nullopt});
  VORTEX_ASSIGN_OR_RETURN(
      std::string text,
      m.chat_template->render(messages, /*add_generation_prompt=*/true, request.enable_thinking));
  // The template writes every special token itself (e.g. Llama-3's <|begin_of_text|>).
  return m.tokenizer->encode(text, /*add_special=*/false, /*parse_special=*/true);
}

Expected<GenerationResult> Generator::generate(const GenerationRequest& request,
                                               const TextCallback& on_text) {
  VORTEX_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, encode_prompt(request));
  Utf8StreamDecoder decoder(*impl_->tokenizer, /*skip_special=*/true);
  StopStringMatcher stops(request.sampling.stop);
  std::string text;
  bool caller_stopped = false;
  auto emit = [&](const std::string& piece) {
    if (piece.empty() || caller_stopped) return;
    text += piece;
    if (on_text && !on_text(piece)) caller_stopped = true;
  };
  auto on_token = [&](int32_t token) {
    emit(stops.push(decoder.push(token)));
    return !caller_stopped && !stops.stopped();
  };
  VORTEX_ASSIGN_OR_RETURN(GenerationResult result,
                          generate_ids(prompt, request.sampling, request.sparse, on_token));
  emit(stops.push(decoder.flush()));
  emit(stops.flush());
  if (stops.stopped()) result.finish_reason = "stop";
  result.text = std::move(text);
  return result;
}

}  // namespace vortex
