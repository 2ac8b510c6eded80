// The policy expression language: parsing (column-accurate errors), evaluation, CUDA emission and
// the budget contract of BudgetParams; also the symbolic sizes (Sym) built on the same parser.
#include "vortex/flow/policy.h"

#include <gtest/gtest.h>

#include <cmath>

#include "vortex/flow/runtime.h"
#include "vortex/flow/sym.h"

namespace vortex::flow {
namespace {

double eval(const std::string& text, PolicyVars v = {}) {
  auto p = PolicyExpr::parse(text);
  EXPECT_TRUE(p.has_value()) << p.status().to_string();
  return p.has_value() ? p->evaluate(v) : NAN;
}

TEST(Policy, EvaluatesTheWholeGrammar) {
  PolicyVars v{100, 30, 0.25, 1, 2, 3};
  EXPECT_EQ(eval("pages", v), 100);
  EXPECT_EQ(eval("topk_val + bos * 2 - eos / 4", v), 31.5);
  EXPECT_EQ(eval("-(pages) + +3", v), -97);
  EXPECT_EQ(eval("min(pages, 7, topk_val)", v), 7);
  EXPECT_EQ(eval("max(1, 2, 3, layer)", v), 3);
  EXPECT_EQ(eval("clamp(pages * topk_ratio, 10, 20)", v), 20);
  EXPECT_EQ(eval("sqrt(pages)", v), 10);
  EXPECT_EQ(eval("log2(64)"), 6);
  EXPECT_EQ(eval("floor(2.7) + ceil(2.1) + abs(-1)"), 6);
  EXPECT_EQ(eval("layer < 2 ? 5 : pages >= 100 ? 9 : 1", v), 9);
  EXPECT_EQ(eval("(pages == 100) + (pages != 100) * 10 + (bos <= eos) * 100", v), 101);
  EXPECT_EQ(eval("layer > 2 && !(bos > 1) || 0", v), 1);
  EXPECT_EQ(eval("1.5e2 + .5"), 150.5);
  EXPECT_EQ(eval(std::string(kDefaultPolicy), v), 33);
}

void expect_parse_error(const std::string& text, int column, const std::string& fragment) {
  auto p = PolicyExpr::parse(text);
  ASSERT_FALSE(p.has_value()) << text;
  const std::string m = p.status().message();
  EXPECT_NE(m.find("column " + std::to_string(column) + ":"), std::string::npos) << m;
  EXPECT_NE(m.find(fragment), std::string::npos) << m;
  EXPECT_NE(m.find(text), std::string::npos) << "the message quotes the policy: " << m;
}

TEST(Policy, ErrorsGiveTheColumn) {
  expect_parse_error("pages + pagez", 9, "unknown variable 'pagez'; variables are pages, topk_val");
  expect_parse_error("pages +", 8, "ends early");
  expect_parse_error("min(pages)", 1, "min() takes at least 2 argument(s), got 1");
  expect_parse_error("clamp(1, 2)", 1, "clamp() takes 3 argument(s)");
  expect_parse_error("pow(2, 3)", 1, "unknown function 'pow'");
  expect_parse_error("(pages", 7, "expected ')'");
  expect_parse_error("pages ? 1", 10, "expected ':'");
  expect_parse_error("3 4", 3, "unexpected '4' after a complete expression");
  expect_parse_error("", 1, "is empty");
  expect_parse_error("pages # 2", 7, "unexpected '#'");
  expect_parse_error("1e999", 1, "not a valid number");
  expect_parse_error("sqrt", 1, "function 'sqrt' needs arguments");
  expect_parse_error(std::string(300, '(') + "1" + std::string(300, ')'), 17, "nests deeper");
}

TEST(Policy, EmitsCudaThatMirrorsTheEvaluator) {
  auto p = PolicyExpr::parse("layer < 2 ? max(topk_val, pages / 4) : clamp(sqrt(pages), 1, 8)");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->emit_cuda(),
            "((((layer) < (2.0) ? 1.0 : 0.0)) != 0.0 ? (fmax(topk_val, (pages / 4.0))) : "
            "(fmin(fmax(sqrt(pages), 1.0), 8.0)))");
  auto q = PolicyExpr::parse("!(bos == 0) && eos >= 1 || floor(-topk_ratio) != abs(1e-3)");
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(
      q->emit_cuda(),
      "((((((((((bos) == (0.0) ? 1.0 : 0.0)) == 0.0 ? 1.0 : 0.0)) != 0.0 && (((eos) >= (1.0) ? "
      "1.0 : 0.0)) != 0.0) ? 1.0 : 0.0)) != 0.0 || (((floor((-topk_ratio))) != (fabs(0.001)) ? "
      "1.0 : 0.0)) != 0.0) ? 1.0 : 0.0)");
  const std::string fn = emit_cuda_budget_function(nullptr, "vortex_budget");
  EXPECT_NE(fn.find("__device__ __forceinline__ long long vortex_budget("), std::string::npos);
  EXPECT_NE(fn.find("floor(fmax(((topk_val + bos) + eos), floor((pages * topk_ratio))))"),
            std::string::npos)
      << fn;
  EXPECT_NE(fn.find("if (!(v >= min_budget)) v = min_budget;"), std::string::npos);
}

TEST(Budget, DefaultPolicyAndClamp) {
  BudgetParams b;  // topk_val 30, ratio 0, bos 1, eos 1
  EXPECT_EQ(b.budget(10, 0), 32);
  EXPECT_EQ(b.budget(1000, 0), 32);
  b.topk_ratio = 0.1f;
  EXPECT_EQ(b.budget(1000, 0), 100);
  EXPECT_EQ(b.budget(1001, 0), 100);  // floor
  b.topk_val = 0;
  b.topk_ratio = 0;
  EXPECT_EQ(b.budget(1000, 0), 3);  // clamped to bos + eos + 1
  b.policy = parse_policy("layer == 1 ? pages : 0 / 0").value();
  EXPECT_EQ(b.budget(50, 1), 50);
  EXPECT_EQ(b.budget(50, 0), 3);  // NaN clamps to the minimum
  b.policy = parse_policy("1 / 0").value();
  EXPECT_EQ(b.budget(50, 0), int64_t{1} << 62);  // +inf saturates: every row dense
  b.layers_skip = {0, 3};
  EXPECT_TRUE(b.layer_is_dense(3));
  EXPECT_FALSE(b.layer_is_dense(1));
  EXPECT_FALSE(parse_policy("pages +").has_value());
}

TEST(Sym, ParsesEvaluatesAndComposes) {
  const ShapeEnv env{32, 128, 4};
  auto s = Sym::parse("P / min(P, 16)");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->eval_int(env, "rows").value(), 2);
  EXPECT_EQ((sym_D() / 4).text(), "D/4");
  EXPECT_EQ(((sym_P() + 1) * 2).text(), "(P+1)*2");
  EXPECT_EQ((Sym(3) * 4).text(), "12");
  EXPECT_TRUE(Sym(0.5) == Sym::parse("0.5").value());
  EXPECT_TRUE(Sym::expr("G*D").uses_group());
  auto frac = Sym::parse("D/3");
  ASSERT_TRUE(frac.has_value());
  auto bad = frac->eval_int(env, "cols");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.status().message().find("cols = D/3 is 42.666666666666664 for P=32 D=128 G=4"),
            std::string::npos)
      << bad.status().message();
  auto unknown = Sym::parse("pages");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.status().message().find("variables are P, D, G"), std::string::npos);
}

}  // namespace
}  // namespace vortex::flow
