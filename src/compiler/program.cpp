// FlowProgram: compile once at load time, lower per shape on first use.
#include "vortex/compiler/program.h"

#include "vortex/compiler/passes.h"

namespace vortex::flow {

Expected<std::shared_ptr<const FlowProgram>> FlowProgram::compile(FlowIR ir) {
  VORTEX_RETURN_IF_ERROR(compiler::verify_flow(ir, ir.verify_env));
  FlowIR live = compiler::eliminate_dead_code(ir);
  VORTEX_RETURN_IF_ERROR(compiler::verify_flow(live, ir.verify_env));
  std::shared_ptr<FlowProgram> p(new FlowProgram());
  p->source_ = std::move(ir);
  p->ir_ = std::move(live);
  for (const auto& n : p->ir_.indexer.nodes) p->uses_save_ |= n.op == OpKind::kSave;
  return std::shared_ptr<const FlowProgram>(std::move(p));
}

Expected<std::shared_ptr<const compiler::SidePlan>> FlowProgram::cache_plan(
    int64_t page_size, int64_t head_dim) const {
  return plan(Side::kCache, ShapeEnv{page_size, head_dim, 1});
}

Expected<std::shared_ptr<const compiler::SidePlan>> FlowProgram::indexer_plan(
    const ShapeEnv& env) const {
  return plan(Side::kIndexer, env);
}

Expected<std::shared_ptr<const compiler::SidePlan>> FlowProgram::plan(Side side,
                                                                      const ShapeEnv& env) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = plans_.find({side, env});
  if (it != plans_.end()) return it->second;
  VORTEX_ASSIGN_OR_RETURN(compiler::TypedGraph typed, compiler::verify_side(ir_, side, env));
  auto sp = std::make_shared<const compiler::SidePlan>(
      compiler::lower_side(ir_, side, typed, compiler::fuse(ir_, side)));
  plans_.emplace(std::make_pair(side, env), sp);
  return std::shared_ptr<const compiler::SidePlan>(sp);
}

}  // namespace vortex::flow
