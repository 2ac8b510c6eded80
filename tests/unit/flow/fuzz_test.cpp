// Seeded mutation fuzzing of the JSON loader (text-level and structure-level mutations of every
// built-in's export) and of the policy parser. Every input must give a value or a non-empty error;
// flows that still compile are lowered, printed and run through the interpreter on small data.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "vortex/compiler/interpreter.h"
#include "vortex/compiler/passes.h"
#include "vortex/compiler/printer.h"
#include "vortex/compiler/program.h"
#include "vortex/flow/json.h"
#include "vortex/flow/op_catalogue.h"
#include "vortex/flow/policy.h"
#include "vortex/flow/registry.h"
#include "vortex/flow/runtime.h"

namespace vortex::flow {
namespace {

using Json = nlohmann::ordered_json;

std::string random_token(std::mt19937& rng) {
  static const std::vector<std::string> tokens = {
      "{",         "}",           "[",          "]",        ",",        ":",          "\"",
      "-1",        "0",           "1",          "2",        "16",       "1e308",      "-1e308",
      "3.5",       "null",        "true",       "\"P\"",    "\"D/0\"",  "\"G\"",      "\"k\"",
      "\"q\"",     "\"topK\"",    "\"Save\"",   "\"Load\"", "\"Kron\"", "\"inputs\"", "\"out\"",
      "\"attrs\"", "99999999999", "\"\\u0000\""};
  return tokens[std::uniform_int_distribution<size_t>(0, tokens.size() - 1)(rng)];
}

std::string mutate_text(std::string s, std::mt19937& rng) {
  const int edits = std::uniform_int_distribution<int>(1, 4)(rng);
  for (int e = 0; e < edits && !s.empty(); ++e) {
    const size_t pos = std::uniform_int_distribution<size_t>(0, s.size() - 1)(rng);
    switch (std::uniform_int_distribution<int>(0, 4)(rng)) {
      case 0:
        s[pos] = static_cast<char>(std::uniform_int_distribution<int>(32, 126)(rng));
        break;
      case 1:
        s.erase(pos, std::uniform_int_distribution<size_t>(1, 20)(rng));
        break;
      case 2:
        s.insert(pos, random_token(rng));
        break;
      case 3: {
        const size_t len = std::uniform_int_distribution<size_t>(1, 60)(rng);
        s.insert(std::uniform_int_distribution<size_t>(0, s.size())(rng), s.substr(pos, len));
        break;
      }
      default:
        s.erase(pos);
        break;
    }
  }
  return s;
}

Json random_value(std::mt19937& rng) {
  switch (std::uniform_int_distribution<int>(0, 7)(rng)) {
    case 0:
      return std::uniform_int_distribution<int>(-3, 40)(rng);
    case 1:
      return 1e300;
    case 2:
      return "P/16";
    case 3:
      return Json::array({-1, 2, "D"});
    case 4:
      return Json::object({{"shape", {2, 2}}, {"data", {1, 2, 3, 4}}});
    case 5:
      return "1/(D-128)";
    case 6:
      return -0.5;
    default:
      return Json();
  }
}

std::string mutate_structure(const std::string& text, std::mt19937& rng) {
  Json j = Json::parse(text);
  const char* side = std::uniform_int_distribution<int>(0, 1)(rng) ? "indexer" : "cache";
  Json& nodes = j[side];
  if (nodes.empty()) return j.dump();
  Json& n = nodes[std::uniform_int_distribution<size_t>(0, nodes.size() - 1)(rng)];
  const auto ops = all_ops();
  switch (std::uniform_int_distribution<int>(0, 6)(rng)) {
    case 0:
      n["op"] =
          std::string(ops[std::uniform_int_distribution<size_t>(0, ops.size() - 1)(rng)].name);
      break;
    case 1:
      n["inputs"] = Json::array({std::uniform_int_distribution<int>(0, 8)(rng),
                                 std::uniform_int_distribution<int>(0, 8)(rng)});
      break;
    case 2:
      n["attrs"]["dim"] = random_value(rng);
      break;
    case 3:
      n["out"] = std::uniform_int_distribution<int>(0, 1)(rng) ? "centroid" : "k";
      break;
    case 4:
      nodes.erase(std::uniform_int_distribution<size_t>(0, nodes.size() - 1)(rng));
      break;
    case 5:
      nodes.push_back(n);
      break;
    default:
      j["fields"].push_back(
          {{"name", "f"}, {"rows", random_value(rng)}, {"cols", random_value(rng)}});
      break;
  }
  return j.dump();
}

// Runs whatever survives through the rest of the pipeline, including the interpreter.
void exercise(const std::string& text, std::mt19937& rng) {
  auto ir = flow_from_json(text);
  if (!ir) {
    EXPECT_FALSE(ir.status().message().empty());
    return;
  }
  auto program = FlowProgram::compile(*ir);
  if (!program) {
    EXPECT_FALSE(program.status().message().empty());
    return;
  }
  const ShapeEnv env{16, 8 * std::uniform_int_distribution<int>(1, 4)(rng),
                     std::uniform_int_distribution<int>(1, 3)(rng)};
  (void)compiler::print_ir(*ir, env);
  auto plan = compiler::compile_plan((*program)->ir(), env);
  if (!plan) return;
  (void)compiler::print_plan(*plan);
  for (const auto* sp : {&plan->cache, &plan->indexer}) {
    for (const auto& s : sp->steps) {
      if (s.type.tile_elems() > 4096) return;  // keep the fuzz fast
    }
  }
  std::normal_distribution<float> nd;
  const compiler::TileReader read = [&](int32_t f, int64_t, float* dst) {
    int64_t n = env.block_size * env.head_dim;
    if (f >= 0)
      n = plan->indexer.fields[static_cast<size_t>(f)].rows *
          plan->indexer.fields[static_cast<size_t>(f)].cols;
    for (int64_t i = 0; i < n; ++i) dst[i] = nd(rng);
  };
  (void)compiler::run_cache_plan(plan->cache, read, 0);
  if (plan->indexer.terminal >= 0) {
    std::vector<float> q(static_cast<size_t>(env.group * env.head_dim), 0.5f);
    (void)compiler::run_indexer_plan(plan->indexer, q, 3, read, 0);
  }
}

TEST(FlowFuzz, JsonLoaderNeverCrashes) {
  std::vector<std::string> corpus;
  for (const auto& name : builtin_names())
    corpus.push_back(flow_to_json(registered_flow_ir(name).value()));
  std::mt19937 rng(20240607);
  int compiled = 0;
  for (int it = 0; it < 3000; ++it) {
    const std::string& seed = corpus[static_cast<size_t>(it) % corpus.size()];
    const std::string text = it % 2 ? mutate_text(seed, rng) : mutate_structure(seed, rng);
    exercise(text, rng);
    compiled += flow_from_json(text).has_value() ? 1 : 0;
  }
  EXPECT_GT(compiled, 100) << "the mutations should leave many inputs loadable";
}

TEST(FlowFuzz, PolicyParserNeverCrashes) {
  const std::vector<std::string> seeds = {
      std::string(kDefaultPolicy), "layer < 2 ? pages : clamp(sqrt(pages) * 4, bos + eos + 1, 64)",
      "min(max(topk_val, pages / 8), 4096) + (layer == 3) * 10",
      "!(pages >= 100) || log2(pages) > ceil(topk_ratio * 3.5e1)"};
  static const std::string alphabet = "0123456789.e+-*/()<>=!&|?:, abcdefghijklmnopqrstuvwxyz_";
  std::mt19937 rng(7);
  int parsed = 0;
  for (int it = 0; it < 4000; ++it) {
    std::string s = seeds[static_cast<size_t>(it) % seeds.size()];
    const int edits = std::uniform_int_distribution<int>(1, 3)(rng);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = std::uniform_int_distribution<size_t>(0, s.size())(rng);
      const char c = alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(rng)];
      switch (std::uniform_int_distribution<int>(0, 2)(rng)) {
        case 0:
          s.insert(pos, 1, c);
          break;
        case 1:
          if (pos < s.size()) s.erase(pos, 1);
          break;
        default:
          if (pos < s.size()) s[pos] = c;
          break;
      }
    }
    auto p = PolicyExpr::parse(s);
    if (!p) {
      EXPECT_NE(p.status().message().find("column "), std::string::npos) << s;
      continue;
    }
    ++parsed;
    (void)p->evaluate({static_cast<double>(it), 30, 0.1, 1, 1, static_cast<double>(it % 30)});
    EXPECT_FALSE(p->emit_cuda().empty());
    BudgetParams b;
    b.policy = std::make_shared<const PolicyExpr>(*p);
    EXPECT_GE(b.budget(it, it % 4), b.bos + b.eos + 1);
  }
  EXPECT_GT(parsed, 200);
}

}  // namespace
}  // namespace vortex::flow
