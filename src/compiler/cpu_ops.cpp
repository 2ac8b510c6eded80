// fp32 CPU op implementations: the arithmetic of the oracle, one small function per op family.
#include "vortex/compiler/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "vortex/core/check.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::compiler {
namespace {

using flow::OpKind;
using flow::ResolvedAttrs;

constexpr float kMaskedOut = -1e30f;  // additive mask value of the Where* ops

Value gemm(const Value& x, const Value& y) {
  // x [Lx, Nx, K], y [Ly, Ny, K] -> [L, Ny, Nx]: out[l, i, j] = Σ_k y[l, i, k] · x[l, j, k]
  const int64_t L = std::max(x.L, y.L), K = x.d1;
  Value out = Value::zeros(L, y.d0, x.d0);
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t i = 0; i < y.d0; ++i) {
      for (int64_t j = 0; j < x.d0; ++j) {
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k) acc += y.get(l, i, k) * x.get(l, j, k);
        out.at(l, i, j) = acc;
      }
    }
  }
  return out;
}

// Folds `vals` (one reduction group) with the reduction of `op`.
float fold(OpKind op, const float* vals, int64_t n, int64_t stride) {
  float acc = 0.0f;
  switch (op) {
    case OpKind::kMax:
    case OpKind::kMaxInterleave:
      acc = -std::numeric_limits<float>::infinity();
      for (int64_t t = 0; t < n; ++t) acc = std::max(acc, vals[t * stride]);
      return acc;
    case OpKind::kMin:
    case OpKind::kMinInterleave:
      acc = std::numeric_limits<float>::infinity();
      for (int64_t t = 0; t < n; ++t) acc = std::min(acc, vals[t * stride]);
      return acc;
    case OpKind::kL2Norm:
    case OpKind::kL2NormInterleave:
      for (int64_t t = 0; t < n; ++t) acc += vals[t * stride] * vals[t * stride];
      return std::sqrt(acc);
    case OpKind::kMean:
    case OpKind::kMeanInterleave:
      for (int64_t t = 0; t < n; ++t) acc += vals[t * stride];
      return acc / static_cast<float>(n);
    default:  // Sum
      for (int64_t t = 0; t < n; ++t) acc += vals[t * stride];
      return acc;
  }
}

// Reduction along `dim` in groups of `k` consecutive entries (k = axis size: a full reduction).
Value reduce(OpKind op, const Value& x, int32_t dim, int64_t k) {
  if (dim == 0) {
    Value out = Value::zeros(1, x.d0, x.d1);
    const int64_t stride = x.d0 * x.d1;
    for (int64_t i = 0; i < x.d0; ++i) {
      for (int64_t j = 0; j < x.d1; ++j) out.at(0, i, j) = fold(op, x.ptr(0, i, j), x.L, stride);
    }
    return out;
  }
  const int64_t axis = dim == 1 ? x.d0 : x.d1;
  const int64_t groups = axis / k;
  Value out = Value::zeros(x.L, dim == 1 ? groups : x.d0, dim == 2 ? groups : x.d1);
  for (int64_t l = 0; l < out.L; ++l) {
    for (int64_t i = 0; i < out.d0; ++i) {
      for (int64_t j = 0; j < out.d1; ++j) {
        const float* first = dim == 1 ? x.ptr(l, i * k, j) : x.ptr(l, i, j * k);
        out.at(l, i, j) = fold(op, first, k, dim == 1 ? x.d1 : 1);
      }
    }
  }
  return out;
}

Value softmax_pages(const Value& x, float scale) {
  Value out = Value::zeros(x.L, x.d0, x.d1);
  for (int64_t i = 0; i < x.d0; ++i) {
    for (int64_t j = 0; j < x.d1; ++j) {
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t l = 0; l < x.L; ++l) m = std::max(m, scale * x.at(l, i, j));
      float sum = 0.0f;
      for (int64_t l = 0; l < x.L; ++l) {
        out.at(l, i, j) = std::exp(scale * x.at(l, i, j) - m);
        sum += out.at(l, i, j);
      }
      for (int64_t l = 0; l < x.L; ++l) out.at(l, i, j) /= sum;
    }
  }
  return out;
}

