// The overlapped step loop (SchedulerConfig::overlap) on the CPU backend with a tiny synthetic
// model: every workload runs twice, overlap off (one step at a time) and on (step N+1 planned and
// launched while N runs, its decode tokens taken from N's samples), and the outputs must be
// identical — tokens, logprobs, finish reasons, the finish events' counts and the metrics' counts
// of generated tokens and finished requests — for greedy and seeded sampling, continuous batching
// with arrivals, prefix sharing, EOS / stop-token / stop-string (server-style cancel) finishes in
// the middle of a batch, max_tokens ends, cancellations, preemption under pool pressure, and
// requests with logprobs or sampling penalties mixed in (which drain the pipeline). The ownership
// audit runs after every step. Cancellations and stop strings are triggered by the tokens a
// request emitted (as the server does), not by step counts: overlap admits a request one step
// later, so a trigger counted in steps would cut a request at a different token.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "vortex/engine/cpu_backend.h"
#include "vortex/engine/scheduler.h"
#include "vortex/model/synthetic_weights.h"

namespace vortex::engine {
namespace {

std::unique_ptr<Backend> tiny_backend(int64_t pages, int32_t page_size,
                                      std::vector<int32_t> eos = {}) {
  auto config = synthetic_config("tiny-llama");
  EXPECT_TRUE(config.has_value()) << config.status().to_string();
  config->eos_token_ids = std::move(eos);
  auto weights = synthetic_weights(*config, 7);
  EXPECT_TRUE(weights.has_value());
  auto model = CpuModel::create(*config, std::move(weights).value());
  EXPECT_TRUE(model.has_value()) << model.status().to_string();
  CpuBackendOptions o;
  o.page_size = page_size;
  o.kv_pages = pages;
  auto b = make_cpu_backend(std::move(model).value(), o);
  EXPECT_TRUE(b.has_value()) << b.status().to_string();
  return std::move(b).value();
}

struct Workload {
  std::vector<GenerationRequest> reqs;
  std::vector<int64_t> arrivals;  // step() call before which each request is added
  /// When request `watch` has emitted `after` tokens, request `target` is cancelled.
  struct TriggeredCancel {
    size_t watch = 0;
    size_t after = 0;
    size_t target = 0;
  };
  std::vector<TriggeredCancel> cancels;
  /// Server-style stop strings: when request i's output ends with the pattern, it is cancelled.
  std::map<size_t, std::vector<int32_t>> stop_patterns;
  /// Cancels between steps: before step() call s, request i (when added).
  std::map<int64_t, size_t> cancel_at_step;
};

struct RunResult {
  std::map<size_t, std::vector<SampledToken>> samples;  // by request index
  std::map<size_t, FinishReason> reasons;
  std::map<size_t, int32_t> finish_generated;  // the finish event's generated_tokens
  EngineMetrics metrics;
  bool overlap = false;
};

RunResult run(Backend& backend, SchedulerConfig sc, bool overlap, const Workload& w) {
  sc.overlap = overlap;
  RunResult out;
  Scheduler sched(sc, backend);
  out.overlap = sched.overlap();
  std::map<uint64_t, size_t> index;  // id -> request index
  std::vector<uint64_t> ids(w.reqs.size(), 0);
  std::vector<bool> fired(w.cancels.size(), false);
  sched.set_event_callback([&](uint64_t id, const RequestEvent& e) {
    const size_t i = index.at(id);
    EXPECT_EQ(out.reasons.count(i), 0u) << "request " << i << " got an event after finishing";
    auto& got = out.samples[i];
    got.insert(got.end(), e.tokens.begin(), e.tokens.end());
    if (e.finish != FinishReason::kNone) {
      out.reasons[i] = e.finish;
      out.finish_generated[i] = e.generated_tokens;
      return;
    }
    for (size_t k = 0; k < w.cancels.size(); ++k) {
      const auto& c = w.cancels[k];
      if (!fired[k] && c.watch == i && got.size() >= c.after && ids[c.target] != 0) {
        fired[k] = true;
        sched.cancel(ids[c.target]);
      }
    }
    if (auto it = w.stop_patterns.find(i); it != w.stop_patterns.end()) {
      const auto& p = it->second;
      if (got.size() >= p.size() &&
          std::equal(p.begin(), p.end(), got.end() - static_cast<ptrdiff_t>(p.size()),
                     [](int32_t a, const SampledToken& b) { return a == b.token; })) {
        sched.cancel(id);
      }
    }
  });
  size_t next = 0;
  for (int64_t step = 0; next < w.reqs.size() || sched.has_work(); ++step) {
    while (next < w.reqs.size() && w.arrivals[next] <= step) {
      auto id = sched.add(w.reqs[next]);
      EXPECT_TRUE(id.has_value()) << id.status().to_string();
      if (id.has_value()) {
        index[*id] = next;
        ids[next] = *id;
      }
      ++next;
    }
    if (auto it = w.cancel_at_step.find(step); it != w.cancel_at_step.end()) {
      if (ids[it->second] != 0) sched.cancel(ids[it->second]);
    }
    sched.step();
    const std::string audit = sched.check_invariants();
    EXPECT_EQ(audit, "") << "step " << step << (overlap ? " (overlap)" : "");
    EXPECT_LE(sched.num_in_flight(), overlap ? 1 : 0) << "step() leaves at most one in flight";
    if (!audit.empty() || step > 20000) break;
  }
  EXPECT_EQ(sched.num_in_flight(), 0);
  out.metrics = sched.metrics();
  EXPECT_EQ(backend.pool().num_used(), sched.prefix_cache().num_pages());
  return out;
}

void expect_same_outputs(const RunResult& sync, const RunResult& over, size_t num_requests) {
  ASSERT_FALSE(sync.overlap);
  ASSERT_TRUE(over.overlap);
  for (size_t i = 0; i < num_requests; ++i) {
    ASSERT_EQ(sync.reasons.count(i), 1u) << "request " << i << " never finished (sync)";
    ASSERT_EQ(over.reasons.count(i), 1u) << "request " << i << " never finished (overlap)";
    EXPECT_EQ(sync.reasons.at(i), over.reasons.at(i)) << "request " << i;
    EXPECT_EQ(sync.finish_generated.at(i), over.finish_generated.at(i)) << "request " << i;
    const auto empty = std::vector<SampledToken>{};
    const auto& a = sync.samples.count(i) ? sync.samples.at(i) : empty;
    const auto& b = over.samples.count(i) ? over.samples.at(i) : empty;
    ASSERT_EQ(a.size(), b.size()) << "request " << i;
    EXPECT_EQ(static_cast<int32_t>(a.size()), sync.finish_generated.at(i)) << "request " << i;
    for (size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a[k].token, b[k].token) << "request " << i << " token " << k;
      // Batches of different shapes may round the logits differently in the last bits.
      EXPECT_NEAR(a[k].logprob, b[k].logprob, 1e-4) << "request " << i << " token " << k;
      ASSERT_EQ(a[k].top.size(), b[k].top.size()) << "request " << i << " token " << k;
      for (size_t j = 0; j < a[k].top.size(); ++j) {
        EXPECT_EQ(a[k].top[j].first, b[k].top[j].first) << "request " << i << " token " << k;
        EXPECT_NEAR(a[k].top[j].second, b[k].top[j].second, 1e-4);
      }
    }
  }
  const EngineMetrics& ms = sync.metrics;
  const EngineMetrics& mo = over.metrics;
  EXPECT_EQ(ms.generated_tokens, mo.generated_tokens);
  EXPECT_EQ(ms.requests_finished, mo.requests_finished);
  EXPECT_EQ(ms.requests_stopped, mo.requests_stopped);
  EXPECT_EQ(ms.requests_length, mo.requests_length);
  EXPECT_EQ(ms.requests_cancelled, mo.requests_cancelled);
  EXPECT_EQ(ms.requests_failed, mo.requests_failed);
  EXPECT_EQ(ms.ttft.count(), mo.ttft.count());
  EXPECT_EQ(ms.itl.count(), mo.itl.count());
  EXPECT_EQ(ms.overlapped_steps, 0u);
  EXPECT_EQ(ms.discarded_tokens, 0u);
  uint64_t emitted = 0;
  for (const auto& [i, s] : over.samples) emitted += s.size();
  EXPECT_EQ(mo.generated_tokens, emitted) << "discarded samples were counted";
}

struct Pair {
  RunResult sync, over;
};

/// Runs the workload with overlap off and on, each on a fresh backend, and compares.
template <typename Make>
Pair run_both(Make make, const SchedulerConfig& sc, const Workload& w) {
  Pair p;
  auto a = make();
  p.sync = run(*a, sc, false, w);
  auto b = make();
  p.over = run(*b, sc, true, w);
  expect_same_outputs(p.sync, p.over, w.reqs.size());
  return p;
}

GenerationRequest request(std::mt19937& rng, const std::vector<int32_t>& shared, bool share,
                          int32_t max_new) {
  GenerationRequest r;
  if (share) r.prompt.assign(shared.begin(), shared.begin() + 20 + rng() % 20);
  const size_t len = r.prompt.size() + 2 + rng() % 40;
  while (r.prompt.size() < len) r.prompt.push_back(static_cast<int32_t>(rng() % 256));
  r.sampling.max_tokens = 1 + static_cast<int32_t>(rng() % static_cast<uint32_t>(max_new));
  return r;
}

/// `n` requests, a third sharing a prefix, arriving over `spread` steps; even ones greedy, odd
/// ones seeded sampling.
Workload mixed_workload(uint32_t seed, int n, int64_t spread, int32_t max_new = 24) {
  std::mt19937 rng(seed);
  std::vector<int32_t> shared(40);
  for (auto& t : shared) t = static_cast<int32_t>(rng() % 256);
  Workload w;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r = request(rng, shared, i % 3 == 0, max_new);
    if (i % 2 == 1) {
      r.sampling.temperature = 0.8f;
      r.sampling.top_p = 0.9f;
      r.sampling.top_k = i % 4 == 1 ? 40 : 0;
      r.sampling.seed = 1000 + static_cast<uint64_t>(i);
    }
    w.reqs.push_back(r);
    w.arrivals.push_back(spread > 0 ? static_cast<int64_t>(rng() % spread) : 0);
  }
  std::sort(w.arrivals.begin(), w.arrivals.end());
  return w;
}

