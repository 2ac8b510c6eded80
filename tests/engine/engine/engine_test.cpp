// Engine (threaded loop) on the fake backend: concurrent submitters get exactly their solo
// outputs; cancellation frees pages within a step; full queue, bad requests, backend failures
// and shutdown (drain and cancel) behave as documented.
#include "vortex/engine/engine.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "fake_backend.h"

namespace vortex::engine {
namespace {

using namespace std::chrono_literals;
constexpr int32_t kVocab = 97;
constexpr int32_t kCtx = 256;

std::unique_ptr<Engine> make_engine(int32_t pages, SchedulerConfig sc = {},
                                    testing::FakeBackend** raw = nullptr,
                                    bool backend_overlaps = true) {
  auto backend =
      std::make_unique<testing::FakeBackend>(pages, 4, kVocab, kCtx, std::vector<int32_t>{5});
  backend->set_supports_overlap(backend_overlaps);
  if (raw != nullptr) *raw = backend.get();
  EngineConfig cfg;
  cfg.scheduler = sc;
  auto e = Engine::create(std::move(backend), cfg);
  EXPECT_TRUE(e.has_value()) << e.status().to_string();
  return std::move(e).value();
}

/// Reads a stream to its end; returns tokens and the finish event.
std::pair<std::vector<int32_t>, RequestEvent> drain(RequestStream& s) {
  std::vector<int32_t> toks;
  while (true) {
    auto e = s.next(10s);
    if (!e.has_value()) {
      ADD_FAILURE() << "stream " << s.id() << " stalled";
      return {toks, RequestEvent{}};
    }
    for (const auto& t : e->tokens) toks.push_back(t.token);
    if (e->finish != FinishReason::kNone) return {toks, *e};
  }
}

void concurrent_clients_get_their_solo_outputs(bool overlap, bool backend_overlaps) {
  SchedulerConfig sc;
  sc.max_batch = 8;
  sc.max_tokens_per_step = 32;
  sc.overlap = overlap;
  testing::FakeBackend* fake = nullptr;
  // Small pool: preemption happens under load.
  auto engine = make_engine(40, sc, &fake, backend_overlaps);
  constexpr int kThreads = 8, kPerThread = 6;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t + 1));
      for (int i = 0; i < kPerThread; ++i) {
        GenerationRequest r;
        r.prompt.resize(1 + rng() % 30);
        for (auto& x : r.prompt) x = static_cast<int32_t>(rng() % kVocab);
        r.sampling.max_tokens = 1 + static_cast<int32_t>(rng() % 25);
        const auto ref = testing::fake_generate(r.prompt, r.sampling.max_tokens, kVocab, {5}, kCtx);
        auto s = engine->submit(r);
        if (!s.has_value()) {
          ++failures;
          continue;
        }
        auto [toks, fin] = drain(**s);
        if (toks != ref || fin.generated_tokens != static_cast<int32_t>(ref.size())) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const EngineMetrics m = engine->metrics();
  EXPECT_EQ(m.requests_finished, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(m.running, 0);
  EXPECT_EQ(m.waiting, 0);
  EXPECT_EQ(m.kv_pages_used, m.prefix_cache_pages);
  EXPECT_EQ(m.ttft.count(), static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(engine->check_invariants(), "");
  engine->shutdown(0ms);  // the loop thread has stopped: the backend's counters can be read
  const bool on = overlap && backend_overlaps;
  EXPECT_EQ(fake->max_in_flight(), on ? 2 : 1);
  EXPECT_EQ(m.overlapped_steps > 0, on);
  EXPECT_EQ(fake->errors(), std::vector<std::string>{});
}

TEST(Engine, ConcurrentClientsGetTheirSoloOutputs) {
  concurrent_clients_get_their_solo_outputs(true, true);
}

TEST(Engine, ConcurrentClientsWithoutOverlap) {
  concurrent_clients_get_their_solo_outputs(false, true);
  concurrent_clients_get_their_solo_outputs(true, false);  // a backend that cannot overlap
}

TEST(Engine, CancelFreesPagesWithinAStep) {
  SchedulerConfig sc;
  sc.prefix_cache = false;
  testing::FakeBackend* fake = nullptr;
  auto engine = make_engine(64, sc, &fake);
  fake->set_step_delay(2ms);
  GenerationRequest r;
  r.prompt = {1, 2, 3, 4, 6, 7, 8, 9, 10};
  r.sampling.max_tokens = 200;
  r.sampling.stop_token_ids = {};
  r.sampling.ignore_eos = true;
  auto s = engine->submit(r);
  ASSERT_TRUE(s.has_value());
  auto first = (*s)->next(5s);
  ASSERT_TRUE(first.has_value());
  EXPECT_GT(engine->metrics().kv_pages_used, 0);
  engine->cancel((*s)->id());
  auto [toks, fin] = drain(**s);
  EXPECT_EQ(fin.finish, FinishReason::kCancelled);
  EXPECT_LT(fin.generated_tokens, 200);
  const EngineMetrics m = engine->metrics();
  EXPECT_EQ(m.kv_pages_used, 0);
  EXPECT_EQ(m.requests_cancelled, 1u);
}

TEST(Engine, RejectsBadRequestsAndFullQueue) {
  SchedulerConfig sc;
  sc.max_waiting = 2;
  sc.max_batch = 1;
  sc.max_tokens_per_step = 2;
  testing::FakeBackend* fake = nullptr;
  auto engine = make_engine(8, sc, &fake);
  GenerationRequest empty;
  EXPECT_EQ(engine->submit(empty).status().code(), StatusCode::kInvalidArgument);
  GenerationRequest bad_id;
  bad_id.prompt = {kVocab + 3};
  EXPECT_EQ(engine->submit(bad_id).status().code(), StatusCode::kInvalidArgument);
  GenerationRequest too_long;
  too_long.prompt.assign(kCtx, 1);
  EXPECT_EQ(engine->submit(too_long).status().code(), StatusCode::kInvalidArgument);
  GenerationRequest too_many_pages;  // 8 pages of 4 tokens cannot hold 40 tokens
  too_many_pages.prompt.assign(40, 1);
  EXPECT_EQ(engine->submit(too_many_pages).status().code(), StatusCode::kInvalidArgument);
  GenerationRequest over_ctx;
  over_ctx.prompt = {1, 2};
  over_ctx.sampling.max_tokens = kCtx;
  EXPECT_EQ(engine->submit(over_ctx).status().code(), StatusCode::kInvalidArgument);

  fake->set_step_delay(20ms);
  GenerationRequest ok;
  ok.prompt = {1, 2, 3};
  ok.sampling.max_tokens = 50;
  ok.sampling.ignore_eos = true;
  std::vector<std::shared_ptr<RequestStream>> streams;
  Status last;
  for (int i = 0; i < 6; ++i) {
    auto s = engine->submit(ok);
    if (s.has_value()) {
      streams.push_back(*s);
    } else {
      last = s.status();
    }
  }
  EXPECT_EQ(last.code(), StatusCode::kResourceExhausted);
  EXPECT_LE(streams.size(), 4u);
  for (auto& s : streams) engine->cancel(s->id());
  for (auto& s : streams) drain(*s);
  EXPECT_GT(engine->metrics().requests_rejected, 0u);
}

TEST(Engine, BackendFailureFailsOnlyThatStep) {
  testing::FakeBackend* fake = nullptr;
  auto engine = make_engine(32, {}, &fake);
  fake->fail_next_step();
  GenerationRequest r;
  r.prompt = {1, 2, 3};
  r.sampling.max_tokens = 4;
  auto s = engine->submit(r);
  ASSERT_TRUE(s.has_value());
  auto [toks, fin] = drain(**s);
  EXPECT_EQ(fin.finish, FinishReason::kError);
  EXPECT_NE(fin.error.find("injected"), std::string::npos);
  auto again = engine->submit(r);
  ASSERT_TRUE(again.has_value());
  auto [toks2, fin2] = drain(**again);
  EXPECT_EQ(toks2, testing::fake_generate(r.prompt, 4, kVocab, {5}, kCtx));
  EXPECT_EQ(engine->check_invariants(), "");
}

TEST(Engine, ShutdownDrainsThenCancels) {
  testing::FakeBackend* fake = nullptr;
  auto engine = make_engine(64, {}, &fake);
  fake->set_step_delay(1ms);
  GenerationRequest quick;
  quick.prompt = {1, 2, 3};
  quick.sampling.max_tokens = 3;
  quick.sampling.ignore_eos = true;
  GenerationRequest slow = quick;
  slow.sampling.max_tokens = kCtx - 4;
  auto a = engine->submit(quick);
  ASSERT_TRUE(a.has_value());
  fake->set_step_delay(30ms);
  auto b = engine->submit(slow);
  ASSERT_TRUE(b.has_value());
  // The grace covers the quick request's last few 30 ms steps with room for a loaded CI machine
  // (200 ms flaked under parallel ctest); the slow one needs ~7.5 s and is cancelled.
  engine->shutdown(1000ms);
  EXPECT_FALSE(engine->accepting());
  EXPECT_EQ(engine->submit(quick).status().code(), StatusCode::kCancelled);
  EXPECT_EQ(drain(**a).second.finish, FinishReason::kLength);
  EXPECT_EQ(drain(**b).second.finish, FinishReason::kCancelled);
  engine->shutdown(0ms);  // idempotent
}

}  // namespace
}  // namespace vortex::engine
