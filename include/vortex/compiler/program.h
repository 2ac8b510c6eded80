// FlowProgram: a verified, dead-code-free flow plus its lowered plans, memoised per shape. This is
// the object behind the opaque `FlowProgram` of vortex/flow/runtime.h.
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "vortex/compiler/plan.h"
#include "vortex/core/status.h"
#include "vortex/flow/ir.h"

namespace vortex::flow {

class FlowProgram {
 public:
  /// Verifies `ir` (rules, and shapes at ir.verify_env), removes dead code, verifies again.
  static Expected<std::shared_ptr<const FlowProgram>> compile(FlowIR ir);

  /// The flow as given (what `vortex flow export` writes).
  const FlowIR& source() const { return source_; }
  /// The flow after dead-code elimination (what runs).
  const FlowIR& ir() const { return ir_; }
  bool uses_save() const { return uses_save_; }

  /// The cache side's plan for page size P and head dim D (verified on first use).
  Expected<std::shared_ptr<const compiler::SidePlan>> cache_plan(int64_t page_size,
                                                                 int64_t head_dim) const;
  /// The indexer side's plan at `env` (verified on first use).
  Expected<std::shared_ptr<const compiler::SidePlan>> indexer_plan(const ShapeEnv& env) const;

 private:
  FlowProgram() = default;
  Expected<std::shared_ptr<const compiler::SidePlan>> plan(Side side, const ShapeEnv& env) const;

  FlowIR source_;
  FlowIR ir_;
  bool uses_save_ = false;
  mutable std::mutex mu_;
  mutable std::map<std::pair<Side, ShapeEnv>, std::shared_ptr<const compiler::SidePlan>> plans_;
};

}  // namespace vortex::flow
