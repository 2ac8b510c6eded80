// The flow IR: two DAGs of op nodes (the cache side, run once per completed page, and the indexer
// side, run every decode step per row) over logical [L, d0, d1] tensors, plus the declared aux
// fields. Produced by the C++ builder (builder.h) and the JSON loader (json.h); consumed by the
// compiler passes (include/vortex/compiler/).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "vortex/flow/sym.h"

namespace vortex::flow {

/// How a tensor's leading axis L maps onto the paged batch (FLOW_SPEC "Shapes and formats").
enum class Format : uint8_t {
  kRow,    ///< L = 1, one per row (q and everything computed from it alone)
  kPage,   ///< L = S, one per candidate page of the row (scores, per-page intermediates)
  kField,  ///< L = S, an aux field (or k / v) read through the row's page table
  kParam,  ///< a constant [Ny, K] (or [layers, Ny, K]) operand
};
const char* format_name(Format f);  // "ROW", "PAGE", "FIELD", "PARAM"

/// Which DAG a node belongs to.
enum class Side : uint8_t { kCache, kIndexer };
const char* side_name(Side s);  // "cache", "indexer"

/// dense: no selection; streaming: sinks + most recent pages, no indexer; sparse: indexer + topK.
enum class FlowMode : uint8_t { kDense, kStreaming, kSparse };
const char* mode_name(FlowMode m);

/// Every op of the catalogue (FLOW_SPEC), plus the three sources Input (q), Field (cache[...]) and
/// Parameter.
enum class OpKind : uint8_t {
  kInput,
  kField,
  kParameter,
  kGeMM,
  kSum,
  kMean,
  kMax,
  kMin,
  kL2Norm,
  kMeanInterleave,
  kMaxInterleave,
  kMinInterleave,
  kL2NormInterleave,
  kSoftmax,
  kNormalize,
  kConv1d,
  kMultiply,
  kMaximum,
  kMinimum,
  kAdd,
  kWhereEqual,
  kWhereNotEqual,
  kWhereGreater,
  kWhereGreaterEqual,
  kWhereLess,
  kWhereLessEqual,
  kRelu,
  kSigmoid,
  kSilu,
  kAffine,
  kAbs,
  kLog,
  kExp,
  kKron,
  kTranspose,
  kReshape,
  kMaskSlice,
  kLoad,
  kSave,
  kFill,
  kTopK,
  kApproxTopK,
};

/// A constant tensor attribute (Parameter value, Conv1d weight), row-major.
struct ConstTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  bool operator==(const ConstTensor&) const = default;
};

/// An attribute value: a number (literal or symbolic), a list of numbers, or a constant tensor.
using AttrValue = std::variant<Sym, std::vector<Sym>, ConstTensor>;

/// One op instance.
struct Node {
  OpKind op = OpKind::kInput;
  std::vector<int32_t> inputs;             ///< indices of earlier nodes of the same graph
  std::map<std::string, AttrValue> attrs;  ///< exactly the op's attributes (op_catalogue.h)
  std::string ref;    ///< Input: "q"; Field: the field read ("k", "v" or a declared field)
  std::string out;    ///< cache side: the field this op writes (empty: a temporary); Save: field
  std::string label;  ///< optional name for messages ("q_mean")
  bool operator==(const Node&) const = default;
};

/// A DAG in topological order: every input index is smaller than the node's own index.
struct Graph {
  std::vector<Node> nodes;
  bool operator==(const Graph&) const = default;
};

/// An aux per-page field `{name: (rows, cols)}` declared by create_cache.
struct FieldDecl {
  std::string name;
  Sym rows = 1;
  Sym cols = 1;
  bool operator==(const FieldDecl&) const = default;
};

/// A whole flow.
struct FlowIR {
  std::string name;
  FlowMode mode = FlowMode::kSparse;
  std::vector<FieldDecl> fields;
  Graph cache;          ///< forward_cache: per (completed page, kv head)
  Graph indexer;        ///< forward_indexer: per row, over the row's candidate pages
  ShapeEnv verify_env;  ///< shapes the flow is checked at when loaded (any instantiation is
                        ///< re-checked when first used)
  bool operator==(const FlowIR&) const = default;

  const Graph& graph(Side s) const { return s == Side::kCache ? cache : indexer; }
  Graph& graph(Side s) { return s == Side::kCache ? cache : indexer; }
  /// The declared field named `name`, or null (k and v are implicit, never declared).
  const FieldDecl* find_field(const std::string& name) const;
};

/// "flow 'quest', indexer %4 Maximum (label)": the prefix of every error about a node.
std::string describe_node(const FlowIR& ir, Side side, int32_t index);

}  // namespace vortex::flow
