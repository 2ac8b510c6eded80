// CUDA codegen, expressions: the analysis of a side (definitions, readers, values that cross
// kernels, deferred saves), and the element expressions and materialisation phases of a kernel
// body. Every op reads like the CPU oracle (cpu_ops.cpp): same formulas, same broadcasting.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "codegen_cuda_detail.h"
#include "vortex/core/check.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::compiler::cuda_detail {
namespace {

using flow::OpKind;

std::string num(int64_t v) { return std::to_string(v); }

bool is_simple(const std::string& x) {
  return !x.empty() && std::all_of(x.begin(), x.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
  });
}

// Row-major index of (i, j) in a tile with `d1` columns.
std::string flat(const std::string& i, const std::string& j, int64_t d1) {
  if (d1 == 1) return i;
  if (i == "0") return j;
  const std::string row = par(i) + " * " + num(d1);
  return j == "0" ? row : row + " + " + par(j);
}

std::string div(const std::string& x, int64_t d) {
  if (d == 1) return x;
  if (x == "0") return "0";
  return par(x) + " / " + num(d);
}

std::string mod(const std::string& x, int64_t d) {
  if (d == 1 || x == "0") return "0";
  return par(x) + " % " + num(d);
}

int floor_pow2(int64_t x) {
  int p = 1;
  while (p * 2 <= x && p < 32) p *= 2;
  return p;
}

bool interleaved(OpKind op) {
  return op == OpKind::kMeanInterleave || op == OpKind::kMaxInterleave ||
         op == OpKind::kMinInterleave || op == OpKind::kL2NormInterleave;
}

// "sum" | "max" | "min" and the fold's identity, for a reduction op.
const char* fold_kind(OpKind op) {
  switch (op) {
    case OpKind::kMax:
    case OpKind::kMaxInterleave:
      return "max";
    case OpKind::kMin:
    case OpKind::kMinInterleave:
      return "min";
    default:
      return "sum";
  }
}

const char* fold_init(const char* kind) {
  if (std::strcmp(kind, "max") == 0) return "-VX_INF";
  if (std::strcmp(kind, "min") == 0) return "VX_INF";
  return "0.0f";
}

std::string combine(const char* kind, const std::string& acc, const std::string& x) {
  if (std::strcmp(kind, "max") == 0) return "vx_max(" + acc + ", " + x + ")";
  if (std::strcmp(kind, "min") == 0) return "vx_min(" + acc + ", " + x + ")";
  return acc + " + " + x;
}

}  // namespace

std::string flt(double v) {
  const float f = static_cast<float>(v);
  if (std::isnan(f)) return "__int_as_float(0x7fc00000)";
  if (std::isinf(f)) return f > 0 ? "VX_INF" : "(-VX_INF)";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(f));
  std::string s = buf;
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  s += "f";
  return f < 0 || (f == 0 && std::signbit(f)) ? "(" + s + ")" : s;
}

const char* ctype(DType t) { return t == DType::kBF16 ? "unsigned short" : "float"; }

std::string par(const std::string& x) { return is_simple(x) ? x : "(" + x + ")"; }

bool is_reduction(OpKind op) {
  switch (op) {
    case OpKind::kGeMM:
    case OpKind::kSum:
    case OpKind::kMean:
    case OpKind::kMax:
    case OpKind::kMin:
    case OpKind::kL2Norm:
    case OpKind::kMeanInterleave:
    case OpKind::kMaxInterleave:
    case OpKind::kMinInterleave:
    case OpKind::kL2NormInterleave:
      return true;
    default:
      return false;
  }
}

