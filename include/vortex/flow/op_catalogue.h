// The op catalogue: for every OpKind its name (as written in flows and JSON), arity, the sides it
// may appear on, its class (what the fusion pass needs) and its attributes with their defaults.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/flow/ir.h"

namespace vortex::flow {

/// What an op does to the page axis and to fusion.
enum class OpClass : uint8_t {
  kSource,       ///< Input, Field, Parameter
  kGeMM,         ///< per-page matrix product
  kReduce,       ///< Sum/Mean/Max/Min/L2Norm (dim 0 is a page-axis op) and the interleaved forms
  kElementwise,  ///< unary and binary elementwise, masks
  kLayout,       ///< Kron, Transpose, Reshape, MaskSlice
  kState,        ///< Load, Save, Fill
  kPageAxis,     ///< Softmax, Normalize, Conv1d over the pages
  kTerminal,     ///< topK, approxTopK
};

enum class AttrKind : uint8_t {
  kAxis,     ///< a literal axis 0, 1 or 2
  kAxes,     ///< a list of literal axes
  kInt,      ///< an integer, literal or over P, D, G
  kFloat,    ///< a number, literal or over P, D, G
  kIntList,  ///< integers, literal or symbolic (Reshape)
  kTensor,   ///< a ConstTensor
};

struct AttrSpec {
  std::string_view name;
  AttrKind kind;
  std::string_view default_value;  ///< as JSON text ("1", "[1, 2]"); empty: required
};

struct OpInfo {
  OpKind kind;
  std::string_view name;  ///< "GeMM", "MeanInterleave", "topK"
  int min_inputs;
  int max_inputs;
  bool on_cache;    ///< allowed in forward_cache
  bool on_indexer;  ///< allowed in forward_indexer
  OpClass cls;
  std::vector<AttrSpec> attrs;
  std::string_view usage;  ///< how it is called, for messages: "GeMM()(x, y)"
};

/// The entry of `kind`.
const OpInfo& op_info(OpKind kind);
/// The entry named `name` (also accepts the alias "Add_Mul" for Affine), or null.
const OpInfo* find_op(std::string_view name);
/// Every op, in OpKind order.
std::span<const OpInfo> all_ops();
/// Names of every op, comma separated (for "unknown op" messages).
std::string all_op_names();

/// The default of `spec` as an AttrValue (VORTEX_CHECKs that one exists).
AttrValue attr_default(const AttrSpec& spec);

/// A node of `kind` with every attribute at its default, overridden by `attrs`.
Node make_node(OpKind kind, std::vector<int32_t> inputs,
               std::map<std::string, AttrValue> attrs = {});

/// True for nodes that work across the pages of a row (dim=0 reductions, Softmax, Normalize,
/// Conv1d, topK): the fusion boundaries.
bool is_page_axis_node(const Node& node);

/// The value of an axis attribute (literal by construction once verified), or -1.
int32_t axis_attr(const Node& node, std::string_view name);

}  // namespace vortex::flow
