// GPU sparse planner against the budget formula written out here: budgets, dense/sparse rows,
// sel_indptr over 24,000 rows (multi-block scan), the worklist, the totals; a substituted policy
// functor through plan_with; a captured plan replayed over a changed page table.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gpu_test_util.h"
#include "vortex/kernels/cuda/planner_device.cuh"
#include "vortex/kernels/cuda/sparse_planner.h"

namespace vortex::gpu {
namespace {

using gpu_test::DeviceArray;

/// A stand-in for a generated policy expression: "pages / 4 + layer".
struct QuarterPolicy {
  VORTEX_HD int64_t operator()(const BudgetInputs& in) const { return in.pages / 4 + in.layer; }
};

struct PlanWant {
  std::vector<int32_t> sel_indptr;
  std::vector<std::pair<int32_t, int32_t>> work;
  int32_t sparse_rows = 0;
};

/// The planner's contract, independently: budget = policy clamped to >= bos + eos + 1; dense iff
/// n <= budget; chunks of the candidates [bos, n - max(eos, 1)).
template <class BudgetFn>
PlanWant expected_plan(const gpu_test::HostPageTable& t, int32_t h_kv, const BudgetArgs& a,
                       int32_t chunk, BudgetFn budget_of) {
  PlanWant e;
  e.sel_indptr.push_back(0);
  for (int32_t b = 0; b < t.batch(); ++b) {
    const int64_t n = t.pages(b);
    const int64_t budget = std::max<int64_t>(budget_of(n), a.bos + a.eos + 1);
    for (int32_t h = 0; h < h_kv; ++h) {
      const int32_t r = b * h_kv + h;
      if (n <= budget) {
        e.sel_indptr.push_back(e.sel_indptr.back() + static_cast<int32_t>(n));
      } else {
        ++e.sparse_rows;
        e.sel_indptr.push_back(e.sel_indptr.back() + static_cast<int32_t>(budget));
        const int64_t cand_end = n - std::max(a.eos, 1);
        for (int64_t first = a.bos; first < cand_end; first += chunk) {
          e.work.emplace_back(r, static_cast<int32_t>(first));
        }
      }
    }
  }
  return e;
}

struct DeviceTable {
  DeviceArray<int32_t> indptr, indices, last;
  PageTableView view;
  explicit DeviceTable(const gpu_test::HostPageTable& t)
      : indptr(t.indptr),
        indices(t.indices.empty() ? std::vector<int32_t>{0} : t.indices),
        last(t.last) {
    view = {indptr.data(), indices.data(), last.data(), t.batch()};
  }
};

void expect_plan(const SparsePlanner& planner, const gpu_test::HostPageTable& t,
                 const PlanWant& e) {
  const int32_t rows = t.batch() * planner.config().num_kv_heads;
  std::vector<int32_t> indptr(rows + 1), totals(4);
  VORTEX_CUDA_CHECK(
      cudaMemcpy(indptr.data(), planner.sel_indptr(), indptr.size() * 4, cudaMemcpyDeviceToHost));
  VORTEX_CUDA_CHECK(cudaMemcpy(totals.data(), planner.totals(), 16, cudaMemcpyDeviceToHost));
  ASSERT_EQ(indptr, e.sel_indptr);
  EXPECT_EQ(totals[0], e.sel_indptr.back());
  EXPECT_EQ(totals[1], static_cast<int32_t>(e.work.size()));
  EXPECT_EQ(totals[2], e.sparse_rows);
  EXPECT_EQ(totals[3], 0);
  const WorkListView w = planner.worklist();
  std::vector<int2> items(e.work.size());
  if (!items.empty()) {
    VORTEX_CUDA_CHECK(
        cudaMemcpy(items.data(), w.items, items.size() * sizeof(int2), cudaMemcpyDeviceToHost));
  }
  for (size_t i = 0; i < items.size(); ++i) {
    ASSERT_EQ(items[i].x, e.work[i].first) << "item " << i;
    ASSERT_EQ(items[i].y, e.work[i].second) << "item " << i;
  }
}

std::vector<int32_t> random_pages(std::mt19937_64& rng, int32_t batch, int32_t max_pages) {
  std::vector<int32_t> p(batch);
  for (int32_t& n : p) n = (rng() % 10 == 0) ? 0 : static_cast<int32_t>(rng() % (max_pages + 1));
  return p;
}

TEST(SparsePlanner, RejectsBadConfigs) {
  PlannerConfig c;
  EXPECT_EQ(SparsePlanner::create(c).status().code(), StatusCode::kInvalidArgument);
  c.max_batch = 1 << 20;
  c.num_kv_heads = 8;
  c.max_pages_per_request = 1 << 20;
  EXPECT_EQ(SparsePlanner::create(c).status().code(), StatusCode::kInvalidArgument);
}

TEST(SparsePlanner, DefaultPolicyOverManyRows) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  PlannerConfig cfg;
  cfg.max_batch = 3000;
  cfg.num_kv_heads = 8;
  cfg.max_pages_per_request = 2000;
  cfg.chunk_pages = 64;
  auto planner = SparsePlanner::create(cfg);
  ASSERT_TRUE(planner.has_value()) << planner.status().to_string();
  for (const BudgetArgs& a : {BudgetArgs{30, 0.f, 1, 1}, BudgetArgs{30, 0.125f, 1, 1},
                              BudgetArgs{8, 0.5f, 0, 0}, BudgetArgs{0, 0.f, 2, 3}}) {
    const auto t = gpu_test::random_page_table(random_pages(rng, 3000, 2000), 16, rng);
    DeviceTable dt(t);
    ASSERT_TRUE(planner->plan(dt.view, a, 3, 0).is_ok());
    VORTEX_CUDA_CHECK(cudaDeviceSynchronize());
    const PlanWant e = expected_plan(t, 8, a, 64, [&](int64_t n) {
      return std::max<int64_t>(
          a.topk_val + a.bos + a.eos,
          static_cast<int64_t>(std::floor(static_cast<double>(n) * a.topk_ratio)));
    });
    expect_plan(*planner, t, e);
    EXPECT_EQ(planner->worklist().eos, std::max(a.eos, 1));
  }
}

TEST(SparsePlanner, SubstitutedPolicyFunctor) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  PlannerConfig cfg;
  cfg.max_batch = 64;
  cfg.num_kv_heads = 4;
  cfg.max_pages_per_request = 5000;
  cfg.chunk_pages = 32;
  auto planner = SparsePlanner::create(cfg);
  ASSERT_TRUE(planner.has_value());
  const auto t = gpu_test::random_page_table(random_pages(rng, 64, 5000), 16, rng);
  DeviceTable dt(t);
  const BudgetArgs a{30, 0.f, 1, 1};
  ASSERT_TRUE(plan_with(*planner, QuarterPolicy(), dt.view, a, 7, 0).is_ok());
  VORTEX_CUDA_CHECK(cudaDeviceSynchronize());
  expect_plan(*planner, t, expected_plan(t, 4, a, 32, [](int64_t n) { return n / 4 + 7; }));
}

