// The JSON form: lossless round trip of every built-in, loading from a file, node order and ids
// free, and a clear error (never a crash) for every malformed or invalid flow.
#include "vortex/flow/json.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "vortex/compiler/interpreter.h"
#include "vortex/compiler/passes.h"
#include "vortex/compiler/program.h"
#include "vortex/flow/op_catalogue.h"
#include "vortex/flow/registry.h"
#include "vortex/flow/runtime.h"

namespace vortex::flow {
namespace {

using Json = nlohmann::ordered_json;

// Indexer scores of `ir` on 5 pages of random K/V (cache flow run per page), for semantic checks.
std::vector<float> sample_scores(const FlowIR& ir, uint32_t seed) {
  const ShapeEnv env{16, 32, 2};
  auto plan = compiler::compile_plan(ir, env);
  EXPECT_TRUE(plan.has_value()) << plan.status().to_string();
  if (!plan || plan->indexer.terminal < 0) return {};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  const int64_t S = 5, tile = env.block_size * env.head_dim;
  std::vector<float> kv(static_cast<size_t>(S * 2 * tile));
  for (float& x : kv) x = nd(rng);
  std::vector<std::vector<std::vector<float>>> fields;  // [S][field]
  for (int64_t s = 0; s < S; ++s) {
    const compiler::TileReader read = [&](int32_t f, int64_t, float* dst) {
      const float* src = kv.data() + (s * 2 + (f == compiler::kFieldV ? 1 : 0)) * tile;
      std::copy(src, src + tile, dst);
    };
    fields.push_back(compiler::run_cache_plan(plan->cache, read, 0).value());
  }
  std::vector<float> q(static_cast<size_t>(env.group * env.head_dim));
  for (float& x : q) x = nd(rng);
  const compiler::TileReader read = [&](int32_t f, int64_t s, float* dst) {
    if (f < 0) {
      const float* src = kv.data() + (s * 2 + (f == compiler::kFieldV ? 1 : 0)) * tile;
      std::copy(src, src + tile, dst);
    } else {
      const auto& t = fields[static_cast<size_t>(s)][static_cast<size_t>(f)];
      std::copy(t.begin(), t.end(), dst);
    }
  };
  return compiler::run_indexer_plan(plan->indexer, q, S, read, 0).value().scores;
}

TEST(FlowJson, EveryBuiltinRoundTripsLosslessly) {
  for (const auto& name : builtin_names()) {
    auto ir = registered_flow_ir(name);
    ASSERT_TRUE(ir.has_value()) << ir.status().to_string();
    const std::string text = flow_to_json(*ir);
    auto back = flow_from_json(text);
    ASSERT_TRUE(back.has_value()) << name << ": " << back.status().to_string();
    EXPECT_TRUE(*back == *ir) << name;
    EXPECT_EQ(flow_to_json(*back), text) << name;
    EXPECT_TRUE(FlowProgram::compile(*back).has_value()) << name;
  }
}

TEST(FlowJson, ParametersAndConvWeightsRoundTripBitExactly) {
  FlowIR ir = registered_flow_ir("gqa_block_topk").value();
  Node conv = make_node(OpKind::kConv1d, {3},
                        {{"weight", ConstTensor{{3, 1, 1}, {0.1f, 1.0f / 3, 1e-30f}}}});
  ir.indexer.nodes.insert(ir.indexer.nodes.begin() + 4, conv);
  for (size_t i = 5; i < ir.indexer.nodes.size(); ++i) {
    for (int32_t& in : ir.indexer.nodes[i].inputs) in = in >= 4 ? in + 1 : in;
  }
  ir.indexer.nodes[5].inputs = {4};  // Max(dim=2) now reads the convolved probabilities
  ASSERT_TRUE(FlowProgram::compile(ir).has_value());
  auto back = flow_from_json(flow_to_json(ir));
  ASSERT_TRUE(back.has_value()) << back.status().to_string();
  EXPECT_TRUE(*back == ir);
}

TEST(FlowJson, LoadsFromAFileAndSelectsLikeTheBuiltin) {
  const std::string path = ::testing::TempDir() + "/quest_copy.json";
  {
    std::ofstream f(path);
    f << flow_to_json(registered_flow_ir("quest").value());
  }
  auto p = load_flow(path);
  ASSERT_TRUE(p.has_value()) << p.status().to_string();
  EXPECT_EQ(flow_name(**p), "quest");
  EXPECT_EQ(flow_aux_fields(**p, 16, 64).size(), 2u);
  auto missing = load_flow("/nonexistent/flow.json");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.status().message().find("cannot open flow file"), std::string::npos);
  auto unknown = load_flow("no_such_flow");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.status().message().find("known flows: dense, streaming, block_topk"),
            std::string::npos);
  std::remove(path.c_str());
}

TEST(FlowJson, NodeOrderAndIdsAreFree) {
  for (const auto& name : {"block_topk", "quest", "running_avg", "h2o_pages"}) {
    const FlowIR ir = registered_flow_ir(name).value();
    Json j = Json::parse(flow_to_json(ir));
    for (const char* side : {"cache", "indexer"}) {
      Json& nodes = j[side];
      for (auto& n : nodes) {
        n["id"] = n["id"].get<int64_t>() * 7 + 1000;
        if (n.contains("inputs")) {
          for (auto& in : n["inputs"]) in = in.get<int64_t>() * 7 + 1000;
        }
      }
      std::reverse(nodes.begin(), nodes.end());
    }
    auto back = flow_from_json(j.dump());
    ASSERT_TRUE(back.has_value()) << back.status().to_string();
    EXPECT_EQ(sample_scores(*back, 3), sample_scores(ir, 3)) << name;
  }
}

