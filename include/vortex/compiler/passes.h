// The flow compiler's passes, one file each under src/compiler/: verify (the rules of FLOW_SPEC,
// shapes and formats), dead-code elimination, fusion grouping and lowering to an execution plan.
#pragma once

#include <cstdint>
#include <vector>

#include "vortex/compiler/plan.h"
#include "vortex/core/status.h"
#include "vortex/flow/ir.h"
#include "vortex/flow/shape_inference.h"

namespace vortex::compiler {

using flow::FlowIR;
using flow::ShapeEnv;
using flow::Side;

/// The types and resolved attributes of every node of one graph at one ShapeEnv.
struct TypedGraph {
  ShapeEnv env;
  std::vector<flow::TensorType> types;     // [nodes]
  std::vector<flow::ResolvedAttrs> attrs;  // [nodes]
};

/// verify.cpp — the rules that do not depend on shapes: flow mode, field declarations (unique
/// names, no k/v, no dependence on G), graphs in dependency order, exactly one terminal with no
/// consumers, every declared field written once by the cache flow (or Fill + Save) and read by the
/// indexer, Save/Fill targets, cache reads limited to k and v.
Status verify_structure(const FlowIR& ir);

/// verify.cpp — shapes and formats of every node of `side` at `env` (after verify_structure).
Expected<TypedGraph> verify_side(const FlowIR& ir, Side side, const ShapeEnv& env);

/// verify.cpp — verify_structure plus both sides at `env`.
Status verify_flow(const FlowIR& ir, const ShapeEnv& env);

/// dce.cpp — drops the nodes that reach no root (cache: nodes that write a field; indexer: the
/// terminal and Save) and renumbers the rest, keeping their order.
FlowIR eliminate_dead_code(const FlowIR& ir);

/// The fusion groups of one graph.
struct Fusion {
  /// One kernel: a fused group of per-page ops, or a single page-axis op (a boundary).
  struct Group {
    bool boundary = false;
    int32_t stage = 0;           ///< number of boundaries before it on the longest path
    std::vector<int32_t> nodes;  ///< in dependency order
  };
  std::vector<Group> groups;      ///< in execution order
  std::vector<int32_t> group_of;  ///< [nodes]; -1 for sources (q, fields, parameters)
};

/// fusion.cpp — groups the graph of `side`: chains of per-page elementwise / reduce-over-d0/d1 /
/// GeMM / Kron / mask / reshape / Load / Save ops form one group per stage; page-axis ops
/// (dim=0 reductions, Softmax, Normalize, Conv1d, topK) are boundaries, each its own group. The
/// cache side (one page, no page-axis ops) is a single group.
Fusion fuse(const FlowIR& ir, Side side);

/// lowering.cpp — the execution plan of `side` at the env `typed` was verified at (the fields
/// must verify at that env too).
SidePlan lower_side(const FlowIR& ir, Side side, const TypedGraph& typed, const Fusion& fusion);

/// Runs the whole pipeline (verify, DCE, verify again, fuse, lower) for both sides at `env`.
Expected<Plan> compile_plan(const FlowIR& ir, const ShapeEnv& env);

}  // namespace vortex::compiler