Value normalize_pages(const Value& x) {
  Value out = Value::zeros(x.L, x.d0, x.d1);
  for (int64_t i = 0; i < x.d0; ++i) {
    for (int64_t j = 0; j < x.d1; ++j) {
      float sum = 0.0f;
      for (int64_t l = 0; l < x.L; ++l) sum += x.at(l, i, j);
      for (int64_t l = 0; l < x.L; ++l) out.at(l, i, j) = x.at(l, i, j) / sum;
    }
  }
  return out;
}

Value conv1d_pages(const Value& x, const flow::ConstTensor& w) {
  // w [K, a, b]; out[s] = Σ_t w[t] · x[s + t - K/2], zero outside [0, S).
  const int64_t K = w.shape[0], wa = w.shape[1], wb = w.shape[2];
  Value out = Value::zeros(x.L, x.d0, x.d1);
  for (int64_t s = 0; s < x.L; ++s) {
    for (int64_t i = 0; i < x.d0; ++i) {
      for (int64_t j = 0; j < x.d1; ++j) {
        float acc = 0.0f;
        for (int64_t t = 0; t < K; ++t) {
          const int64_t src = s + t - K / 2;
          if (src < 0 || src >= x.L) continue;
          const float wt =
              w.data[static_cast<size_t>((t * wa + (wa == 1 ? 0 : i)) * wb + (wb == 1 ? 0 : j))];
          acc += wt * x.at(src, i, j);
        }
        out.at(s, i, j) = acc;
      }
    }
  }
  return out;
}

float binary(OpKind op, const ResolvedAttrs& a, float x, float y) {
  switch (op) {
    case OpKind::kMultiply:
      return x * y;
    case OpKind::kMaximum:
      return std::max(x, y);
    case OpKind::kMinimum:
      return std::min(x, y);
    case OpKind::kAdd:
      return static_cast<float>(a.alpha) * x + static_cast<float>(a.beta) * y;
    case OpKind::kWhereEqual:
      return x == y ? 0.0f : kMaskedOut;
    case OpKind::kWhereNotEqual:
      return x != y ? 0.0f : kMaskedOut;
    case OpKind::kWhereGreater:
      return x > y ? 0.0f : kMaskedOut;
    case OpKind::kWhereGreaterEqual:
      return x >= y ? 0.0f : kMaskedOut;
    case OpKind::kWhereLess:
      return x < y ? 0.0f : kMaskedOut;
    default:  // WhereLessEqual
      return x <= y ? 0.0f : kMaskedOut;
  }
}

float unary(OpKind op, const ResolvedAttrs& attrs, float x) {
  const float a = static_cast<float>(attrs.a), b = static_cast<float>(attrs.b);
  switch (op) {
    case OpKind::kRelu:
      return x >= a ? x : b;
    case OpKind::kSigmoid:
      return 1.0f / (1.0f + std::exp(b * x + a));
    case OpKind::kSilu:
      return x / (1.0f + std::exp(b * x + a));
    case OpKind::kAffine:
      return b * x + a;
    case OpKind::kAbs:
      return std::fabs(b * x + a);
    case OpKind::kLog:
      return std::log(b * x + a);
    default:  // Exp
      return std::exp(b * x + a);
  }
}

Value kron(const Value& x, const Value& y, const std::vector<int32_t>& dims, int64_t d0,
           int64_t d1) {
  const bool k1 = std::find(dims.begin(), dims.end(), 1) != dims.end();
  const bool k2 = std::find(dims.begin(), dims.end(), 2) != dims.end();
  Value out = Value::zeros(std::max(x.L, y.L), d0, d1);
  for (int64_t l = 0; l < out.L; ++l) {
    for (int64_t r = 0; r < d0; ++r) {
      // Kronecker axis: r = i·y.d0 + j; broadcast axis: both read r.
      const int64_t xi = k1 ? r / y.d0 : r, yi = k1 ? r % y.d0 : r;
      for (int64_t c = 0; c < d1; ++c) {
        const int64_t xj = k2 ? c / y.d1 : c, yj = k2 ? c % y.d1 : c;
        out.at(l, r, c) = x.get(l, xi, xj) * y.get(l, yi, yj);
      }
    }
  }
  return out;
}

Value mask_slice(const Value& x, const ResolvedAttrs& a) {
  Value out = Value::zeros(x.L, x.d0, x.d1);
  for (int64_t l = 0; l < x.L; ++l) {
    for (int64_t i = 0; i < x.d0; ++i) {
      for (int64_t j = 0; j < x.d1; ++j) {
        const int64_t idx = a.dim == 1 ? i : j;
        out.at(l, i, j) = static_cast<float>(idx >= a.start && idx < a.end ? a.a : a.b);
      }
    }
  }
  return out;
}

}  // namespace