SideInfo analyse(const SidePlan& plan) {
  SideInfo si;
  si.plan = &plan;
  const size_t nv = static_cast<size_t>(plan.num_values);
  si.step_of.assign(nv, -1);
  si.users.assign(nv, {});
  si.global.assign(nv, {});
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep& st = plan.steps[i];
    si.step_of[static_cast<size_t>(st.value)] = static_cast<int32_t>(i);
    for (int32_t in : st.inputs)
      si.users[static_cast<size_t>(in)].push_back(static_cast<int32_t>(i));
  }
  if (plan.side == flow::Side::kCache) return si;

  // Saves whose field is read by a later kernel go through a buffer and a commit kernel, so that
  // every reader of this step sees the state of the previous step (as the CPU oracle does).
  for (const PlanStep& st : plan.steps) {
    if (st.op != OpKind::kSave) continue;
    bool later_reader = false;
    for (const PlanStep& src : plan.steps) {
      if (src.op != OpKind::kField || src.read_field != st.write_field) continue;
      for (int32_t u : si.users[static_cast<size_t>(src.value)]) {
        later_reader |= plan.steps[static_cast<size_t>(u)].group > st.group;
      }
    }
    if (later_reader) si.deferred_saves.insert(si.step_of[static_cast<size_t>(st.value)]);
  }
  for (size_t v = 0; v < nv; ++v) {
    if (si.step_of[v] < 0) continue;
    const PlanStep& st = si.step(static_cast<int32_t>(v));
    GlobalStore& g = si.global[v];
    if (static_cast<int32_t>(v) == plan.score) {
      g.kind = GlobalStore::kScores;
      continue;
    }
    if (st.group < 0 || st.op == OpKind::kSave || st.op == OpKind::kTopK ||
        st.op == OpKind::kApproxTopK) {
      continue;
    }
    bool crosses = false;
    for (int32_t u : si.users[v]) {
      const PlanStep& user = plan.steps[static_cast<size_t>(u)];
      crosses |= user.group != st.group;
      crosses |= user.op == OpKind::kSave && si.deferred_saves.count(u) != 0;
    }
    if (!crosses) continue;
    g.kind = GlobalStore::kBuffer;
    g.buffer = static_cast<int32_t>(si.buffers.size());
    si.buffers.push_back({st.type.paged, st.type.tile_elems(), static_cast<int32_t>(v)});
  }
  return si;
}

BodyEmitter::BodyEmitter(const SideInfo& si, const CudaCodegenOptions& opt, Mode mode,
                         int32_t group)
    : si_(si), opt_(opt), mode_(mode), group_(group) {}

bool BodyEmitter::per_page(int32_t value) const {
  const PlanStep& st = si_.step(value);
  if (st.op == OpKind::kParameter) return false;
  if (mode_ == Mode::kCache) return true;  // the cache flow runs per (page, head) item
  return st.type.paged;
}

int64_t BodyEmitter::tile_elems(int32_t field) const {
  const flow::ShapeEnv& env = si_.plan->env;
  if (field == kFieldK || field == kFieldV) return env.block_size * env.head_dim;
  const PlanField& f = si_.plan->fields[static_cast<size_t>(field)];
  return f.rows * f.cols;
}

int64_t BodyEmitter::tile_bytes(int32_t field) const {
  const bool kv = field == kFieldK || field == kFieldV;
  return tile_elems(field) * static_cast<int64_t>(dtype_size(kv ? opt_.kv_dtype : opt_.aux_dtype));
}

std::string BodyEmitter::page_index(const std::string& s) const {
  if (mode_ == Mode::kPageAxis) return "vx_rp + " + par(s);
  return s == "0" ? "vx_rp + vx_j0" : "vx_rp + vx_j0 + " + par(s);
}

