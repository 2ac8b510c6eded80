// Shape and format inference for every op of the catalogue, at concrete shapes (ShapeEnv), and the
// attributes resolved to numbers. Errors name the flow, the op, the shapes and the fix.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/flow/ir.h"

namespace vortex::flow {

/// The logical type of a tensor: [L, d0, d1] with L = S (paged) or 1.
struct TensorType {
  Format format = Format::kRow;
  bool paged = false;  ///< L = S (the row's candidate pages); on the cache side always false
  int64_t d0 = 1;
  int64_t d1 = 1;
  int64_t layers = 0;  ///< PARAM only: number of per-layer slices (0: one slice for all layers)
  bool operator==(const TensorType&) const = default;
  /// "PAGE [S, 1, 128]", "ROW [1, 4, 128]", "PARAM [64, 128]".
  std::string to_string() const;
  int64_t tile_elems() const { return d0 * d1; }
};

/// Every attribute of a node evaluated for one ShapeEnv (unused ones keep their defaults).
struct ResolvedAttrs {
  int32_t dim = 0;
  std::vector<int32_t> dims;   // Kron
  int64_t k = 1;               // interleave group
  int64_t start = 0, end = 0;  // MaskSlice
  std::vector<int64_t> shape;  // Reshape target [-1, a2, b2] with -1 resolved in a2/b2
  double scale = 1, alpha = 1, beta = 1, a = 0, b = 0, value = 0, tolerance = 0;
  ConstTensor tensor;  // Parameter value / Conv1d weight
};

/// Resolves the attributes of `node` at `env` (errors: a non-integral size, a bad literal axis).
Expected<ResolvedAttrs> resolve_attrs(const FlowIR& ir, Side side, int32_t index,
                                      const ShapeEnv& env);

/// The type of node `index` of `side` given its inputs' types. `attrs` come from resolve_attrs;
/// Reshape's -1 entries are filled in. Field and Input nodes are typed from the declarations.
Expected<TensorType> infer_type(const FlowIR& ir, Side side, int32_t index,
                                std::span<const TensorType> inputs, ResolvedAttrs* attrs,
                                const ShapeEnv& env);

/// The (rows, cols) of field `name` ("k", "v" or declared) at `env`.
Expected<std::pair<int64_t, int64_t>> field_shape(const FlowIR& ir, const std::string& name,
                                                  const ShapeEnv& env);

}  // namespace vortex::flow
