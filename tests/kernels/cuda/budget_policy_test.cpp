// The planner's per-row arithmetic (budget_policy.h) on the CPU: the default budget formula,
// the clamp, the dense/sparse decision, the always-selected last page and the worklist chunks.
#include "vortex/kernels/cuda/budget_policy.h"

#include <gtest/gtest.h>

namespace vortex::gpu {
namespace {

TEST(BudgetPolicy, DefaultFormula) {
  const DefaultBudgetPolicy p;
  BudgetInputs in;
  in.pages = 1024;
  in.topk_val = 30;
  in.bos = 1;
  in.eos = 1;
  EXPECT_EQ(p(in), 32);
  in.topk_ratio = 0.125f;
  EXPECT_EQ(p(in), 128);
  in.pages = 1023;
  EXPECT_EQ(p(in), 127);  // floor(127.875)
  in.pages = 10;
  EXPECT_EQ(p(in), 32);
}

TEST(BudgetPolicy, RowPlans) {
  const DefaultBudgetPolicy p;
  const BudgetArgs a{30, 0.f, 1, 1};
  RowPlan r = plan_row(p, 1024, a, 0, 64);
  EXPECT_FALSE(r.dense);
  EXPECT_EQ(r.count, 32);
  EXPECT_EQ(r.chunks, 16);  // ceil(1022 / 64)
  r = plan_row(p, 32, a, 0, 64);
  EXPECT_TRUE(r.dense);
  EXPECT_EQ(r.count, 32);
  EXPECT_EQ(r.chunks, 0);
  r = plan_row(p, 0, a, 0, 64);
  EXPECT_TRUE(r.dense);
  EXPECT_EQ(r.count, 0);
  // eos = 0 still reserves the partial last page; the budget is clamped to bos + eos + 1.
  const BudgetArgs z{0, 0.f, 2, 0};
  r = plan_row(p, 100, z, 0, 10);
  EXPECT_EQ(r.budget, 3);
  EXPECT_EQ(r.count, 3);
  EXPECT_EQ(r.chunks, 10);  // candidates [2, 99): 97 pages
  EXPECT_EQ(effective_eos(0), 1);
  EXPECT_EQ(effective_eos(3), 3);
}

struct LayerPolicy {
  int64_t operator()(const BudgetInputs& in) const { return in.layer * 10; }
};

TEST(BudgetPolicy, CustomPolicySeesTheLayer) {
  const BudgetArgs a{30, 0.f, 1, 1};
  EXPECT_EQ(plan_row(LayerPolicy(), 100, a, 5, 64).count, 50);
  EXPECT_EQ(plan_row(LayerPolicy(), 100, a, 0, 64).count, 3);  // clamped
  EXPECT_TRUE(plan_row(LayerPolicy(), 100, a, 20, 64).dense);
}

}  // namespace
}  // namespace vortex::gpu
