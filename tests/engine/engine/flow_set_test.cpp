// FlowSet: the operator's flows (names, .json files, directories), the default, and validation of
// each request's flow choice and budget overrides.
#include "vortex/engine/flow_set.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "vortex/flow/json.h"
#include "vortex/flow/registry.h"

namespace vortex::engine {
namespace {

constexpr int32_t kLayers = 4;

FlowSet load_ok(const std::vector<std::string>& specs, const std::string& dflt = "dense",
                flow::BudgetParams budget = {}) {
  auto s = FlowSet::load(specs, dflt, budget, 16, kLayers);
  EXPECT_TRUE(s.has_value()) << s.status().to_string();
  return std::move(s).value();
}

TEST(FlowSet, LoadsNamedFlowsAndResolvesRequests) {
  flow::BudgetParams budget;
  budget.topk_val = 7;
  const FlowSet set = load_ok({"block_topk", "running_avg"}, "quest", budget);
  EXPECT_EQ(set.names(), (std::vector<std::string>{"block_topk", "dense", "quest", "running_avg"}));
  EXPECT_EQ(set.default_name(), "quest");
  EXPECT_EQ(set.configs().size(), 3u);  // sparse flows only
  for (const auto* c : set.configs()) EXPECT_TRUE(c->budget.layers_skip.empty());

  auto d = set.resolve({});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->name, "quest");
  ASSERT_NE(d->sparse, nullptr);
  EXPECT_EQ(d->sparse->budget.topk_val, 7);
  EXPECT_EQ(d->sparse->budget.block_size, 16);
  EXPECT_TRUE(d->prefix_cacheable);

  FlowOverrides o;
  o.flow = "block_topk";
  o.topk_val = 3;
  o.bos = 0;
  o.layers_skip = std::vector<int32_t>{0, 3};
  auto r = set.resolve(o);
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_EQ(r->sparse->budget.topk_val, 3);
  EXPECT_EQ(r->sparse->budget.bos, 0);
  EXPECT_EQ(r->sparse->budget.eos, 1);
  EXPECT_EQ(r->sparse->budget.layers_skip, (std::vector<int32_t>{0, 3}));

  FlowOverrides save;
  save.flow = "running_avg";
  EXPECT_FALSE(set.resolve(save)->prefix_cacheable);
  FlowOverrides dense;
  dense.flow = "dense";
  EXPECT_EQ(set.resolve(dense)->sparse, nullptr);
}

TEST(FlowSet, RejectsWhatTheOperatorDidNotApprove) {
  const FlowSet set = load_ok({"block_topk"});
  auto expect_bad = [&](FlowOverrides o, const std::string& needle) {
    auto r = set.resolve(o);
    ASSERT_FALSE(r.has_value()) << needle;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  FlowOverrides o;
  o.flow = "quest";  // a built-in, but not loaded
  expect_bad(o, "unknown flow 'quest'");
  o = {};
  o.flow = "block_topk";
  o.layers_skip = std::vector<int32_t>{kLayers};
  expect_bad(o, "layers_skip entry 4");
  o.layers_skip = std::vector<int32_t>{1, 1};
  expect_bad(o, "twice");
  o.layers_skip.reset();
  o.topk_ratio = 1.5f;
  expect_bad(o, "topk_ratio");
  o.topk_ratio.reset();
  o.topk_val = -2;
  expect_bad(o, "topk_val");
  o.topk_val.reset();
  o.eos = -1;
  expect_bad(o, "eos");
  o = {};
  o.topk_val = 4;  // default flow is dense
  expect_bad(o, "need a sparse flow");

  EXPECT_FALSE(FlowSet::load({"no_such_flow"}, "dense", {}, 16, kLayers).has_value());
  EXPECT_FALSE(FlowSet::load({}, "no_such_flow", {}, 16, kLayers).has_value());
  flow::BudgetParams bad;
  bad.layers_skip = {9};
  EXPECT_FALSE(FlowSet::load({}, "dense", bad, 16, kLayers).has_value());
}

TEST(FlowSet, LoadsADirectoryOfJsonFlows) {
  const auto dir = std::filesystem::temp_directory_path() / "vortex_flow_set_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (const char* base : {"quest", "block_topk"}) {
    auto ir = flow::registered_flow_ir(base);
    ASSERT_TRUE(ir.has_value());
    ir->name = std::string("my_") + base;
    std::ofstream(dir / (ir->name + ".json")) << flow::flow_to_json(*ir);
  }
  std::ofstream(dir / "notes.txt") << "not a flow";
  const FlowSet set = load_ok({dir.string()});
  EXPECT_EQ(set.names(), (std::vector<std::string>{"dense", "my_block_topk", "my_quest"}));
  FlowOverrides o;
  o.flow = "my_quest";
  auto r = set.resolve(o);
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->sparse, nullptr);
  // Two sources giving one name are refused.
  EXPECT_FALSE(
      FlowSet::load({dir.string(), (dir / "my_quest.json").string()}, "dense", {}, 16, kLayers)
          .has_value());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vortex::engine
