// Shape and format inference for every op of the catalogue (FLOW_SPEC), with errors that name the
// flow, the op, the shapes and the fix.
#include "vortex/flow/shape_inference.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "vortex/core/check.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::flow {
namespace {

std::string dims_str(int64_t a, int64_t b) {
  return "[" + std::to_string(a) + ", " + std::to_string(b) + "]";
}

// Collects the context of one node so that errors read the same everywhere.
struct NodeCtx {
  const FlowIR& ir;
  Side side;
  int32_t index;
  const ShapeEnv& env;
  const Node& node() const { return ir.graph(side).nodes[static_cast<size_t>(index)]; }
  std::string_view op() const { return op_info(node().op).name; }
  Status error(const std::string& msg) const {
    return invalid_argument(describe_node(ir, side, index) + " at " + env.to_string() + ": " + msg);
  }
};

Status check_size(const NodeCtx& c, const TensorType& t) {
  if (t.d0 < 1 || t.d1 < 1 || t.d0 > kMaxDim || t.d1 > kMaxDim || t.d0 * t.d1 > kMaxTileElems) {
    return c.error("result " + t.to_string() + " is empty or too large (at most " +
                   std::to_string(kMaxDim) + " per axis and " + std::to_string(kMaxTileElems) +
                   " per page); check the sizes feeding it");
  }
  return Status::ok();
}

// Result format of a per-page op on the given side: ROW stays ROW; anything paged becomes PAGE.
TensorType derived(Side side, bool paged, int64_t d0, int64_t d1) {
  TensorType t;
  t.paged = side == Side::kIndexer && paged;
  t.format = t.paged || side == Side::kCache ? Format::kPage : Format::kRow;
  t.d0 = d0;
  t.d1 = d1;
  return t;
}

Status no_param(const NodeCtx& c, std::span<const TensorType> in) {
  for (const auto& t : in) {
    if (t.format == Format::kParam) {
      return c.error("a Parameter can only be an operand of GeMM; got " + t.to_string());
    }
  }
  return Status::ok();
}

Expected<int64_t> broadcast_axis(const NodeCtx& c, const TensorType& x, const TensorType& y,
                                 int axis) {
  const int64_t a = axis == 1 ? x.d0 : x.d1, b = axis == 1 ? y.d0 : y.d1;
  if (a == b || b == 1) return a;
  if (a == 1) return b;
  return c.error("shapes " + x.to_string() + " and " + y.to_string() +
                 " do not broadcast on axis " + std::to_string(axis) + " (" + std::to_string(a) +
                 " vs " + std::to_string(b) +
                 "); make them equal or 1 (Reshape, a reduction or Transpose)");
}

Expected<TensorType> infer_reduce(const NodeCtx& c, const TensorType& x, const ResolvedAttrs& a) {
  const OpKind op = c.node().op;
  const bool interleave = op == OpKind::kMeanInterleave || op == OpKind::kMaxInterleave ||
                          op == OpKind::kMinInterleave || op == OpKind::kL2NormInterleave;
  if (a.dim == 0) {
    if (interleave) return c.error("interleaved reductions fold along dim 1 or 2, not 0");
    if (c.side == Side::kCache) {
      return c.error(
          "dim=0 reduces over the pages of a row; cache ops see one page, use dim 1 or 2");
    }
    if (!x.paged) {
      return c.error("dim=0 reduces over pages but the input " + x.to_string() +
                     " has no page axis; drop the reduction or reduce dim 1 or 2");
    }
    TensorType t;
    t.format = Format::kRow;
    t.d0 = x.d0;
    t.d1 = x.d1;
    return t;
  }
  int64_t d0 = x.d0, d1 = x.d1;
  int64_t& axis = a.dim == 1 ? d0 : d1;
  if (interleave) {
    if (a.k < 1 || axis % a.k != 0) {
      return c.error("k = " + std::to_string(a.k) + " must divide axis " + std::to_string(a.dim) +
                     " of " + x.to_string() + "; pick a k that divides " + std::to_string(axis));
    }
    axis /= a.k;
  } else {
    axis = 1;
  }
  return derived(c.side, x.paged, d0, d1);
}

Expected<TensorType> infer_kron(const NodeCtx& c, const TensorType& x, const TensorType& y,
                                const ResolvedAttrs& a) {
  const bool k1 = std::find(a.dims.begin(), a.dims.end(), 1) != a.dims.end();
  const bool k2 = std::find(a.dims.begin(), a.dims.end(), 2) != a.dims.end();
  if (a.dims.empty() || a.dims.size() > 2 || (!k1 && !k2) || (a.dims.size() == 2 && !(k1 && k2))) {
    return c.error("dims must be [1], [2] or [1, 2]");
  }
  int64_t d0 = 0, d1 = 0;
  if (k1) {
    d0 = x.d0 * y.d0;
  } else {
    VORTEX_ASSIGN_OR_RETURN(d0, broadcast_axis(c, x, y, 1));
  }
  if (k2) {
    d1 = x.d1 * y.d1;
  } else {
    VORTEX_ASSIGN_OR_RETURN(d1, broadcast_axis(c, x, y, 2));
  }
  return derived(c.side, x.paged || y.paged, d0, d1);
}

Expected<TensorType> infer_reshape(const NodeCtx& c, const TensorType& x, ResolvedAttrs* a) {
  if (a->shape.size() != 3 || a->shape[0] != -1) {
    return c.error("shape must be [-1, a2, b2] (the page axis is kept)");
  }
  int64_t a2 = a->shape[1], b2 = a->shape[2];
  const int64_t n = x.d0 * x.d1;
  if ((a2 == -1 && b2 == -1) || a2 == 0 || b2 == 0 || a2 < -1 || b2 < -1) {
    return c.error("a2, b2 must be positive, at most one of them -1");
  }
  if (a2 == -1) a2 = n % b2 == 0 ? n / b2 : -1;
  if (b2 == -1) b2 = n % a2 == 0 ? n / a2 : -1;
  if (a2 <= 0 || b2 <= 0 || a2 * b2 != n) {
    return c.error("cannot reshape " + x.to_string() + " (" + std::to_string(n) +
                   " elements per page) to [-1, " + std::to_string(a->shape[1]) + ", " +
                   std::to_string(a->shape[2]) + "]; sizes must multiply to " + std::to_string(n));
  }
  a->shape = {-1, a2, b2};
  return derived(c.side, x.paged, a2, b2);
}

Expected<TensorType> infer_one(const NodeCtx& c, std::span<const TensorType> in, ResolvedAttrs* a) {
  const Node& node = c.node();
  switch (node.op) {
    case OpKind::kInput: {
      if (node.ref != "q") return c.error("the only input is \"q\"; got \"" + node.ref + "\"");
      TensorType t;
      t.d0 = c.env.group;
      t.d1 = c.env.head_dim;
      return t;
    }
    case OpKind::kField: {
      VORTEX_ASSIGN_OR_RETURN(auto rc, field_shape(c.ir, node.ref, c.env));
      TensorType t;
      t.format = Format::kField;
      t.paged = c.side == Side::kIndexer;
      t.d0 = rc.first;
      t.d1 = rc.second;
      return t;
    }
    case OpKind::kParameter: {
      const auto& s = a->tensor.shape;
      if (s.size() != 2 && s.size() != 3) {
        return c.error("value must be [Ny, K] or [layers, Ny, K]");
      }
      TensorType t;
      t.format = Format::kParam;
      t.d0 = s[s.size() - 2];
      t.d1 = s[s.size() - 1];
      t.layers = s.size() == 3 ? s[0] : 0;
      return t;
    }
    case OpKind::kGeMM: {
      const TensorType &x = in[0], &y = in[1];
      if (x.d1 != y.d1) {
        return c.error("x " + x.to_string() + " and y " + y.to_string() +
                       " must share the last axis K (" + std::to_string(x.d1) + " vs " +
                       std::to_string(y.d1) + "); GeMM(x, y) computes y . x^T per page");
      }
      return derived(c.side, x.paged || y.paged, y.d0, x.d0);
    }
    case OpKind::kSum:
    case OpKind::kMean:
    case OpKind::kMax:
    case OpKind::kMin:
    case OpKind::kL2Norm:
    case OpKind::kMeanInterleave:
    case OpKind::kMaxInterleave:
    case OpKind::kMinInterleave:
    case OpKind::kL2NormInterleave:
      VORTEX_RETURN_IF_ERROR(no_param(c, in));
      return infer_reduce(c, in[0], *a);
    case OpKind::kSoftmax:
    case OpKind::kNormalize:
    case OpKind::kConv1d: {
      VORTEX_RETURN_IF_ERROR(no_param(c, in));
      const TensorType& x = in[0];
      if (node.op != OpKind::kConv1d && a->dim != 0) {
        return c.error("only dim=0 (over the pages of the row) is supported");
      }
      if (!x.paged) {
        return c.error("works along the pages but the input " + x.to_string() +
                       " has no page axis; apply it to a per-page tensor");
      }
      if (node.op == OpKind::kConv1d) {
        const auto& w = a->tensor.shape;
        if (w.size() != 3 || (w[1] != 1 && w[1] != x.d0) || (w[2] != 1 && w[2] != x.d1)) {
          return c.error("weight must be [K, a, b] with a in {1, " + std::to_string(x.d0) +
                         "} and b in {1, " + std::to_string(x.d1) + "} for input " + x.to_string());
        }
      }
      return derived(c.side, true, x.d0, x.d1);
    }
    case OpKind::kMultiply:
    case OpKind::kMaximum:
    case OpKind::kMinimum:
    case OpKind::kAdd:
    case OpKind::kWhereEqual:
    case OpKind::kWhereNotEqual:
    case OpKind::kWhereGreater:
    case OpKind::kWhereGreaterEqual:
    case OpKind::kWhereLess:
    case OpKind::kWhereLessEqual: {
      VORTEX_RETURN_IF_ERROR(no_param(c, in));
      VORTEX_ASSIGN_OR_RETURN(int64_t d0, broadcast_axis(c, in[0], in[1], 1));
      VORTEX_ASSIGN_OR_RETURN(int64_t d1, broadcast_axis(c, in[0], in[1], 2));
      return derived(c.side, in[0].paged || in[1].paged, d0, d1);
    }
    case OpKind::kRelu:
    case OpKind::kSigmoid:
    case OpKind::kSilu:
    case OpKind::kAffine:
    case OpKind::kAbs:
    case OpKind::kLog:
    case OpKind::kExp:
      VORTEX_RETURN_IF_ERROR(no_param(c, in));
      return derived(c.side, in[0].paged, in[0].d0, in[0].d1);
    case OpKind::kKron:
      VORTEX_RETURN_IF_ERROR(no_param(c, in));
      return infer_kron(c, in[0], in[1], *a);
    case OpKind::kTranspose:
      VORTEX_RETURN_IF_ERROR(no_param(c, in));
      return derived(c.side, in[0].paged, in[0].d1, in[0].d0);
    case OpKind::kReshape:
      VORTEX_RETURN_IF_ERROR(no_param(c, in));
      return infer_reshape(c, in[0], a);
    case OpKind::kMaskSlice: {
      VORTEX_RETURN_IF_ERROR(no_param(c, in));
      const TensorType& x = in[0];
      if (a->dim != 1 && a->dim != 2) return c.error("dim must be 1 or 2");
      const int64_t size = a->dim == 1 ? x.d0 : x.d1;
      if (a->start < 0 || a->start > a->end || a->end > size) {
        return c.error("slice [" + std::to_string(a->start) + ", " + std::to_string(a->end) +
                       ") is out of range for axis " + std::to_string(a->dim) + " of " +
                       x.to_string() + "; need 0 <= start <= end <= " + std::to_string(size));
      }
      return derived(c.side, x.paged, x.d0, x.d1);
    }
    case OpKind::kLoad: {
      const Node& src = c.ir.graph(c.side).nodes[static_cast<size_t>(node.inputs[0])];
      if (src.op != OpKind::kField || c.ir.find_field(src.ref) == nullptr) {
        return c.error("Load reads a declared field: Load()(cache[\"name\"])");
      }
      return derived(c.side, true, in[0].d0, in[0].d1);
    }
    case OpKind::kSave:
    case OpKind::kFill: {
      if (c.ir.find_field(node.out) == nullptr) {
        return c.error("writes cache[\"" + node.out + "\"], which create_cache does not declare");
      }
      VORTEX_ASSIGN_OR_RETURN(auto rc, field_shape(c.ir, node.out, c.env));
      if (node.op == OpKind::kSave &&
          (!in[0].paged || in[0].d0 != rc.first || in[0].d1 != rc.second)) {
        return c.error("saves " + in[0].to_string() + " into cache[\"" + node.out +
                       "\"], declared " + dims_str(rc.first, rc.second) +
                       "; the value must be per page with exactly the field's shape");
      }
      TensorType t;
      t.format = Format::kField;
      t.paged = c.side == Side::kIndexer;
      t.d0 = rc.first;
      t.d1 = rc.second;
      return t;
    }
    case OpKind::kTopK:
    case OpKind::kApproxTopK: {
      const TensorType& x = in[0];
      if (!x.paged || x.d0 != 1 || x.d1 != 1) {
        return c.error("the score must be one number per page, [S, 1, 1], got " + x.to_string() +
                       "; reduce the other axes first (e.g. Max(dim=1), Sum(dim=2))");
      }
      if (node.op == OpKind::kApproxTopK && !(a->tolerance >= 0 && a->tolerance < 1)) {
        return c.error("tolerance must be in [0, 1), got " + format_double(a->tolerance));
      }
      TensorType t = x;
      t.format = Format::kPage;
      return t;
    }
  }
  return c.error("unhandled op");
}

}  // namespace

