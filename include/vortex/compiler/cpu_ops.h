// fp32 CPU implementations of every non-source op of the catalogue, on dense [L, d0, d1] values.
// These are the oracle's arithmetic: plain loops in a fixed order, fp32 accumulation.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/flow/ir.h"
#include "vortex/flow/shape_inference.h"

namespace vortex::compiler {

/// A dense fp32 tensor [L, d0, d1] (L = S for per-page values, 1 otherwise).
struct Value {
  int64_t L = 1;
  int64_t d0 = 1;
  int64_t d1 = 1;
  std::vector<float> data;  // [L, d0, d1] row-major

  static Value zeros(int64_t L, int64_t d0, int64_t d1) {
    return Value{L, d0, d1, std::vector<float>(static_cast<size_t>(L * d0 * d1), 0.0f)};
  }
  float& at(int64_t l, int64_t i, int64_t j) {
    return data[static_cast<size_t>((l * d0 + i) * d1 + j)];
  }
  float at(int64_t l, int64_t i, int64_t j) const {
    return data[static_cast<size_t>((l * d0 + i) * d1 + j)];
  }
  const float* ptr(int64_t l, int64_t i, int64_t j) const {
    return data.data() + (l * d0 + i) * d1 + j;
  }
  /// Broadcasting read: an axis of size 1 reads index 0.
  float get(int64_t l, int64_t i, int64_t j) const {
    return at(L == 1 ? 0 : l, d0 == 1 ? 0 : i, d1 == 1 ? 0 : j);
  }
};

/// Evaluates op `op` on `inputs`; the result has the page count of its paged inputs (or 1) and
/// [out_d0, out_d1] from shape inference. Parameter takes no inputs and uses `layer` to pick its
/// slice. Field and Input are sources, read by the interpreter, not here.
Expected<Value> eval_op(flow::OpKind op, const flow::ResolvedAttrs& attrs,
                        std::span<const Value* const> inputs, int64_t out_d0, int64_t out_d1,
                        int32_t layer);

}  // namespace vortex::compiler
