// ChatTemplate: native renderers for the ChatML, Llama-3 and Qwen3 prompt formats, and detection of
// the format (and ChatML's default system prompt) from a checkpoint's Jinja template text.
#include "vortex/model/chat_template.h"

#include "vortex/core/logging.h"

namespace vortex {
namespace {

constexpr std::string_view kImStart = "<|im_start|>";
constexpr std::string_view kImEnd = "<|im_end|>";

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Length of the whitespace character at s[i] as Python's str.isspace() sees it (what Jinja's
// `trim` strips), or 0.
size_t space_len(std::string_view s, size_t i) {
  const auto b = static_cast<uint8_t>(s[i]);
  if ((b >= 0x09 && b <= 0x0D) || (b >= 0x1C && b <= 0x20)) return 1;
  auto at = [&](size_t k) { return i + k < s.size() ? static_cast<uint8_t>(s[i + k]) : 0; };
  if (b == 0xC2 && (at(1) == 0x85 || at(1) == 0xA0)) return 2;  // U+0085, U+00A0
  if (b == 0xE1 && at(1) == 0x9A && at(2) == 0x80) return 3;    // U+1680
  if (b == 0xE2 && at(1) == 0x80 &&
      (at(2) <= 0x8A || at(2) == 0xA8 || at(2) == 0xA9 || at(2) == 0xAF)) {
    return at(2) >= 0x80 ? 3 : 0;  // U+2000..200A, U+2028, U+2029, U+202F
  }
  if (b == 0xE2 && at(1) == 0x81 && at(2) == 0x9F) return 3;  // U+205F
  if (b == 0xE3 && at(1) == 0x80 && at(2) == 0x80) return 3;  // U+3000
  return 0;
}

// Python's str.strip(): Unicode whitespace off both ends.
std::string_view trim(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    const size_t n = space_len(s, begin);
    if (n == 0) break;
    begin += n;
  }
  // Trailing: walk forward remembering where the last non-space character ended.
  size_t end = begin;
  for (size_t i = begin; i < s.size();) {
    const size_t n = space_len(s, i);
    if (n == 0) {
      size_t step = 1;
      while (i + step < s.size() && (static_cast<uint8_t>(s[i + step]) & 0xC0) == 0x80) ++step;
      i += step;
      end = i;
    } else {
      i += n;
    }
  }
  return s.substr(begin, end - begin);
}

std::string_view strip_newlines_left(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
std::string_view strip_newlines_right(std::string_view s) {
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

// The default system prompt of a ChatML template: the text of a literal
// '<|im_start|>system\n...<|im_end|>' (newline written either raw or as the escape \n), if any.
std::string find_default_system_prompt(std::string_view text) {
  const std::string_view head = "<|im_start|>system";
  for (size_t at = text.find(head); at != std::string_view::npos; at = text.find(head, at + 1)) {
    size_t i = at + head.size();
    if (text.substr(i, 1) == "\n") {
      i += 1;
    } else if (text.substr(i, 2) == "\\n") {
      i += 2;
    } else {
      continue;
    }
    std::string prompt;
    bool literal = true;
    while (i < text.size() && text.compare(i, kImEnd.size(), kImEnd) != 0) {
      const char c = text[i];
      if (c == '\'' || c == '"' || c == '{' || c == '}') {
        literal =
            false;  // the prompt is an expression (e.g. messages[0]['content']), not a default
        break;
      }
      if (c == '\\' && i + 1 < text.size()) {
        const char e = text[i + 1];
        prompt.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
        i += 2;
        continue;
      }
      prompt.push_back(c);
      ++i;
    }
    if (literal && i < text.size() && !prompt.empty()) return prompt;
  }
  return {};
}

// Qwen's tool results: consecutive tool messages share one user turn.
void append_tool_response(std::span<const ChatMessage> messages, size_t i, std::string* out) {
  if (i == 0 || messages[i - 1].role != "tool") out->append(kImStart).append("user");
  out->append("\n<tool_response>\n").append(messages[i].content).append("\n</tool_response>");
  if (i + 1 == messages.size() || messages[i + 1].role != "tool") out->append(kImEnd).append("\n");
}

void append_chatml_turn(std::string_view role, std::string_view content, std::string* out) {
  out->append(kImStart).append(role).append("\n").append(content).append(kImEnd).append("\n");
}

}  // namespace

Expected<ChatTemplate> ChatTemplate::detect(std::string_view text, Arch arch) {
  if (text.empty()) {
    if (arch == Arch::kQwen3) return qwen3();
    VORTEX_LOG_INFO("checkpoint has no chat template; using ChatML");
    return chatml();
  }
  if (contains(text, "<|start_header_id|>")) {
    return llama3(contains(text, "Cutting Knowledge Date"));
  }
  if (contains(text, kImStart)) {
    ChatTemplate t;
    if (contains(text, "enable_thinking") || contains(text, "<think>")) {
      t = qwen3();
    } else {
      t = chatml(find_default_system_prompt(text));
    }
    t.tool_response_turns_ = contains(text, "<tool_response>");
    return t;
  }
  return unsupported(
      "the checkpoint's chat template is not one Vortex renders natively (ChatML, Llama-3, Qwen3); "
      "prompt the model without chat formatting, or format the prompt yourself");
}

ChatTemplate ChatTemplate::chatml(std::string default_system_prompt) {
  ChatTemplate t;
  t.family_ = ChatFamily::kChatML;
  t.default_system_ = std::move(default_system_prompt);
  return t;
}

ChatTemplate ChatTemplate::llama3(bool dated_system_header) {
  ChatTemplate t;
  t.family_ = ChatFamily::kLlama3;
  t.dated_system_header_ = dated_system_header;
  return t;
}

ChatTemplate ChatTemplate::qwen3() {
  ChatTemplate t;
  t.family_ = ChatFamily::kQwen3;
  t.tool_response_turns_ = true;
  return t;
}

std::string_view ChatTemplate::name() const {
  switch (family_) {
    case ChatFamily::kChatML:
      return "chatml";
    case ChatFamily::kLlama3:
      return "llama3";
    case ChatFamily::kQwen3:
      return "qwen3";
  }
  return "unknown";
}

Expected<std::string> ChatTemplate::render(std::span<const ChatMessage> messages,
                                           bool add_generation_prompt, bool enable_thinking) const {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role.empty()) {
      return invalid_argument("chat message " + std::to_string(i) + " has an empty role");
    }
    if (family_ == ChatFamily::kQwen3 && role != "system" && role != "user" &&
        role != "assistant" && role != "tool") {
      return invalid_argument("chat message " + std::to_string(i) + " has role '" + role +
                              "'; Qwen3 accepts system, user, assistant and tool");
    }
  }
  switch (family_) {
    case ChatFamily::kChatML:
      return render_chatml(messages, add_generation_prompt);
    case ChatFamily::kLlama3:
      return render_llama3(messages, add_generation_prompt);
    case ChatFamily::kQwen3:
      return render_qwen3(messages, add_generation_prompt, enable_thinking);
  }
  return internal_error("unknown chat family");
}

