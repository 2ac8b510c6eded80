// The HTTP server in-process over the fake backend (token-hash model, byte codec): response
// shapes, SSE framing, every error path with its status (400, 401, 404, 413, 429 + Retry-After,
// 503 while stopping), and a client that disconnects mid-stream getting its request cancelled and
// its pages freed.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "../../engine/engine/fake_backend.h"
#include "vortex/server/server.h"

namespace vortex::server {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int32_t kVocab = 256;

struct Harness {
  explicit Harness(ServerOptions so = {}, engine::SchedulerConfig sc = {}, int32_t pages = 64) {
    auto backend = std::make_unique<engine::testing::FakeBackend>(pages, 4, kVocab, 256,
                                                                  std::vector<int32_t>{});
    fake = backend.get();
    engine::EngineConfig ec;
    ec.scheduler = sc;
    engine = std::move(engine::Engine::create(std::move(backend), ec)).value();
    flows = std::make_unique<engine::FlowSet>(
        engine::FlowSet::load({}, "dense", flow::BudgetParams{}, 4, 2).value());
    codec = make_byte_codec();
    so.host = "127.0.0.1";
    so.port = 0;
    so.limits.max_context = 256;
    so.drain_timeout = 2s;
    server = std::make_unique<Server>(*engine, *flows, *codec, so);
    port = server->bind().value();
    thread = std::thread([this] { EXPECT_TRUE(server->run().is_ok()); });
  }
  ~Harness() {
    server->shutdown();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10, 0);
    return c;
  }
  httplib::Result post(const std::string& path, const std::string& body,
                       const httplib::Headers& headers = {}) const {
    return client().Post(path.c_str(), headers, body, "application/json");
  }

  engine::testing::FakeBackend* fake = nullptr;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<engine::FlowSet> flows;
  std::unique_ptr<TextCodec> codec;
  std::unique_ptr<Server> server;
  int port = 0;
  std::thread thread;
};

/// The expected completion text of a byte prompt under the fake model (greedy, no EOS).
std::string fake_text(const std::string& prompt, int32_t n) {
  std::vector<int32_t> ids(prompt.begin(), prompt.end());
  std::string out;
  for (int32_t t : engine::testing::fake_generate(ids, n, kVocab, {}, 256)) {
    out.push_back(static_cast<char>(t));
  }
  return out;
}

std::string error_type(const httplib::Result& r) {
  auto j = json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("error")) return "<no error object: " + r->body + ">";
  return j["error"]["type"].get<std::string>();
}

TEST(ServerHttp, CompletionMatchesTheModelAndReportsUsage) {
  Harness h;
  auto r = h.post("/v1/completions", R"({"prompt":"abc","max_tokens":12,"temperature":0,"n":2})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = json::parse(r->body);
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(j["usage"]["completion_tokens"], 24);
  EXPECT_EQ(j["usage"]["total_tokens"], 27);
  // The byte codec replaces invalid UTF-8, so compare through the same sanitizing path.
  const std::string expect = fake_text("abc", 12);
  auto c = make_byte_codec();
  auto stream = c->text_stream();
  std::string shown;
  for (char ch : expect) shown += stream->push(static_cast<unsigned char>(ch));
  shown += stream->flush();
  EXPECT_EQ(j["choices"][0]["text"], shown);
  EXPECT_EQ(j["choices"][1]["text"], shown);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
}

TEST(ServerHttp, StreamingIsSseEndingWithDone) {
  Harness h;
  std::string body;
  auto res =
      h.client().Post("/v1/chat/completions", {},
                      R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":5,"stream":true,
          "stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":2})",
                      "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  body = res->body;
  ASSERT_GE(body.size(), 14u);
  EXPECT_EQ(body.substr(body.size() - 14), "data: [DONE]\n\n");
  int chunks = 0, lp_tokens = 0;
  bool usage = false, role = false, finish = false;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    const std::string payload = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (payload == "[DONE]") break;
    auto j = json::parse(payload);
    ++chunks;
    EXPECT_EQ(j["object"], "chat.completion.chunk");
    if (j.contains("usage")) {
      usage = true;
      EXPECT_EQ(j["usage"]["completion_tokens"], 5);
      EXPECT_TRUE(j["choices"].empty());
      continue;
    }
    const auto& ch = j["choices"][0];
    if (ch["delta"].contains("role")) role = true;
    if (!ch["finish_reason"].is_null()) finish = true;
    if (!ch["logprobs"].is_null()) {
      for (const auto& t : ch["logprobs"]["content"]) {
        ++lp_tokens;
        EXPECT_EQ(t["top_logprobs"].size(), 2u);
      }
    }
  }
  EXPECT_TRUE(role && finish && usage);
  EXPECT_EQ(lp_tokens, 5);
  EXPECT_GE(chunks, 3);
}

