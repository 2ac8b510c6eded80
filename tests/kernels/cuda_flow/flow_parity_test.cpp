// GPU parity of generated flows (label gpu; skips without a device): every built-in flow and
// random flows from the op catalogue select on the GPU what the CPU interpreter selects on the
// same cache (scores within tolerance, Save state after every step), a flow written as JSON runs
// with no rebuild, a custom budget policy is compiled into the planner, and approxTopK keeps its
// recall bound.
#include "flow_parity.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <initializer_list>

#include "../../compiler/codegen/random_flow.h"
#include "../../compiler/codegen/test_flows.h"
#include "vortex/compiler/program.h"
#include "vortex/flow/builder.h"
#include "vortex/flow/policy.h"

namespace vortex::flow_gpu_test {
namespace {

// Two shapes: Qwen3-like (P16 D128 G4, bf16 fields, 64-page chunks) and a small-head one (P32 D64
// G2, f32 fields, 5-page chunks so rows span many work items, layer 1, wider bos / eos).
ParitySpec spec_a(uint64_t seed) {
  ParitySpec s;
  s.seed = seed;
  s.budget.topk_val = 8;
  return s;
}

ParitySpec spec_b(uint64_t seed) {
  ParitySpec s;
  s.seed = seed;
  s.page_size = 32;
  s.head_dim = 64;
  s.group = 2;
  s.num_kv_heads = 3;
  s.layer = 1;
  s.aux_dtype = DType::kF32;
  s.lengths = {33, 64 * 32 + 1, 500 * 32 + 31, 8 * 32, 11 * 32 + 1};
  s.budget.topk_val = 5;
  s.budget.bos = 2;
  s.budget.eos = 2;
  s.budget.workload_chunk_size = 5;
  return s;
}

void report(const std::string& what, const ParityStats& st) {
  std::printf("  %-28s sparse rows %5lld  near-tie rows %3lld  max score err %.2e\n", what.c_str(),
              static_cast<long long>(st.sparse_rows), static_cast<long long>(st.near_tie_rows),
              st.max_score_err);
  EXPECT_GT(st.sparse_rows, 0) << what << ": nothing was selected sparsely";
  EXPECT_LE(st.near_tie_rows, std::max<int64_t>(1, st.sparse_rows / 10))
      << what << ": too many rows decided by score ties";
}

TEST(CudaFlowParity, EveryBuiltin) {
  VORTEX_REQUIRE_GPU();
  for (const std::string& name : flow::builtin_flow_names()) {
    if (name == "dense") continue;
    auto program = flow::load_flow(name);
    ASSERT_TRUE(program.has_value()) << program.status().to_string();
    report(name + " A", check_flow_parity(*program, spec_a(11)));
    report(name + " B", check_flow_parity(*program, spec_b(12)));
  }
}

TEST(CudaFlowParity, RandomFlows) {
  VORTEX_REQUIRE_GPU();
  // VORTEX_RANDOM_FLOWS caps the count (sanitizer runs); 32 by default.
  const char* cap = std::getenv("VORTEX_RANDOM_FLOWS");
  const uint64_t count = cap != nullptr ? std::strtoull(cap, nullptr, 10) : 32;
  for (uint64_t seed = 1; seed <= count; ++seed) {
    const bool a = seed % 2 == 1;
    const ParitySpec spec = a ? spec_a(seed) : spec_b(seed);
    compiler::testing::RandomFlowGen gen(
        seed, flow::ShapeEnv{spec.page_size, spec.head_dim, spec.group}, spec.num_layers);
    auto program = flow::FlowProgram::compile(gen.build("random_" + std::to_string(seed)));
    ASSERT_TRUE(program.has_value()) << "seed " << seed << ": " << program.status().to_string();
    report("random_" + std::to_string(seed), check_flow_parity(*program, spec));
  }
}

TEST(CudaFlowParity, StateReadAgainAfterABoundaryAndTopKOverAField) {
  VORTEX_REQUIRE_GPU();
  compiler::testing::DeferredStateFlow deferred;
  compiler::testing::FieldScoreFlow field_score;
  for (flow::lang::Flow* f : std::initializer_list<flow::lang::Flow*>{&deferred, &field_score}) {
    auto ir = flow::build_flow(*f);
    ASSERT_TRUE(ir.has_value()) << ir.status().to_string();
    auto program = flow::FlowProgram::compile(*ir);
    ASSERT_TRUE(program.has_value()) << program.status().to_string();
    ParitySpec spec = spec_a(51);
    spec.steps = 3;
    report(f->name(), check_flow_parity(*program, spec));
    report(f->name() + " B", check_flow_parity(*program, spec_b(52)));
  }
}

TEST(CudaFlowParity, JsonFlowRunsWithoutRebuild) {
  VORTEX_REQUIRE_GPU();
  // VORTEX_SOURCE_DIR in the environment: the tree on another machine than the build's.
  const char* env = std::getenv("VORTEX_SOURCE_DIR");
  const std::string path = std::string(env != nullptr ? env : VORTEX_SOURCE_DIR) +
                           "/tests/kernels/cuda_flow/data/energy_quest.json";
  auto program = flow::load_flow(path);
  ASSERT_TRUE(program.has_value()) << program.status().to_string();
  ASSERT_EQ(flow::flow_name(**program), "energy_quest");
  ParitySpec spec = spec_a(21);
  spec.steps = 3;
  report("energy_quest.json A", check_flow_parity(*program, spec));
  ParitySpec b = spec_b(22);
  b.group = 4;  // the JSON flow's shapes are symbolic: any P, D, G
  report("energy_quest.json B", check_flow_parity(*program, b));
}

TEST(CudaFlowParity, CustomBudgetPolicy) {
  VORTEX_REQUIRE_GPU();
  auto program = flow::load_flow("quest");
  ASSERT_TRUE(program.has_value());
  for (const char* text : {"min(pages - 1, max(12, pages / 8)) + layer * 3",
                           "layer == 1 ? clamp(sqrt(pages) * 2, 4, 40) : topk_val + bos + eos"}) {
    auto policy = flow::parse_policy(text);
    ASSERT_TRUE(policy.has_value()) << text;
    ParitySpec a = spec_a(31);
    a.budget.policy = *policy;
    report(std::string("quest ") + text, check_flow_parity(*program, a));
    ParitySpec b = spec_b(32);
    b.budget.policy = *policy;
    report(std::string("quest B ") + text, check_flow_parity(*program, b));
  }
}

// block_topk with approxTopK(tolerance): recall against the exact selection >= 1 - tolerance.
struct ApproxBlockTopK : flow::lang::Flow {
  double tolerance;
  explicit ApproxBlockTopK(double t) : tolerance(t) {}
  std::string name() const override { return "approx_block_topk"; }
  flow::lang::FieldDecls create_cache(flow::Sym, flow::Sym D) override {
    return {{"centroid", 1, D}};
  }
  void forward_cache(flow::lang::CacheView& cache) override {
    flow::lang::Mean(1)(cache["k"], cache["centroid"]);
  }
  flow::lang::Tensor forward_indexer(flow::lang::Tensor q, flow::lang::CacheView& cache) override {
    using namespace flow::lang;  // NOLINT(google-build-using-namespace)
    auto s = GeMM()(Mean(1)(q), cache["centroid"]);
    return approxTopK(tolerance)(s);
  }
};

TEST(CudaFlowParity, ApproxTopKKeepsItsRecallBound) {
  VORTEX_REQUIRE_GPU();
  for (double tol : {0.1, 0.3}) {
    ApproxBlockTopK f(tol);
    auto ir = flow::build_flow(f);
    ASSERT_TRUE(ir.has_value());
    auto program = flow::FlowProgram::compile(*ir);
    ASSERT_TRUE(program.has_value());
    ParitySpec spec = spec_a(41);
    spec.budget.topk_val = 40;
    // Rows may differ from the exact CPU selection by at most floor(tolerance * k) pages.
    report("approxTopK " + std::to_string(tol), check_flow_parity(*program, spec));
  }
}

}  // namespace
}  // namespace vortex::flow_gpu_test