std::string TensorType::to_string() const {
  if (format == Format::kParam) {
    return std::string("PARAM [") + (layers ? std::to_string(layers) + ", " : "") +
           std::to_string(d0) + ", " + std::to_string(d1) + "]";
  }
  return std::string(format_name(format)) + " [" + (paged ? "S" : "1") + ", " + std::to_string(d0) +
         ", " + std::to_string(d1) + "]";
}

Expected<std::pair<int64_t, int64_t>> field_shape(const FlowIR& ir, const std::string& name,
                                                  const ShapeEnv& env) {
  if (name == "k" || name == "v") return std::pair<int64_t, int64_t>{env.block_size, env.head_dim};
  const FieldDecl* f = ir.find_field(name);
  if (f == nullptr) {
    std::string known = "k, v";
    for (const auto& d : ir.fields) known += ", " + d.name;
    return invalid_argument("flow '" + ir.name + "': cache[\"" + name +
                            "\"] is not a field; create_cache declares " + known);
  }
  const std::string what = "flow '" + ir.name + "' field '" + name + "'";
  VORTEX_ASSIGN_OR_RETURN(int64_t r, f->rows.eval_int(env, what + " rows"));
  VORTEX_ASSIGN_OR_RETURN(int64_t c, f->cols.eval_int(env, what + " cols"));
  if (r < 1 || c < 1 || r > kMaxDim || c > kMaxDim || r * c > kMaxTileElems) {
    return invalid_argument(what + " is " + dims_str(r, c) + " at " + env.to_string() +
                            "; rows and cols must be in 1.." + std::to_string(kMaxDim));
  }
  return std::pair<int64_t, int64_t>{r, c};
}

