// The CPU interpreter: one Value per plan value, filled step by step in plan order.
#include "vortex/compiler/interpreter.h"

#include <string>

#include "vortex/compiler/cpu_ops.h"
#include "vortex/core/check.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::compiler {
namespace {

using flow::OpKind;

// Runs every step of `plan`; `num_pages` is S on the indexer side and 1 on the cache side.
Expected<std::vector<Value>> run_steps(const SidePlan& plan, std::span<const float> q,
                                       int64_t num_pages, const TileReader& read, int32_t layer) {
  std::vector<Value> values(static_cast<size_t>(plan.num_values));
  for (const PlanStep& step : plan.steps) {
    const flow::TensorType& t = step.type;
    Value& out = values[static_cast<size_t>(step.value)];
    if (step.op == OpKind::kInput) {
      VORTEX_CHECK(static_cast<int64_t>(q.size()) == t.d0 * t.d1);
      out = Value{1, t.d0, t.d1, std::vector<float>(q.begin(), q.end())};  // [1, G, D]
      continue;
    }
    if (step.op == OpKind::kField) {
      const int64_t L = t.paged ? num_pages : 1;
      out = Value::zeros(L, t.d0, t.d1);  // [S, r, c] gathered through the page table
      for (int64_t s = 0; s < L; ++s) read(step.read_field, s, out.data.data() + s * t.d0 * t.d1);
      continue;
    }
    std::vector<const Value*> in;
    for (int32_t v : step.inputs) in.push_back(&values[static_cast<size_t>(v)]);
    VORTEX_ASSIGN_OR_RETURN(out, eval_op(step.op, step.attrs, in, t.d0, t.d1, layer));
    VORTEX_CHECK_MSG(out.d0 == t.d0 && out.d1 == t.d1 && out.L == (t.paged ? num_pages : 1),
                     flow::op_info(step.op).name << " produced [" << out.L << ", " << out.d0 << ", "
                                                 << out.d1 << "], expected " << t.to_string());
  }
  return values;
}

}  // namespace

Expected<std::vector<std::vector<float>>> run_cache_plan(const SidePlan& plan,
                                                         const TileReader& read, int32_t layer) {
  VORTEX_CHECK(plan.side == flow::Side::kCache);
  VORTEX_ASSIGN_OR_RETURN(std::vector<Value> values, run_steps(plan, {}, 1, read, layer));
  std::vector<std::vector<float>> tiles(plan.fields.size());
  for (const PlanStep& step : plan.steps) {
    if (step.write_field < 0) continue;
    tiles[static_cast<size_t>(step.write_field)] =
        std::move(values[static_cast<size_t>(step.value)].data);  // [rows * cols]
  }
  return tiles;
}

Expected<RowScores> run_indexer_plan(const SidePlan& plan, std::span<const float> q,
                                     int64_t num_pages, const TileReader& read, int32_t layer) {
  VORTEX_CHECK(plan.side == flow::Side::kIndexer && plan.score >= 0 && num_pages >= 1);
  VORTEX_ASSIGN_OR_RETURN(std::vector<Value> values, run_steps(plan, q, num_pages, read, layer));
  RowScores r;
  r.scores = std::move(values[static_cast<size_t>(plan.score)].data);  // [S, 1, 1]
  for (const PlanStep& step : plan.steps) {
    if (step.op != OpKind::kSave) continue;
    r.saves.push_back({step.write_field, values[static_cast<size_t>(step.value)].data});
  }
  return r;
}

}  // namespace vortex::compiler