// Clients time tokens by stream chunks (TTFT, TPOT: `vortex bench serve --online`), so every token
// event gets a chunk, also one whose bytes complete no UTF-8 character yet (its text is empty).
TEST(ServerHttp, StreamingSendsAChunkPerTokenEvenWithoutText) {
  // A prompt whose greedy continuation under the fake model holds a non-ASCII byte.
  std::string prompt;
  for (char a = 'a'; a <= 'z' && prompt.empty(); ++a) {
    const std::string cand = std::string("x") + a;
    for (char ch : fake_text(cand, 12)) {
      if (static_cast<unsigned char>(ch) >= 0x80) prompt = cand;
    }
  }
  ASSERT_FALSE(prompt.empty()) << "no prompt yields a non-ASCII byte; pick others";
  Harness h;
  auto res = h.client().Post(
      "/v1/completions", {},
      json({{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}, {"stream", true}}).dump(),
      "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  int token_chunks = 0;
  size_t pos = 0;
  const std::string& body = res->body;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    const std::string payload = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (payload == "[DONE]") break;
    const auto j = json::parse(payload);
    if (j["choices"][0]["finish_reason"].is_null()) ++token_chunks;
  }
  EXPECT_EQ(token_chunks, 12);
}

TEST(ServerHttp, ErrorsHaveTheRightStatusAndJsonBody) {
  ServerOptions so;
  so.max_body_bytes = 2000;
  Harness h(so);
  auto r = h.post("/v1/completions", "{not json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(error_type(r), "invalid_request_error");
  r = h.post("/v1/completions", R"({"prompt":"x","max_tokens":-3})");
  EXPECT_EQ(r->status, 400);
  r = h.post("/v1/completions", R"({"prompt":"x","model":"gpt-4"})");
  EXPECT_EQ(r->status, 404);
  r = h.post("/v1/completions", R"({"prompt":"x","vortex":{"flow":"nope"}})");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("unknown flow 'nope'"), std::string::npos) << r->body;
  r = h.post("/v1/completions", R"({"prompt":"x","vortex":{"topk_val":3}})");
  EXPECT_EQ(r->status, 400);  // budget fields need a sparse flow
  r = h.post("/v1/completions", json{{"prompt", std::string(300, 'a')}}.dump());
  EXPECT_EQ(r->status, 400);  // longer than the context
  EXPECT_NE(r->body.find("context"), std::string::npos);
  r = h.post("/v1/completions", R"({"prompt":"xx","max_tokens":255})");
  EXPECT_EQ(r->status, 400);  // prompt + max_tokens beyond the context
  r = h.post("/v1/completions", json{{"prompt", std::string(5000, 'a')}}.dump());
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(error_type(r), "invalid_request_error");
  r = h.client().Get("/v1/nothing");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(error_type(r), "invalid_request_error");
  auto models = h.client().Get("/v1/models");
  ASSERT_EQ(models->status, 200);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "fake-hash");
  EXPECT_EQ(h.client().Get("/health")->status, 200);
  // The server still works after all that.
  EXPECT_EQ(h.post("/v1/completions", R"({"prompt":"ok","max_tokens":2})")->status, 200);
}

