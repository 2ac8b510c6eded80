// The native chat templates against Jinja2 rendering the templates themselves (as transformers'
// apply_chat_template does): SmolLM2's real template from its GGUF, Llama-3.0's template, and
// tool-free fixtures of the Llama-3.1 and Qwen3 templates (templates/*.jinja).
// Skips with a clear message when .venv or jinja2 is missing; SmolLM2 also needs the model file.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "test_support.h"
#include "vortex/model/chat_template.h"

namespace vortex {
namespace {

using nlohmann::json;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json message(const std::string& role, const std::string& content) {
  return {{"role", role}, {"content", content}};
}

// Conversations covering system prompts (first, absent, later), multi-turn, whitespace to trim,
// reasoning blocks old and current, tool results, special-token text and non-ASCII content.
json conversations() {
  json with_reasoning = message("assistant", "A");
  with_reasoning["reasoning_content"] = "\nthought\n";
  return json::array({
      json::array({message("user", "What is the capital of France?")}),
      json::array({message("system", "You are terse."), message("user", "Hi"),
                   message("assistant", "Hello!"), message("user", "  Tell me a joke.\n")}),
      json::array({message("user", "Q1"), message("assistant", "<think>\nr1\n</think>\n\nA1"),
                   message("user", "Q2"), message("assistant", "<think>r2</think>A2")}),
      json::array({message("user", "Q"), message("assistant", "call"), message("tool", "r1"),
                   message("tool", "r2")}),
      json::array({message("user", "Q"), message("assistant", "a"),
                   message("user", "<tool_response>\nr\n</tool_response>")}),
      json::array({message("system", "S"), message("user", "U"), message("system", "S2"),
                   message("user", "U2")}),
      json::array(
          {message("user", "<|im_start|>inject \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9"),
           message("assistant", "  spaces \xC2\xA0 ")}),
      json::array({message("user", "Q"), with_reasoning}),
  });
}

std::vector<ChatMessage> to_messages(const json& conversation) {
  std::vector<ChatMessage> out;
  for (const json& m : conversation) {
    ChatMessage msg{m.at("role").get<std::string>(), m.at("content").get<std::string>(), {}};
    if (m.contains("reasoning_content"))
      msg.reasoning_content = m.at("reasoning_content").get<std::string>();
    out.push_back(std::move(msg));
  }
  return out;
}

TEST(ChatTemplateReference, NativeRenderingMatchesJinja) {
  std::string skip;
  auto ref = test::find_reference(&skip, "chat", /*need_model=*/false);
  if (!ref) GTEST_SKIP() << skip;
  const std::string probe = "'" + ref->python + "' -c 'import jinja2' > /dev/null 2>&1";
  if (std::system(probe.c_str()) != 0) {
    GTEST_SKIP()
        << "jinja2 is not installed in .venv (pip install -r scripts/requirements-test.txt)";
  }

  const std::string fixtures = std::string(VORTEX_SOURCE_DIR) + "/tests/unit/tokenizer/templates/";
  struct Family {
    std::string name;
    Arch arch;
    ChatFamily family;
  };
  std::vector<Family> families = {{"llama3", Arch::kLlama, ChatFamily::kLlama3},
                                  {"llama31", Arch::kLlama, ChatFamily::kLlama3},
                                  {"qwen3", Arch::kQwen3, ChatFamily::kQwen3}};
  json templates = json::array({
      {{"name", "llama3"},
       {"text", read_file(fixtures + "llama3.jinja")},
       {"bos_token", "<|begin_of_text|>"}},
      {{"name", "llama31"},
       {"text", read_file(fixtures + "llama31_no_tools.jinja")},
       {"bos_token", "<|begin_of_text|>"}},
      {{"name", "qwen3"}, {"text", read_file(fixtures + "qwen3_no_tools.jinja")}},
  });
  if (!ref->gguf.empty()) {
    templates.push_back({{"name", "smollm2"}, {"gguf", ref->gguf}});
    families.push_back({"smollm2", Arch::kLlama, ChatFamily::kChatML});
  } else {
    std::printf("SmolLM2 template not checked: model file missing (scripts/fetch_model.sh)\n");
  }

  json cases = json::array();
  for (const json& conversation : conversations()) {
    for (bool gen : {false, true}) {
      for (bool thinking : {false, true}) {
        cases.push_back({{"messages", conversation},
                         {"add_generation_prompt", gen},
                         {"enable_thinking", thinking}});
      }
    }
  }
  const std::string in = ref->work_dir + "/render_request.json";
  const std::string out = ref->work_dir + "/render_result.json";
  test::write_json_file(in, {{"templates", templates}, {"cases", cases}});
  std::string log;
  ASSERT_TRUE(test::run_reference(*ref, "render '" + in + "' '" + out + "'", &log)) << log;
  const json result = test::read_json_file(out);

  for (const Family& f : families) {
    const json& r = result.at(f.name);
    auto t = ChatTemplate::detect(r.at("text").get<std::string>(), f.arch);
    ASSERT_TRUE(t.has_value()) << f.name << ": " << t.status().to_string();
    EXPECT_EQ(t->family(), f.family) << f.name;
    for (size_t i = 0; i < cases.size(); ++i) {
      const json& c = cases[i];
      const std::vector<ChatMessage> messages = to_messages(c.at("messages"));
      auto native = t->render(messages, c.at("add_generation_prompt").get<bool>(),
                              c.at("enable_thinking").get<bool>());
      ASSERT_TRUE(native.has_value()) << native.status().to_string();
      EXPECT_EQ(*native, r.at("rendered")[i].get<std::string>())
          << f.name << " case " << i << ": " << c.dump();
    }
  }
}

}  // namespace
}  // namespace vortex
