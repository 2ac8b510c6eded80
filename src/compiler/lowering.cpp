// Lowering: a verified, dead-code-free graph plus its fusion groups become an execution plan —
// steps with concrete types and attributes, field ids resolved, sources first, then every group's
// steps contiguously in execution order. compile_plan() runs the whole pass pipeline.
#include <string>

#include "vortex/compiler/passes.h"
#include "vortex/core/check.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::compiler {
namespace {

int32_t field_id(const FlowIR& ir, const std::string& name) {
  if (name == "k") return kFieldK;
  if (name == "v") return kFieldV;
  for (size_t i = 0; i < ir.fields.size(); ++i) {
    if (ir.fields[i].name == name) return static_cast<int32_t>(i);
  }
  return kNoField;
}

}  // namespace

SidePlan lower_side(const FlowIR& ir, Side side, const TypedGraph& typed, const Fusion& fusion) {
  const flow::Graph& g = ir.graph(side);
  VORTEX_CHECK(typed.types.size() == g.nodes.size() && fusion.group_of.size() == g.nodes.size());
  SidePlan plan;
  plan.side = side;
  plan.env = typed.env;
  plan.num_values = static_cast<int32_t>(g.nodes.size());
  for (const auto& f : ir.fields) {
    auto rc = flow::field_shape(ir, f.name, typed.env);
    VORTEX_CHECK_MSG(rc.has_value(), "lowering an unverified flow: " << rc.status().to_string());
    plan.fields.push_back({f.name, rc->first, rc->second});
  }
  auto make_step = [&](int32_t i) {
    const flow::Node& n = g.nodes[static_cast<size_t>(i)];
    PlanStep s;
    s.value = i;
    s.op = n.op;
    s.inputs = n.inputs;
    s.attrs = typed.attrs[static_cast<size_t>(i)];
    s.type = typed.types[static_cast<size_t>(i)];
    s.read_field = n.op == flow::OpKind::kField ? field_id(ir, n.ref) : kNoField;
    s.write_field = n.out.empty() ? kNoField : field_id(ir, n.out);
    s.group = fusion.group_of[static_cast<size_t>(i)];
    s.label = n.label;
    return s;
  };
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (fusion.group_of[i] < 0) plan.steps.push_back(make_step(static_cast<int32_t>(i)));
  }
  for (const auto& grp : fusion.groups) {
    PlanGroup pg;
    pg.boundary = grp.boundary;
    pg.stage = grp.stage;
    for (int32_t node : grp.nodes) {
      pg.steps.push_back(static_cast<int32_t>(plan.steps.size()));
      plan.steps.push_back(make_step(node));
      if (flow::op_info(g.nodes[static_cast<size_t>(node)].op).cls == flow::OpClass::kTerminal) {
        plan.terminal = static_cast<int32_t>(plan.steps.size() - 1);
        plan.score = g.nodes[static_cast<size_t>(node)].inputs[0];
      }
    }
    plan.groups.push_back(std::move(pg));
  }
  return plan;
}

Expected<Plan> compile_plan(const FlowIR& ir, const ShapeEnv& env) {
  VORTEX_RETURN_IF_ERROR(verify_flow(ir, env));
  const FlowIR live = eliminate_dead_code(ir);
  VORTEX_RETURN_IF_ERROR(verify_structure(live));  // the verifier runs after every pass
  Plan plan;
  plan.flow = ir.name;
  plan.mode = ir.mode;
  plan.env = env;
  for (Side side : {Side::kCache, Side::kIndexer}) {
    VORTEX_ASSIGN_OR_RETURN(TypedGraph typed, verify_side(live, side, env));
    SidePlan sp = lower_side(live, side, typed, fuse(live, side));
    (side == Side::kCache ? plan.cache : plan.indexer) = std::move(sp);
  }
  for (const auto& n : live.indexer.nodes) plan.uses_save |= n.op == flow::OpKind::kSave;
  return plan;
}

}  // namespace vortex::compiler
