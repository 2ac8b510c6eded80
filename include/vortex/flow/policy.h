// PolicyExpr: a parsed budget policy — the number of pages a sparse row may attend, as an
// expression over pages, topk_val, topk_ratio, bos, eos and layer. One parsed expression serves the
// CPU (evaluate) and the device planner (emit_cuda / emit_cuda_budget_function).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vortex/core/status.h"
#include "vortex/flow/expr.h"

namespace vortex::flow {

/// The variables a policy can read, in the order PolicyExpr binds them.
struct PolicyVars {
  double pages = 0;  ///< n = ceil(len / P)
  double topk_val = 0;
  double topk_ratio = 0;
  double bos = 0;
  double eos = 0;
  double layer = 0;
};

/// The default policy: max(topk_val + bos + eos, floor(pages * topk_ratio)).
inline constexpr std::string_view kDefaultPolicy =
    "max(topk_val + bos + eos, floor(pages * topk_ratio))";

class PolicyExpr {
 public:
  /// Parses `text`; errors name the column.
  static Expected<PolicyExpr> parse(std::string_view text);

  /// The raw policy value (a double; budget_from_value turns it into a page count).
  double evaluate(const PolicyVars& vars) const;
  /// A CUDA C expression in double over variables named pages, topk_val, topk_ratio, bos, eos,
  /// layer.
  std::string emit_cuda() const { return expr_.emit_cuda(); }
  const std::string& text() const { return expr_.text(); }

 private:
  Expr expr_;
};

/// The page budget from a policy value: floor(value), at least `min_budget` (also when the value
/// is NaN), at most 2^62.
int64_t budget_from_value(double value, int64_t min_budget);

/// A CUDA `__device__` function `long long <name>(long long pages, int layer, int topk_val,
/// float topk_ratio, int bos, int eos)` that computes exactly what BudgetParams::budget does for
/// `policy` (null: the default policy), clamp included.
std::string emit_cuda_budget_function(const PolicyExpr* policy, std::string_view name);

}  // namespace vortex::flow