std::string BodyEmitter::source_elem(const PlanStep& st, const std::string& s,
                                     const std::string& e) {
  switch (st.op) {
    case OpKind::kInput:
      VORTEX_CHECK_MSG(mode_ == Mode::kFused, "q is read only by fused indexer kernels");
      uses_q_ = true;
      return "vx_q[" + e + "]";
    case OpKind::kParameter: {
      params_.insert(st.value);
      const std::string name =
          std::string("vx_") + (si_.plan->side == flow::Side::kCache ? "c" : "i") + num(st.value);
      if (st.type.layers == 0) return name + "[" + e + "]";
      return name + "[a.layer * " + num(st.type.d0 * st.type.d1) + " + " + par(e) + "]";
    }
    case OpKind::kField: {
      const int32_t f = st.read_field;
      const int64_t rc = tile_elems(f);
      const bool kv = f == kFieldK || f == kFieldV;
      if (mode_ == Mode::kPageAxis) {
        const std::string ptr = kv ? (f == kFieldK ? "a.k" : "a.v") : "a.field[" + num(f) + "]";
        const std::string t = ctype(kv ? opt_.kv_dtype : opt_.aux_dtype);
        return "vx_cvt(reinterpret_cast<const " + t + "*>(" + ptr + ")[((long long)vx_pages[" + s +
               "] * a.num_kv_heads + vx_h) * " + num(rc) + " + " + par(e) + "])";
      }
      VORTEX_CHECK_MSG(tiles_.count(f) != 0, "field tile not laid out");
      const std::string name = f == kFieldK ? "vx_tk" : f == kFieldV ? "vx_tv" : "vx_t" + num(f);
      const std::string page = s == "0" ? "vx_buf * SB" : "vx_buf * SB + " + par(s);
      return "vx_cvt(" + name + "[(" + page + ") * " + num(rc) + (e == "0" ? "" : " + " + par(e)) +
             "])";
    }
    default:
      VORTEX_CHECK_MSG(false, "not a source");
  }
  return "";
}

std::string BodyEmitter::elem(int32_t value, const std::string& s, std::string i, std::string j) {
  const PlanStep& st = si_.step(value);
  if (st.type.d0 == 1) i = "0";
  if (st.type.d1 == 1) j = "0";
  const std::string e = flat(i, j, st.type.d1);
  if (st.group < 0) return source_elem(st, s, e);
  const std::string tile = num(st.type.tile_elems());
  if (mode_ != Mode::kPageAxis && st.group == group_) {
    auto it = smem_.find(value);
    if (it == smem_.end()) return inline_elem(st, s, i, j);
    const std::string name = "vx_s" + num(value);
    if (!per_page(value)) return name + "[" + e + "]";
    if (st.type.tile_elems() == 1) return name + "[" + s + "]";
    return name + "[" + par(s) + " * " + tile + (e == "0" ? "" : " + " + par(e)) + "]";
  }
  const GlobalStore& g = si_.global[static_cast<size_t>(value)];
  VORTEX_CHECK_MSG(g.kind != GlobalStore::kNone,
                   "value %v" << value << " is read by another kernel but has no buffer");
  if (g.kind == GlobalStore::kScores) return "a.scores[" + page_index(s) + "]";
  const std::string buf = "a.buf[" + num(g.buffer) + "]";
  const std::string off = st.type.tile_elems() == 1 ? "" : " * " + tile + " + " + par(e);
  if (per_page(value)) return buf + "[(" + page_index(s) + ")" + off + "]";
  return buf + "[(long long)vx_row" + off + "]";
}

