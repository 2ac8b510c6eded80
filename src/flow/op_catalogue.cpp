// The op catalogue table (FLOW_SPEC "Indexer ops" and "Cache ops") and IR naming helpers.
#include "vortex/flow/op_catalogue.h"

#include <cstdlib>
#include <string>

#include "vortex/core/check.h"

namespace vortex::flow {
namespace {

using K = AttrKind;
constexpr bool C = true;  // allowed on the cache side
constexpr bool I = true;  // allowed on the indexer side
constexpr bool no = false;

std::vector<OpInfo> build_table() {
  const std::vector<AttrSpec> ab0 = {{"a", K::kFloat, "0"}, {"b", K::kFloat, "0"}};
  const std::vector<AttrSpec> ab_sig = {{"a", K::kFloat, "0"}, {"b", K::kFloat, "-1"}};
  const std::vector<AttrSpec> ab_aff = {{"a", K::kFloat, "0"}, {"b", K::kFloat, "1"}};
  const std::vector<AttrSpec> dim_req = {{"dim", K::kAxis, ""}};
  const std::vector<AttrSpec> dim_k = {{"dim", K::kAxis, ""}, {"k", K::kInt, ""}};
  return {
      {OpKind::kInput, "Input", 0, 0, no, I, OpClass::kSource, {}, "the row's query q"},
      {OpKind::kField, "Field", 0, 0, C, I, OpClass::kSource, {}, "cache[\"name\"]"},
      {OpKind::kParameter,
       "Parameter",
       0,
       0,
       C,
       I,
       OpClass::kSource,
       {{"value", K::kTensor, ""}},
       "Parameter(value [Ny, K] or [layers, Ny, K])"},
      {OpKind::kGeMM,
       "GeMM",
       2,
       2,
       C,
       I,
       OpClass::kGeMM,
       {},
       "GeMM()(x [1|S, Nx, K], y [S, Ny, K])"},
      {OpKind::kSum, "Sum", 1, 1, no, I, OpClass::kReduce, dim_req, "Sum(dim)(x)"},
      {OpKind::kMean, "Mean", 1, 1, C, I, OpClass::kReduce, dim_req, "Mean(dim)(x)"},
      {OpKind::kMax, "Max", 1, 1, C, I, OpClass::kReduce, dim_req, "Max(dim)(x)"},
      {OpKind::kMin, "Min", 1, 1, C, I, OpClass::kReduce, dim_req, "Min(dim)(x)"},
      {OpKind::kL2Norm, "L2Norm", 1, 1, C, I, OpClass::kReduce, dim_req, "L2Norm(dim)(x)"},
      {OpKind::kMeanInterleave, "MeanInterleave", 1, 1, C, no, OpClass::kReduce, dim_k,
       "MeanInterleave(dim, k)(x)"},
      {OpKind::kMaxInterleave, "MaxInterleave", 1, 1, C, no, OpClass::kReduce, dim_k,
       "MaxInterleave(dim, k)(x)"},
      {OpKind::kMinInterleave, "MinInterleave", 1, 1, C, no, OpClass::kReduce, dim_k,
       "MinInterleave(dim, k)(x)"},
      {OpKind::kL2NormInterleave, "L2NormInterleave", 1, 1, C, no, OpClass::kReduce, dim_k,
       "L2NormInterleave(dim, k)(x)"},
      {OpKind::kSoftmax,
       "Softmax",
       1,
       1,
       no,
       I,
       OpClass::kPageAxis,
       {{"dim", K::kAxis, "0"}, {"scale", K::kFloat, "1"}},
       "Softmax(dim=0, scale)(x)"},
      {OpKind::kNormalize,
       "Normalize",
       1,
       1,
       no,
       I,
       OpClass::kPageAxis,
       {{"dim", K::kAxis, "0"}},
       "Normalize(dim=0)(x)"},
      {OpKind::kConv1d,
       "Conv1d",
       1,
       1,
       no,
       I,
       OpClass::kPageAxis,
       {{"weight", K::kTensor, ""}},
       "Conv1d(weight [K, a, b])(x)"},
      {OpKind::kMultiply, "Multiply", 2, 2, C, I, OpClass::kElementwise, {}, "Multiply()(x, y)"},
      {OpKind::kMaximum, "Maximum", 2, 2, C, I, OpClass::kElementwise, {}, "Maximum()(x, y)"},
      {OpKind::kMinimum, "Minimum", 2, 2, C, I, OpClass::kElementwise, {}, "Minimum()(x, y)"},
      {OpKind::kAdd,
       "Add",
       2,
       2,
       C,
       I,
       OpClass::kElementwise,
       {{"alpha", K::kFloat, "1"}, {"beta", K::kFloat, "1"}},
       "Add(alpha, beta)(x, y)"},
      {OpKind::kWhereEqual,
       "WhereEqual",
       2,
       2,
       C,
       I,
       OpClass::kElementwise,
       {},
       "WhereEqual()(x, y)"},
      {OpKind::kWhereNotEqual,
       "WhereNotEqual",
       2,
       2,
       C,
       I,
       OpClass::kElementwise,
       {},
       "WhereNotEqual()(x, y)"},
      {OpKind::kWhereGreater,
       "WhereGreater",
       2,
       2,
       C,
       I,
       OpClass::kElementwise,
       {},
       "WhereGreater()(x, y)"},
      {OpKind::kWhereGreaterEqual,
       "WhereGreaterEqual",
       2,
       2,
       C,
       I,
       OpClass::kElementwise,
       {},
       "WhereGreaterEqual()(x, y)"},
      {OpKind::kWhereLess, "WhereLess", 2, 2, C, I, OpClass::kElementwise, {}, "WhereLess()(x, y)"},
      {OpKind::kWhereLessEqual,
       "WhereLessEqual",
       2,
       2,
       C,
       I,
       OpClass::kElementwise,
       {},
       "WhereLessEqual()(x, y)"},
      {OpKind::kRelu, "Relu", 1, 1, C, I, OpClass::kElementwise, ab0, "Relu(a, b)(x)"},
      {OpKind::kSigmoid, "Sigmoid", 1, 1, C, I, OpClass::kElementwise, ab_sig, "Sigmoid(a, b)(x)"},
      {OpKind::kSilu, "Silu", 1, 1, C, I, OpClass::kElementwise, ab_sig, "Silu(a, b)(x)"},
      {OpKind::kAffine, "Affine", 1, 1, C, I, OpClass::kElementwise, ab_aff, "Affine(a, b)(x)"},
      {OpKind::kAbs, "Abs", 1, 1, C, I, OpClass::kElementwise, ab_aff, "Abs(a, b)(x)"},
      {OpKind::kLog, "Log", 1, 1, C, I, OpClass::kElementwise, ab_aff, "Log(a, b)(x)"},
      {OpKind::kExp, "Exp", 1, 1, C, I, OpClass::kElementwise, ab_aff, "Exp(a, b)(x)"},
      {OpKind::kKron,
       "Kron",
       2,
       2,
       no,
       I,
       OpClass::kLayout,
       {{"dims", K::kAxes, "[1, 2]"}},
       "Kron(dims)(x, y)"},
      {OpKind::kTranspose, "Transpose", 1, 1, no, I, OpClass::kLayout, {}, "Transpose()(x)"},
      {OpKind::kReshape,
       "Reshape",
       1,
       1,
       C,
       I,
       OpClass::kLayout,
       {{"shape", K::kIntList, ""}},
       "Reshape(-1, a2, b2)(x)"},
      {OpKind::kMaskSlice,
       "MaskSlice",
       1,
       1,
       C,
       I,
       OpClass::kLayout,
       {{"start", K::kInt, ""},
        {"end", K::kInt, ""},
        {"dim", K::kAxis, ""},
        {"a", K::kFloat, "1"},
        {"b", K::kFloat, "0"}},
       "MaskSlice(start, end, dim, a, b)(x)"},
      {OpKind::kLoad, "Load", 1, 1, no, I, OpClass::kState, {}, "Load()(cache[\"field\"])"},
      {OpKind::kSave, "Save", 1, 1, no, I, OpClass::kState, {}, "Save()(x, cache[\"field\"])"},
      {OpKind::kFill,
       "Fill",
       0,
       0,
       C,
       no,
       OpClass::kState,
       {{"value", K::kFloat, "0"}},
       "Fill(value)(cache[\"field\"])"},
      {OpKind::kTopK, "topK", 1, 1, no, I, OpClass::kTerminal, {}, "topK()(score [S, 1, 1])"},
      {OpKind::kApproxTopK,
       "approxTopK",
       1,
       1,
       no,
       I,
       OpClass::kTerminal,
       {{"tolerance", K::kFloat, "0"}},
       "approxTopK(tolerance)(score [S, 1, 1])"},
  };
}

const std::vector<OpInfo>& table() {
  static const std::vector<OpInfo> t = [] {
    auto v = build_table();
    for (size_t i = 0; i < v.size(); ++i) VORTEX_CHECK(static_cast<size_t>(v[i].kind) == i);
    return v;
  }();
  return t;
}

// Parses the tiny JSON-ish default texts of the table: "1", "-1", "0.5", "[1, 2]".
AttrValue parse_default(const AttrSpec& spec) {
  std::string_view t = spec.default_value;
  if (spec.kind == AttrKind::kAxes || spec.kind == AttrKind::kIntList) {
    std::vector<Sym> list;
    std::string body(t.substr(1, t.size() - 2));
    const char* p = body.c_str();
    while (*p) {
      char* end = nullptr;
      const double v = std::strtod(p, &end);
      VORTEX_CHECK(end != p);
      list.emplace_back(v);
      p = end;
      while (*p == ',' || *p == ' ') ++p;
    }
    return list;
  }
  return Sym(std::strtod(std::string(t).c_str(), nullptr));
}

}  // namespace

const OpInfo& op_info(OpKind kind) {
  const auto& t = table();
  VORTEX_CHECK(static_cast<size_t>(kind) < t.size());
  return t[static_cast<size_t>(kind)];
}

const OpInfo* find_op(std::string_view name) {
  if (name == "Add_Mul") return &op_info(OpKind::kAffine);
  for (const auto& info : table()) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

std::span<const OpInfo> all_ops() { return table(); }

std::string all_op_names() {
  std::string s;
  for (const auto& info : table()) {
    if (info.cls == OpClass::kSource && info.kind != OpKind::kParameter) continue;
    s += (s.empty() ? "" : ", ") + std::string(info.name);
  }
  return s;
}

AttrValue attr_default(const AttrSpec& spec) {
  VORTEX_CHECK_MSG(!spec.default_value.empty(), "attribute " << spec.name << " has no default");
  return parse_default(spec);
}

Node make_node(OpKind kind, std::vector<int32_t> inputs, std::map<std::string, AttrValue> attrs) {
  Node n;
  n.op = kind;
  n.inputs = std::move(inputs);
  for (const auto& spec : op_info(kind).attrs) {
    auto it = attrs.find(std::string(spec.name));
    if (it != attrs.end()) {
      n.attrs.emplace(spec.name, std::move(it->second));
      attrs.erase(it);
    } else if (!spec.default_value.empty()) {
      n.attrs.emplace(spec.name, attr_default(spec));
    }
  }
  VORTEX_CHECK_MSG(attrs.empty(),
                   op_info(kind).name << " has no attribute " << attrs.begin()->first);
  return n;
}

int32_t axis_attr(const Node& node, std::string_view name) {
  auto it = node.attrs.find(std::string(name));
  if (it == node.attrs.end()) return -1;
  const Sym* s = std::get_if<Sym>(&it->second);
  if (s == nullptr || !s->is_literal()) return -1;
  return static_cast<int32_t>(s->literal());
}

bool is_page_axis_node(const Node& node) {
  const OpClass cls = op_info(node.op).cls;
  if (cls == OpClass::kPageAxis || cls == OpClass::kTerminal) return true;
  return cls == OpClass::kReduce && axis_attr(node, "dim") == 0;
}

const char* format_name(Format f) {
  switch (f) {
    case Format::kRow:
      return "ROW";
    case Format::kPage:
      return "PAGE";
    case Format::kField:
      return "FIELD";
    case Format::kParam:
      return "PARAM";
  }
  return "?";
}

const char* side_name(Side s) { return s == Side::kCache ? "cache" : "indexer"; }

const char* mode_name(FlowMode m) {
  switch (m) {
    case FlowMode::kDense:
      return "dense";
    case FlowMode::kStreaming:
      return "streaming";
    case FlowMode::kSparse:
      return "sparse";
  }
  return "?";
}

const FieldDecl* FlowIR::find_field(const std::string& name) const {
  for (const auto& f : fields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string describe_node(const FlowIR& ir, Side side, int32_t index) {
  const Graph& g = ir.graph(side);
  std::string s = "flow '" + ir.name + "', " + side_name(side) + " %" + std::to_string(index);
  if (index >= 0 && static_cast<size_t>(index) < g.nodes.size()) {
    const Node& n = g.nodes[static_cast<size_t>(index)];
    s += " " + std::string(op_info(n.op).name);
    if (!n.label.empty()) s += " (" + n.label + ")";
  }
  return s;
}

}  // namespace vortex::flow
