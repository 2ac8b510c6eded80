// Golden tests of the compiler passes: the printed IR, fused groups and plan of every built-in
// flow, dead-code elimination and fusion on hand-written flows, and the verifier's messages.
// Expected text lives in tests/compiler/golden/; run with VORTEX_UPDATE_GOLDEN=1 to rewrite it
// after an intended change (and review the diff).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "vortex/compiler/passes.h"
#include "vortex/compiler/printer.h"
#include "vortex/compiler/program.h"
#include "vortex/flow/builder.h"
#include "vortex/flow/json.h"
#include "vortex/flow/registry.h"

namespace vortex::compiler {
namespace {

using namespace flow::lang;  // NOLINT(google-build-using-namespace): flows read like FLOW_SPEC
using flow::FlowIR;
using flow::ShapeEnv;

const std::string kGoldenDir = std::string(VORTEX_SOURCE_DIR) + "/tests/compiler/golden/";

void expect_golden(const std::string& file, const std::string& actual) {
  const std::string path = kGoldenDir + file;
  if (std::getenv("VORTEX_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path, std::ios::binary) << actual;
    return;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in.good()) << "missing golden file " << path << " (run with VORTEX_UPDATE_GOLDEN=1)";
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(actual, ss.str()) << "golden mismatch for " << file;
}

FlowIR build(Flow& f) {
  auto ir = flow::build_flow(f);
  EXPECT_TRUE(ir.has_value()) << ir.status().to_string();
  return ir.has_value() ? *ir : FlowIR{};
}

class BuiltinGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(BuiltinGolden, IrFusedPlan) {
  const FlowIR ir = flow::registered_flow_ir(GetParam()).value();
  const ShapeEnv env = ir.verify_env;
  expect_golden(GetParam() + ".ir.txt", print_ir(ir, env));
  auto fused = print_fused(ir, env);
  ASSERT_TRUE(fused.has_value()) << fused.status().to_string();
  expect_golden(GetParam() + ".fused.txt", *fused);
  auto plan = compile_plan(ir, env);
  ASSERT_TRUE(plan.has_value()) << plan.status().to_string();
  expect_golden(GetParam() + ".plan.txt", print_plan(*plan));
}

INSTANTIATE_TEST_SUITE_P(AllBuiltins, BuiltinGolden, ::testing::ValuesIn(flow::builtin_names()),
                         [](const auto& info) { return info.param; });

// Dead code on both sides: an unused cache temporary and an indexer branch feeding nothing.
struct WithDeadCode : Flow {
  std::string name() const override { return "dead_code"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"centroid", 1, D}}; }
  void forward_cache(CacheView& cache) override {
    Mean(1)(cache["k"], cache["centroid"]);
    L2Norm(2)(cache["v"]).named("unused_norms");
  }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto q_mean = Mean(1)(q).named("q_mean");
    auto s = GeMM()(q_mean, cache["centroid"]).named("score");
    Exp()(Multiply()(s, s)).named("dead");
    return topK()(s);
  }
};

TEST(PassesGolden, DeadCodeElimination) {
  WithDeadCode f;
  const FlowIR ir = build(f);
  const FlowIR live = eliminate_dead_code(ir);
  EXPECT_EQ(ir.cache.nodes.size() - live.cache.nodes.size(), 2u);      // L2Norm + cache["v"]
  EXPECT_EQ(ir.indexer.nodes.size() - live.indexer.nodes.size(), 2u);  // Multiply + Exp
  EXPECT_TRUE(verify_flow(live, ir.verify_env).is_ok());
  expect_golden("dce.txt", "before:\n" + print_ir(ir, ir.verify_env) + "after:\n" +
                               print_ir(live, ir.verify_env));
}

// Several page-axis ops in a row, a dim=0 reduction feeding back into per-page ops, and a Save:
// fusion must cut at every boundary and keep per-page chains together.
struct Stages : Flow {
  std::string name() const override { return "stages"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"centroid", 1, D}, {"state", 1, 1}}; }
  void forward_cache(CacheView& cache) override {
    Mean(1)(cache["k"], cache["centroid"]);
    Fill(0)(cache["state"]);
  }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto logits = GeMM()(q, cache["centroid"]).named("logits");      // [S, 1, G]
    auto p = Softmax(0, Sym::expr("1/sqrt(D)"))(logits).named("p");  // boundary
    auto smooth = Conv1d(flow::ConstTensor{{3, 1, 1}, {0.25f, 0.5f, 0.25f}})(p).named("smooth");
    auto peak = Max(0)(smooth).named("peak");                                    // ROW [1, 1, G]
    auto rel = Affine(0, 2)(Multiply()(smooth, peak)).named("rel");              // per page again
    auto score = Add(1, 1)(Max(2)(rel), Load()(cache["state"])).named("score");  // [S, 1, 1]
    Save()(Normalize(0)(score), cache["state"]);                                 // boundary
    return approxTopK(0.05)(score);
  }
};

