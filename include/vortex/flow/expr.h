// Expr: the small arithmetic expression language shared by budget policies and symbolic flow sizes
// (`P/16`, `1/sqrt(D)`). Parsed once with column-accurate errors, evaluated in double on the CPU,
// and emitted as a CUDA C expression for device code.
//
// Grammar (lowest precedence first):
//   expr  := or ('?' expr ':' expr)?
//   or    := and ('||' and)*          and := cmp ('&&' cmp)*
//   cmp   := add (('<'|'<='|'>'|'>='|'=='|'!=') add)?
//   add   := mul (('+'|'-') mul)*     mul := unary (('*'|'/') unary)*
//   unary := ('-'|'+'|'!') unary | number | name | name '(' expr (',' expr)* ')' | '(' expr ')'
// Functions: min, max (2+ arguments), clamp(x, lo, hi), sqrt, log2, floor, ceil, abs.
// Comparisons and logic give 1 or 0; `c ? a : b` picks a when c != 0.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"

namespace vortex::flow {

class Expr {
 public:
  Expr() = default;

  /// Parses `text`; every name must be one of `variables` (or a function). `what` names the
  /// expression in error messages ("policy", "field rows"). Errors give the 1-based column.
  static Expected<Expr> parse(std::string_view text, std::span<const std::string_view> variables,
                              std::string_view what);

  /// Evaluates with `values[i]` bound to the i-th variable given to parse().
  double evaluate(std::span<const double> values) const;

  /// A parenthesised CUDA C expression in double; variables appear under their own names.
  std::string emit_cuda() const;

  /// The source text as parsed.
  const std::string& text() const { return text_; }
  /// True when the expression reads variable `index` (as given to parse()).
  bool uses_variable(size_t index) const;
  /// True when the expression is a single number literal.
  bool is_constant() const;

 private:
  enum class Kind : uint8_t { kNumber, kVariable, kUnary, kBinary, kCall, kSelect };
  struct Node {
    Kind kind = Kind::kNumber;
    double number = 0.0;        // kNumber
    int32_t var = -1;           // kVariable
    std::string op;             // kUnary/kBinary: operator text; kCall: function name
    std::vector<int32_t> args;  // children (node indices)
  };
  class Parser;

  double eval_node(int32_t n, std::span<const double> values) const;
  std::string emit_node(int32_t n) const;

  std::string text_;
  std::vector<std::string> variables_;
  std::vector<Node> nodes_;  // arena; children precede parents
  int32_t root_ = -1;
};

/// Formats a double so that it parses back to the same value and reads as a number in C
/// ("0.5", "16.0", "1e-30").
std::string format_double(double v);

}  // namespace vortex::flow