std::string BodyEmitter::inline_elem(const PlanStep& st, const std::string& s, const std::string& i,
                                     const std::string& j) {
  const flow::ResolvedAttrs& a = st.attrs;
  auto in = [&](size_t k, const std::string& ii, const std::string& jj) {
    return elem(st.inputs[k], s, ii, jj);
  };
  auto ab = [&]() { return ", " + flt(a.a) + ", " + flt(a.b) + ")"; };
  switch (st.op) {
    case OpKind::kMultiply:
      return "(" + in(0, i, j) + " * " + in(1, i, j) + ")";
    case OpKind::kMaximum:
      return "vx_max(" + in(0, i, j) + ", " + in(1, i, j) + ")";
    case OpKind::kMinimum:
      return "vx_min(" + in(0, i, j) + ", " + in(1, i, j) + ")";
    case OpKind::kAdd:
      return "(" + flt(a.alpha) + " * " + in(0, i, j) + " + " + flt(a.beta) + " * " + in(1, i, j) +
             ")";
    case OpKind::kWhereEqual:
    case OpKind::kWhereNotEqual:
    case OpKind::kWhereGreater:
    case OpKind::kWhereGreaterEqual:
    case OpKind::kWhereLess:
    case OpKind::kWhereLessEqual: {
      const char* cmp = st.op == OpKind::kWhereEqual          ? " == "
                        : st.op == OpKind::kWhereNotEqual     ? " != "
                        : st.op == OpKind::kWhereGreater      ? " > "
                        : st.op == OpKind::kWhereGreaterEqual ? " >= "
                        : st.op == OpKind::kWhereLess         ? " < "
                                                              : " <= ";
      return "(" + in(0, i, j) + cmp + in(1, i, j) + " ? 0.0f : -1e30f)";
    }
    case OpKind::kRelu:
      return "vx_relu(" + in(0, i, j) + ab();
    case OpKind::kSigmoid:
      return "vx_sigmoid(" + in(0, i, j) + ab();
    case OpKind::kSilu:
      return "vx_silu(" + in(0, i, j) + ab();
    case OpKind::kAffine:
      return "vx_affine(" + in(0, i, j) + ab();
    case OpKind::kAbs:
      return "vx_abs(" + in(0, i, j) + ab();
    case OpKind::kLog:
      return "vx_log(" + in(0, i, j) + ab();
    case OpKind::kExp:
      return "vx_exp(" + in(0, i, j) + ab();
    case OpKind::kKron: {
      const flow::TensorType& y = si_.step(st.inputs[1]).type;
      const bool k1 = std::find(a.dims.begin(), a.dims.end(), 1) != a.dims.end();
      const bool k2 = std::find(a.dims.begin(), a.dims.end(), 2) != a.dims.end();
      const std::string xi = k1 ? div(i, y.d0) : i, yi = k1 ? mod(i, y.d0) : i;
      const std::string xj = k2 ? div(j, y.d1) : j, yj = k2 ? mod(j, y.d1) : j;
      return "(" + in(0, xi, xj) + " * " + in(1, yi, yj) + ")";
    }
    case OpKind::kTranspose:
      return in(0, j, i);
    case OpKind::kReshape: {
      const flow::TensorType& x = si_.step(st.inputs[0]).type;
      const std::string f = flat(i, j, st.type.d1);
      return in(0, div(f, x.d1), mod(f, x.d1));
    }
    case OpKind::kMaskSlice: {
      const std::string idx = a.dim == 1 ? i : j;
      return "(" + par(idx) + " >= " + num(a.start) + " && " + par(idx) + " < " + num(a.end) +
             " ? " + flt(a.a) + " : " + flt(a.b) + ")";
    }
    case OpKind::kLoad:
    case OpKind::kSave:
      return in(0, i, j);
    case OpKind::kFill:
      return flt(a.value);
    default:
      VORTEX_CHECK_MSG(false, flow::op_info(st.op).name << " is not an inline op");
  }
  return "";
}

std::string BodyEmitter::reduction_term(const PlanStep& st, const std::string& s,
                                        const std::string& i, const std::string& j, int64_t* length,
                                        int* lanes) {
  const flow::TensorType& x = si_.step(st.inputs[0]).type;
  if (st.op == OpKind::kGeMM) {
    // out[s, i, j] = Σ_t y[s, i, t] · x[s, j, t]
    *length = x.d1;
    *lanes = floor_pow2(std::max<int64_t>(1, x.d1 / opt_.reduction_lane_elems));
    return "(" + elem(st.inputs[1], s, i, "vt") + " * " + elem(st.inputs[0], s, j, "vt") + ")";
  }
  const int32_t dim = st.attrs.dim;
  const int64_t axis = dim == 1 ? x.d0 : x.d1;
  const int64_t k = interleaved(st.op) ? st.attrs.k : axis;
  *length = k;
  const std::string pos =
      (dim == 1 ? i : j) == "0" ? "vt" : par(dim == 1 ? i : j) + " * " + num(k) + " + vt";
  // Strided folds (along d0) over many outputs: one thread per output keeps shared memory
  // accesses of a warp contiguous.
  const bool strided = dim == 1 && x.d1 > 1;
  *lanes = strided && st.type.tile_elems() >= 32
               ? 1
               : floor_pow2(std::max<int64_t>(1, k / opt_.reduction_lane_elems));
  return dim == 1 ? elem(st.inputs[0], s, pos, j) : elem(st.inputs[0], s, i, pos);
}

