// Synthetic model presets and seeded random weights (counter-based, so generation order and
// threading never change the values).
#include "vortex/model/synthetic_weights.h"

#include <cmath>
#include <string>

namespace vortex {
namespace {

struct Preset {
  const char* name;
  Arch arch;
  int32_t layers, hidden, q_heads, kv_heads, head_dim, ffn, vocab;
  float theta;
  bool tie;
  float eps;
  int32_t max_context;
};

// Shapes from BENCHMARKS.md (real models' rope theta, norm eps and tying), then test shapes.
constexpr Preset kPresets[] = {
    {"qwen3-1.7b", Arch::kQwen3, 28, 2048, 16, 8, 128, 6144, 151936, 1e6f, true, 1e-6f, 40960},
    {"qwen3-8b", Arch::kQwen3, 36, 4096, 32, 8, 128, 12288, 151936, 1e6f, false, 1e-6f, 40960},
    {"llama-3.1-8b", Arch::kLlama, 32, 4096, 32, 8, 128, 14336, 128256, 5e5f, false, 1e-5f, 131072},
    {"smollm2-135m", Arch::kLlama, 30, 576, 9, 3, 64, 1536, 49152, 1e5f, true, 1e-5f, 8192},
    {"tiny-llama", Arch::kLlama, 2, 64, 4, 2, 16, 128, 256, 1e4f, false, 1e-5f, 4096},
    {"tiny-qwen2", Arch::kQwen2, 2, 64, 4, 2, 16, 128, 256, 1e4f, true, 1e-6f, 4096},
    {"tiny-qwen3", Arch::kQwen3, 2, 64, 8, 2, 16, 128, 256, 1e6f, true, 1e-6f, 4096},
};

constexpr std::string_view kPrefix = "synthetic:";

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
  return h;
}

/// A tensor filled with mean + U(-a, a), a = std·√3, from the stream of (seed, name).
Expected<Tensor> random_tensor(const Shape& shape, const std::string& name, uint64_t seed,
                               float mean, float stddev) {
  VORTEX_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(shape, DType::kF32));
  const uint64_t stream = splitmix64(seed ^ fnv1a(name));
  const float half_width = stddev * std::sqrt(3.0f);
  float* data = t.data_as<float>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t bits = splitmix64(stream + static_cast<uint64_t>(i));
    const float unit = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    data[i] = mean + (2.0f * unit - 1.0f) * half_width;
  }
  return t;
}

}  // namespace

std::vector<std::string> synthetic_presets() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

Expected<ModelConfig> synthetic_config(std::string_view preset) {
  if (preset.substr(0, kPrefix.size()) == kPrefix) preset.remove_prefix(kPrefix.size());
  for (const Preset& p : kPresets) {
    if (preset != p.name) continue;
    ModelConfig c;
    c.arch = p.arch;
    c.name = std::string(kPrefix) + p.name;
    c.num_layers = p.layers;
    c.hidden_size = p.hidden;
    c.num_q_heads = p.q_heads;
    c.num_kv_heads = p.kv_heads;
    c.head_dim = p.head_dim;
    c.intermediate_size = p.ffn;
    c.vocab_size = p.vocab;
    c.rope.theta = p.theta;
    c.tie_embeddings = p.tie;
    c.rms_norm_eps = p.eps;
    c.max_context = p.max_context;
    c.qkv_bias = p.arch == Arch::kQwen2;
    c.qk_norm = p.arch == Arch::kQwen3;
    if (std::string_view(p.name) == "llama-3.1-8b") {
      c.rope.scaling = RopeScaling::kLlama3;
      c.rope.factor = 8.0f;
      c.rope.low_freq_factor = 1.0f;
      c.rope.high_freq_factor = 4.0f;
      c.rope.original_max_position = 8192;
    }
    return c;
  }
  std::string known;
  for (const Preset& p : kPresets) known += (known.empty() ? "" : ", ") + std::string(p.name);
  return invalid_argument("unknown synthetic preset '" + std::string(preset) +
                          "'; known presets: " + known);
}

Expected<WeightMap> synthetic_weights(const ModelConfig& c, uint64_t seed) {
  WeightMap w;
  const int64_t hidden = c.hidden_size, ffn = c.intermediate_size, dim = c.head_dim;
  const int64_t q_dim = int64_t{c.num_q_heads} * dim, kv_dim = int64_t{c.num_kv_heads} * dim;
  auto matrix = [&](const std::string& name, int64_t out, int64_t in) -> Status {
    VORTEX_ASSIGN_OR_RETURN(Tensor t, random_tensor(Shape{out, in}, name, seed, 0.0f,
                                                    1.0f / std::sqrt(static_cast<float>(in))));
    w.put(name, std::move(t));
    return Status::ok();
  };
  auto vector = [&](const std::string& name, int64_t n, float mean, float stddev) -> Status {
    VORTEX_ASSIGN_OR_RETURN(Tensor t, random_tensor(Shape{n}, name, seed, mean, stddev));
    w.put(name, std::move(t));
    return Status::ok();
  };
  constexpr float kNormJitter = 0.05f;  // norm weights near 1, not all equal: tests see them
  VORTEX_RETURN_IF_ERROR(matrix("token_embd", c.vocab_size, hidden));
  VORTEX_RETURN_IF_ERROR(vector("output_norm", hidden, 1.0f, kNormJitter));
  if (!c.tie_embeddings) VORTEX_RETURN_IF_ERROR(matrix("output", c.vocab_size, hidden));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    VORTEX_RETURN_IF_ERROR(vector(p + "attn_norm", hidden, 1.0f, kNormJitter));
    VORTEX_RETURN_IF_ERROR(matrix(p + "attn_q", q_dim, hidden));
    VORTEX_RETURN_IF_ERROR(matrix(p + "attn_k", kv_dim, hidden));
    VORTEX_RETURN_IF_ERROR(matrix(p + "attn_v", kv_dim, hidden));
    if (c.qkv_bias) {
      VORTEX_RETURN_IF_ERROR(vector(p + "attn_q.bias", q_dim, 0.0f, 0.1f));
      VORTEX_RETURN_IF_ERROR(vector(p + "attn_k.bias", kv_dim, 0.0f, 0.1f));
      VORTEX_RETURN_IF_ERROR(vector(p + "attn_v.bias", kv_dim, 0.0f, 0.1f));
    }
    if (c.qk_norm) {
      VORTEX_RETURN_IF_ERROR(vector(p + "attn_q_norm", dim, 1.0f, kNormJitter));
      VORTEX_RETURN_IF_ERROR(vector(p + "attn_k_norm", dim, 1.0f, kNormJitter));
    }
    VORTEX_RETURN_IF_ERROR(matrix(p + "attn_output", hidden, q_dim));
    VORTEX_RETURN_IF_ERROR(vector(p + "ffn_norm", hidden, 1.0f, kNormJitter));
    VORTEX_RETURN_IF_ERROR(matrix(p + "ffn_gate", ffn, hidden));
    VORTEX_RETURN_IF_ERROR(matrix(p + "ffn_up", ffn, hidden));
    VORTEX_RETURN_IF_ERROR(matrix(p + "ffn_down", hidden, ffn));
  }
  return w;
}

}  // namespace vortex