TEST(SparsePlanner, CapturedPlanFollowsNewLengths) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  PlannerConfig cfg;
  cfg.max_batch = 32;
  cfg.num_kv_heads = 8;
  cfg.max_pages_per_request = 1024;
  auto planner = SparsePlanner::create(cfg);
  ASSERT_TRUE(planner.has_value());
  auto t = gpu_test::random_page_table(std::vector<int32_t>(32, 1024), 16, rng);
  DeviceTable dt(t);
  const BudgetArgs a{30, 0.f, 1, 1};
  cudaStream_t s;
  VORTEX_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  VORTEX_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  ASSERT_TRUE(planner->plan(dt.view, a, 0, s).is_ok());
  VORTEX_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  VORTEX_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int round = 0; round < 3; ++round) {
    // Shorter page lists over the same pages (a new step's lengths), same batch size.
    std::vector<int32_t> pages(32);
    for (int32_t& n : pages) n = static_cast<int32_t>(rng() % 1025);
    gpu_test::HostPageTable u;
    u.indptr.assign(1, 0);
    for (int32_t b = 0; b < 32; ++b) {
      for (int32_t j = 0; j < pages[b]; ++j) u.indices.push_back(t.indices[t.indptr[b] + j]);
      u.indptr.push_back(static_cast<int32_t>(u.indices.size()));
      u.last.push_back(pages[b] == 0 ? 0 : 16);
    }
    std::vector<int32_t> padded = u.indices;
    padded.resize(t.indices.size(), 0);
    dt.indptr.upload(u.indptr);
    dt.indices.upload(padded);
    dt.last.upload(u.last);
    VORTEX_CUDA_CHECK(cudaGraphLaunch(exec, s));
    VORTEX_CUDA_CHECK(cudaStreamSynchronize(s));
    expect_plan(*planner, u, expected_plan(u, 8, a, 64, [](int64_t) { return int64_t{32}; }));
  }
  VORTEX_CUDA_CHECK(cudaGraphExecDestroy(exec));
  VORTEX_CUDA_CHECK(cudaGraphDestroy(graph));
  VORTEX_CUDA_CHECK(cudaStreamDestroy(s));
}

}  // namespace
}  // namespace vortex::gpu
