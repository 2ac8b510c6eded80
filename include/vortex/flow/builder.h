// The C++ builder API (the vFlow language): a flow is a small class with create_cache,
// forward_cache and forward_indexer, written against a single-request view — no batch axis, no
// page tables — the way FLOW_SPEC.md reads:
//
//   struct BlockTopK : lang::Flow {
//     std::string name() const override { return "block_topk"; }
//     FieldDecls create_cache(Sym P, Sym D) override { return {{"centroid", 1, D}}; }
//     void forward_cache(CacheView& cache) override { Mean(1)(cache["k"], cache["centroid"]); }
//     Tensor forward_indexer(Tensor q, CacheView& cache) override {
//       auto q_mean = Mean(1)(q);
//       auto s = GeMM()(q_mean, cache["centroid"]);
//       return topK()(s);
//     }
//   };
//
// Ops are objects called on tensors; each op object may be called once (one call per instance).
// Calling an op records a node; build_flow() turns the class into a FlowIR. Mistakes a flow author
// can make (mixing the two sides, calling an op twice, unknown fields) become the Status of
// build_flow(); shapes are checked later by the verifier, at concrete P, D, G.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/flow/ir.h"

namespace vortex::flow {

namespace lang {

// Everything a flow author needs comes with `using namespace vortex::flow::lang;`.
using flow::ConstTensor;
using flow::FieldDecl;
using flow::FlowMode;
using flow::ShapeEnv;
using flow::Sym;

class GraphBuilder;

/// A tensor of a flow being built: a node of the cache or the indexer graph, or a field reference
/// `cache["name"]` (read when used as an input, written when passed as an op's output).
class Tensor {
 public:
  Tensor() = default;
  bool valid() const { return graph_ != nullptr; }
  /// Names the op that produced this tensor, for messages and printed IR ("q_mean").
  Tensor& named(std::string label);

 private:
  friend class GraphBuilder;
  friend class Op;
  friend class CacheView;
  GraphBuilder* graph_ = nullptr;
  int32_t node_ = -1;  // -1: a field reference not yet read
  std::string field_;
};

/// `cache["name"]`: the flow's fields plus the implicit "k" and "v".
class CacheView {
 public:
  explicit CacheView(GraphBuilder* graph) : graph_(graph) {}
  Tensor operator[](std::string_view name) const;

 private:
  GraphBuilder* graph_;
};

/// Base of every op object.
class Op {
 public:
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;

 protected:
  explicit Op(OpKind kind, std::map<std::string, AttrValue> attrs = {})
      : kind_(kind), attrs_(std::move(attrs)) {}
  /// Records the node; `out` (a field reference) makes it write that field.
  Tensor call(std::vector<Tensor> inputs, const Tensor& out = Tensor());

