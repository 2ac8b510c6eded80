// Sym: symbolic flow sizes over P, D and G.
#include "vortex/flow/sym.h"

#include <cmath>
#include <string>

#include "vortex/core/check.h"

namespace vortex::flow {
namespace {

constexpr std::string_view kShapeVars[] = {"P", "D", "G"};

bool is_simple(const std::string& s) {
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return false;
  }
  return !s.empty();
}

Sym combine(const Sym& a, const char* op, const Sym& b) {
  if (a.is_literal() && b.is_literal()) {
    const double x = a.literal(), y = b.literal();
    switch (op[0]) {
      case '+':
        return Sym(x + y);
      case '-':
        return Sym(x - y);
      case '*':
        return Sym(x * y);
      default:
        return Sym(x / y);
    }
  }
  auto wrap = [](const Sym& s) {
    const std::string t = s.text();
    return is_simple(t) ? t : "(" + t + ")";
  };
  return Sym::expr(wrap(a) + op + wrap(b));
}

}  // namespace

std::string ShapeEnv::to_string() const {
  return "P=" + std::to_string(block_size) + " D=" + std::to_string(head_dim) +
         " G=" + std::to_string(group);
}

Expected<Sym> Sym::parse(std::string_view text, std::string_view what) {
  VORTEX_ASSIGN_OR_RETURN(Expr e, Expr::parse(text, kShapeVars, what));
  Sym s;
  if (e.is_constant()) {
    s.value_ = e.evaluate({});
    return s;
  }
  s.expr_ = std::make_shared<const Expr>(std::move(e));
  return s;
}

Sym Sym::expr(std::string_view text) {
  auto s = parse(text);
  VORTEX_CHECK_MSG(s.has_value(), s.status().to_string());
  return std::move(s).value();
}

std::string Sym::text() const {
  if (expr_) return expr_->text();
  std::string s = format_double(value_);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

bool Sym::uses_group() const { return expr_ && expr_->uses_variable(2); }
bool Sym::uses_page_or_head() const {
  return expr_ && (expr_->uses_variable(0) || expr_->uses_variable(1));
}

double Sym::eval(const ShapeEnv& env) const {
  if (!expr_) return value_;
  const double vals[] = {static_cast<double>(env.block_size), static_cast<double>(env.head_dim),
                         static_cast<double>(env.group)};
  return expr_->evaluate(vals);
}

Expected<int64_t> Sym::eval_int(const ShapeEnv& env, std::string_view what) const {
  const double v = eval(env);
  if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 1e15) {
    return invalid_argument(std::string(what) + " = " + text() + " is " + format_double(v) +
                            " for " + env.to_string() + "; it must be a whole number");
  }
  return static_cast<int64_t>(v);
}

bool Sym::operator==(const Sym& o) const {
  if (is_literal() != o.is_literal()) return false;
  if (is_literal()) return value_ == o.value_ || (std::isnan(value_) && std::isnan(o.value_));
  return expr_->text() == o.expr_->text();
}

Sym operator+(const Sym& a, const Sym& b) { return combine(a, "+", b); }
Sym operator-(const Sym& a, const Sym& b) { return combine(a, "-", b); }
Sym operator*(const Sym& a, const Sym& b) { return combine(a, "*", b); }
Sym operator/(const Sym& a, const Sym& b) { return combine(a, "/", b); }

}  // namespace vortex::flow