TEST(PassesGolden, FusionStages) {
  Stages f;
  const FlowIR ir = build(f);
  auto fused = print_fused(ir, ir.verify_env);
  ASSERT_TRUE(fused.has_value()) << fused.status().to_string();
  expect_golden("fusion_stages.txt", *fused);
  const Fusion fu = fuse(eliminate_dead_code(ir), flow::Side::kIndexer);
  int boundaries = 0;
  for (const auto& g : fu.groups) boundaries += g.boundary ? 1 : 0;
  EXPECT_EQ(boundaries, 5);  // Softmax, Conv1d, Max(dim=0), Normalize, approxTopK
  auto plan = compile_plan(ir, ir.verify_env);
  ASSERT_TRUE(plan.has_value()) << plan.status().to_string();
  expect_golden("fusion_stages.plan.txt", print_plan(*plan));
}

// Verifier messages for flows that break each rule.
struct TwoTerminals : Flow {
  std::string name() const override { return "two_terminals"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"c", 1, D}}; }
  void forward_cache(CacheView& cache) override { Mean(1)(cache["k"], cache["c"]); }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto s = GeMM()(Mean(1)(q), cache["c"]);
    topK()(s);
    return topK()(s);
  }
};
struct BadShapes : Flow {
  std::string name() const override { return "bad_shapes"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"c", 1, D}}; }
  void forward_cache(CacheView& cache) override { Mean(1)(cache["k"], cache["c"]); }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    return topK()(GeMM()(q, cache["c"]));  // [S, 1, G]: not one score per page
  }
};
struct ReusedOp : Flow {
  std::string name() const override { return "reused_op"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"c", 1, D}}; }
  void forward_cache(CacheView& cache) override { Mean(1)(cache["k"], cache["c"]); }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    Mean mean(1);
    auto a = mean(q);
    auto b = mean(a);
    return topK()(GeMM()(b, cache["c"]));
  }
};
struct Unwritten : Flow {
  std::string name() const override { return "unwritten"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"c", 1, D}, {"lost", 1, 1}}; }
  void forward_cache(CacheView& cache) override { Mean(1)(cache["k"], cache["c"]); }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    return topK()(Add()(GeMM()(Mean(1)(q), cache["c"]), cache["lost"]));
  }
};
struct CacheReadsField : Flow {
  std::string name() const override { return "cache_reads_field"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"c", 1, D}, {"c2", 1, D}}; }
  void forward_cache(CacheView& cache) override {
    Mean(1)(cache["k"], cache["c"]);
    Exp()(cache["c"], cache["c2"]);
  }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    return topK()(GeMM()(Mean(1)(q), Add()(cache["c"], cache["c2"])));
  }
};
struct MixedSides : Flow {
  std::string name() const override { return "mixed_sides"; }
  Tensor kept;
  FieldDecls create_cache(Sym, Sym D) override { return {{"c", 1, D}}; }
  void forward_cache(CacheView& cache) override { kept = Mean(1)(cache["k"], cache["c"]); }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    return topK()(GeMM()(Mean(1)(q), Add()(cache["c"], kept)));
  }
};

TEST(PassesGolden, VerifierMessages) {
  std::string out;
  auto report = [&](Flow& f) {
    auto ir = flow::build_flow(f);
    Status st = ir.has_value() ? flow::FlowProgram::compile(*ir).status() : ir.status();
    EXPECT_FALSE(st.is_ok()) << f.name();
    out += f.name() + ": " + st.to_string() + "\n";
  };
  TwoTerminals a;
  BadShapes b;
  ReusedOp c;
  Unwritten d;
  CacheReadsField e;
  MixedSides g;
  for (Flow* f : std::initializer_list<Flow*>{&a, &b, &c, &d, &e, &g}) report(*f);
  expect_golden("verify_errors.txt", out);
}

}  // namespace
}  // namespace vortex::compiler
