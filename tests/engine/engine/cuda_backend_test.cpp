// The engine on the CUDA backend (GPU; skips without one): the scheduler drives CudaModel through
// plan/launch/wait with device sampling — continuous batching, chunked prefill, prefix sharing,
// mixed dense and sparse flows, logprobs — and every request's output agrees with the same
// request run alone on the same backend (the first tokens exactly; bf16 GEMMs of different batch
// shapes may round differently, so a late near-tie may flip), and with the CPU backend's. The
// overlapped step loop (step N+1 launched before N is read, its decode tokens taken from N's
// samples on the device) gives the same outputs as one step at a time.
#include "vortex/engine/cuda_backend.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "vortex/core/cuda_allocator.h"
#include "vortex/engine/cpu_backend.h"
#include "vortex/engine/flow_set.h"
#include "vortex/engine/scheduler.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/cpu_model.h"
#include "vortex/model/synthetic_weights.h"

namespace vortex::engine {
namespace {

#define SKIP_WITHOUT_GPU()                                          \
  do {                                                              \
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

// A small Llama with a shape the CUDA kernels support (head_dim 64, G = 2).
Checkpoint small_checkpoint() {
  Checkpoint ck;
  ck.config = synthetic_config("tiny-llama").value();
  ck.config.name = "gpu-engine-llama";
  ck.config.num_layers = 3;
  ck.config.hidden_size = 256;
  ck.config.num_q_heads = 4;
  ck.config.num_kv_heads = 2;
  ck.config.head_dim = 64;
  ck.config.intermediate_size = 512;
  ck.config.vocab_size = 1000;
  ck.weights = synthetic_weights(ck.config, 7).value();
  ck.source = "test";
  return ck;
}

std::unique_ptr<Backend> gpu_backend(const Checkpoint& ck, int64_t pages,
                                     const FlowSet* flows = nullptr) {
  CudaBackendOptions o;
  o.page_size = 16;
  o.kv_pages = pages;
  o.max_batch = 16;
  o.max_tokens = 256;
  o.gemm_autotune = false;  // the same GEMM algorithm (bits) in every backend instance
  if (flows != nullptr) o.flows = flows->configs();
  auto b = make_cuda_backend("test", o, &ck);
  EXPECT_TRUE(b.has_value()) << b.status().to_string();
  return b.has_value() ? std::move(b).value() : nullptr;
}

struct RunResult {
  std::map<uint64_t, std::vector<int32_t>> tokens;
  std::map<uint64_t, std::vector<SampledToken>> samples;
  std::map<uint64_t, FinishReason> reasons;
  EngineMetrics metrics;
};

RunResult run(Backend& backend, const SchedulerConfig& sc,
              const std::vector<GenerationRequest>& reqs, const std::vector<int64_t>& arrivals) {
  RunResult out;
  Scheduler sched(sc, backend);
  sched.set_event_callback([&](uint64_t id, const RequestEvent& e) {
    for (const auto& t : e.tokens) {
      out.tokens[id].push_back(t.token);
      out.samples[id].push_back(t);
    }
    if (e.finish != FinishReason::kNone) out.reasons[id] = e.finish;
  });
  size_t next = 0;
  for (int64_t step = 0; next < reqs.size() || sched.has_work(); ++step) {
    while (next < reqs.size() && arrivals[next] <= step) {
      auto id = sched.add(reqs[next++]);
      EXPECT_TRUE(id.has_value()) << id.status().to_string();
    }
    sched.step();
    const std::string audit = sched.check_invariants();
    EXPECT_EQ(audit, "") << "step " << step;
    if (!audit.empty() || step > 20000) break;
  }
  out.metrics = sched.metrics();
  return out;
}

std::vector<GenerationRequest> random_requests(uint32_t seed, int n, int vocab) {
  std::mt19937 rng(seed);
  std::vector<int32_t> shared(70);
  for (auto& t : shared) t = static_cast<int32_t>(rng() % vocab);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    if (i % 3 == 0) r.prompt.assign(shared.begin(), shared.begin() + 40 + rng() % 30);
    const size_t len = r.prompt.size() + 1 + rng() % 90;
    while (r.prompt.size() < len) r.prompt.push_back(static_cast<int32_t>(rng() % vocab));
    r.sampling.max_tokens = 4 + static_cast<int32_t>(rng() % 20);
    r.sampling.seed = 1000 + static_cast<uint64_t>(i);
    reqs.push_back(r);
  }
  return reqs;
}

// Tokens of `got` equal to `ref` before the first difference.
size_t common_prefix(const std::vector<int32_t>& got, const std::vector<int32_t>& ref) {
  size_t k = 0;
  while (k < got.size() && k < ref.size() && got[k] == ref[k]) ++k;
  return k;
}

// Every request batched vs alone on `make()`'s backend: the first `exact` tokens equal, and at
// least 90% of all tokens before the first difference.
template <typename Make>
void expect_batched_matches_solo(const std::vector<GenerationRequest>& reqs, Make make,
                                 const SchedulerConfig& sc, const RunResult& batched,
                                 size_t exact) {
  SchedulerConfig solo_cfg;
  solo_cfg.max_batch = 1;
  solo_cfg.max_tokens_per_step = 64;
  solo_cfg.prefix_cache = false;
  (void)sc;
  size_t agree = 0, total = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto solo_backend = make();
    ASSERT_NE(solo_backend, nullptr);
    const RunResult solo = run(*solo_backend, solo_cfg, {reqs[i]}, {0});
    const uint64_t id = i + 1;
    ASSERT_EQ(batched.reasons.count(id), 1u) << "request " << id << " never finished";
    EXPECT_EQ(batched.reasons.at(id), FinishReason::kLength) << "request " << id;
    const auto& ref = solo.tokens.begin()->second;
    const auto& got = batched.tokens.at(id);
    ASSERT_EQ(got.size(), ref.size()) << "request " << id;
    const size_t k = common_prefix(got, ref);
    EXPECT_GE(k, std::min(exact, ref.size())) << "request " << id << " diverges at token " << k;
    agree += k;
    total += ref.size();
  }
  EXPECT_GE(static_cast<double>(agree), 0.9 * static_cast<double>(total))
      << agree << " of " << total << " tokens agree before the first difference";
}

TEST(CudaBackend, GreedyBatchedMatchesSoloWithChunkedPrefillAndPrefixSharing) {
  SKIP_WITHOUT_GPU();
  const Checkpoint ck = small_checkpoint();
  const auto reqs = random_requests(11, 14, ck.config.vocab_size);
  std::vector<int64_t> arrivals;
  std::mt19937 rng(12);
  for (size_t i = 0; i < reqs.size(); ++i) arrivals.push_back(static_cast<int64_t>(rng() % 20));
  std::sort(arrivals.begin(), arrivals.end());
  SchedulerConfig sc;
  sc.max_batch = 6;
  sc.max_tokens_per_step = 48;  // prompts up to 160 tokens: chunked prefill
  auto backend = gpu_backend(ck, 200);
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->info().name, "cuda:0");
  const RunResult batched = run(*backend, sc, reqs, arrivals);
  EXPECT_GT(batched.metrics.prefix_hit_tokens, 0u);
  EXPECT_EQ(backend->pool().num_used(), 0);
  expect_batched_matches_solo(
      reqs, [&] { return gpu_backend(ck, 64); }, sc, batched, 3);
}

