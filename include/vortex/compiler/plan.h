// The execution plan of a flow at concrete shapes: per side, the steps (one per live IR node, in
// an order that runs every fused group contiguously), their types and resolved attributes, and the
// groups (kernels). The CPU interpreter runs it step by step; the CUDA backend generates one kernel
// per group.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vortex/flow/ir.h"
#include "vortex/flow/shape_inference.h"

namespace vortex::compiler {

/// Field ids a step reads or writes: >= 0 indexes Plan::fields / SidePlan::fields.
inline constexpr int32_t kFieldK = -2;
inline constexpr int32_t kFieldV = -3;
inline constexpr int32_t kNoField = -1;

struct PlanStep {
  int32_t value = -1;  ///< the value this step defines (= IR node index)
  flow::OpKind op = flow::OpKind::kInput;
  std::vector<int32_t> inputs;  ///< values read
  flow::ResolvedAttrs attrs;
  flow::TensorType type;           ///< of the value defined
  int32_t read_field = kNoField;   ///< Field: which field (or kFieldK / kFieldV)
  int32_t write_field = kNoField;  ///< cache out / Save / Fill: which field
  int32_t group = -1;              ///< Fusion group; -1 for sources
  std::string label;
};

struct PlanField {
  std::string name;  ///< as declared ("centroid"); the cache stores it as "<flow>/<name>"
  int64_t rows = 0;
  int64_t cols = 0;
};

struct PlanGroup {
  bool boundary = false;
  int32_t stage = 0;
  std::vector<int32_t> steps;  ///< indices into SidePlan::steps, contiguous
};

/// One side at one ShapeEnv.
struct SidePlan {
  flow::Side side = flow::Side::kIndexer;
  flow::ShapeEnv env;
  std::vector<PlanField> fields;  ///< every declared field, in declaration order
  std::vector<PlanStep> steps;    ///< sources first, then group by group
  std::vector<PlanGroup> groups;
  int32_t num_values = 0;  ///< values are numbered 0..num_values-1
  int32_t score = -1;      ///< indexer: the value feeding the terminal
  int32_t terminal = -1;   ///< indexer: the terminal step
};

/// Both sides, for printing and for the CUDA backend.
struct Plan {
  std::string flow;
  flow::FlowMode mode = flow::FlowMode::kSparse;
  flow::ShapeEnv env;
  bool uses_save = false;
  SidePlan cache;
  SidePlan indexer;
};

}  // namespace vortex::compiler
