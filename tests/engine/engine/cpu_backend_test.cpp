// The scheduler on the CPU backend with a tiny synthetic model: random arrivals, prompt lengths and
// cancellations under a small pool (preemption by recompute, chunked prefill, prefix cache), the
// ownership audit after every step, and every completed output equal to the same request run
// alone — greedy and seeded sampling alike.
#include "vortex/engine/cpu_backend.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "vortex/engine/flow_set.h"
#include "vortex/engine/scheduler.h"
#include "vortex/model/synthetic_weights.h"

namespace vortex::engine {
namespace {

std::unique_ptr<Backend> tiny_backend(int64_t pages, int32_t page_size,
                                      const FlowSet* flows = nullptr) {
  auto config = synthetic_config("tiny-llama");
  EXPECT_TRUE(config.has_value()) << config.status().to_string();
  auto weights = synthetic_weights(*config, 7);
  EXPECT_TRUE(weights.has_value());
  auto model = CpuModel::create(*config, std::move(weights).value());
  EXPECT_TRUE(model.has_value()) << model.status().to_string();
  CpuBackendOptions o;
  o.page_size = page_size;
  o.kv_pages = pages;
  if (flows != nullptr) o.flows = flows->configs();
  auto b = make_cpu_backend(std::move(model).value(), o);
  EXPECT_TRUE(b.has_value()) << b.status().to_string();
  return std::move(b).value();
}

struct RunResult {
  std::map<uint64_t, std::vector<int32_t>> tokens;
  std::map<uint64_t, FinishReason> reasons;
  EngineMetrics metrics;
};

/// Runs `reqs` (arriving at `arrivals` steps; cancelling ids in `cancel_at`) to completion.
RunResult run(Backend& backend, const SchedulerConfig& sc,
              const std::vector<GenerationRequest>& reqs, const std::vector<int64_t>& arrivals,
              const std::map<int64_t, size_t>& cancel_at = {}) {
  RunResult out;
  Scheduler sched(sc, backend);
  sched.set_event_callback([&](uint64_t id, const RequestEvent& e) {
    for (const auto& t : e.tokens) out.tokens[id].push_back(t.token);
    if (e.finish != FinishReason::kNone) {
      EXPECT_EQ(out.reasons.count(id), 0u) << "request " << id << " finished twice";
      out.reasons[id] = e.finish;
    }
  });
  std::vector<uint64_t> ids;
  size_t next = 0;
  for (int64_t step = 0; next < reqs.size() || sched.has_work(); ++step) {
    while (next < reqs.size() && arrivals[next] <= step) {
      auto id = sched.add(reqs[next++]);
      EXPECT_TRUE(id.has_value()) << id.status().to_string();
      ids.push_back(id.has_value() ? *id : 0);
    }
    if (auto it = cancel_at.find(step); it != cancel_at.end() && it->second < ids.size()) {
      sched.cancel(ids[it->second]);
    }
    sched.step();
    const std::string audit = sched.check_invariants();
    EXPECT_EQ(audit, "") << "step " << step;
    if (!audit.empty() || step > 20000) break;
  }
  out.metrics = sched.metrics();
  return out;
}

std::vector<GenerationRequest> random_requests(uint32_t seed, int n, float temperature) {
  std::mt19937 rng(seed);
  std::vector<int32_t> shared(40);
  for (auto& t : shared) t = static_cast<int32_t>(rng() % 256);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    if (i % 3 == 0) r.prompt.assign(shared.begin(), shared.begin() + 20 + rng() % 20);
    const size_t len = r.prompt.size() + 1 + rng() % 40;
    while (r.prompt.size() < len) r.prompt.push_back(static_cast<int32_t>(rng() % 256));
    r.sampling.max_tokens = 1 + static_cast<int32_t>(rng() % 24);
    r.sampling.temperature = temperature;
    r.sampling.top_p = temperature > 0 ? 0.9f : 1.0f;
    r.sampling.seed = 1000 + static_cast<uint64_t>(i);
    reqs.push_back(r);
  }
  return reqs;
}

void expect_batched_equals_solo(float temperature, uint32_t seed) {
  const auto reqs = random_requests(seed, 14, temperature);
  std::vector<int64_t> arrivals;
  std::mt19937 rng(seed + 1);
  for (size_t i = 0; i < reqs.size(); ++i) arrivals.push_back(static_cast<int64_t>(rng() % 30));
  std::sort(arrivals.begin(), arrivals.end());

  SchedulerConfig small;
  small.max_batch = 5;
  small.max_tokens_per_step = 24;
  auto tight = tiny_backend(/*pages=*/28, /*page_size=*/4);  // forces preemption
  const RunResult batched = run(*tight, small, reqs, arrivals, {{6, 3}, {15, 9}});
  EXPECT_GT(batched.metrics.preemptions, 0u);
  EXPECT_GT(batched.metrics.prefix_hit_tokens, 0u);
  EXPECT_EQ(tight->pool().num_used(), 0);

  SchedulerConfig roomy;
  roomy.max_batch = 1;
  roomy.max_tokens_per_step = 64;
  roomy.prefix_cache = false;
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto solo_backend = tiny_backend(64, 16);
    const RunResult solo = run(*solo_backend, roomy, {reqs[i]}, {0});
    const uint64_t id = i + 1;
    ASSERT_EQ(solo.tokens.size(), 1u);
    const auto& ref = solo.tokens.begin()->second;
    ASSERT_EQ(batched.reasons.count(id), 1u) << "request " << id << " never finished";
    const auto& got = batched.tokens.count(id) ? batched.tokens.at(id) : std::vector<int32_t>{};
    if (batched.reasons.at(id) == FinishReason::kCancelled) {
      ASSERT_LE(got.size(), ref.size());
      EXPECT_TRUE(std::equal(got.begin(), got.end(), ref.begin())) << "request " << id;
    } else {
      EXPECT_EQ(got, ref) << "request " << id << " differs from its solo run";
      EXPECT_EQ(static_cast<int32_t>(got.size()), reqs[i].sampling.max_tokens);
    }
  }
}