Expected<Value> eval_op(OpKind op, const ResolvedAttrs& attrs, std::span<const Value* const> in,
                        int64_t out_d0, int64_t out_d1, int32_t layer) {
  VORTEX_CHECK(static_cast<int>(in.size()) >= flow::op_info(op).min_inputs);
  switch (op) {
    case OpKind::kParameter: {
      const auto& t = attrs.tensor;
      const bool layered = t.shape.size() == 3;
      const int64_t slices = layered ? t.shape[0] : 1;
      if (layered && (layer < 0 || layer >= slices)) {
        return invalid_argument("Parameter has " + std::to_string(slices) +
                                " per-layer slices but layer " + std::to_string(layer) +
                                " runs the flow; give one slice per layer of the model");
      }
      Value v = Value::zeros(1, out_d0, out_d1);
      const size_t off = layered ? static_cast<size_t>(layer * out_d0 * out_d1) : 0;
      std::copy_n(t.data.begin() + static_cast<std::ptrdiff_t>(off), v.data.size(), v.data.begin());
      return v;
    }
    case OpKind::kGeMM:
      return gemm(*in[0], *in[1]);
    case OpKind::kSum:
    case OpKind::kMean:
    case OpKind::kMax:
    case OpKind::kMin:
    case OpKind::kL2Norm: {
      const int64_t axis = attrs.dim == 1 ? in[0]->d0 : in[0]->d1;
      return reduce(op, *in[0], attrs.dim, attrs.dim == 0 ? 1 : axis);
    }
    case OpKind::kMeanInterleave:
    case OpKind::kMaxInterleave:
    case OpKind::kMinInterleave:
    case OpKind::kL2NormInterleave:
      return reduce(op, *in[0], attrs.dim, attrs.k);
    case OpKind::kSoftmax:
      return softmax_pages(*in[0], static_cast<float>(attrs.scale));
    case OpKind::kNormalize:
      return normalize_pages(*in[0]);
    case OpKind::kConv1d:
      return conv1d_pages(*in[0], attrs.tensor);
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
      const Value &x = *in[0], &y = *in[1];
      Value out = Value::zeros(std::max(x.L, y.L), out_d0, out_d1);
      for (int64_t l = 0; l < out.L; ++l) {
        for (int64_t i = 0; i < out_d0; ++i) {
          for (int64_t j = 0; j < out_d1; ++j) {
            out.at(l, i, j) = binary(op, attrs, x.get(l, i, j), y.get(l, i, j));
          }
        }
      }
      return out;
    }
    case OpKind::kRelu:
    case OpKind::kSigmoid:
    case OpKind::kSilu:
    case OpKind::kAffine:
    case OpKind::kAbs:
    case OpKind::kLog:
    case OpKind::kExp: {
      Value out = *in[0];
      for (float& v : out.data) v = unary(op, attrs, v);
      return out;
    }
    case OpKind::kKron:
      return kron(*in[0], *in[1], attrs.dims, out_d0, out_d1);
    case OpKind::kTranspose: {
      const Value& x = *in[0];
      Value out = Value::zeros(x.L, x.d1, x.d0);
      for (int64_t l = 0; l < x.L; ++l) {
        for (int64_t i = 0; i < x.d0; ++i) {
          for (int64_t j = 0; j < x.d1; ++j) out.at(l, j, i) = x.at(l, i, j);
        }
      }
      return out;
    }
    case OpKind::kReshape: {
      Value out = *in[0];  // row-major per page: same data, new [d0, d1]
      out.d0 = out_d0;
      out.d1 = out_d1;
      return out;
    }
    case OpKind::kMaskSlice:
      return mask_slice(*in[0], attrs);
    case OpKind::kLoad:
    case OpKind::kSave:
    case OpKind::kTopK:
    case OpKind::kApproxTopK:
      return *in[0];  // Save / terminals pass their value on; the interpreter acts on it
    case OpKind::kFill: {
      Value out = Value::zeros(1, out_d0, out_d1);
      std::fill(out.data.begin(), out.data.end(), static_cast<float>(attrs.value));
      return out;
    }
    case OpKind::kInput:
    case OpKind::kField:
      break;
  }
  return internal_error(std::string("eval_op: ") + std::string(flow::op_info(op).name) +
                        " is a source, read by the interpreter");
}

}  // namespace vortex::compiler
