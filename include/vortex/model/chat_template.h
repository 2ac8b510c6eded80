// ChatTemplate: the chat prompt formats of the model families we serve, implemented natively (no
// Jinja engine): ChatML (SmolLM2, Qwen2/2.5), Llama-3 (3.0 and the 3.1+ dated system header) and
// Qwen3 (ChatML with reasoning blocks and the enable_thinking switch).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "vortex/core/status.h"
#include "vortex/model/model_config.h"

namespace vortex {

struct ChatMessage {
  std::string role;  ///< "system", "user", "assistant" or "tool"
  std::string content;
  /// Qwen3: the thinking text of an assistant turn, when kept apart from `content`; when absent a
  /// "<think>...</think>" prefix of `content` is split off instead, as Qwen3's template does.
  std::optional<std::string> reasoning_content;
};

enum class ChatFamily : uint8_t {
  kChatML,  ///< <|im_start|>role\ncontent<|im_end|>\n
  kLlama3,  ///< <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  kQwen3,   ///< ChatML + <think> blocks; enable_thinking=false pre-fills an empty one
};

class ChatTemplate {
 public:
  /// Picks the family from the checkpoint's Jinja template text (tokenizer.chat_template). An empty
  /// template falls back on the architecture (Qwen3 -> Qwen3, otherwise ChatML); a template of an
  /// unknown format is an error naming the supported ones.
  static Expected<ChatTemplate> detect(std::string_view template_text, Arch arch);
  /// ChatML; `default_system_prompt` is used when the first message is not a system message.
  static ChatTemplate chatml(std::string default_system_prompt = {});
  /// Llama-3. `dated_system_header`: the 3.1+ form whose system turn always starts with
  /// "Cutting Knowledge Date: December 2023\nToday Date: <date>\n\n".
  static ChatTemplate llama3(bool dated_system_header = false);
  static ChatTemplate qwen3();

  ChatFamily family() const { return family_; }
  /// "chatml", "llama3" or "qwen3".
  std::string_view name() const;
  /// The system prompt used when the conversation has none (ChatML; may be empty).
  const std::string& default_system_prompt() const { return default_system_; }
  /// Date for the Llama-3.1+ system header ("26 Jul 2024", the templates' own default).
  void set_date_string(std::string date) { date_string_ = std::move(date); }

  /// The prompt text for `messages`, ending with the assistant header when `add_generation_prompt`.
  /// `enable_thinking` = false makes Qwen3 answer without reasoning (ignored by other families).
  /// The Llama-3 text starts with <|begin_of_text|>: encode it with add_special = false.
  /// Fails on an empty role, and on a role Qwen3's template would silently drop.
  Expected<std::string> render(std::span<const ChatMessage> messages,
                               bool add_generation_prompt = true,
                               bool enable_thinking = true) const;

 private:
  ChatTemplate() = default;
  std::string render_chatml(std::span<const ChatMessage> messages,
                            bool add_generation_prompt) const;
  std::string render_llama3(std::span<const ChatMessage> messages,
                            bool add_generation_prompt) const;
  std::string render_qwen3(std::span<const ChatMessage> messages, bool add_generation_prompt,
                           bool enable_thinking) const;

  ChatFamily family_ = ChatFamily::kChatML;
  std::string default_system_;
  bool dated_system_header_ = false;
  bool tool_response_turns_ = false;  // Qwen: tool messages go into a user turn as <tool_response>
  std::string date_string_ = "26 Jul 2024";
};

}  // namespace vortex
