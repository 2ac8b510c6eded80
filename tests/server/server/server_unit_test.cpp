// Server pieces without HTTP: request parsing and validation, stop-string streaming against a
// brute-force reference, the byte codec, the Status → HTTP mapping and Prometheus rendering.
#include <gtest/gtest.h>

#include <random>

#include "vortex/server/api_error.h"
#include "vortex/server/api_request.h"
#include "vortex/server/completion_text.h"
#include "vortex/server/metrics_text.h"

namespace vortex::server {
namespace {

ApiLimits limits() {
  ApiLimits l;
  l.max_context = 512;
  return l;
}

Expected<ApiRequest> parse(const std::string& body, bool chat = false) {
  static const auto codec = make_byte_codec();
  return parse_api_request(body, chat, *codec, limits());
}

TEST(ApiRequest, CompletionFields) {
  auto r = parse(R"({"model":"m","prompt":"hi","max_tokens":7,"temperature":0,"top_p":0.5,
      "n":3,"stop":["a","bc"],"seed":-4,"stream":true,"stream_options":{"include_usage":true},
      "logprobs":2,"vortex":{"flow":"quest","topk_val":4,"layers_skip":[0,1]}})");
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_EQ(r->model, "m");
  EXPECT_EQ(r->prompts, (std::vector<std::vector<int32_t>>{{'h', 'i'}}));
  EXPECT_EQ(r->sampling.max_tokens, 7);
  EXPECT_EQ(r->sampling.temperature, 0.0f);
  EXPECT_EQ(r->sampling.top_p, 0.5f);
  EXPECT_EQ(r->n, 3);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r->seed_given);
  EXPECT_EQ(r->sampling.seed, static_cast<uint64_t>(int64_t{-4}));
  EXPECT_TRUE(r->stream && r->include_usage);
  EXPECT_EQ(r->logprobs, 2);
  EXPECT_EQ(r->flow.flow, "quest");
  EXPECT_EQ(r->flow.topk_val, 4);
  EXPECT_EQ(r->flow.layers_skip, (std::vector<int32_t>{0, 1}));
}

TEST(ApiRequest, PromptForms) {
  EXPECT_EQ(parse(R"({"prompt":[1,2,3]})")->prompts,
            (std::vector<std::vector<int32_t>>{{1, 2, 3}}));
  EXPECT_EQ(parse(R"({"prompt":["a","b"]})")->prompts.size(), 2u);
  EXPECT_EQ(parse(R"({"prompt":[[1],[2,3]]})")->prompts.size(), 2u);
  EXPECT_EQ(parse(R"({"prompt":"x"})")->sampling.max_tokens, 16);  // OpenAI default
  EXPECT_EQ(parse(R"({"prompt":"x"})")->sampling.temperature, 1.0f);
}

TEST(ApiRequest, ChatFields) {
  auto r = parse(R"({"messages":[{"role":"system","content":"s"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
      "max_completion_tokens":5,"logprobs":true,"top_logprobs":3})",
                 true);
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  const std::string text(r->prompts[0].begin(), r->prompts[0].end());
  EXPECT_EQ(text, "system: s\nuser: ab\nassistant: ");
  EXPECT_EQ(r->sampling.max_tokens, 5);
  EXPECT_EQ(r->logprobs, 3);
  auto d = parse(R"({"messages":[{"role":"user","content":"hello"}]})", true);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->sampling.max_tokens, 512 - static_cast<int32_t>(d->prompts[0].size()));
}

TEST(ApiRequest, BadInputIsAnErrorNamingTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "not valid JSON"},
      {"[1,2]", "JSON object"},
      {R"({"max_tokens":3})", "'prompt' is required"},
      {R"({"prompt":5})", "'prompt'"},
      {R"({"prompt":"x","max_tokens":"5"})", "'max_tokens' must be an integer"},
      {R"({"prompt":"x","max_tokens":0})", "'max_tokens' must be in"},
      {R"({"prompt":"x","max_tokens":100000})", "'max_tokens' must be in"},
      {R"({"prompt":"x","max_tokens":1.5})", "'max_tokens' must be an integer"},
      {R"({"prompt":"x","max_tokens":18446744073709551615})", "'max_tokens' must be in"},
      {R"({"prompt":"x","temperature":3})", "'temperature'"},
      {R"({"prompt":"x","temperature":"hot"})", "'temperature' must be a number"},
      {R"({"prompt":"x","top_p":0})", "'top_p'"},
      {R"({"prompt":"x","n":0})", "'n'"},
      {R"({"prompt":"x","stop":7})", "'stop'"},
      {R"({"prompt":"x","stop":["a",""]})", "'stop'"},
      {R"({"prompt":"x","logprobs":9})", "'logprobs'"},
      {R"({"prompt":"x","stream":"yes"})", "'stream' must be a boolean"},
      {R"({"prompt":"x","stream_options":{"include_usage":true}})", "stream: true"},
      {R"({"prompt":"x","vortex":{"topk":3}})", "'vortex.topk' is not a Vortex option"},
      {R"({"prompt":"x","vortex":{"topk_ratio":2}})", "'vortex.topk_ratio'"},
      {R"({"prompt":"x","vortex":{"layers_skip":[-1]}})", "'vortex.layers_skip'"},
      {R"({"prompt":"x","vortex":"quest"})", "'vortex' must be an object"},
      {R"({"prompt":[1,"a"]})", "'prompt[]' must be an integer"},
      {R"({"prompt":[-1]})", "'prompt[]'"},
  };
  for (const auto& [body, needle] : cases) {
    auto r = parse(body);
    ASSERT_FALSE(r.has_value()) << body;
    EXPECT_EQ(http_status(r.status()), 400) << body;
    EXPECT_NE(r.status().message().find(needle), std::string::npos)
        << body << " -> " << r.status().message();
  }
  const std::vector<std::string> chat_cases = {
      R"({"messages":[]})",
      R"({"messages":"hi"})",
      R"({"messages":[{"content":"x"}]})",
      R"({"messages":[{"role":"wizard","content":"x"}]})",
      R"({"messages":[{"role":"user","content":5}]})",
      R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
      R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})",
      R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})",
  };
  for (const auto& body : chat_cases) {
    auto r = parse(body, true);
    EXPECT_FALSE(r.has_value()) << body;
    if (!r.has_value()) {
      EXPECT_EQ(http_status(r.status()), 400) << body;
    }
  }
}

