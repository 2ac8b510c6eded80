// FlowSet: the sparse-attention flows an operator loaded at start (`--flows a,b,c` or a directory
// of .json flows) with the server's default flow and budget. A request picks one by name and may
// override the budget; everything is validated here, so a request can only run what the operator
// approved.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/engine/request.h"
#include "vortex/flow/runtime.h"

namespace vortex::engine {

/// What a request may ask for (the `vortex` body field); unset fields take the server default.
struct FlowOverrides {
  std::optional<std::string> flow;
  std::optional<int32_t> topk_val;
  std::optional<float> topk_ratio;
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  std::optional<std::vector<int32_t>> layers_skip;
};

class FlowSet {
 public:
  /// Loads `specs`: built-in flow names, paths to .json flows, or directories (every *.json in
  /// them). "dense" is always in the set. `default_flow` must be in the set (it is loaded if not
  /// listed). `budget` is the default budget; its block_size is set to `page_size`.
  static Expected<FlowSet> load(const std::vector<std::string>& specs,
                                const std::string& default_flow, flow::BudgetParams budget,
                                int32_t page_size, int32_t num_layers);

  /// Names of the loaded flows, sorted.
  std::vector<std::string> names() const;
  const std::string& default_name() const { return default_name_; }
  const flow::BudgetParams& default_budget() const { return budget_; }
  /// Every sparse flow of the set with no layers_skip, for sizing the KV cache's aux fields (a
  /// request may run any layer sparse, so every layer keeps aux fields).
  std::vector<const flow::SparseConfig*> configs() const;
  /// The configuration a request runs with; errors name the bad field and the allowed values.
  Expected<RequestFlow> resolve(const FlowOverrides& overrides) const;

 private:
  struct Entry {
    std::shared_ptr<const flow::FlowProgram> program;  // null for dense
    std::shared_ptr<const flow::SparseConfig> config;  // default budget; null for dense
    std::shared_ptr<const flow::SparseConfig> sizing;  // config without layers_skip
    bool uses_save = false;
  };
  std::map<std::string, Entry> flows_;
  std::string default_name_;
  flow::BudgetParams budget_;
  int32_t num_layers_ = 0;
};

}  // namespace vortex::engine
