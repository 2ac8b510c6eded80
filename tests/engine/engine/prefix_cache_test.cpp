// PrefixCache unit tests (matching, sharing, LRU leaf eviction, domains) and its use by the
// scheduler: shared-prefix requests reuse pages, report hits, and produce exactly the tokens they
// produce without the cache; Save-flow requests bypass it.
#include "vortex/engine/prefix_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "fake_backend.h"
#include "vortex/engine/scheduler.h"

namespace vortex::engine {
namespace {

constexpr int32_t P = 4;

std::vector<int32_t> seq_tokens(int32_t n, int32_t base) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = base + i;
  return t;
}

TEST(PrefixCache, MatchRetainsAndStopsAtFirstMiss) {
  PagePool pool(16);
  PrefixCache cache(pool, P);
  auto pages = pool.allocate(3);
  ASSERT_TRUE(pages.has_value());
  const auto toks = seq_tokens(12, 100);
  cache.insert("", toks, *pages, 3);
  EXPECT_EQ(cache.num_pages(), 3);
  for (int32_t p : *pages) EXPECT_EQ(pool.refcount(p), 2);

  auto other = toks;
  other[6] = 1;  // differs inside page 1
  const auto hit = cache.match("", other, 10);
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0], (*pages)[0]);
  EXPECT_EQ(pool.refcount((*pages)[0]), 3);
  pool.release(hit);

  const auto capped = cache.match("", toks, 2);  // max_pages caps the match
  EXPECT_EQ(capped, std::vector<int32_t>({(*pages)[0], (*pages)[1]}));
  pool.release(capped);
  EXPECT_TRUE(cache.match("other-domain", toks, 10).empty());
  EXPECT_TRUE(cache.match("", std::vector<int32_t>(toks.begin(), toks.begin() + 3), 10).empty());

  // While the sequence holds its pages nothing is evictable.
  EXPECT_EQ(cache.num_evictable(), 0);
  EXPECT_EQ(cache.evict(3), 0);
  pool.release(*pages);
  EXPECT_EQ(cache.num_evictable(), 3);
  EXPECT_TRUE(cache.check_invariants());
  EXPECT_EQ(cache.evict(10), 3);
  EXPECT_EQ(pool.num_free(), 16);
  EXPECT_TRUE(pool.check_invariants());
}

TEST(PrefixCache, DuplicateInsertKeepsTheTreePage) {
  PagePool pool(8);
  PrefixCache cache(pool, P);
  const auto toks = seq_tokens(8, 0);
  auto a = *pool.allocate(2);
  auto b = *pool.allocate(2);
  cache.insert("", toks, a, 2);
  cache.insert("", toks, b, 2);  // computed concurrently: tree keeps a
  EXPECT_EQ(cache.num_pages(), 2);
  EXPECT_EQ(pool.refcount(b[0]), 1);
  EXPECT_EQ(cache.pages(), a);
  pool.release(a);
  pool.release(b);
  EXPECT_EQ(pool.num_used(), 2);
  cache.clear();
  EXPECT_EQ(pool.num_used(), 0);
}

TEST(PrefixCache, EvictsLeastRecentlyUsedLeavesFirst) {
  PagePool pool(16);
  PrefixCache cache(pool, P);
  // Two branches sharing page 0: A = [x, a1, a2], B = [x, b1].
  auto ta = seq_tokens(12, 0);
  auto tb = seq_tokens(8, 0);
  tb[4] = 99;
  auto pa = *pool.allocate(3);
  cache.insert("", ta, pa, 3);
  std::vector<int32_t> pb = {pa[0], *pool.allocate(1).value().begin()};
  pool.retain(pa[0]);
  cache.insert("", tb, pb, 2);
  pool.release(pa);
  pool.release(pb);
  ASSERT_EQ(cache.num_evictable(), 4);
  // Touch A: B's leaf is now the least recently used.
  pool.release(cache.match("", ta, 3));
  EXPECT_EQ(cache.evict(1), 1);
  EXPECT_EQ(pool.refcount(pb[1]), 0);
  EXPECT_EQ(pool.refcount(pa[2]), 1);
  // A leaf goes before its parent: evicting 2 more takes a2 then a1, keeping x.
  EXPECT_EQ(cache.evict(2), 2);
  EXPECT_EQ(pool.refcount(pa[0]), 1);
  EXPECT_EQ(cache.num_pages(), 1);
  EXPECT_TRUE(cache.check_invariants());
}

