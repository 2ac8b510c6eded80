// Expr: recursive-descent parser (with 1-based column errors), evaluator and CUDA emitter.
#include "vortex/flow/expr.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>

#include "vortex/core/check.h"

namespace vortex::flow {
namespace {

constexpr int kMaxDepth = 128;  // nesting limit: deep inputs are errors, not stack overflows

struct FunctionSpec {
  std::string_view name;
  int min_args;
  int max_args;  // -1: unbounded
};
constexpr FunctionSpec kFunctions[] = {
    {"min", 2, -1}, {"max", 2, -1},  {"clamp", 3, 3}, {"sqrt", 1, 1},
    {"log2", 1, 1}, {"floor", 1, 1}, {"ceil", 1, 1},  {"abs", 1, 1},
};

const FunctionSpec* find_function(std::string_view name) {
  for (const auto& f : kFunctions) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace

std::string format_double(double v) {
  if (std::isnan(v)) return "(0.0/0.0)";
  if (std::isinf(v)) return v > 0 ? "(1.0/0.0)" : "(-1.0/0.0)";
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s(buf);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

class Expr::Parser {
 public:
  Parser(std::string_view text, std::span<const std::string_view> vars, std::string_view what,
         Expr* out)
      : text_(text), vars_(vars), what_(what), out_(out) {}

  Status run() {
    skip_space();
    if (pos_ >= text_.size()) return error("is empty; write an expression such as 'topk_val + 2'");
    int32_t root = -1;
    VORTEX_RETURN_IF_ERROR(parse_select(&root, 0));
    skip_space();
    if (pos_ < text_.size()) {
      return error("unexpected '" + std::string(1, text_[pos_]) + "' after a complete expression");
    }
    out_->root_ = root;
    return Status::ok();
  }

 private:
  Status error(const std::string& msg) const { return error_at(pos_, msg); }
  Status error_at(size_t pos, const std::string& msg) const {
    return invalid_argument(std::string(what_) + " '" + std::string(text_) + "' column " +
                            std::to_string(pos + 1) + ": " + msg);
  }

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool accept(std::string_view tok) {
    skip_space();
    if (text_.substr(pos_, tok.size()) == tok) {
      pos_ += tok.size();
      return true;
    }
    return false;
  }
  int32_t add(Node n) {
    out_->nodes_.push_back(std::move(n));
    return static_cast<int32_t>(out_->nodes_.size() - 1);
  }
  int32_t binary(std::string op, int32_t a, int32_t b) {
    Node n;
    n.kind = Kind::kBinary;
    n.op = std::move(op);
    n.args = {a, b};
    return add(std::move(n));
  }
  Status deeper(int depth) const {
    if (depth > kMaxDepth) {
      return error("nests deeper than " + std::to_string(kMaxDepth) + " levels; simplify it");
    }
    return Status::ok();
  }

  Status parse_select(int32_t* out, int depth) {
    VORTEX_RETURN_IF_ERROR(deeper(depth));
    int32_t cond = -1;
    VORTEX_RETURN_IF_ERROR(parse_or(&cond, depth + 1));
    if (!accept("?")) {
      *out = cond;
      return Status::ok();
    }
    int32_t a = -1, b = -1;
    VORTEX_RETURN_IF_ERROR(parse_select(&a, depth + 1));
    if (!accept(":")) return error("expected ':' of a 'cond ? a : b' expression");
    VORTEX_RETURN_IF_ERROR(parse_select(&b, depth + 1));
    Node n;
    n.kind = Kind::kSelect;
    n.args = {cond, a, b};
    *out = add(std::move(n));
    return Status::ok();
  }

  Status parse_or(int32_t* out, int depth) {
    VORTEX_RETURN_IF_ERROR(parse_and(out, depth + 1));
    while (accept("||")) {
      int32_t rhs = -1;
      VORTEX_RETURN_IF_ERROR(parse_and(&rhs, depth + 1));
      *out = binary("||", *out, rhs);
    }
    return Status::ok();
  }

  Status parse_and(int32_t* out, int depth) {
    VORTEX_RETURN_IF_ERROR(parse_cmp(out, depth + 1));
    while (accept("&&")) {
      int32_t rhs = -1;
      VORTEX_RETURN_IF_ERROR(parse_cmp(&rhs, depth + 1));
      *out = binary("&&", *out, rhs);
    }
    return Status::ok();
  }

  Status parse_cmp(int32_t* out, int depth) {
    VORTEX_RETURN_IF_ERROR(parse_add(out, depth + 1));
    for (std::string_view op : {"<=", ">=", "==", "!=", "<", ">"}) {
      if (accept(op)) {
        int32_t rhs = -1;
        VORTEX_RETURN_IF_ERROR(parse_add(&rhs, depth + 1));
        *out = binary(std::string(op), *out, rhs);
        return Status::ok();
      }
    }
    return Status::ok();
  }

  Status parse_add(int32_t* out, int depth) {
    VORTEX_RETURN_IF_ERROR(parse_mul(out, depth + 1));
    for (;;) {
      std::string op;
      if (accept("+")) {
        op = "+";
      } else if (accept("-")) {
        op = "-";
      } else {
        return Status::ok();
      }
      int32_t rhs = -1;
      VORTEX_RETURN_IF_ERROR(parse_mul(&rhs, depth + 1));
      *out = binary(op, *out, rhs);
    }
  }

  Status parse_mul(int32_t* out, int depth) {
    VORTEX_RETURN_IF_ERROR(parse_unary(out, depth + 1));
    for (;;) {
      std::string op;
      if (accept("*")) {
        op = "*";
      } else if (accept("/")) {
        op = "/";
      } else {
        return Status::ok();
      }
      int32_t rhs = -1;
      VORTEX_RETURN_IF_ERROR(parse_unary(&rhs, depth + 1));
      *out = binary(op, *out, rhs);
    }
  }

  Status parse_unary(int32_t* out, int depth) {
    VORTEX_RETURN_IF_ERROR(deeper(depth));
    skip_space();
    for (std::string_view op : {"-", "+", "!"}) {
      // "!=" never starts an operand, so a leading '!' is always logical not.
      if (accept(op)) {
        int32_t arg = -1;
        VORTEX_RETURN_IF_ERROR(parse_unary(&arg, depth + 1));
        if (op == "+") {
          *out = arg;
          return Status::ok();
        }
        Node n;
        n.kind = Kind::kUnary;
        n.op = std::string(op);
        n.args = {arg};
        *out = add(std::move(n));
        return Status::ok();
      }
    }
    return parse_primary(out, depth + 1);
  }

  Status parse_primary(int32_t* out, int depth) {
    skip_space();
    if (pos_ >= text_.size()) return error("ends early; expected a number, a name or '('");
    const char c = text_[pos_];
    if (c == '(') {
      ++pos_;
      VORTEX_RETURN_IF_ERROR(parse_select(out, depth + 1));
      if (!accept(")")) return error("expected ')'");
      return Status::ok();
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') return parse_number(out);
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') return parse_name(out, depth);
    return error("unexpected '" + std::string(1, c) + "'; expected a number, a name or '('");
  }

  Status parse_number(int32_t* out) {
    const size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isdigit(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '.')) {
      ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < text_.size() && (text_[p] == '+' || text_[p] == '-')) ++p;
      if (p < text_.size() && std::isdigit(static_cast<unsigned char>(text_[p]))) {
        pos_ = p;
        while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
      }
    }
    const std::string tok(text_.substr(start, pos_ - start));
    char* end = nullptr;
    const double v = std::strtod(tok.c_str(), &end);
    if (end != tok.c_str() + tok.size() || !std::isfinite(v)) {
      return error_at(start, "'" + tok + "' is not a valid number");
    }
    Node n;
    n.kind = Kind::kNumber;
    n.number = v;
    *out = add(std::move(n));
    return Status::ok();
  }

  Status parse_name(int32_t* out, int depth) {
    const size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
      ++pos_;
    }
    const std::string name(text_.substr(start, pos_ - start));
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '(') {
      const FunctionSpec* fn = find_function(name);
      if (fn == nullptr) {
        return error_at(start,
                        "unknown function '" + name +
                            "'; functions are min, max, clamp, sqrt, log2, floor, ceil, abs");
      }
      ++pos_;
      Node n;
      n.kind = Kind::kCall;
      n.op = name;
      for (;;) {
        int32_t arg = -1;
        VORTEX_RETURN_IF_ERROR(parse_select(&arg, depth + 1));
        n.args.push_back(arg);
        if (accept(",")) continue;
        if (accept(")")) break;
        return error("expected ',' or ')' in the arguments of " + name + "()");
      }
      const int nargs = static_cast<int>(n.args.size());
      if (nargs < fn->min_args || (fn->max_args >= 0 && nargs > fn->max_args)) {
        const std::string want =
            fn->max_args < 0 ? "at least " + std::to_string(fn->min_args)
            : fn->min_args == fn->max_args
                ? std::to_string(fn->min_args)
                : std::to_string(fn->min_args) + ".." + std::to_string(fn->max_args);
        return error_at(start,
                        name + "() takes " + want + " argument(s), got " + std::to_string(nargs));
      }
      *out = add(std::move(n));
      return Status::ok();
    }
    for (size_t i = 0; i < vars_.size(); ++i) {
      if (vars_[i] == name) {
        Node n;
        n.kind = Kind::kVariable;
        n.var = static_cast<int32_t>(i);
        *out = add(std::move(n));
        return Status::ok();
      }
    }
    std::string known;
    for (size_t i = 0; i < vars_.size(); ++i) known += (i ? ", " : "") + std::string(vars_[i]);
    if (find_function(name) != nullptr) {
      return error_at(start, "function '" + name + "' needs arguments: " + name + "(...)");
    }
    return error_at(start, "unknown variable '" + name + "'; variables are " +
                               (known.empty() ? std::string("(none)") : known));
  }