TEST(CpuBackendScheduler, GreedyBatchedEqualsSolo) { expect_batched_equals_solo(0.0f, 11); }

TEST(CpuBackendScheduler, SeededSamplingBatchedEqualsSolo) { expect_batched_equals_solo(0.8f, 12); }

TEST(CpuBackendScheduler, MixedSparseFlowsShareABatchAndMatchSolo) {
  flow::BudgetParams budget;
  budget.topk_val = 2;
  budget.bos = 1;
  budget.eos = 1;
  auto flows = FlowSet::load({"block_topk", "quest", "running_avg"}, "dense", budget, 4, 2);
  ASSERT_TRUE(flows.has_value()) << flows.status().to_string();
  auto reqs = random_requests(21, 12, 0.0f);
  const char* names[] = {"dense", "block_topk", "quest", "running_avg"};
  for (size_t i = 0; i < reqs.size(); ++i) {
    FlowOverrides o;
    o.flow = names[i % 4];
    if (i % 8 == 5) o.topk_val = 3;  // a per-request budget
    auto rf = flows->resolve(o);
    ASSERT_TRUE(rf.has_value()) << rf.status().to_string();
    reqs[i].flow = *rf;
    reqs[i].sampling.max_tokens = 12 + static_cast<int32_t>(i % 5);
  }
  EXPECT_FALSE(reqs[3].flow.prefix_cacheable);  // running_avg uses Save
  SchedulerConfig sc;
  sc.max_batch = 12;
  sc.max_tokens_per_step = 48;
  auto backend = tiny_backend(400, 4, &*flows);  // roomy: no preemption, so no recompute
  EXPECT_GT(backend->info().bytes_per_page, 2 * 2 * 2 * 4 * 16 * 4);  // aux fields counted
  const RunResult batched = run(*backend, sc, reqs, std::vector<int64_t>(reqs.size(), 0));
  EXPECT_EQ(batched.metrics.preemptions, 0u);
  EXPECT_LT(batched.metrics.selected_page_fraction(), 1.0);  // sparse rows really selected
  SchedulerConfig solo_cfg;
  solo_cfg.max_batch = 1;
  solo_cfg.max_tokens_per_step = 16;
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto solo_backend = tiny_backend(100, 4, &*flows);
    const RunResult solo = run(*solo_backend, solo_cfg, {reqs[i]}, {0});
    EXPECT_EQ(batched.tokens.at(i + 1), solo.tokens.begin()->second)
        << names[i % 4] << " request " << i << " differs from its solo run";
  }
}

TEST(CpuBackendScheduler, PoolSizedFromMemoryFractionIncludesAuxBytes) {
  auto config = synthetic_config("tiny-llama");
  ASSERT_TRUE(config.has_value());
  auto model = CpuModel::create(*config, synthetic_weights(*config, 1).value());
  ASSERT_TRUE(model.has_value());
  CpuBackendOptions o;
  o.kv_memory_fraction = 1e-5;
  auto b = make_cpu_backend(std::move(model).value(), o);
  ASSERT_TRUE(b.has_value()) << b.status().to_string();
  const int64_t budget = static_cast<int64_t>(static_cast<double>(physical_memory_bytes()) * 1e-5);
  EXPECT_EQ((*b)->pool().capacity(), budget / (*b)->info().bytes_per_page);
  // 2 layers x 2 kv heads x (K + V) x 16 x 16 fp32, no flows loaded: no aux bytes.
  EXPECT_EQ((*b)->info().bytes_per_page, 2 * 2 * 2 * 16 * 16 * 4);
  o.kv_memory_fraction = 1.5;
  auto bad =
      make_cpu_backend(CpuModel::create(*config, synthetic_weights(*config, 1).value()).value(), o);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vortex::engine