// Applies `edit` to block_topk's JSON and expects loading (parse + compile) to fail with `want`.
void expect_load_error(const std::function<void(Json&)>& edit, const std::string& want) {
  Json j = Json::parse(flow_to_json(registered_flow_ir("block_topk").value()));
  edit(j);
  auto ir = flow_from_json(j.dump());
  Status st = ir.has_value() ? FlowProgram::compile(*ir).status() : ir.status();
  ASSERT_FALSE(st.is_ok()) << "expected: " << want;
  EXPECT_NE(st.message().find(want), std::string::npos) << st.message();
}

TEST(FlowJson, ClearErrors) {
  auto malformed = flow_from_json("{\"vflow\": 1, \"name\": \"x\",");
  ASSERT_FALSE(malformed.has_value());
  EXPECT_NE(malformed.status().message().find("malformed"), std::string::npos);
  EXPECT_NE(malformed.status().message().find("line 1"), std::string::npos);
  EXPECT_FALSE(flow_from_json("[1, 2]").has_value());
  EXPECT_FALSE(flow_from_json("").has_value());

  expect_load_error([](Json& j) { j["indexer"][3]["op"] = "FancyTopK"; },
                    "unknown op 'FancyTopK'; ops are Input, Field, Parameter, GeMM");
  expect_load_error([](Json& j) { j["indexer"][3]["inputs"] = {1}; },
                    "GeMM takes 2 input(s), got 1; usage GeMM()(x [1|S, Nx, K], y [S, Ny, K])");
  expect_load_error([](Json& j) { j["indexer"][1]["inputs"] = {3}; },
                    "the graph has a cycle through nodes");
  expect_load_error(
      [](Json& j) { j["indexer"].erase(4); },
      "must end in exactly one topK()(score) or approxTopK(tolerance)(score); found 0");
  expect_load_error(
      [](Json& j) {
        j["indexer"].push_back({{"id", 9}, {"op", "topK"}, {"inputs", {3}}});
      },
      "found 2");
  expect_load_error([](Json& j) { j["cache"][1].erase("out"); },
                    "field 'centroid' is declared but nothing writes it");
  expect_load_error(
      [](Json& j) {
        j["fields"].push_back({{"name", "unused"}, {"rows", 1}, {"cols", 1}});
        j["cache"].push_back({{"id", 7}, {"op", "Fill"}, {"out", "unused"}});
      },
      "field 'unused' is written but the indexer never reads it");
  expect_load_error(
      [](Json& j) {
        j["fields"].push_back({{"name", "state"}, {"rows", 1}, {"cols", 1}});
        j["indexer"].push_back({{"id", 8}, {"op", "Field"}, {"ref", "state"}});
        j["indexer"].push_back({{"id", 9}, {"op", "Save"}, {"inputs", {3}}, {"out", "state"}});
      },
      "saved by the indexer but the cache flow never initialises it");
  expect_load_error([](Json& j) { j["fields"][0]["name"] = "k"; }, "k and v are implicit");
  expect_load_error([](Json& j) { j["indexer"][2]["ref"] = "centroids"; },
                    "cache[\"centroids\"] is not a field; fields are k, v, centroid");
  expect_load_error([](Json& j) { j["indexer"][1]["attrs"]["dims"] = 1; },
                    "Mean has no attribute 'dims'; it takes dim");
  expect_load_error([](Json& j) { j["indexer"][1].erase("attrs"); }, "Mean needs attribute 'dim'");
  expect_load_error([](Json& j) { j["fields"][0]["cols"] = "D +* 2"; }, "column 4");
  expect_load_error(
      [](Json& j) {
        j["indexer"][3]["inputs"] = {1, 77};
      },
      "reads node 77, which is not in the indexer graph");
  expect_load_error([](Json& j) { j["indexer"][2]["id"] = 1; }, "node id 1 is used twice");
  expect_load_error([](Json& j) { j["indexer"][2]["colour"] = "red"; }, "unknown key 'colour'");
  expect_load_error([](Json& j) { j.erase("vflow"); }, "\"vflow\" must be 1");
  expect_load_error([](Json& j) { j["indexer"][0]["id"] = "zero"; }, "must be an integer");
  expect_load_error([](Json& j) { j["mode"] = "turbo"; },
                    "'turbo' is not dense, streaming or sparse");
  expect_load_error([](Json& j) { j["mode"] = "dense"; }, "selects without an indexer");
  expect_load_error([](Json& j) { j["fields"][0]["cols"] = "G"; }, "depends on G");
  expect_load_error([](Json& j) { j["fields"][0]["cols"] = 100000000; },
                    "rows and cols must be in 1..");
  expect_load_error([](Json& j) { j["cache"][1]["attrs"]["dim"] = 2; },
                    "writes PAGE [1, 16, 1] into cache[\"centroid\"], declared [1, 128]");
  expect_load_error([](Json& j) { j["name"] = "a/b"; }, "without '/'");
}

}  // namespace
}  // namespace vortex::flow