Expected<ResolvedAttrs> resolve_attrs(const FlowIR& ir, Side side, int32_t index,
                                      const ShapeEnv& env) {
  const NodeCtx c{ir, side, index, env};
  const Node& node = c.node();
  const OpInfo& info = op_info(node.op);
  ResolvedAttrs r;
  for (const auto& [name, value] : node.attrs) {
    const bool known = std::any_of(info.attrs.begin(), info.attrs.end(),
                                   [&](const AttrSpec& s) { return s.name == name; });
    if (!known) return c.error("has no attribute '" + name + "'");
  }
  for (const AttrSpec& spec : info.attrs) {
    auto it = node.attrs.find(std::string(spec.name));
    if (it == node.attrs.end()) {
      return c.error("missing attribute '" + std::string(spec.name) + "'; usage " +
                     std::string(info.usage));
    }
    const std::string what = "attribute '" + std::string(spec.name) + "'";
    const AttrValue& v = it->second;
    switch (spec.kind) {
      case AttrKind::kAxis:
      case AttrKind::kInt:
      case AttrKind::kFloat: {
        const Sym* s = std::get_if<Sym>(&v);
        if (s == nullptr) return c.error(what + " must be a number");
        if (spec.kind == AttrKind::kAxis) {
          if (!s->is_literal() || !(s->literal() == 0 || s->literal() == 1 || s->literal() == 2)) {
            return c.error(what + " must be the axis 0, 1 or 2, got " + s->text());
          }
          r.dim = static_cast<int32_t>(s->literal());
        } else if (spec.kind == AttrKind::kInt) {
          auto iv = s->eval_int(env, describe_node(ir, side, index) + " " + what);
          if (!iv) return iv.status();
          (spec.name == "k" ? r.k : spec.name == "start" ? r.start : r.end) = *iv;
        } else {
          const double d = s->eval(env);
          if (!std::isfinite(d)) return c.error(what + " = " + s->text() + " is not finite");
          double* dst = spec.name == "scale"   ? &r.scale
                        : spec.name == "alpha" ? &r.alpha
                        : spec.name == "beta"  ? &r.beta
                        : spec.name == "a"     ? &r.a
                        : spec.name == "b"     ? &r.b
                        : spec.name == "value" ? &r.value
                                               : &r.tolerance;
          *dst = d;
        }
        break;
      }
      case AttrKind::kAxes:
      case AttrKind::kIntList: {
        const auto* list = std::get_if<std::vector<Sym>>(&v);
        if (list == nullptr) return c.error(what + " must be a list of numbers");
        for (const Sym& s : *list) {
          if (spec.kind == AttrKind::kAxes) {
            if (!s.is_literal() || !(s.literal() == 1 || s.literal() == 2)) {
              return c.error(what + " entries must be the axes 1 or 2, got " + s.text());
            }
            r.dims.push_back(static_cast<int32_t>(s.literal()));
          } else {
            auto iv = s.eval_int(env, describe_node(ir, side, index) + " " + what);
            if (!iv) return iv.status();
            r.shape.push_back(*iv);
          }
        }
        break;
      }
      case AttrKind::kTensor: {
        const auto* t = std::get_if<ConstTensor>(&v);
        if (t == nullptr) return c.error(what + " must be a tensor {shape, data}");
        int64_t n = 1;
        for (int64_t d : t->shape) {
          if (d < 1 || d > kMaxDim)
            return c.error(what + " has an axis outside 1.." + std::to_string(kMaxDim));
          n *= d;
          if (n > kMaxTileElems) return c.error(what + " is too large");
        }
        if (t->shape.empty() || static_cast<int64_t>(t->data.size()) != n) {
          return c.error(what + " has " + std::to_string(t->data.size()) +
                         " values but its shape needs " + std::to_string(n));
        }
        for (float f : t->data) {
          if (!std::isfinite(f)) return c.error(what + " holds a non-finite value");
        }
        r.tensor = *t;
        break;
      }
    }
  }
  return r;
}

