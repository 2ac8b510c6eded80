// A seeded generator of valid flows composed from the op catalogue, for the code generator's tests
// (every generated flow must verify, generate CUDA that NVRTC compiles, and select on the GPU what
// the CPU interpreter selects). Cache side: 1-3 fields from summaries of K/V (means, envelopes,
// sub-page folds, value energy, projections through a Parameter, Fill-initialised state).
// Indexer: one or two score terms built from q and the fields (GeMM, products, Kron, masks,
// reshapes, transposes, unary ops, reductions, Load/Save), page-axis ops (softmax, normalize,
// conv, dim-0 reductions) and a topK terminal. Values stay in ranges where fp32 on the GPU and on
// the CPU agree closely (no Log of negatives, small Exp arguments, Normalize of positive values).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "vortex/flow/ir.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::compiler::testing {

class RandomFlowGen {
 public:
  RandomFlowGen(uint64_t seed, flow::ShapeEnv env, int32_t num_layers = 2)
      : rng_(seed), env_(env), layers_(num_layers) {}

  flow::FlowIR build(const std::string& name) {
    ir_ = flow::FlowIR{};
    fields_.clear();
    ir_.name = name;
    ir_.mode = flow::FlowMode::kSparse;
    ir_.verify_env = env_;
    make_cache();
    make_indexer();
    return ir_;
  }