  std::string_view text_;
  std::span<const std::string_view> vars_;
  std::string_view what_;
  Expr* out_;
  size_t pos_ = 0;
};

Expected<Expr> Expr::parse(std::string_view text, std::span<const std::string_view> variables,
                           std::string_view what) {
  Expr e;
  e.text_ = std::string(text);
  for (auto v : variables) e.variables_.emplace_back(v);
  Parser p(text, variables, what, &e);
  VORTEX_RETURN_IF_ERROR(p.run());
  return e;
}

double Expr::evaluate(std::span<const double> values) const {
  VORTEX_CHECK(root_ >= 0);
  return eval_node(root_, values);
}

bool Expr::uses_variable(size_t index) const {
  for (const auto& n : nodes_) {
    if (n.kind == Kind::kVariable && static_cast<size_t>(n.var) == index) return true;
  }
  return false;
}

bool Expr::is_constant() const {
  return root_ >= 0 && nodes_[static_cast<size_t>(root_)].kind == Kind::kNumber;
}

double Expr::eval_node(int32_t idx, std::span<const double> values) const {
  const Node& n = nodes_[static_cast<size_t>(idx)];
  auto arg = [&](size_t i) { return eval_node(n.args[i], values); };
  switch (n.kind) {
    case Kind::kNumber:
      return n.number;
    case Kind::kVariable:
      VORTEX_CHECK(static_cast<size_t>(n.var) < values.size());
      return values[static_cast<size_t>(n.var)];
    case Kind::kUnary:
      return n.op == "-" ? -arg(0) : (arg(0) == 0.0 ? 1.0 : 0.0);
    case Kind::kSelect:
      return arg(0) != 0.0 ? arg(1) : arg(2);
    case Kind::kBinary: {
      const double a = arg(0), b = arg(1);
      const std::string& o = n.op;
      if (o == "+") return a + b;
      if (o == "-") return a - b;
      if (o == "*") return a * b;
      if (o == "/") return a / b;
      if (o == "<") return a < b ? 1.0 : 0.0;
      if (o == "<=") return a <= b ? 1.0 : 0.0;
      if (o == ">") return a > b ? 1.0 : 0.0;
      if (o == ">=") return a >= b ? 1.0 : 0.0;
      if (o == "==") return a == b ? 1.0 : 0.0;
      if (o == "!=") return a != b ? 1.0 : 0.0;
      if (o == "&&") return (a != 0.0 && b != 0.0) ? 1.0 : 0.0;
      if (o == "||") return (a != 0.0 || b != 0.0) ? 1.0 : 0.0;
      VORTEX_CHECK_MSG(false, "unknown operator " << o);
      return 0.0;
    }
    case Kind::kCall: {
      const std::string& f = n.op;
      if (f == "min" || f == "max") {
        double r = arg(0);
        for (size_t i = 1; i < n.args.size(); ++i) {
          r = f == "min" ? std::fmin(r, arg(i)) : std::fmax(r, arg(i));
        }
        return r;
      }
      if (f == "clamp") return std::fmin(std::fmax(arg(0), arg(1)), arg(2));
      if (f == "sqrt") return std::sqrt(arg(0));
      if (f == "log2") return std::log2(arg(0));
      if (f == "floor") return std::floor(arg(0));
      if (f == "ceil") return std::ceil(arg(0));
      if (f == "abs") return std::fabs(arg(0));
      VORTEX_CHECK_MSG(false, "unknown function " << f);
      return 0.0;
    }
  }
  return 0.0;
}

std::string Expr::emit_cuda() const {
  VORTEX_CHECK(root_ >= 0);
  return emit_node(root_);
}

// Mirrors eval_node operation for operation (fmin/fmax, comparisons as 1.0/0.0), so the device
// planner computes bit-identical budgets.
std::string Expr::emit_node(int32_t idx) const {
  const Node& n = nodes_[static_cast<size_t>(idx)];
  auto arg = [&](size_t i) { return emit_node(n.args[i]); };
  switch (n.kind) {
    case Kind::kNumber:
      return format_double(n.number);
    case Kind::kVariable:
      return variables_[static_cast<size_t>(n.var)];
    case Kind::kUnary:
      return n.op == "-" ? "(-" + arg(0) + ")" : "((" + arg(0) + ") == 0.0 ? 1.0 : 0.0)";
    case Kind::kSelect:
      return "((" + arg(0) + ") != 0.0 ? (" + arg(1) + ") : (" + arg(2) + "))";
    case Kind::kBinary: {
      const std::string& o = n.op;
      if (o == "+" || o == "-" || o == "*" || o == "/")
        return "(" + arg(0) + " " + o + " " + arg(1) + ")";
      if (o == "&&" || o == "||") {
        return "(((" + arg(0) + ") != 0.0 " + o + " (" + arg(1) + ") != 0.0) ? 1.0 : 0.0)";
      }
      return "((" + arg(0) + ") " + o + " (" + arg(1) + ") ? 1.0 : 0.0)";
    }
    case Kind::kCall: {
      const std::string& f = n.op;
      if (f == "min" || f == "max") {
        std::string r = arg(0);
        for (size_t i = 1; i < n.args.size(); ++i) {
          r = std::string(f == "min" ? "fmin(" : "fmax(") + r + ", " + arg(i) + ")";
        }
        return r;
      }
      if (f == "clamp") return "fmin(fmax(" + arg(0) + ", " + arg(1) + "), " + arg(2) + ")";
      if (f == "abs") return "fabs(" + arg(0) + ")";
      return f + "(" + arg(0) + ")";
    }
  }
  return "0.0";
}

}  // namespace vortex::flow