std::string ChatTemplate::render_chatml(std::span<const ChatMessage> messages,
                                        bool add_generation_prompt) const {
  std::string out;
  if (!messages.empty() && messages[0].role != "system" && !default_system_.empty()) {
    append_chatml_turn("system", default_system_, &out);
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    if (tool_response_turns_ && messages[i].role == "tool") {
      append_tool_response(messages, i, &out);
    } else {
      append_chatml_turn(messages[i].role, messages[i].content, &out);
    }
  }
  if (add_generation_prompt) out.append(kImStart).append("assistant\n");
  return out;
}

std::string ChatTemplate::render_llama3(std::span<const ChatMessage> messages,
                                        bool add_generation_prompt) const {
  constexpr std::string_view kBos = "<|begin_of_text|>";
  const auto header = [](std::string_view role, std::string* out) {
    out->append("<|start_header_id|>").append(role).append("<|end_header_id|>\n\n");
  };
  std::string out;
  size_t first = 0;
  if (dated_system_header_) {
    // 3.1+: the system turn is always there, carrying the dates and the caller's system prompt.
    std::string_view system;
    if (!messages.empty() && messages[0].role == "system") {
      system = trim(messages[0].content);
      first = 1;
    }
    out.append(kBos);
    header("system", &out);
    out.append("Cutting Knowledge Date: December 2023\nToday Date: ")
        .append(date_string_)
        .append("\n\n")
        .append(system)
        .append("<|eot_id|>");
  }
  for (size_t i = first; i < messages.size(); ++i) {
    if (i == 0 && !dated_system_header_) out.append(kBos);
    header(messages[i].role, &out);
    out.append(trim(messages[i].content)).append("<|eot_id|>");
  }
  if (add_generation_prompt) header("assistant", &out);
  return out;
}

std::string ChatTemplate::render_qwen3(std::span<const ChatMessage> messages,
                                       bool add_generation_prompt, bool enable_thinking) const {
  std::string out;
  const size_t n = messages.size();
  if (n > 0 && messages[0].role == "system")
    append_chatml_turn("system", messages[0].content, &out);
  // The last real user query; assistant turns after it keep their reasoning.
  size_t last_query = n == 0 ? 0 : n - 1;
  for (size_t k = n; k-- > 0;) {
    const std::string& c = messages[k].content;
    const bool tool_result = c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
    if (messages[k].role == "user" && !tool_result) {
      last_query = k;
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      append_chatml_turn(m.role, m.content, &out);
    } else if (m.role == "assistant") {
      std::string_view content = m.content;
      std::string_view reasoning;
      if (m.reasoning_content.has_value()) {
        reasoning = *m.reasoning_content;
      } else if (const size_t close = content.find("</think>"); close != std::string_view::npos) {
        std::string_view before = strip_newlines_right(content.substr(0, close));
        const size_t open = before.rfind("<think>");
        if (open != std::string_view::npos) before = before.substr(open + 7);
        reasoning = strip_newlines_left(before);
        const size_t last_close = content.rfind("</think>");
        content = strip_newlines_left(content.substr(last_close + 8));
      }
      out.append(kImStart).append("assistant\n");
      if (i > last_query && (i + 1 == n || !reasoning.empty())) {
        out.append("<think>\n")
            .append(strip_newlines_left(strip_newlines_right(reasoning)))
            .append("\n</think>\n\n")
            .append(strip_newlines_left(content));
      } else {
        out.append(content);
      }
      out.append(kImEnd).append("\n");
    } else if (m.role == "tool") {
      append_tool_response(messages, i, &out);
    }
  }
  if (add_generation_prompt) {
    out.append(kImStart).append("assistant\n");
    if (!enable_thinking) out.append("<think>\n\n</think>\n\n");
  }
  return out;
}

}  // namespace vortex