 private:
  using OpKind = flow::OpKind;
  struct T {
    int32_t node = -1;
    bool paged = false;
    int64_t d0 = 1, d1 = 1;
  };
  enum class FieldKind { kWide, kProj, kScalar, kState };
  struct Field {
    std::string name;
    FieldKind kind;
    int64_t rows = 1, cols = 1;
  };

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool coin(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  double uni(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }

  flow::Graph& g(flow::Side s) { return ir_.graph(s); }
  int32_t add(flow::Side s, flow::Node n) {
    g(s).nodes.push_back(std::move(n));
    return static_cast<int32_t>(g(s).nodes.size() - 1);
  }
  T op(flow::Side s, OpKind k, std::vector<int32_t> in, std::map<std::string, flow::AttrValue> a,
       bool paged, int64_t d0, int64_t d1, std::string out = "") {
    flow::Node n = flow::make_node(k, std::move(in), std::move(a));
    n.out = std::move(out);
    return T{add(s, std::move(n)), paged, d0, d1};
  }
  T field_read(flow::Side s, const std::string& name, int64_t r, int64_t c) {
    flow::Node n = flow::make_node(OpKind::kField, {});
    n.ref = name;
    return T{add(s, std::move(n)), s == flow::Side::kIndexer, r, c};
  }
  flow::ConstTensor random_tensor(std::vector<int64_t> shape, double scale) {
    flow::ConstTensor t;
    t.shape = shape;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::normal_distribution<float> nd(0.0f, static_cast<float>(scale));
    for (int64_t i = 0; i < n; ++i) t.data.push_back(nd(rng_));
    return t;
  }

  void make_cache() {
    const auto C = flow::Side::kCache;
    const int64_t P = env_.block_size, D = env_.head_dim;
    const int nfields = 1 + pick(3);
    std::vector<int> used;
    for (int f = 0; f < nfields; ++f) {
      int kind = pick(8);
      while (std::find(used.begin(), used.end(), kind) != used.end()) kind = (kind + 1) % 8;
      used.push_back(kind);
      const std::string name = "f" + std::to_string(f);
      T k = field_read(C, coin(0.8) || kind == 3 ? "k" : "v", P, D);
      switch (kind) {
        case 0:  // centroid
          op(C, OpKind::kMean, {k.node}, {{"dim", 1}}, false, 1, D, name);
          fields_.push_back({name, FieldKind::kWide, 1, D});
          break;
        case 1:
        case 2:  // envelope
          op(C, kind == 1 ? OpKind::kMax : OpKind::kMin, {k.node}, {{"dim", 1}}, false, 1, D, name);
          fields_.push_back({name, FieldKind::kWide, 1, D});
          break;
        case 3: {  // sub-page summaries: fold groups of P/4 (or P/2) tokens
          const int64_t group = P >= 4 && coin(0.5) ? P / 4 : std::max<int64_t>(P / 2, 1);
          const OpKind ops[] = {OpKind::kMeanInterleave, OpKind::kMaxInterleave,
                                OpKind::kMinInterleave, OpKind::kL2NormInterleave};
          op(C, ops[pick(4)], {k.node}, {{"dim", 1}, {"k", group}}, false, P / group, D, name);
          fields_.push_back({name, FieldKind::kWide, P / group, D});
          break;
        }
        case 4: {  // value energy
          T n = op(C, OpKind::kL2Norm, {k.node}, {{"dim", 2}}, false, P, 1);
          op(C, OpKind::kMean, {n.node}, {{"dim", 1}}, false, 1, 1, name);
          fields_.push_back({name, FieldKind::kScalar, 1, 1});
          break;
        }
        case 5: {  // projection through a (maybe per-layer) Parameter
          const int64_t R = coin(0.5) ? 4 : 8;
          proj_ = random_tensor(
              coin(0.3) ? std::vector<int64_t>{layers_, R, D} : std::vector<int64_t>{R, D},
              1.0 / std::sqrt(static_cast<double>(D)));
          T w = op(C, OpKind::kParameter, {}, {{"value", proj_}}, false, R, D);
          T p = op(C, OpKind::kGeMM, {w.node, k.node}, {}, false, P, R);  // [1, P, R]
          op(C, coin(0.5) ? OpKind::kMean : OpKind::kMax, {p.node}, {{"dim", 1}}, false, 1, R,
             name);
          fields_.push_back({name, FieldKind::kProj, 1, R});
          break;
        }
        case 6: {  // elementwise then a fold
          T a = op(C, OpKind::kAbs, {k.node}, {{"a", 0.0}, {"b", 1.0}}, false, P, D);
          op(C, OpKind::kMean, {a.node}, {{"dim", 1}}, false, 1, D, name);
          fields_.push_back({name, FieldKind::kWide, 1, D});
          break;
        }
        default: {                // state kept with Load / Save
          g(C).nodes.pop_back();  // no K/V read
          flow::Node fill = flow::make_node(OpKind::kFill, {}, {{"value", uni(-0.5, 0.5)}});
          fill.out = name;
          add(C, std::move(fill));
          fields_.push_back({name, FieldKind::kState, 1, 1});
          break;
        }
      }
      ir_.fields.push_back({name, fields_.back().rows, fields_.back().cols});
    }
  }

  // Reduces t to [S, 1, 1] with random folds.
  T to_score(T t) {
    const auto I = flow::Side::kIndexer;
    const OpKind folds[] = {OpKind::kSum, OpKind::kMax, OpKind::kMean, OpKind::kMin,
                            OpKind::kL2Norm};
    if (t.d0 > 1 && t.d1 > 1 && coin(0.25)) {
      t = coin(0.5) ? op(I, OpKind::kTranspose, {t.node}, {}, t.paged, t.d1, t.d0)
                    : op(I, OpKind::kReshape, {t.node},
                         {{"shape", std::vector<flow::Sym>{-1, 1, -1}}}, t.paged, 1, t.d0 * t.d1);
    }
    if (t.d1 > 1) t = op(I, folds[pick(5)], {t.node}, {{"dim", 2}}, t.paged, t.d0, 1);
    if (t.d0 > 1) t = op(I, folds[pick(3)], {t.node}, {{"dim", 1}}, t.paged, 1, 1);
    return t;
  }

  T unary(T t) {
    const auto I = flow::Side::kIndexer;
    switch (pick(6)) {
      case 0:
        return op(I, OpKind::kAffine, {t.node}, {{"a", uni(-1, 1)}, {"b", uni(0.5, 2)}}, t.paged,
                  t.d0, t.d1);
      case 1:
        return op(I, OpKind::kSigmoid, {t.node}, {{"a", 0.0}, {"b", -0.2}}, t.paged, t.d0, t.d1);
      case 2:
        return op(I, OpKind::kSilu, {t.node}, {{"a", 0.0}, {"b", -1.0}}, t.paged, t.d0, t.d1);
      case 3:
        return op(I, OpKind::kExp, {t.node}, {{"a", 0.0}, {"b", 0.05}}, t.paged, t.d0, t.d1);
      case 4: {
        T a = op(I, OpKind::kAbs, {t.node}, {{"a", 0.0}, {"b", 1.0}}, t.paged, t.d0, t.d1);
        return op(I, OpKind::kLog, {a.node}, {{"a", 1.0}, {"b", 1.0}}, t.paged, t.d0, t.d1);
      }
      default:
        return op(I, OpKind::kRelu, {t.node}, {{"a", -1e9}, {"b", 0.0}}, t.paged, t.d0, t.d1);
    }
  }

  // One [S, 1, 1] term from q and field `f` (wide or projected; null: the keys themselves).
  T term(T q, const Field* fp) {
    const auto I = flow::Side::kIndexer;
    const int64_t G = env_.group, D = env_.head_dim;
    if (fp != nullptr && fp->kind == FieldKind::kProj) {
      T w = op(I, OpKind::kParameter, {}, {{"value", proj_}}, false, fp->cols, D);
      T qp = op(I, OpKind::kGeMM, {w.node, q.node}, {}, false, G, fp->cols);  // [1, G, R]
      T f = field_read(I, fp->name, 1, fp->cols);
      T s = op(I, OpKind::kGeMM, {qp.node, f.node}, {}, true, 1, G);  // [S, 1, G]
      return to_score(s);
    }
    if (fp == nullptr) {  // q against the keys themselves
      T k = field_read(I, "k", env_.block_size, D);
      T qm = op(I, OpKind::kMean, {q.node}, {{"dim", 1}}, false, 1, D);
      return to_score(op(I, OpKind::kGeMM, {qm.node, k.node}, {}, true, env_.block_size, 1));
    }
    const Field& f = *fp;
    T fr = field_read(I, f.name, f.rows, f.cols);
    T qq = q;
    if (coin(0.25)) {  // mask a slice of channels of q
      T m = op(I, OpKind::kMaskSlice, {q.node},
               {{"start", 0}, {"end", D / 4}, {"dim", 2}, {"a", 0.0}, {"b", 1.0}}, false, G, D);
      qq = op(I, OpKind::kMultiply, {q.node, m.node}, {}, false, G, D);
    }
    switch (f.rows == 1 ? pick(4) : pick(2) * 3) {
      case 0: {  // centroid-style: mean query
        T qm = op(I, OpKind::kMean, {qq.node}, {{"dim", 1}}, false, 1, D);
        return to_score(op(I, OpKind::kGeMM, {qm.node, fr.node}, {}, true, f.rows, 1));
      }
      case 1: {  // per-head logits, maybe a softmax over the pages
        T s = op(I, OpKind::kGeMM, {qq.node, fr.node}, {}, true, f.rows, G);  // [S, r, G]
        if (coin(0.4)) {
          s = op(I, OpKind::kSoftmax, {s.node},
                 {{"dim", 0}, {"scale", 1.0 / std::sqrt(static_cast<double>(D))}}, true, s.d0,
                 s.d1);
        }
        return to_score(s);
      }
      case 2: {  // quest-style envelope products
        T hi = op(I, OpKind::kMultiply, {qq.node, fr.node}, {}, true, G, D);
        T lo = op(I, OpKind::kMultiply, {q.node, fr.node}, {}, true, G, D);
        T mx = op(I, coin(0.5) ? OpKind::kMaximum : OpKind::kMinimum, {hi.node, lo.node}, {}, true,
                  G, D);
        return to_score(mx);
      }
      default: {  // Kron over heads x sub-pages
        T kr = op(I, OpKind::kKron, {qq.node, fr.node}, {{"dims", std::vector<flow::Sym>{1}}}, true,
                  G * f.rows, D);
        return to_score(kr);
      }
    }
  }

  void make_indexer() {
    const auto I = flow::Side::kIndexer;
    flow::Node qn = flow::make_node(OpKind::kInput, {});
    qn.ref = "q";
    T q{add(I, std::move(qn)), false, env_.group, env_.head_dim};
    // One term per wide / projected field (every declared field must be read).
    std::vector<const Field*> sources;
    for (const Field& f : fields_) {
      if (f.kind == FieldKind::kWide || f.kind == FieldKind::kProj) sources.push_back(&f);
    }
    std::shuffle(sources.begin(), sources.end(), rng_);
    T s = term(q, sources.empty() ? nullptr : sources[0]);
    if (coin(0.5)) s = unary(s);
    for (size_t i = 1; i < sources.size(); ++i) {
      T t = term(q, sources[i]);
      s = coin(0.5) ? op(I, OpKind::kAdd, {s.node, t.node},
                         {{"alpha", uni(0.5, 1.5)}, {"beta", uni(-1, 1)}}, true, 1, 1)
                    : op(I, OpKind::kMaximum, {s.node, t.node}, {}, true, 1, 1);
    }
    for (const Field& f : fields_) {
      if (f.kind == FieldKind::kScalar) {
        T fr = field_read(I, f.name, 1, 1);
        s = op(I, coin(0.5) ? OpKind::kMultiply : OpKind::kAdd, {s.node, fr.node}, {}, true, 1, 1);
      } else if (f.kind == FieldKind::kState) {
        T fr = field_read(I, f.name, 1, 1);
        T prev = op(I, OpKind::kLoad, {fr.node}, {}, true, 1, 1);
        s = op(I, OpKind::kAdd, {prev.node, s.node}, {{"alpha", 0.5}, {"beta", 1.0}}, true, 1, 1);
        flow::Node save = flow::make_node(OpKind::kSave, {s.node});
        save.out = f.name;
        add(I, std::move(save));
      }
    }
    switch (pick(6)) {  // page-axis post-processing
      case 0: {         // centre by the mean over pages
        T m = op(I, OpKind::kMean, {s.node}, {{"dim", 0}}, false, 1, 1);
        s = op(I, OpKind::kAdd, {s.node, m.node}, {{"alpha", 1.0}, {"beta", -1.0}}, true, 1, 1);
        break;
      }
      case 1: {  // smooth along the pages
        s = op(I, OpKind::kConv1d, {s.node}, {{"weight", random_tensor({3, 1, 1}, 0.5)}}, true, 1,
               1);
        break;
      }
      case 2: {  // softmax then normalize (positive values)
        s = op(I, OpKind::kSoftmax, {s.node}, {{"dim", 0}, {"scale", 0.25}}, true, 1, 1);
        if (coin(0.5)) s = op(I, OpKind::kNormalize, {s.node}, {{"dim", 0}}, true, 1, 1);
        break;
      }
      case 3: {  // keep pages above the row's minimum (an additive mask)
        T m = op(I, OpKind::kMin, {s.node}, {{"dim", 0}}, false, 1, 1);
        T w = op(I, OpKind::kWhereGreaterEqual, {s.node, m.node}, {}, true, 1, 1);
        s = op(I, OpKind::kAdd, {s.node, w.node}, {}, true, 1, 1);
        break;
      }
      default:
        break;
    }
    if (coin(0.3)) {
      op(I, OpKind::kApproxTopK, {s.node}, {{"tolerance", 0.0}}, true, 1, 1);
    } else {
      op(I, OpKind::kTopK, {s.node}, {}, true, 1, 1);
    }
  }

  std::mt19937_64 rng_;
  flow::ShapeEnv env_;
  int64_t layers_;
  flow::FlowIR ir_;
  std::vector<Field> fields_;
  flow::ConstTensor proj_;
};

}  // namespace vortex::compiler::testing