TEST(ServerHttp, ApiKeyIsRequiredOnV1) {
  ServerOptions so;
  so.api_key = "sekrit";
  Harness h(so);
  auto r = h.post("/v1/completions", R"({"prompt":"x","max_tokens":1})");
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(error_type(r), "authentication_error");
  r = h.post("/v1/completions", R"({"prompt":"x","max_tokens":1})",
             {{"Authorization", "Bearer wrong"}});
  EXPECT_EQ(r->status, 401);
  r = h.post("/v1/completions", R"({"prompt":"x","max_tokens":1})",
             {{"Authorization", "Bearer sekrit"}});
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(h.client().Get("/health")->status, 200);  // health and metrics stay open
}

TEST(ServerHttp, FullQueueIs429WithRetryAfter) {
  engine::SchedulerConfig sc;
  sc.max_batch = 1;
  sc.max_tokens_per_step = 2;
  sc.max_waiting = 1;
  Harness h({}, sc);
  h.fake->set_step_delay(5ms);
  // n = 3 choices need three queue slots at once: refused whole, nothing left running.
  auto r = h.post("/v1/completions", R"({"prompt":"x","max_tokens":3,"n":3})");
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_EQ(error_type(r), "rate_limit_error");
  for (int i = 0; i < 100 && h.engine->metrics().running + h.engine->metrics().waiting > 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  const auto m = h.engine->metrics();
  EXPECT_EQ(m.running + m.waiting, 0);
  EXPECT_EQ(m.kv_pages_used, m.prefix_cache_pages);
}

TEST(ServerHttp, DisconnectCancelsTheRequest) {
  Harness h;
  h.fake->set_step_delay(10ms);
  for (const bool stream : {true, false}) {
    const uint64_t cancelled_before = h.engine->metrics().requests_cancelled;
    json body = {{"prompt", "abc"}, {"max_tokens", 200}, {"stream", stream}};
    std::thread client([&] {
      httplib::Client c("127.0.0.1", h.port);
      c.set_read_timeout(1, 0);  // non-streaming: give up before the answer
      int got = 0;
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.body = body.dump();
      req.set_header("Content-Type", "application/json");
      req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++got < 3; };
      c.send(req);
    });
    client.join();
    bool freed = false;
    for (int i = 0; i < 300 && !freed; ++i) {
      const auto m = h.engine->metrics();
      freed = m.requests_cancelled == cancelled_before + 1 && m.running == 0;
      std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(freed) << (stream ? "streaming" : "non-streaming") << " request not cancelled";
    const auto m = h.engine->metrics();
    EXPECT_EQ(m.kv_pages_used, m.prefix_cache_pages);
    EXPECT_LT(m.generated_tokens, 400u);
  }
}

TEST(ServerHttp, SlowNonStreamingAnswerIsPrecededByKeepAliveSpaces) {
  Harness h;
  h.fake->set_step_delay(15ms);
  auto r = h.post("/v1/completions", R"({"prompt":"abc","max_tokens":120})");  // ~1.8 s
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  ASSERT_FALSE(r->body.empty());
  EXPECT_EQ(r->body[0], ' ') << "no keep-alive space was sent";
  auto j = json::parse(r->body, nullptr, false);  // leading whitespace is valid JSON
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["usage"]["completion_tokens"], 120);
}

TEST(ServerHttp, ShutdownRefusesNewWorkAndDrains) {
  auto h = std::make_unique<Harness>();
  h->fake->set_step_delay(2ms);
  std::thread slow([&] {
    auto r = h->post("/v1/completions", R"({"prompt":"abc","max_tokens":20})");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(json::parse(r->body)["choices"][0]["finish_reason"], "length");
  });
  for (int i = 0; i < 500 && h->engine->metrics().running == 0; ++i)
    std::this_thread::sleep_for(2ms);
  EXPECT_EQ(h->engine->metrics().running, 1);
  h->server->shutdown();  // drains the running request (20 tokens, well within 2 s)
  EXPECT_EQ(h->post("/v1/completions", R"({"prompt":"abc","max_tokens":2})").error(),
            httplib::Error::Connection);  // the listener is closed
  slow.join();
  h.reset();
}

}  // namespace
}  // namespace vortex::server