TEST(ApiRequest, RandomBytesNeverCrash) {
  std::mt19937 rng(9);
  const std::string seed = R"({"prompt":[1,2],"max_tokens":3,"stop":["x"],"vortex":{"bos":1}})";
  for (int i = 0; i < 3000; ++i) {
    std::string body = seed;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) body[rng() % body.size()] = static_cast<char>(rng() % 256);
    (void)parse(body, i % 2 == 0);
  }
}

/// Reference: generation stops at the first prefix of the text that contains a stop string; the
/// shown text is that prefix cut before the earliest stop string in it.
std::string cut_at_stop(const std::string& full, const std::vector<std::string>& stops) {
  for (size_t len = 1; len <= full.size(); ++len) {
    const std::string prefix = full.substr(0, len);
    size_t cut = std::string::npos;
    for (const auto& s : stops) cut = std::min(cut, prefix.find(s));
    if (cut != std::string::npos) return prefix.substr(0, cut);
  }
  return full;
}

TEST(CompletionText, StopStringsAcrossTokensMatchReference) {
  const auto codec = make_byte_codec();
  std::mt19937 rng(4);
  const std::string alphabet = "abc";
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<std::string> stops;
    const int ns = static_cast<int>(rng() % 3);
    for (int i = 0; i < ns; ++i) {
      std::string s;
      for (int k = 0, n = 1 + static_cast<int>(rng() % 3); k < n; ++k) {
        s += alphabet[rng() % alphabet.size()];
      }
      stops.push_back(s);
    }
    std::string full;
    for (int k = 0, n = static_cast<int>(rng() % 12); k < n; ++k) {
      full += alphabet[rng() % alphabet.size()];
    }
    CompletionText text(*codec, stops);
    std::string shown;
    for (char c : full) {
      shown += text.push(static_cast<unsigned char>(c));
      // Nothing shown may ever be retracted: it is a prefix of the final answer.
      ASSERT_EQ(cut_at_stop(full, stops).compare(0, shown.size(), shown), 0)
          << "full=" << full << " shown=" << shown << " stops=" << ::testing::PrintToString(stops);
    }
    shown += text.finish();
    const std::string expect = cut_at_stop(full, stops);
    EXPECT_EQ(shown, expect) << full;
    EXPECT_EQ(text.text(), expect);
    bool any = false;
    for (const auto& st : stops) any |= full.find(st) != std::string::npos;
    EXPECT_EQ(text.stopped(), any);
  }
}

TEST(CompletionText, Utf8SplitAcrossTokens) {
  const auto codec = make_byte_codec();
  CompletionText text(*codec, {"\xC3\xA9!"});  // "é!"
  const std::string s = "caf\xC3\xA9 ok \xC3\xA9!";
  std::string shown;
  for (char c : s) shown += text.push(static_cast<unsigned char>(c));
  shown += text.finish();
  EXPECT_EQ(shown, "caf\xC3\xA9 ok ");
  CompletionText broken(*codec, {});
  EXPECT_EQ(broken.push(0xC3), "");
  EXPECT_EQ(broken.finish(), "\xEF\xBF\xBD");
}

TEST(ApiError, OneMappingForEveryCode) {
  EXPECT_EQ(http_status(invalid_argument("x")), 400);
  EXPECT_EQ(http_status(unsupported("x")), 400);
  EXPECT_EQ(http_status(unauthenticated("x")), 401);
  EXPECT_EQ(http_status(not_found("x")), 404);
  EXPECT_EQ(http_status(too_large("x")), 413);
  EXPECT_EQ(http_status(resource_exhausted("x")), 429);
  EXPECT_EQ(http_status(cancelled("x")), 503);
  EXPECT_EQ(http_status(internal_error("x")), 500);
  const std::string body = error_body(invalid_argument("bad \xFF byte"), "max_tokens");
  EXPECT_NE(body.find(R"("type":"invalid_request_error")"), std::string::npos);
  EXPECT_NE(body.find(R"("param":"max_tokens")"), std::string::npos);
}

TEST(MetricsText, HistogramsAreCumulative) {
  engine::EngineMetrics m;
  m.running = 3;
  m.kv_pages_total = 10;
  m.prefix_hit_tokens = 1;
  m.prefix_query_tokens = 4;
  m.ttft.observe(0.001);
  m.ttft.observe(0.3);
  m.ttft.observe(1000.0);
  const std::string text = render_prometheus(m);
  EXPECT_NE(text.find("vortex_requests_running 3\n"), std::string::npos);
  EXPECT_NE(text.find("vortex_prefix_cache_hit_rate 0.25\n"), std::string::npos);
  EXPECT_NE(text.find("vortex_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("vortex_time_to_first_token_seconds_bucket{le=\"0.5\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("vortex_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("vortex_time_to_first_token_seconds_count 3\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE vortex_inter_token_latency_seconds histogram"), std::string::npos);
}

}  // namespace
}  // namespace vortex::server