Expected<TensorType> infer_type(const FlowIR& ir, Side side, int32_t index,
                                std::span<const TensorType> inputs, ResolvedAttrs* attrs,
                                const ShapeEnv& env) {
  const NodeCtx c{ir, side, index, env};
  const Node& node = c.node();
  const OpInfo& info = op_info(node.op);
  if (side == Side::kCache ? !info.on_cache : !info.on_indexer) {
    return c.error(std::string(info.name) + " is not allowed in forward_" + side_name(side) +
                   (side == Side::kCache ? " (cache ops see one page: no page-axis ops, Load, "
                                           "Save or topK)"
                                         : " (it is a cache op)"));
  }
  const int n_in = static_cast<int>(inputs.size());
  if (n_in < info.min_inputs || n_in > info.max_inputs) {
    return c.error("takes " + std::to_string(info.min_inputs) + " input(s), got " +
                   std::to_string(n_in) + "; usage " + std::string(info.usage));
  }
  VORTEX_ASSIGN_OR_RETURN(TensorType t, infer_one(c, inputs, attrs));
  VORTEX_RETURN_IF_ERROR(check_size(c, t));
  if (!node.out.empty() && node.op != OpKind::kSave && node.op != OpKind::kFill) {
    if (side != Side::kCache) {
      return c.error("indexer ops write fields only through Save()(x, cache[\"" + node.out +
                     "\"])");
    }
    if (node.out == "k" || node.out == "v") {
      return c.error("k and v are written by the engine, never by a flow");
    }
    VORTEX_ASSIGN_OR_RETURN(auto rc, field_shape(ir, node.out, env));
    if (t.d0 != rc.first || t.d1 != rc.second) {
      return c.error("writes " + t.to_string() + " into cache[\"" + node.out + "\"], declared " +
                     dims_str(rc.first, rc.second) + "; make the shapes equal");
    }
  }
  return t;
}

}  // namespace vortex::flow
