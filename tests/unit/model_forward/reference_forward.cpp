// The dense double-precision reference forward used by the CPU model tests.
#include "reference_forward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace vortex::testing {
namespace {

using Mat = std::vector<std::vector<double>>;  // [rows][cols]

const float* w_of(const WeightMap& w, const std::string& name) {
  auto t = w.get(name);
  EXPECT_TRUE(t.has_value()) << name;
  return t->data_as<float>();
}

/// x [n][in] · W[out, in]ᵀ (+ bias)
Mat linear(const Mat& x, const float* w, const float* bias, int64_t out) {
  Mat y(x.size(), std::vector<double>(static_cast<size_t>(out)));
  const size_t in = x[0].size();
  for (size_t r = 0; r < x.size(); ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double s = bias ? bias[o] : 0.0;
      for (size_t i = 0; i < in; ++i) s += x[r][i] * w[o * static_cast<int64_t>(in) + i];
      y[r][o] = s;
    }
  }
  return y;
}

/// RMSNorm over consecutive groups of `d` entries of each row.
void rms(Mat& x, const float* w, size_t d, double eps) {
  for (auto& row : x) {
    for (size_t g = 0; g < row.size(); g += d) {
      double ss = 0;
      for (size_t i = 0; i < d; ++i) ss += row[g + i] * row[g + i];
      const double inv = 1.0 / std::sqrt(ss / d + eps);
      for (size_t i = 0; i < d; ++i) row[g + i] *= inv * w[i];
    }
  }
}

void rotate(Mat& x, int heads, int d, const RopeConfig& rope) {
  EXPECT_TRUE(rope.scaling != RopeScaling::kLlama3) << "reference supports none/linear scaling";
  for (size_t t = 0; t < x.size(); ++t) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < d / 2; ++i) {
        double freq = std::pow(static_cast<double>(rope.theta), -2.0 * i / d);
        if (rope.scaling == RopeScaling::kLinear) freq /= rope.factor;
        const double angle = static_cast<double>(static_cast<float>(t) * static_cast<float>(freq));
        const bool adj = rope.style == RopeStyle::kAdjacentPairs;
        const size_t a = h * d + (adj ? 2 * i : i), b = h * d + (adj ? 2 * i + 1 : i + d / 2);
        const double x0 = x[t][a], x1 = x[t][b];
        x[t][a] = x0 * std::cos(angle) - x1 * std::sin(angle);
        x[t][b] = x0 * std::sin(angle) + x1 * std::cos(angle);
      }
    }
  }
}

}  // namespace

std::vector<std::vector<double>> reference_logits(const ModelConfig& c, const WeightMap& w,
                                                  const std::vector<int32_t>& tokens) {
  const size_t n = tokens.size(), hidden = static_cast<size_t>(c.hidden_size);
  const int d = c.head_dim, hq = c.num_q_heads, hkv = c.num_kv_heads, g = hq / hkv;
  Mat x(n, std::vector<double>(hidden));
  const float* embd = w_of(w, "token_embd");
  for (size_t t = 0; t < n; ++t) {
    for (size_t i = 0; i < hidden; ++i) x[t][i] = embd[tokens[t] * hidden + i];
  }
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    auto bias = [&](const char* name) { return c.qkv_bias ? w_of(w, p + name) : nullptr; };
    Mat h = x;
    rms(h, w_of(w, p + "attn_norm"), hidden, c.rms_norm_eps);
    Mat q = linear(h, w_of(w, p + "attn_q"), bias("attn_q.bias"), int64_t{hq} * d);
    Mat k = linear(h, w_of(w, p + "attn_k"), bias("attn_k.bias"), int64_t{hkv} * d);
    Mat v = linear(h, w_of(w, p + "attn_v"), bias("attn_v.bias"), int64_t{hkv} * d);
    if (c.qk_norm) {
      rms(q, w_of(w, p + "attn_q_norm"), d, c.rms_norm_eps);
      rms(k, w_of(w, p + "attn_k_norm"), d, c.rms_norm_eps);
    }
    rotate(q, hq, d, c.rope);
    rotate(k, hkv, d, c.rope);
    Mat attn(n, std::vector<double>(static_cast<size_t>(hq * d), 0.0));
    for (size_t t = 0; t < n; ++t) {
      for (int head = 0; head < hq; ++head) {
        const int kvh = head / g;
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (size_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (int i = 0; i < d; ++i) dot += q[t][head * d + i] * k[j][kvh * d + i];
          s[j] = dot / std::sqrt(static_cast<double>(d));
          mx = std::max(mx, s[j]);
        }
        double den = 0;
        for (auto& e : s) den += (e = std::exp(e - mx));
        for (size_t j = 0; j <= t; ++j) {
          for (int i = 0; i < d; ++i) attn[t][head * d + i] += s[j] / den * v[j][kvh * d + i];
        }
      }
    }
    Mat o = linear(attn, w_of(w, p + "attn_output"), nullptr, static_cast<int64_t>(hidden));
    for (size_t t = 0; t < n; ++t) {
      for (size_t i = 0; i < hidden; ++i) x[t][i] += o[t][i];
    }
    h = x;
    rms(h, w_of(w, p + "ffn_norm"), hidden, c.rms_norm_eps);
    Mat gate = linear(h, w_of(w, p + "ffn_gate"), nullptr, c.intermediate_size);
    Mat up = linear(h, w_of(w, p + "ffn_up"), nullptr, c.intermediate_size);
    for (size_t t = 0; t < n; ++t) {
      for (size_t i = 0; i < gate[t].size(); ++i) {
        gate[t][i] = gate[t][i] / (1.0 + std::exp(-gate[t][i])) * up[t][i];
      }
    }
    Mat down = linear(gate, w_of(w, p + "ffn_down"), nullptr, static_cast<int64_t>(hidden));
    for (size_t t = 0; t < n; ++t) {
      for (size_t i = 0; i < hidden; ++i) x[t][i] += down[t][i];
    }
  }
  rms(x, w_of(w, "output_norm"), hidden, c.rms_norm_eps);
  const float* head = w_of(w, c.tie_embeddings ? "token_embd" : "output");
  return linear(x, head, nullptr, c.vocab_size);
}

}  // namespace vortex::testing