SchedulerConfig roomy_config() {
  SchedulerConfig sc;
  sc.max_batch = 8;
  sc.max_tokens_per_step = 40;  // prompts up to 80 tokens: chunked prefill
  return sc;
}

TEST(Overlap, OnlyWhenTheBackendSupportsIt) {
  auto backend = tiny_backend(64, 4);
  ASSERT_TRUE(backend->supports_overlap());
  SchedulerConfig sc;
  EXPECT_TRUE(sc.overlap);  // the default
  EXPECT_TRUE(Scheduler(sc, *backend).overlap());
  sc.overlap = false;
  EXPECT_FALSE(Scheduler(sc, *backend).overlap());
}

TEST(Overlap, GreedyAndSeededSamplingWithArrivalsAndPrefixSharing) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const Workload w = mixed_workload(seed, 16, 20);
    const Pair p = run_both([] { return tiny_backend(400, 4); }, roomy_config(), w);
    EXPECT_GT(p.over.metrics.overlapped_steps, p.over.metrics.steps / 2)
        << "overlap rarely happened";
    EXPECT_GT(p.sync.metrics.prefix_hit_tokens, 0u);
    EXPECT_GT(p.over.metrics.prefix_hit_tokens, 0u);
    EXPECT_EQ(p.sync.metrics.preemptions, 0u);
    // Only max_tokens ends: known in advance, never speculated past.
    EXPECT_EQ(p.over.metrics.discarded_tokens, 0u);
    EXPECT_EQ(p.over.metrics.requests_length, 16u);
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(Overlap, SingleTokenRequestsAndOneAtATime) {
  Workload w = mixed_workload(4, 8, 6, 3);
  for (auto& r : w.reqs) r.sampling.max_tokens = 1 + static_cast<int32_t>(r.prompt.size() % 2);
  SchedulerConfig sc;
  sc.max_batch = 1;
  sc.max_tokens_per_step = 16;
  const Pair p = run_both([] { return tiny_backend(100, 4); }, sc, w);
  EXPECT_EQ(p.over.metrics.discarded_tokens, 0u);
}

