// Sym: a number in a flow that may depend on the shapes the flow is instantiated for — the page
// size P, the head dim D and the query group size G (e.g. a field of `(P/16, D)` rows/cols, or a
// softmax scale `1/sqrt(D)`). ShapeEnv binds those three names.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "vortex/core/status.h"
#include "vortex/flow/expr.h"

namespace vortex::flow {

/// The shapes a flow is instantiated for: P tokens per page, head dim D, G query heads per KV head.
struct ShapeEnv {
  int64_t block_size = 16;  ///< P
  int64_t head_dim = 128;   ///< D
  int64_t group = 4;        ///< G = H_q / H_kv
  bool operator==(const ShapeEnv&) const = default;
  auto operator<=>(const ShapeEnv&) const = default;
  /// "P=16 D=128 G=4"
  std::string to_string() const;
};

/// A literal number or an expression over P, D and G (see expr.h for the syntax).
class Sym {
 public:
  Sym() = default;
  Sym(int v) : value_(v) {}  // NOLINT(google-explicit-constructor): literals read naturally
  Sym(int64_t v) : value_(static_cast<double>(v)) {}  // NOLINT(google-explicit-constructor)
  Sym(double v) : value_(v) {}                        // NOLINT(google-explicit-constructor)
  Sym(float v) : value_(v) {}                         // NOLINT(google-explicit-constructor)

  /// Parses an expression over P, D and G ("P/16", "1/sqrt(D)"); `what` names it in errors.
  static Expected<Sym> parse(std::string_view text, std::string_view what = "size expression");
  /// parse() for flow source code, where a bad expression is a bug in the flow: aborts on error.
  static Sym expr(std::string_view text);

  bool is_literal() const { return expr_ == nullptr; }
  /// The literal value (is_literal() only).
  double literal() const { return value_; }
  /// The expression text, or the literal formatted ("16", "0.5").
  std::string text() const;
  bool uses_group() const;
  bool uses_page_or_head() const;

  /// The value for `env` (literals ignore it).
  double eval(const ShapeEnv& env) const;
  /// The value for `env` as an integer; an error naming `what` when not integral or out of range.
  Expected<int64_t> eval_int(const ShapeEnv& env, std::string_view what) const;

  bool operator==(const Sym& o) const;

 private:
  double value_ = 0.0;
  std::shared_ptr<const Expr> expr_;  // null for literals
};

/// Arithmetic on symbolic sizes for flow source code: `P / 16`, `2 * D`.
Sym operator+(const Sym& a, const Sym& b);
Sym operator-(const Sym& a, const Sym& b);
Sym operator*(const Sym& a, const Sym& b);
Sym operator/(const Sym& a, const Sym& b);

/// The symbols themselves, for create_cache(P, D) and attribute values.
inline Sym sym_P() { return Sym::expr("P"); }
inline Sym sym_D() { return Sym::expr("D"); }
inline Sym sym_G() { return Sym::expr("G"); }

/// Largest dimension (rows, cols, d0, d1) any flow tensor may have: bounds the memory a malformed
/// flow can ask for.
inline constexpr int64_t kMaxDim = int64_t{1} << 20;
/// Largest element count of one page's tile of any flow tensor.
inline constexpr int64_t kMaxTileElems = int64_t{1} << 24;

}  // namespace vortex::flow