bool BodyEmitter::needs_phase(int32_t value) const {
  const PlanStep& st = si_.step(value);
  if (st.group < 0) return false;
  if (st.op == OpKind::kSave) return false;
  if (is_reduction(st.op)) return true;
  if (mode_ == Mode::kCache && st.write_field >= 0) return true;
  if (mode_ != Mode::kCache && si_.global[static_cast<size_t>(value)].kind != GlobalStore::kNone) {
    return true;
  }
  int uses = 0;
  for (int32_t u : si_.users[static_cast<size_t>(value)]) {
    uses += si_.plan->steps[static_cast<size_t>(u)].group == st.group ? 1 : 0;
  }
  return uses >= 2;
}

std::string BodyEmitter::global_store(int32_t value, const std::string& s, const std::string& e,
                                      const std::string& r) const {
  const PlanStep& st = si_.step(value);
  if (mode_ == Mode::kCache) {
    if (st.write_field < 0) return "";
    const std::string t = ctype(opt_.aux_dtype);
    return "vx_st(reinterpret_cast<" + t + "*>(a.field[" + num(st.write_field) +
           "]) + ((long long)vx_pg[vx_buf * SB + " + s +
           "] * a.num_kv_heads + vx_hd[vx_buf * SB + " + s + "]) * " + num(st.type.tile_elems()) +
           " + " + e + ", " + r + ");";
  }
  const GlobalStore& g = si_.global[static_cast<size_t>(value)];
  if (g.kind == GlobalStore::kNone) return "";
  if (g.kind == GlobalStore::kScores) return "a.scores[" + page_index(s) + "] = " + r + ";";
  const std::string tile = num(st.type.tile_elems());
  const std::string buf = "a.buf[" + num(g.buffer) + "]";
  const std::string off = st.type.tile_elems() == 1 ? "" : " * " + tile + " + " + e;
  if (per_page(value)) return buf + "[(" + page_index(s) + ")" + off + "] = " + r + ";";
  return "if (vx_first) " + buf + "[(long long)vx_row" + off + "] = " + r + ";";
}