TEST(CudaBackend, AgreesWithTheCpuBackend) {
  SKIP_WITHOUT_GPU();
  const Checkpoint ck = small_checkpoint();
  const auto reqs = random_requests(31, 6, ck.config.vocab_size);
  SchedulerConfig sc;
  sc.max_batch = 6;
  sc.max_tokens_per_step = 256;
  auto gpu = gpu_backend(ck, 100);
  ASSERT_NE(gpu, nullptr);
  const RunResult g = run(*gpu, sc, reqs, std::vector<int64_t>(reqs.size(), 0));
  CpuBackendOptions co;
  co.page_size = 16;
  co.kv_pages = 100;
  co.kv_dtype = DType::kBF16;
  auto cpu = make_cpu_backend(CpuModel::create(ck.config, ck.weights).value(), co);
  ASSERT_TRUE(cpu.has_value()) << cpu.status().to_string();
  const RunResult c = run(**cpu, sc, reqs, std::vector<int64_t>(reqs.size(), 0));
  size_t agree = 0, total = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& ref = c.tokens.at(i + 1);
    const size_t k = common_prefix(g.tokens.at(i + 1), ref);
    EXPECT_GE(k, std::min<size_t>(2, ref.size())) << "request " << i + 1;
    agree += k;
    total += ref.size();
  }
  EXPECT_GE(static_cast<double>(agree), 0.8 * static_cast<double>(total))
      << agree << " of " << total << " tokens agree with the CPU backend";
}

