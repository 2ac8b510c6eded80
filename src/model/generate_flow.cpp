// make_sparse_config: the flow program and budget a request uses, from CLI-style options.
#include <string>

#include "vortex/model/generation.h"

namespace vortex {

Expected<flow::SparseConfig> make_sparse_config(const FlowOptions& options) {
  flow::SparseConfig config;
  config.budget = options.budget;
  const flow::BudgetParams& b = options.budget;
  if (b.block_size <= 0 || (b.block_size & (b.block_size - 1)) != 0) {
    return invalid_argument("--block-size must be a power of two, got " +
                            std::to_string(b.block_size));
  }
  if (b.topk_val < 0 || b.bos < 0 || b.eos < 0 || !(b.topk_ratio >= 0.0f && b.topk_ratio <= 1.0f)) {
    return invalid_argument(
        "budget needs topk_val, bos, eos >= 0 and topk_ratio in [0, 1]; got topk_val " +
        std::to_string(b.topk_val) + ", bos " + std::to_string(b.bos) + ", eos " +
        std::to_string(b.eos) + ", topk_ratio " + std::to_string(b.topk_ratio));
  }
  if (options.flow.empty() || options.flow == "dense") return config;
  VORTEX_ASSIGN_OR_RETURN(config.program, flow::load_flow(options.flow));
  if (!options.policy.empty()) {
    auto policy = flow::parse_policy(options.policy);
    if (!policy) return policy.status().with_context("--policy '" + options.policy + "'");
    config.budget.policy = std::move(policy).value();
  }
  return config;
}

}  // namespace vortex
