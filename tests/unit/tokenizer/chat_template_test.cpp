// Golden-string tests of the native chat templates (ChatML, Llama-3, Qwen3) and of detection from
// checkpoint template text. The Jinja cross-check lives in chat_template_reference_test.cpp.
#include "vortex/model/chat_template.h"

#include <gtest/gtest.h>

namespace vortex {
namespace {

// SmolLM2-135M-Instruct's template, as stored in its GGUF (tokenizer.chat_template).
const std::string kSmolLm2Template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' "
    "}}{% endif %}";

std::string render(const ChatTemplate& t, std::vector<ChatMessage> messages, bool gen = true,
                   bool thinking = true) {
  auto out = t.render(messages, gen, thinking);
  EXPECT_TRUE(out.has_value()) << out.status().to_string();
  return out.has_value() ? *out : std::string();
}

TEST(ChatTemplate, DetectsSmolLm2AndItsDefaultSystemPrompt) {
  auto t = ChatTemplate::detect(kSmolLm2Template, Arch::kLlama);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->family(), ChatFamily::kChatML);
  EXPECT_EQ(t->default_system_prompt(),
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  EXPECT_EQ(render(*t, {{"user", "What is the capital of France?"}}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render(*t, {{"system", "Be terse."}, {"user", "Hi"}, {"assistant", "Hello!"}}, false),
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n");
  EXPECT_EQ(render(*t, {}), "<|im_start|>assistant\n");
}

TEST(ChatTemplate, ExtractsEscapedDefaultSystemPromptOfQwen25) {
  const std::string qwen25 =
      "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + "
      "messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are "
      "Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
      "{{- '\\n<tool_response>\\n' }}";
  auto t = ChatTemplate::detect(qwen25, Arch::kQwen2);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->family(), ChatFamily::kChatML);
  EXPECT_EQ(t->default_system_prompt(),
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  // Qwen puts tool results into one user turn.
  EXPECT_EQ(render(*t, {{"system", "S"}, {"tool", "r1"}, {"tool", "r2"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n<tool_response>\nr1\n"
            "</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n");
}

TEST(ChatTemplate, Llama3TrimsContentAndStartsWithBos) {
  auto t = ChatTemplate::detect("{{ '<|start_header_id|>' + message['role'] }}", Arch::kLlama);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->family(), ChatFamily::kLlama3);
  EXPECT_EQ(render(*t, {{"system", "  Be brief. "}, {"user", "Hi\n"}}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, Llama31HasTheDatedSystemTurn) {
  auto t = ChatTemplate::detect(
      "<|start_header_id|> {{- \"Cutting Knowledge Date: December 2023\\n\" }}", Arch::kLlama);
  ASSERT_TRUE(t.has_value());
  const std::string head =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
      "December 2023\nToday Date: 26 Jul 2024\n\n";
  EXPECT_EQ(render(*t, {{"user", "Hi"}}),
            head +
                "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render(*t, {{"system", " Sys "}, {"user", "Hi"}}, false),
            head + "Sys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  ChatTemplate dated = *t;
  dated.set_date_string("01 Jan 2025");
  EXPECT_NE(render(dated, {{"user", "Hi"}}).find("Today Date: 01 Jan 2025\n"), std::string::npos);
}

TEST(ChatTemplate, Qwen3ThinkingSwitch) {
  auto t = ChatTemplate::detect("<|im_start|>{%- if enable_thinking is defined %}", Arch::kQwen3);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->family(), ChatFamily::kQwen3);
  const std::string user = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(render(*t, {{"user", "Hi"}}, true, /*thinking=*/true), user);
  EXPECT_EQ(render(*t, {{"user", "Hi"}}, true, /*thinking=*/false),
            user + "<think>\n\n</think>\n\n");
}

TEST(ChatTemplate, Qwen3DropsOldReasoningAndKeepsCurrent) {
  const ChatTemplate t = ChatTemplate::qwen3();
  EXPECT_EQ(render(t,
                   {{"user", "Q1"},
                    {"assistant", "<think>\nr1\n</think>\n\nA1"},
                    {"user", "Q2"},
                    {"assistant", "<think>r2</think>A2"}},
                   false),
            "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
            "<|im_start|>user\nQ2<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nr2\n</think>\n\nA2<|im_end|>\n");
  ChatMessage with_reasoning{"assistant", "A", std::string("\nthought\n")};
  EXPECT_EQ(render(t, {{"user", "Q"}, with_reasoning}, false),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nthought\n</think>\n\n"
            "A<|im_end|>\n");
}

TEST(ChatTemplate, Qwen3ToolTurns) {
  const ChatTemplate t = ChatTemplate::qwen3();
  EXPECT_EQ(render(t, {{"user", "Q"}, {"assistant", "call"}, {"tool", "r1"}, {"tool", "r2"}}),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\ncall<|im_end|>\n"
            "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n"
            "</tool_response><|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, FallbacksAndErrors) {
  auto qwen3 = ChatTemplate::detect("", Arch::kQwen3);
  ASSERT_TRUE(qwen3.has_value());
  EXPECT_EQ(qwen3->family(), ChatFamily::kQwen3);
  auto llama = ChatTemplate::detect("", Arch::kLlama);
  ASSERT_TRUE(llama.has_value());
  EXPECT_EQ(llama->family(), ChatFamily::kChatML);
  EXPECT_EQ(llama->default_system_prompt(), "");

  auto mistral =
      ChatTemplate::detect("{{ '[INST] ' + message['content'] + ' [/INST]' }}", Arch::kLlama);
  ASSERT_FALSE(mistral.has_value());
  EXPECT_EQ(mistral.status().code(), StatusCode::kUnsupported);

  std::vector<ChatMessage> no_role = {{"", "x"}};
  EXPECT_FALSE(ChatTemplate::chatml().render(no_role, true).has_value());
  std::vector<ChatMessage> narrator = {{"narrator", "x"}};
  EXPECT_FALSE(ChatTemplate::qwen3().render(narrator, true).has_value());
  EXPECT_TRUE(ChatTemplate::chatml().render(narrator, true).has_value());
  EXPECT_EQ(ChatTemplate::llama3().name(), "llama3");
}

}  // namespace
}  // namespace vortex