TEST(CudaBackend, SparseFlowsShareABatchWithDense) {
  SKIP_WITHOUT_GPU();
  const Checkpoint ck = small_checkpoint();
  flow::BudgetParams budget;
  budget.topk_val = 2;
  budget.bos = 1;
  budget.eos = 1;
  auto flows = FlowSet::load({"block_topk", "quest"}, "dense", budget, 16, ck.config.num_layers);
  ASSERT_TRUE(flows.has_value()) << flows.status().to_string();
  auto reqs = random_requests(21, 9, ck.config.vocab_size);
  const char* names[] = {"dense", "block_topk", "quest"};
  for (size_t i = 0; i < reqs.size(); ++i) {
    FlowOverrides o;
    o.flow = names[i % 3];
    auto rf = flows->resolve(o);
    ASSERT_TRUE(rf.has_value()) << rf.status().to_string();
    reqs[i].flow = *rf;
    reqs[i].sampling.max_tokens = 30;  // long enough to cross pages past the budget
  }
  SchedulerConfig sc;
  sc.max_batch = 9;
  sc.max_tokens_per_step = 256;
  auto backend = gpu_backend(ck, 200, &*flows);
  ASSERT_NE(backend, nullptr);
  const RunResult batched = run(*backend, sc, reqs, std::vector<int64_t>(reqs.size(), 0));
  EXPECT_LT(batched.metrics.selected_page_fraction(), 1.0);  // sparse rows really selected
  expect_batched_matches_solo(
      reqs, [&] { return gpu_backend(ck, 64, &*flows); }, sc, batched, 3);
}

TEST(CudaBackend, LogprobsComeFromTheRawDistribution) {
  SKIP_WITHOUT_GPU();
  const Checkpoint ck = small_checkpoint();
  auto reqs = random_requests(41, 3, ck.config.vocab_size);
  for (auto& r : reqs) r.top_logprobs = 4;
  auto backend = gpu_backend(ck, 64);
  ASSERT_NE(backend, nullptr);
  SchedulerConfig sc;
  const RunResult out = run(*backend, sc, reqs, {0, 0, 0});
  for (const auto& [id, samples] : out.samples) {
    ASSERT_FALSE(samples.empty());
    for (const SampledToken& s : samples) {
      ASSERT_EQ(s.top.size(), 4u) << "request " << id;
      EXPECT_LE(s.logprob, 0.0f);
      // Greedy: the chosen token is the most likely one.
      EXPECT_EQ(s.top[0].first, s.token);
      EXPECT_NEAR(s.top[0].second, s.logprob, 1e-6);
      for (size_t j = 1; j < s.top.size(); ++j) EXPECT_LE(s.top[j].second, s.top[j - 1].second);
    }
  }
}

// Runs `reqs` with overlap off (twice: is the GPU run-to-run deterministic for equal shapes?)
// and on, each on a fresh backend.
struct OverlapRuns {
  RunResult sync, sync_again, over;
};