/// The outputs of `w` run alone-batched with overlap off (the reference for picking stops).
RunResult reference(const Workload& w, const SchedulerConfig& sc, std::vector<int32_t> eos = {}) {
  auto b = tiny_backend(400, 4, std::move(eos));
  return run(*b, sc, false, w);
}

TEST(Overlap, EosStopTokensAndStopStringsFinishMidBatch) {
  Workload w = mixed_workload(5, 14, 8, 30);
  for (auto& r : w.reqs) r.sampling.max_tokens = 30;
  const SchedulerConfig sc = roomy_config();
  const RunResult ref = reference(w, sc);
  // The model's EOS: request 0's 6th token. Stop tokens and stop strings of other requests: a
  // token (pair) from the middle of their own reference output.
  const int32_t eos = ref.samples.at(0)[5].token;
  for (size_t i = 1; i < w.reqs.size(); ++i) {
    const auto& out = ref.samples.at(i);
    if (i % 3 == 1) {
      w.reqs[i].sampling.stop_token_ids = {out[3 + i % 7].token};
    } else if (i % 3 == 2) {
      w.stop_patterns[i] = {out[4 + i % 5].token, out[5 + i % 5].token};
    } else {
      w.reqs[i].sampling.ignore_eos = true;
    }
  }
  const Pair p = run_both([&] { return tiny_backend(400, 4, {eos}); }, sc, w);
  const EngineMetrics& m = p.over.metrics;
  EXPECT_GE(m.requests_stopped, 5u);    // EOS and stop tokens
  EXPECT_GE(m.requests_cancelled, 3u);  // stop strings
  EXPECT_GT(m.requests_length, 0u);
  // Finishes the scheduler could not know in advance: their overlapped samples were discarded.
  EXPECT_GT(m.discarded_tokens, 0u);
  EXPECT_GT(m.overlapped_steps, 0u);
}