std::string BodyEmitter::phase(int32_t value, bool row_prologue) {
  const PlanStep& st = si_.step(value);
  const int64_t tile = st.type.tile_elems();
  const int64_t d1 = st.type.d1;
  const bool paged = per_page(value) && !row_prologue;
  const int threads = kFusedThreads;
  const std::string count = paged ? (tile == 1 ? "vx_np" : "vx_np * " + num(tile)) : num(tile);
  // Decomposition of the output index vo into (vs, ve, vi, vj).
  std::string idx;
  if (paged) {
    idx += tile == 1 ? "const int vs = vo, ve = 0;"
                     : "const int vs = vo / " + num(tile) + ", ve = vo - vs * " + num(tile) + ";";
  } else {
    idx += "const int vs = 0, ve = vo;";
  }
  idx += d1 == 1 ? " const int vi = ve, vj = 0;"
                 : " const int vi = ve / " + num(d1) + ", vj = ve - vi * " + num(d1) + ";";
  idx += " (void)vs; (void)vi; (void)vj;";

  std::string store;
  if (in_smem(value)) {
    const std::string name = "vx_s" + num(value);
    store += name + "[" +
             (paged ? (tile == 1 ? std::string("vs") : "vs * " + num(tile) + " + ve")
                    : std::string("ve")) +
             "] = vr; ";
  }
  store += global_store(value, "vs", "ve", "vr");

  const std::string I = st.type.d0 == 1 ? "0" : "vi", J = d1 == 1 ? "0" : "vj";
  std::string out = "    {  // %v" + num(value) + " = " + std::string(flow::op_info(st.op).name) +
                    "  " + st.type.to_string() + "\n";
  if (!is_reduction(st.op)) {
    const std::string expr = st.group < 0 ? elem(value, "vs", I, J) : inline_elem(st, "vs", I, J);
    out += "      for (int vo = vx_tid; vo < " + count + "; vo += " + num(threads) + ") {\n";
    out += "        " + idx + "\n";
    out += "        const float vr = " + expr + ";\n";
    out += "        " + store + "\n      }\n    }\n";
    return out;
  }
  int64_t length = 0;
  int lanes = 1;
  const std::string term = reduction_term(st, "vs", I, J, &length, &lanes);
  const char* kind = st.op == OpKind::kGeMM ? "sum" : fold_kind(st.op);
  const bool l2 = st.op == OpKind::kL2Norm || st.op == OpKind::kL2NormInterleave;
  const bool mean = st.op == OpKind::kMean || st.op == OpKind::kMeanInterleave;
  std::string step = l2 ? "{ const float vx = " + term + "; vacc = vacc + vx * vx; }"
                        : "vacc = " + combine(kind, "vacc", term) + ";";
  std::string finish = "vacc";
  if (mean) finish = "vacc / " + flt(static_cast<double>(length));
  if (l2) finish = "sqrtf(vacc)";
  if (lanes == 1) {
    out += "      for (int vo = vx_tid; vo < " + count + "; vo += " + num(threads) + ") {\n";
    out += "        " + idx + "\n";
    out += "        float vacc = " + std::string(fold_init(kind)) + ";\n";
    out += "        for (int vt = 0; vt < " + num(length) + "; ++vt) " + step + "\n";
    out += "        const float vr = " + finish + ";\n";
    out += "        " + store + "\n      }\n    }\n";
    return out;
  }
  const int per_warp = 32 / lanes;
  out += "      // " + num(lanes) + " lanes per output, " + num(per_warp) + " outputs per warp\n";
  out += "      for (int vo0 = vx_warp * " + num(per_warp) + "; vo0 < " + count +
         "; vo0 += " + num(threads / 32 * per_warp) + ") {\n";
  out += "        const int vo = vo0 + " +
         (per_warp == 1 ? std::string("0") : "vx_lane / " + num(lanes)) + ";\n";
  out += "        " + idx + "\n";
  out += "        float vacc = " + std::string(fold_init(kind)) + ";\n";
  out += "        if (vo < " + count + ") {\n";
  out += "          for (int vt = vx_lane % " + num(lanes) + "; vt < " + num(length) +
         "; vt += " + num(lanes) + ") " + step + "\n        }\n";
  out += "        vacc = vx_lanes_" + std::string(kind) + "<" + num(lanes) + ">(vacc);\n";
  out += "        if (vo < " + count + " && vx_lane % " + num(lanes) + " == 0) {\n";
  out += "          const float vr = " + finish + ";\n";
  out += "          " + store + "\n        }\n      }\n    }\n";
  return out;
}

std::string BodyEmitter::save(int32_t step_index) {
  const PlanStep& st = si_.plan->steps[static_cast<size_t>(step_index)];
  const int64_t tile = st.type.tile_elems(), d1 = st.type.d1;
  const std::string t = ctype(opt_.aux_dtype);
  std::string out = "    {  // Save %v" + num(st.inputs[0]) + " -> field " + num(st.write_field) +
                    " '" + si_.plan->fields[static_cast<size_t>(st.write_field)].name + "'\n";
  out += "      for (int vo = vx_tid; vo < vx_np * " + num(tile) + "; vo += " + num(kFusedThreads) +
         ") {\n";
  out += "        const int vs = vo / " + num(tile) + ", ve = vo - vs * " + num(tile) + ";\n";
  out += d1 == 1 ? "        const int vi = ve, vj = 0;\n"
                 : "        const int vi = ve / " + num(d1) + ", vj = ve - vi * " + num(d1) + ";\n";
  out += "        (void)vi; (void)vj;\n";
  out += "        vx_st(reinterpret_cast<" + t + "*>(a.field[" + num(st.write_field) +
         "]) + ((long long)vx_pg[vx_buf * SB + vs] * a.num_kv_heads + vx_h) * " + num(tile) +
         " + ve, " + elem(st.inputs[0], "vs", "vi", "vj") + ");\n";
  out += "      }\n    }\n";
  return out;
}

}  // namespace vortex::compiler::cuda_detail