 private:
  OpKind kind_;
  std::map<std::string, AttrValue> attrs_;
  bool called_ = false;
};

#define VORTEX_FLOW_UNARY_CALL \
  Tensor operator()(Tensor x, Tensor out = Tensor()) { return call({std::move(x)}, out); }
#define VORTEX_FLOW_BINARY_CALL                                  \
  Tensor operator()(Tensor x, Tensor y, Tensor out = Tensor()) { \
    return call({std::move(x), std::move(y)}, out);              \
  }

/// Per page `y · xᵀ`: x [1|S, Nx, K], y [S, Ny, K] -> [S, Ny, Nx].
struct GeMM : Op {
  GeMM() : Op(OpKind::kGeMM) {}
  VORTEX_FLOW_BINARY_CALL
};

// Reductions: dim 1 or 2 inside a page; dim 0 over the pages of the row (indexer only).
#define VORTEX_FLOW_REDUCE(Name)                                         \
  struct Name : Op {                                                     \
    explicit Name(int dim) : Op(OpKind::k##Name, {{"dim", Sym(dim)}}) {} \
    VORTEX_FLOW_UNARY_CALL                                               \
  };
VORTEX_FLOW_REDUCE(Sum)
VORTEX_FLOW_REDUCE(Mean)
VORTEX_FLOW_REDUCE(Max)
VORTEX_FLOW_REDUCE(Min)
VORTEX_FLOW_REDUCE(L2Norm)
#undef VORTEX_FLOW_REDUCE

// Cache side: fold each group of k consecutive entries along dim (sub-page summaries).
#define VORTEX_FLOW_INTERLEAVE(Name)                                                        \
  struct Name : Op {                                                                        \
    Name(int dim, Sym k) : Op(OpKind::k##Name, {{"dim", Sym(dim)}, {"k", std::move(k)}}) {} \
    VORTEX_FLOW_UNARY_CALL                                                                  \
  };
VORTEX_FLOW_INTERLEAVE(MeanInterleave)
VORTEX_FLOW_INTERLEAVE(MaxInterleave)
VORTEX_FLOW_INTERLEAVE(MinInterleave)
VORTEX_FLOW_INTERLEAVE(L2NormInterleave)
#undef VORTEX_FLOW_INTERLEAVE

/// Stable softmax of scale·x over the pages, per (d0, d1) slot.
struct Softmax : Op {
  explicit Softmax(int dim = 0, Sym scale = 1)
      : Op(OpKind::kSoftmax, {{"dim", Sym(dim)}, {"scale", std::move(scale)}}) {}
  VORTEX_FLOW_UNARY_CALL
};
/// x / Σ_pages x per slot.
struct Normalize : Op {
  explicit Normalize(int dim = 0) : Op(OpKind::kNormalize, {{"dim", Sym(dim)}}) {}
  VORTEX_FLOW_UNARY_CALL
};
/// Convolution along the page axis, centred, zero padded; weight [K, a, b].
struct Conv1d : Op {
  explicit Conv1d(ConstTensor weight) : Op(OpKind::kConv1d, {{"weight", std::move(weight)}}) {}
  VORTEX_FLOW_UNARY_CALL
};

#define VORTEX_FLOW_BINARY(Name)    \
  struct Name : Op {                \
    Name() : Op(OpKind::k##Name) {} \
    VORTEX_FLOW_BINARY_CALL         \
  };
VORTEX_FLOW_BINARY(Multiply)
VORTEX_FLOW_BINARY(Maximum)
VORTEX_FLOW_BINARY(Minimum)
VORTEX_FLOW_BINARY(WhereEqual)
VORTEX_FLOW_BINARY(WhereNotEqual)
VORTEX_FLOW_BINARY(WhereGreater)
VORTEX_FLOW_BINARY(WhereGreaterEqual)
VORTEX_FLOW_BINARY(WhereLess)
VORTEX_FLOW_BINARY(WhereLessEqual)
#undef VORTEX_FLOW_BINARY

/// alpha·x + beta·y.
struct Add : Op {
  explicit Add(Sym alpha = 1, Sym beta = 1)
      : Op(OpKind::kAdd, {{"alpha", std::move(alpha)}, {"beta", std::move(beta)}}) {}
  VORTEX_FLOW_BINARY_CALL
};

// Unary ops with (a, b): Relu x >= a ? x : b; Sigmoid 1/(1+exp(b·x+a)); Silu x/(1+exp(b·x+a));
// Affine b·x + a; Abs/Log/Exp of b·x + a.
#define VORTEX_FLOW_UNARY_AB(Name, da, db)                                   \
  struct Name : Op {                                                         \
    explicit Name(Sym a = da, Sym b = db)                                    \
        : Op(OpKind::k##Name, {{"a", std::move(a)}, {"b", std::move(b)}}) {} \
    VORTEX_FLOW_UNARY_CALL                                                   \
  };
VORTEX_FLOW_UNARY_AB(Relu, 0, 0)
VORTEX_FLOW_UNARY_AB(Sigmoid, 0, -1)
VORTEX_FLOW_UNARY_AB(Silu, 0, -1)
VORTEX_FLOW_UNARY_AB(Affine, 0, 1)
VORTEX_FLOW_UNARY_AB(Abs, 0, 1)
VORTEX_FLOW_UNARY_AB(Log, 0, 1)
VORTEX_FLOW_UNARY_AB(Exp, 0, 1)
#undef VORTEX_FLOW_UNARY_AB
using Add_Mul = Affine;

/// Kronecker product per page along dims {1}, {2} or {1, 2}.
struct Kron : Op {
  explicit Kron(std::vector<Sym> dims = {1, 2}) : Op(OpKind::kKron, {{"dims", std::move(dims)}}) {}
  VORTEX_FLOW_BINARY_CALL
};
/// [S, a, b] -> [S, b, a].
struct Transpose : Op {
  Transpose() : Op(OpKind::kTranspose) {}
  VORTEX_FLOW_UNARY_CALL
};
/// Row-major reinterpretation of each page's tile: Reshape(-1, a2, b2).
struct Reshape : Op {
  Reshape(Sym l, Sym a2, Sym b2)
      : Op(OpKind::kReshape,
           {{"shape", std::vector<Sym>{std::move(l), std::move(a2), std::move(b2)}}}) {}
  VORTEX_FLOW_UNARY_CALL
};
/// A constant tile of x's shape: a inside [start, end) along dim, b elsewhere.
struct MaskSlice : Op {
  MaskSlice(Sym start, Sym end, int dim, Sym a = 1, Sym b = 0)
      : Op(OpKind::kMaskSlice, {{"start", std::move(start)},
                                {"end", std::move(end)},
                                {"dim", Sym(dim)},
                                {"a", std::move(a)},
                                {"b", std::move(b)}}) {}
  VORTEX_FLOW_UNARY_CALL
};
/// Reads per-page state written by Save (as it was before this step).
struct Load : Op {
  Load() : Op(OpKind::kLoad) {}
  Tensor operator()(Tensor field) { return call({std::move(field)}); }
};
/// Writes per-page state; the next step's Load sees it.
struct Save : Op {
  Save() : Op(OpKind::kSave) {}
  Tensor operator()(Tensor x, Tensor field) { return call({std::move(x)}, field); }
};
/// Cache side: initialises a field (for state the indexer accumulates with Save).
struct Fill : Op {
  explicit Fill(Sym value = 0) : Op(OpKind::kFill, {{"value", std::move(value)}}) {}
  Tensor operator()(Tensor field) { return call({}, field); }
};
/// A constant GeMM operand [Ny, K] or [layers, Ny, K].
struct Parameter : Op {
  explicit Parameter(ConstTensor value) : Op(OpKind::kParameter, {{"value", std::move(value)}}) {}
  Tensor operator()() { return call({}); }
};
/// Terminal: the row's selection from a [S, 1, 1] score (exact).
struct topK : Op {
  topK() : Op(OpKind::kTopK) {}
  Tensor operator()(Tensor score) { return call({std::move(score)}); }
};
/// Terminal: radix selection with recall >= 1 - tolerance (0: exact).
struct approxTopK : Op {
  explicit approxTopK(Sym tolerance = 0)
      : Op(OpKind::kApproxTopK, {{"tolerance", std::move(tolerance)}}) {}
  Tensor operator()(Tensor score) { return call({std::move(score)}); }
};

#undef VORTEX_FLOW_UNARY_CALL
#undef VORTEX_FLOW_BINARY_CALL

using FieldDecls = std::vector<FieldDecl>;

/// A flow written in C++. Override name() and, for a sparse flow, the three parts.
class Flow {
 public:
  virtual ~Flow() = default;
  virtual std::string name() const = 0;
  virtual FlowMode mode() const { return FlowMode::kSparse; }
  /// Aux fields {name: (rows, cols)} for page size P and head dim D (symbolic).
  virtual FieldDecls create_cache(Sym /*P*/, Sym /*D*/) { return {}; }
  /// Once per completed page and KV head: cache["k"], cache["v"] are [1, P, D].
  virtual void forward_cache(CacheView& /*cache*/) {}
  /// Every decode step per row: q [1, G, D]; fields [S, r, c]; returns topK()(score).
  virtual Tensor forward_indexer(Tensor /*q*/, CacheView& /*cache*/) { return Tensor(); }
  /// Shapes the flow is verified at when loaded.
  virtual ShapeEnv verify_env() const { return ShapeEnv{}; }
};

}  // namespace lang

/// Runs the flow's methods once and records the IR.
Expected<FlowIR> build_flow(lang::Flow& flow);

}  // namespace vortex::flow
