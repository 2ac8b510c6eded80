// FlowSet: loading the operator's flows and validating each request's choice and budget.
#include "vortex/engine/flow_set.h"

#include <algorithm>
#include <filesystem>
#include <set>

namespace vortex::engine {

namespace {

constexpr int32_t kMaxBudgetPages = 1 << 20;

Status check_budget(const flow::BudgetParams& b, int32_t num_layers) {
  if (b.topk_val < 0 || b.topk_val > kMaxBudgetPages) {
    return invalid_argument("topk_val must be in [0, " + std::to_string(kMaxBudgetPages) +
                            "], got " + std::to_string(b.topk_val));
  }
  if (!(b.topk_ratio >= 0.0f && b.topk_ratio <= 1.0f)) {
    return invalid_argument("topk_ratio must be in [0, 1], got " + std::to_string(b.topk_ratio));
  }
  if (b.bos < 0 || b.bos > kMaxBudgetPages) {
    return invalid_argument("bos must be in [0, " + std::to_string(kMaxBudgetPages) + "], got " +
                            std::to_string(b.bos));
  }
  if (b.eos < 0 || b.eos > kMaxBudgetPages) {
    return invalid_argument("eos must be in [0, " + std::to_string(kMaxBudgetPages) + "], got " +
                            std::to_string(b.eos));
  }
  std::set<int32_t> seen;
  for (int32_t l : b.layers_skip) {
    if (l < 0 || l >= num_layers) {
      return invalid_argument("layers_skip entry " + std::to_string(l) +
                              " is not a layer of this model (0.." +
                              std::to_string(num_layers - 1) + ")");
    }
    if (!seen.insert(l).second) {
      return invalid_argument("layers_skip lists layer " + std::to_string(l) + " twice");
    }
  }
  return Status::ok();
}

struct LoadedFlow {
  std::shared_ptr<const flow::FlowProgram> program;
  std::string name;
  bool dense = false;      // no indexer: runs as dense attention
  bool uses_save = false;  // per-page state that depends on history: no prefix cache
};

Expected<LoadedFlow> load_flow_program(const std::string& name_or_path) {
  auto program = flow::load_flow(name_or_path);
  if (!program.has_value()) {
    return program.status().with_context("loading flow '" + name_or_path + "'");
  }
  LoadedFlow out;
  out.program = *program;
  out.name = flow::flow_name(*out.program);
  out.dense = flow::flow_is_dense(*out.program);
  out.uses_save = flow::flow_uses_save(*out.program);
  return out;
}

/// Expands directories into their .json files, sorted.
Expected<std::vector<std::string>> expand_specs(const std::vector<std::string>& specs) {
  std::vector<std::string> out;
  for (const std::string& s : specs) {
    if (s.empty()) continue;
    std::error_code ec;
    if (std::filesystem::is_directory(s, ec)) {
      std::vector<std::string> files;
      for (const auto& e : std::filesystem::directory_iterator(s, ec)) {
        if (e.path().extension() == ".json") files.push_back(e.path().string());
      }
      if (ec) return invalid_argument("cannot list flow directory '" + s + "': " + ec.message());
      if (files.empty()) return invalid_argument("flow directory '" + s + "' has no .json flows");
      std::sort(files.begin(), files.end());
      out.insert(out.end(), files.begin(), files.end());
    } else {
      out.push_back(s);
    }
  }
  return out;
}

}  // namespace

Expected<FlowSet> FlowSet::load(const std::vector<std::string>& specs,
                                const std::string& default_flow, flow::BudgetParams budget,
                                int32_t page_size, int32_t num_layers) {
  FlowSet set;
  set.num_layers_ = num_layers;
  budget.block_size = page_size;
  VORTEX_RETURN_IF_ERROR(check_budget(budget, num_layers).with_context("default budget"));
  set.budget_ = budget;
  set.flows_["dense"] = Entry{};
  VORTEX_ASSIGN_OR_RETURN(std::vector<std::string> all, expand_specs(specs));
  if (!default_flow.empty()) all.push_back(default_flow);
  for (const std::string& spec : all) {
    if (spec == "dense") continue;
    VORTEX_ASSIGN_OR_RETURN(LoadedFlow loaded, load_flow_program(spec));
    if (loaded.name.empty()) return invalid_argument("flow '" + spec + "' has no name");
    auto existing = set.flows_.find(loaded.name);
    if (existing != set.flows_.end()) {
      if (spec == default_flow) continue;  // the default was also listed explicitly
      return invalid_argument("two loaded flows are named '" + loaded.name + "' (from '" + spec +
                              "'); give each flow a unique name");
    }
    Entry e;
    if (!loaded.dense) {
      e.program = loaded.program;
      e.uses_save = loaded.uses_save;
      auto cfg = std::make_shared<flow::SparseConfig>();
      cfg->program = loaded.program;
      cfg->budget = budget;
      e.config = std::move(cfg);
      // Requests may override layers_skip, so the cache keeps aux fields on every layer.
      auto sizing = std::make_shared<flow::SparseConfig>(*e.config);
      sizing->budget.layers_skip.clear();
      e.sizing = std::move(sizing);
    }
    set.flows_[loaded.name] = std::move(e);
  }
  if (default_flow.empty() || default_flow == "dense") {
    set.default_name_ = "dense";
  } else {
    // The default may have been given as a path: find it by the name its program carries.
    VORTEX_ASSIGN_OR_RETURN(LoadedFlow loaded, load_flow_program(default_flow));
    set.default_name_ = loaded.name;
  }
  return set;
}

std::vector<std::string> FlowSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : flows_) out.push_back(name);
  return out;
}

std::vector<const flow::SparseConfig*> FlowSet::configs() const {
  std::vector<const flow::SparseConfig*> out;
  for (const auto& [name, e] : flows_) {
    if (e.sizing) out.push_back(e.sizing.get());
  }
  return out;
}

Expected<RequestFlow> FlowSet::resolve(const FlowOverrides& o) const {
  const std::string name = o.flow.value_or(default_name_);
  auto it = flows_.find(name);
  if (it == flows_.end()) {
    std::string known;
    for (const auto& [n, e] : flows_) known += (known.empty() ? "" : ", ") + n;
    return invalid_argument("unknown flow '" + name + "'; this server loaded: " + known);
  }
  RequestFlow out;
  out.name = name;
  const Entry& e = it->second;
  const bool budget_given = o.topk_val || o.topk_ratio || o.bos || o.eos || o.layers_skip;
  if (e.program == nullptr) {
    if (budget_given && name == "dense") {
      return invalid_argument(
          "budget fields (topk_val, topk_ratio, bos, eos, layers_skip) need a "
          "sparse flow; flow is 'dense'");
    }
    return out;
  }
  out.prefix_cacheable = !e.uses_save;
  if (!budget_given) {
    out.sparse = e.config;
    return out;
  }
  flow::BudgetParams b = e.config->budget;
  if (o.topk_val) b.topk_val = *o.topk_val;
  if (o.topk_ratio) b.topk_ratio = *o.topk_ratio;
  if (o.bos) b.bos = *o.bos;
  if (o.eos) b.eos = *o.eos;
  if (o.layers_skip) b.layers_skip = *o.layers_skip;
  VORTEX_RETURN_IF_ERROR(check_budget(b, num_layers_));
  auto cfg = std::make_shared<flow::SparseConfig>();
  cfg->program = e.program;
  cfg->budget = std::move(b);
  out.sparse = std::move(cfg);
  return out;
}

}  // namespace vortex::engine