TEST(Overlap, CancellationsMidRun) {
  Workload w = mixed_workload(6, 12, 10, 30);
  for (auto& r : w.reqs) r.sampling.max_tokens = 20 + static_cast<int32_t>(r.prompt.size() % 10);
  // A request cancelled after its k-th token (a client that stops reading): the same point in
  // both modes.
  w.cancels = {{1, 3, 1}, {4, 1, 4}, {5, 9, 5}, {8, 12, 8}, {11, 2, 11}};
  const Pair p = run_both([] { return tiny_backend(400, 4); }, roomy_config(), w);
  EXPECT_EQ(p.over.metrics.requests_cancelled, 5u);
  EXPECT_GT(p.over.metrics.discarded_tokens, 0u);
}

TEST(Overlap, CancellationsOfOtherRequestsKeepOutputsPrefixes) {
  // One request's tokens cancel another (running, or still waiting: max_batch 3), and cancels
  // arrive between steps: where another request is cut depends on the schedule, which overlap
  // changes (admission one step later), so each output must be a prefix of the uncancelled one,
  // and the uncancelled outputs identical.
  Workload w = mixed_workload(16, 12, 10, 30);
  SchedulerConfig sc;
  sc.max_batch = 3;
  sc.max_tokens_per_step = 24;
  const RunResult ref = reference(w, sc);
  w.cancels = {{0, 3, 1}, {2, 5, 4}, {4, 1, 7}, {6, 2, 11}, {8, 12, 9}, {0, 1, 10}};
  w.cancel_at_step = {{6, 3}, {14, 6}, {15, 8}};
  for (bool overlap : {false, true}) {
    auto backend = tiny_backend(400, 4);
    const RunResult got = run(*backend, sc, overlap, w);
    EXPECT_EQ(got.metrics.requests_finished, w.reqs.size());
    EXPECT_GE(got.metrics.requests_cancelled, 3u);
    for (size_t i = 0; i < w.reqs.size(); ++i) {
      ASSERT_EQ(got.reasons.count(i), 1u) << "request " << i;
      const auto& r = ref.samples.at(i);
      const auto none = std::vector<SampledToken>{};
      const auto& g = got.samples.count(i) ? got.samples.at(i) : none;
      ASSERT_LE(g.size(), r.size()) << "request " << i;
      if (got.reasons.at(i) != FinishReason::kCancelled) {
        EXPECT_EQ(g.size(), r.size()) << "request " << i;
      }
      for (size_t k = 0; k < g.size(); ++k) EXPECT_EQ(g[k].token, r[k].token) << "request " << i;
    }
  }
}