TEST(PrefixCache, SharedDescendantBlocksAncestorEviction) {
  PagePool pool(8);
  PrefixCache cache(pool, P);
  const auto toks = seq_tokens(8, 0);
  auto pages = *pool.allocate(2);
  cache.insert("", toks, pages, 2);
  pool.release(pages[0]);  // page 0 only in the tree, page 1 still held by a request
  EXPECT_EQ(cache.num_evictable(), 0);
  EXPECT_EQ(cache.evict(2), 0);
  pool.release(pages[1]);
  EXPECT_EQ(cache.num_evictable(), 2);
}

// --- the cache inside the scheduler ------------------------------------------------------------

struct RunResult {
  std::map<uint64_t, std::vector<int32_t>> outputs;
  EngineMetrics metrics;
};

RunResult run_batch(const std::vector<GenerationRequest>& reqs, bool prefix_cache, int32_t pages) {
  testing::FakeBackend backend(pages, P, 53, 200, {});
  SchedulerConfig sc;
  sc.max_batch = 4;
  sc.max_tokens_per_step = 12;
  sc.prefix_cache = prefix_cache;
  RunResult r;
  {
    Scheduler sched(sc, backend);
    sched.set_event_callback([&](uint64_t id, const RequestEvent& e) {
      for (const auto& t : e.tokens) r.outputs[id].push_back(t.token);
    });
    for (const auto& q : reqs) EXPECT_TRUE(sched.add(q).has_value());
    while (sched.step()) EXPECT_EQ(sched.check_invariants(), "");
    r.metrics = sched.metrics();
  }
  EXPECT_EQ(backend.errors(), std::vector<std::string>{});
  EXPECT_EQ(backend.pool().num_used(), 0);
  return r;
}

TEST(PrefixCacheScheduler, SharedPrefixReusesPagesWithIdenticalTokens) {
  std::mt19937 rng(5);
  std::vector<int32_t> system(static_cast<size_t>(P * 6));
  for (auto& t : system) t = static_cast<int32_t>(rng() % 53);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 12; ++i) {
    GenerationRequest q;
    q.prompt = system;
    for (int j = 0; j < 1 + i % 5; ++j) q.prompt.push_back(static_cast<int32_t>(rng() % 53));
    q.sampling.max_tokens = 5 + i % 7;
    q.flow.name = i % 2 ? "a" : "b";
    reqs.push_back(q);
  }
  const RunResult with = run_batch(reqs, true, 64);
  const RunResult without = run_batch(reqs, false, 64);
  EXPECT_EQ(with.outputs, without.outputs);
  ASSERT_EQ(with.outputs.size(), reqs.size());
  EXPECT_GT(with.metrics.prefix_hit_tokens, 0u);
  EXPECT_GT(with.metrics.prefix_hit_rate(), 0.3);
  EXPECT_EQ(without.metrics.prefix_hit_tokens, 0u);
  EXPECT_LT(with.metrics.computed_tokens, without.metrics.computed_tokens);
  for (const auto& q : reqs) {
    const auto ref = testing::fake_generate(q.prompt, q.sampling.max_tokens, 53, {}, 200);
    bool found = false;
    for (const auto& [id, out] : with.outputs) found |= out == ref;
    EXPECT_TRUE(found);
  }
}

TEST(PrefixCacheScheduler, SaveFlowsBypassTheCache) {
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    GenerationRequest q;
    q.prompt = seq_tokens(P * 4 + 1, 3);
    q.sampling.max_tokens = 4;
    q.flow.name = "running_avg";
    q.flow.prefix_cacheable = false;  // what FlowSet sets for a flow that uses Save
    reqs.push_back(q);
  }
  const RunResult r = run_batch(reqs, true, 64);
  EXPECT_EQ(r.metrics.prefix_hit_tokens, 0u);
  EXPECT_EQ(r.metrics.prefix_query_tokens, 0u);
  EXPECT_EQ(r.metrics.prefix_cache_pages, 0);
}

TEST(PrefixCacheScheduler, CacheIsEvictedWhenAdmissionNeedsRoom) {
  // Distinct prompts that each fill most of a tiny pool: every request's cached pages must be
  // evicted for the next one to fit.
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 5; ++i) {
    GenerationRequest q;
    q.prompt = seq_tokens(P * 5, 5 * i);  // distinct from the first token on
    q.sampling.max_tokens = 3;
    reqs.push_back(q);
  }
  const RunResult r = run_batch(reqs, true, 7);
  EXPECT_EQ(r.outputs.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(r.outputs.at(i + 1), testing::fake_generate(reqs[i].prompt, 3, 53, {}, 200));
  }
}

}  // namespace
}  // namespace vortex::engine
