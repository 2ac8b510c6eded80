// Budget policies: PolicyExpr, BudgetParams (runtime.h) and the CUDA emission of the budget.
#include "vortex/flow/policy.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "vortex/core/check.h"
#include "vortex/flow/runtime.h"

namespace vortex::flow {
namespace {

constexpr std::string_view kPolicyVars[] = {"pages", "topk_val", "topk_ratio",
                                            "bos",   "eos",      "layer"};
constexpr double kMaxBudget = 4611686018427387904.0;  // 2^62

const PolicyExpr& default_policy() {
  static const PolicyExpr p = [] {
    auto e = PolicyExpr::parse(kDefaultPolicy);
    VORTEX_CHECK_OK(e.status());
    return std::move(e).value();
  }();
  return p;
}

}  // namespace

Expected<PolicyExpr> PolicyExpr::parse(std::string_view text) {
  VORTEX_ASSIGN_OR_RETURN(Expr e, Expr::parse(text, kPolicyVars, "policy"));
  PolicyExpr p;
  p.expr_ = std::move(e);
  return p;
}

double PolicyExpr::evaluate(const PolicyVars& v) const {
  const double vals[] = {v.pages, v.topk_val, v.topk_ratio, v.bos, v.eos, v.layer};
  return expr_.evaluate(vals);
}

int64_t budget_from_value(double value, int64_t min_budget) {
  double v = std::floor(value);
  if (!(v >= static_cast<double>(min_budget))) v = static_cast<double>(min_budget);  // NaN too
  if (v > kMaxBudget) v = kMaxBudget;
  return static_cast<int64_t>(v);
}

std::string emit_cuda_budget_function(const PolicyExpr* policy, std::string_view name) {
  const PolicyExpr& p = policy ? *policy : default_policy();
  std::string s;
  s += "// budget policy: " + p.text() + "\n";
  s += "__device__ __forceinline__ long long " + std::string(name) +
       "(long long pages_i, int layer_i, int topk_val_i, float topk_ratio_f, int bos_i, "
       "int eos_i) {\n";
  s += "  const double pages = (double)pages_i, layer = (double)layer_i;\n";
  s += "  const double topk_val = (double)topk_val_i, topk_ratio = (double)topk_ratio_f;\n";
  s += "  const double bos = (double)bos_i, eos = (double)eos_i;\n";
  s += "  (void)pages; (void)layer; (void)topk_val; (void)topk_ratio; (void)bos; (void)eos;\n";
  s += "  const double min_budget = (double)((long long)(bos_i > 0 ? bos_i : 0) + "
       "(long long)(eos_i > 0 ? eos_i : 0) + 1);\n";
  s += "  double v = floor(" + p.emit_cuda() + ");\n";
  s += "  if (!(v >= min_budget)) v = min_budget;\n";
  s += "  if (v > 4611686018427387904.0) v = 4611686018427387904.0;\n";
  s += "  return (long long)v;\n}\n";
  return s;
}

bool BudgetParams::layer_is_dense(int32_t layer) const {
  return std::find(layers_skip.begin(), layers_skip.end(), layer) != layers_skip.end();
}

int64_t BudgetParams::budget(int64_t pages, int32_t layer) const {
  const PolicyExpr& p = policy ? *policy : default_policy();
  const PolicyVars vars{static_cast<double>(pages),      static_cast<double>(topk_val),
                        static_cast<double>(topk_ratio), static_cast<double>(bos),
                        static_cast<double>(eos),        static_cast<double>(layer)};
  const int64_t min_budget =
      static_cast<int64_t>(std::max(bos, 0)) + static_cast<int64_t>(std::max(eos, 0)) + 1;
  return budget_from_value(p.evaluate(vars), min_budget);
}

Expected<std::shared_ptr<const PolicyExpr>> parse_policy(std::string_view text) {
  VORTEX_ASSIGN_OR_RETURN(PolicyExpr p, PolicyExpr::parse(text));
  return std::shared_ptr<const PolicyExpr>(std::make_shared<const PolicyExpr>(std::move(p)));
}

}  // namespace vortex::flow