TEST(Overlap, PoolPressureForcesPreemption) {
  for (uint32_t seed : {7u, 8u}) {
    Workload w = mixed_workload(seed, 14, 12);
    w.cancels = {{3, 4, 3}};
    SchedulerConfig sc;
    sc.max_batch = 5;
    sc.max_tokens_per_step = 24;
    const Pair p = run_both([] { return tiny_backend(/*pages=*/28, 4); }, sc, w);
    EXPECT_GT(p.sync.metrics.preemptions, 0u);
    EXPECT_GT(p.over.metrics.preemptions, 0u);
    EXPECT_GT(p.over.metrics.overlapped_steps, 0u);
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(Overlap, LogprobsAndPenaltiesMixedIn) {
  Workload w = mixed_workload(9, 15, 10);
  for (size_t i = 0; i < w.reqs.size(); ++i) {
    SamplingParams& s = w.reqs[i].sampling;
    switch (i % 5) {
      case 1:
        w.reqs[i].top_logprobs = static_cast<int32_t>(i % 4);
        break;
      case 2:
        s.repetition_penalty = 1.3f;
        break;
      case 3:
        s.frequency_penalty = 0.6f;
        s.presence_penalty = 0.4f;
        break;
      default:
        break;
    }
  }
  const Pair p = run_both([] { return tiny_backend(400, 4); }, roomy_config(), w);
  EXPECT_GT(p.over.metrics.overlapped_steps, 0u);
  EXPECT_LT(p.over.metrics.overlapped_steps, p.over.metrics.steps) << "nothing drained";
}

TEST(Overlap, LogprobsOrPenaltiesEverywhereDrainEveryStep) {
  for (int kind = 0; kind < 2; ++kind) {
    Workload w = mixed_workload(10 + static_cast<uint32_t>(kind), 6, 0);
    for (auto& r : w.reqs) {
      if (kind == 0) r.top_logprobs = 2;
      if (kind == 1) r.sampling.presence_penalty = 0.5f;
    }
    SchedulerConfig sc;
    sc.max_batch = 8;
    sc.max_tokens_per_step = 512;  // every prompt in the first step, which samples them all
    const Pair p = run_both([] { return tiny_backend(400, 4); }, sc, w);
    EXPECT_EQ(p.over.metrics.overlapped_steps, 0u) << (kind == 0 ? "logprobs" : "penalties");
  }
}

TEST(Overlap, RandomMixOfEverything) {
  for (uint32_t seed = 20; seed < 24; ++seed) {
    std::mt19937 rng(seed);
    Workload w = mixed_workload(seed, 18, 25, 20);
    const SchedulerConfig sc = [&] {
      SchedulerConfig c;
      c.max_batch = 4 + static_cast<int32_t>(rng() % 5);
      c.max_tokens_per_step = 16 + static_cast<int32_t>(rng() % 32);
      c.max_tokens_per_step = std::max(c.max_tokens_per_step, c.max_batch);
      c.prefix_cache = rng() % 4 != 0;
      return c;
    }();
    const int64_t pages = 30 + static_cast<int64_t>(rng() % 40);
    for (size_t i = 0; i < w.reqs.size(); ++i) {
      const uint32_t r = rng() % 10;
      if (r == 0) w.reqs[i].top_logprobs = 1;
      if (r == 1) w.reqs[i].sampling.repetition_penalty = 1.2f;
      if (r == 2) w.reqs[i].sampling.stop_token_ids = {static_cast<int32_t>(rng() % 256)};
      if (r == 3) {
        w.cancels.push_back({i, 1 + rng() % 6, i});
      }
    }
    const Pair p = run_both([&] { return tiny_backend(pages, 4); }, sc, w);
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "seed " << seed;
      break;
    }
  }
}

}  // namespace
}  // namespace vortex::engine