template <typename Make>
OverlapRuns run_overlap_off_and_on(Make make, SchedulerConfig sc,
                                   const std::vector<GenerationRequest>& reqs,
                                   const std::vector<int64_t>& arrivals) {
  OverlapRuns r;
  sc.overlap = false;
  auto a = make();
  EXPECT_NE(a, nullptr);
  if (a == nullptr) return r;
  r.sync = run(*a, sc, reqs, arrivals);
  auto b = make();
  r.sync_again = run(*b, sc, reqs, arrivals);
  sc.overlap = true;
  auto c = make();
  EXPECT_TRUE(c->supports_overlap());
  r.over = run(*c, sc, reqs, arrivals);
  EXPECT_EQ(r.sync.metrics.overlapped_steps, 0u);
  EXPECT_GT(r.over.metrics.overlapped_steps, 0u);
  EXPECT_EQ(r.over.metrics.requests_failed, 0u) << "a step failed with overlap on";
  EXPECT_EQ(r.over.metrics.requests_finished, reqs.size());
  return r;
}

bool same_tokens(const RunResult& a, const RunResult& b) { return a.tokens == b.tokens; }

TEST(CudaBackend, OverlapMatchesSynchronousStepsExactly) {
  SKIP_WITHOUT_GPU();
  // Every request arrives at once, no prefix cache and only max_tokens ends: the two modes run
  // the same sequence of batch shapes, so the logits are bitwise equal and so are the tokens —
  // greedy and seeded sampling (the device sampler's draw index must count the token in flight),
  // dense and block_topk rows mixed, CUDA-graph replays taking their input tokens from the
  // previous step's samples.
  const Checkpoint ck = small_checkpoint();
  flow::BudgetParams budget;
  budget.topk_val = 2;
  budget.bos = 1;
  budget.eos = 1;
  auto flows = FlowSet::load({"block_topk"}, "dense", budget, 16, ck.config.num_layers);
  ASSERT_TRUE(flows.has_value()) << flows.status().to_string();
  auto reqs = random_requests(51, 10, ck.config.vocab_size);
  for (size_t i = 0; i < reqs.size(); ++i) {
    FlowOverrides o;
    o.flow = i % 2 == 0 ? "dense" : "block_topk";
    auto rf = flows->resolve(o);
    ASSERT_TRUE(rf.has_value()) << rf.status().to_string();
    reqs[i].flow = *rf;
    reqs[i].sampling.ignore_eos = true;
    // The batch shrinks as requests end; the last steps are dense-only, replayed from CUDA
    // graphs (one decode range) of shrinking buckets.
    reqs[i].sampling.max_tokens =
        i % 2 == 0 ? 30 + static_cast<int32_t>(i % 4) * 4 : 20 + static_cast<int32_t>(i % 4) * 2;
    if (i % 3 == 1) {
      reqs[i].sampling.temperature = 0.8f;
      reqs[i].sampling.top_p = 0.95f;
    }
  }
  SchedulerConfig sc;
  sc.max_batch = 16;
  sc.max_tokens_per_step = 256;  // chunked prefill over the first steps
  sc.prefix_cache = false;
  const OverlapRuns r = run_overlap_off_and_on([&] { return gpu_backend(ck, 300, &*flows); }, sc,
                                               reqs, std::vector<int64_t>(reqs.size(), 0));
  EXPECT_EQ(r.over.metrics.discarded_tokens, 0u);  // only max_tokens ends: never speculated past
  EXPECT_EQ(r.sync.metrics.steps, r.over.metrics.steps);
  EXPECT_EQ(r.sync.metrics.generated_tokens, r.over.metrics.generated_tokens);
  EXPECT_LT(r.over.metrics.selected_page_fraction(), 1.0);  // sparse rows really selected
  ASSERT_TRUE(same_tokens(r.sync, r.sync_again))
      << "two synchronous runs differ: the GPU is not run-to-run deterministic here";
  for (size_t i = 0; i < reqs.size(); ++i) {
    const uint64_t id = i + 1;
    ASSERT_EQ(r.over.reasons.count(id), 1u) << "request " << id;
    EXPECT_EQ(r.over.reasons.at(id), FinishReason::kLength) << "request " << id;
    const auto& ref = r.sync.tokens.at(id);
    const auto& got = r.over.tokens.at(id);
    EXPECT_EQ(got, ref) << "request " << id << " (" << (i % 2 == 0 ? "dense" : "block_topk")
                        << ") diverges at token " << common_prefix(got, ref);
  }
}

TEST(CudaBackend, OverlapWithArrivalsStopsAndLogprobs) {
  SKIP_WITHOUT_GPU();
  // Arrivals, prefix sharing, stop tokens mid-batch and logprobs requests (which drain the
  // pipeline: the logits buffer holds one step): the schedules differ between the modes, so
  // outputs agree as batched runs agree with solo ones, and no step may fail.
  const Checkpoint ck = small_checkpoint();
  auto reqs = random_requests(61, 12, ck.config.vocab_size);
  SchedulerConfig sc;
  sc.max_batch = 6;
  sc.max_tokens_per_step = 48;
  auto make = [&] { return gpu_backend(ck, 200); };
  {
    // Stop tokens from the middle of each request's synchronous output.
    auto b = make();
    ASSERT_NE(b, nullptr);
    SchedulerConfig ref_sc = sc;
    ref_sc.overlap = false;
    const RunResult ref = run(*b, ref_sc, reqs, std::vector<int64_t>(reqs.size(), 0));
    for (size_t i = 0; i < reqs.size(); ++i) {
      const auto& out = ref.tokens.at(i + 1);
      if (i % 3 == 0 && out.size() > 3) reqs[i].sampling.stop_token_ids = {out[out.size() / 2]};
      if (i % 4 == 1) reqs[i].top_logprobs = 3;
    }
  }
  std::vector<int64_t> arrivals;
  std::mt19937 rng(62);
  for (size_t i = 0; i < reqs.size(); ++i) arrivals.push_back(static_cast<int64_t>(rng() % 15));
  std::sort(arrivals.begin(), arrivals.end());
  const OverlapRuns r = run_overlap_off_and_on(make, sc, reqs, arrivals);
  EXPECT_GT(r.over.metrics.requests_stopped, 0u);
  EXPECT_LT(r.over.metrics.overlapped_steps, r.over.metrics.steps) << "logprobs never drained";
  size_t agree = 0, total = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const uint64_t id = i + 1;
    ASSERT_EQ(r.over.reasons.count(id), 1u) << "request " << id;
    const auto& ref = r.sync.tokens.at(id);
    const auto& got = r.over.tokens.at(id);
    const size_t k = common_prefix(got, ref);
    EXPECT_GE(k, std::min<size_t>(3, ref.size())) << "request " << id << " diverges at " << k;
    if (k == ref.size()) {
      EXPECT_EQ(got.size(), ref.size()) << "request " << id;
    }
    agree += k;
    total += ref.size();
    if (reqs[i].top_logprobs >= 0) {
      for (const SampledToken& s : r.over.samples.at(id)) {
        ASSERT_EQ(s.top.size(), 3u) << "request " << id;
        EXPECT_EQ(s.top[0].first, s.token);  // greedy
      }
    }
  }
  EXPECT_GE(static_cast<double>(agree), 0.9 * static_cast<double>(total))
      << agree << " of " << total << " tokens agree before the first difference";
}

TEST(CudaBackend, PoolSizingAndBadOptions) {
  SKIP_WITHOUT_GPU();
  const Checkpoint ck = small_checkpoint();
  auto exact = gpu_backend(ck, 37);
  ASSERT_NE(exact, nullptr);
  EXPECT_EQ(exact->pool().capacity(), 37);
  // 3 layers x 2 kv heads x (K + V) x 16 tokens x 64 dims x bf16.
  EXPECT_EQ(exact->info().bytes_per_page, 3 * 2 * 2 * 16 * 64 * 2);
  CudaBackendOptions o;
  o.kv_memory_fraction = 0.01;
  auto frac = make_cuda_backend("test", o, &ck);
  ASSERT_TRUE(frac.has_value()) << frac.status().to_string();
  EXPECT_GT((*frac)->pool().capacity(), 100);
  o.kv_memory_fraction = 1.5;
  EXPECT_EQ(make_cuda_backend("test", o, &ck).status().code(), StatusCode::kInvalidArgument);
  o.kv_memory_fraction = 0.01;
  o.page_size = 8;
  EXPECT_EQ(make_cuda_backend("test", o, &ck).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vortex::engine
