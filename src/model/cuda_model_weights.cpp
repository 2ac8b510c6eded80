// Internal to CudaModel: device weights — uploaded from an fp32 WeightMap (rounded to bf16 on the
// host, q/k/v and gate/up fused into one matrix each) or generated on the device with the
// synthetic_weights() formula.
#if defined(VORTEX_WITH_CUDA)

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cuda_model_impl.h"
#include "cuda_model_kernels.h"
#include "vortex/core/cuda_check.h"
#include "vortex/core/dtype.h"

namespace vortex::detail {
namespace {

/// Shapes of a layer's tensors.
struct Dims {
  int64_t hidden, ffn, dim, q_dim, kv_dim, vocab;
  explicit Dims(const ModelConfig& c)
      : hidden(c.hidden_size),
        ffn(c.intermediate_size),
        dim(c.head_dim),
        q_dim(int64_t{c.num_q_heads} * c.head_dim),
        kv_dim(int64_t{c.num_kv_heads} * c.head_dim),
        vocab(c.vocab_size) {}
};

/// Allocates device memory owned by `w` and returns it typed.
template <typename T>
Expected<T*> device_alloc(CudaWeights& w, Allocator& alloc, int64_t elems) {
  VORTEX_ASSIGN_OR_RETURN(Buffer b,
                          Buffer::allocate(alloc, static_cast<size_t>(elems) * sizeof(T)));
  T* p = static_cast<T*>(b.data());
  w.bytes += static_cast<int64_t>(b.size());
  w.owners.push_back(std::move(b));
  return p;
}

/// The fp32 host tensor `name` with `shape`, or an error naming both.
Expected<const float*> fetch(const WeightMap& weights, const std::string& name,
                             const Shape& shape) {
  VORTEX_ASSIGN_OR_RETURN(Tensor t, weights.get(name));
  if (t.dtype() != DType::kF32 || !t.device().is_cpu()) {
    return invalid_argument("tensor '" + name + "' must be fp32 on the CPU, got " +
                            std::string(dtype_name(t.dtype())) + " on " + t.device().to_string());
  }
  if (!(t.shape() == shape)) {
    return invalid_argument("tensor '" + name + "' has shape " + t.shape().to_string() +
                            " but the model config needs " + shape.to_string());
  }
  return static_cast<const float*>(t.data());
}

/// Copies fp32 host values into device bf16 at `dst`, in chunks.
Status upload_bf16(bf16* dst, const float* src, int64_t n) {
  constexpr int64_t kChunk = int64_t{1} << 22;
  std::vector<uint16_t> tmp(static_cast<size_t>(std::min(n, kChunk)));
  for (int64_t first = 0; first < n; first += kChunk) {
    const int64_t count = std::min(kChunk, n - first);
    for (int64_t i = 0; i < count; ++i) tmp[static_cast<size_t>(i)] = f32_to_bf16(src[first + i]);
    VORTEX_CUDA_RETURN_IF_ERROR(cudaMemcpy(dst + first, tmp.data(),
                                           static_cast<size_t>(count) * sizeof(uint16_t),
                                           cudaMemcpyHostToDevice));
  }
  return Status::ok();
}

Status upload_f32(float* dst, const float* src, int64_t n) {
  return cuda_status(
      cudaMemcpy(dst, src, static_cast<size_t>(n) * sizeof(float), cudaMemcpyHostToDevice),
      "weight upload");
}

/// A matrix `name` [rows, cols] into `dst` (bf16).
Status put_matrix(const WeightMap& weights, const std::string& name, int64_t rows, int64_t cols,
                  bf16* dst) {
  VORTEX_ASSIGN_OR_RETURN(const float* src, fetch(weights, name, Shape{rows, cols}));
  return upload_bf16(dst, src, rows * cols);
}

Status put_vector(const WeightMap& weights, const std::string& name, int64_t n, float* dst) {
  VORTEX_ASSIGN_OR_RETURN(const float* src, fetch(weights, name, Shape{n}));
  return upload_f32(dst, src, n);
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
  return h;
}

/// The generator of synthetic_weights(): (stream key, half width) of tensor `name`.
struct Synth {
  uint64_t seed;
  uint64_t key(const std::string& name) const { return splitmix64(seed ^ fnv1a(name)); }
  static float half_width(float stddev) { return stddev * std::sqrt(3.0f); }
  static float matrix_std(int64_t in) { return 1.0f / std::sqrt(static_cast<float>(in)); }
};

constexpr float kNormJitter = 0.05f;  // as synthetic_weights()

}  // namespace

Expected<CudaWeights> upload_weights(const ModelConfig& c, const WeightMap& weights,
                                     Allocator& alloc) {
  const Dims d(c);
  CudaWeights w;
  VORTEX_ASSIGN_OR_RETURN(bf16 * embd, device_alloc<bf16>(w, alloc, d.vocab * d.hidden));
  VORTEX_RETURN_IF_ERROR(put_matrix(weights, "token_embd", d.vocab, d.hidden, embd));
  w.embd = embd;
  VORTEX_ASSIGN_OR_RETURN(float* out_norm, device_alloc<float>(w, alloc, d.hidden));
  VORTEX_RETURN_IF_ERROR(put_vector(weights, "output_norm", d.hidden, out_norm));
  w.out_norm = out_norm;
  if (c.tie_embeddings) {
    w.lm_head = embd;
  } else {
    VORTEX_ASSIGN_OR_RETURN(bf16 * head, device_alloc<bf16>(w, alloc, d.vocab * d.hidden));
    VORTEX_RETURN_IF_ERROR(put_matrix(weights, "output", d.vocab, d.hidden, head));
    w.lm_head = head;
  }
  const int64_t qkv_rows = d.q_dim + 2 * d.kv_dim;
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    CudaLayerWeights lw;
    VORTEX_ASSIGN_OR_RETURN(float* attn_norm, device_alloc<float>(w, alloc, d.hidden));
    VORTEX_RETURN_IF_ERROR(put_vector(weights, p + "attn_norm", d.hidden, attn_norm));
    lw.attn_norm = attn_norm;
    VORTEX_ASSIGN_OR_RETURN(bf16 * qkv, device_alloc<bf16>(w, alloc, qkv_rows * d.hidden));
    VORTEX_RETURN_IF_ERROR(put_matrix(weights, p + "attn_q", d.q_dim, d.hidden, qkv));
    VORTEX_RETURN_IF_ERROR(
        put_matrix(weights, p + "attn_k", d.kv_dim, d.hidden, qkv + d.q_dim * d.hidden));
    VORTEX_RETURN_IF_ERROR(put_matrix(weights, p + "attn_v", d.kv_dim, d.hidden,
                                      qkv + (d.q_dim + d.kv_dim) * d.hidden));
    lw.qkv = qkv;
    if (c.qkv_bias) {
      VORTEX_ASSIGN_OR_RETURN(float* bias, device_alloc<float>(w, alloc, qkv_rows));
      VORTEX_RETURN_IF_ERROR(put_vector(weights, p + "attn_q.bias", d.q_dim, bias));
      VORTEX_RETURN_IF_ERROR(put_vector(weights, p + "attn_k.bias", d.kv_dim, bias + d.q_dim));
      VORTEX_RETURN_IF_ERROR(
          put_vector(weights, p + "attn_v.bias", d.kv_dim, bias + d.q_dim + d.kv_dim));
      lw.qkv_bias = bias;
    }
    if (c.qk_norm) {
      VORTEX_ASSIGN_OR_RETURN(float* qn, device_alloc<float>(w, alloc, d.dim));
      VORTEX_RETURN_IF_ERROR(put_vector(weights, p + "attn_q_norm", d.dim, qn));
      VORTEX_ASSIGN_OR_RETURN(float* kn, device_alloc<float>(w, alloc, d.dim));
      VORTEX_RETURN_IF_ERROR(put_vector(weights, p + "attn_k_norm", d.dim, kn));
      lw.q_norm = qn;
      lw.k_norm = kn;
    }
    VORTEX_ASSIGN_OR_RETURN(bf16 * o, device_alloc<bf16>(w, alloc, d.hidden * d.q_dim));
    VORTEX_RETURN_IF_ERROR(put_matrix(weights, p + "attn_output", d.hidden, d.q_dim, o));
    lw.o = o;
    VORTEX_ASSIGN_OR_RETURN(float* ffn_norm, device_alloc<float>(w, alloc, d.hidden));
    VORTEX_RETURN_IF_ERROR(put_vector(weights, p + "ffn_norm", d.hidden, ffn_norm));
    lw.ffn_norm = ffn_norm;
    VORTEX_ASSIGN_OR_RETURN(bf16 * gu, device_alloc<bf16>(w, alloc, 2 * d.ffn * d.hidden));
    VORTEX_RETURN_IF_ERROR(put_matrix(weights, p + "ffn_gate", d.ffn, d.hidden, gu));
    VORTEX_RETURN_IF_ERROR(
        put_matrix(weights, p + "ffn_up", d.ffn, d.hidden, gu + d.ffn * d.hidden));
    lw.gate_up = gu;
    VORTEX_ASSIGN_OR_RETURN(bf16 * down, device_alloc<bf16>(w, alloc, d.hidden * d.ffn));
    VORTEX_RETURN_IF_ERROR(put_matrix(weights, p + "ffn_down", d.hidden, d.ffn, down));
    lw.down = down;
    w.layers.push_back(lw);
  }
  return w;
}

Expected<CudaWeights> random_weights(const ModelConfig& c, uint64_t seed, Allocator& alloc,
                                     cudaStream_t stream) {
  const Dims d(c);
  const Synth s{seed};
  CudaWeights w;
  auto matrix = [&](const std::string& name, int64_t out, int64_t in, bf16* dst) {
    fill_synthetic_bf16(dst, out * in, s.key(name), 0, 0.0f,
                        Synth::half_width(Synth::matrix_std(in)), stream);
  };
  auto vector = [&](const std::string& name, int64_t n, float mean, float stddev, float* dst) {
    fill_synthetic_f32(dst, n, s.key(name), 0, mean, Synth::half_width(stddev), stream);
  };
  VORTEX_ASSIGN_OR_RETURN(bf16 * embd, device_alloc<bf16>(w, alloc, d.vocab * d.hidden));
  matrix("token_embd", d.vocab, d.hidden, embd);
  w.embd = embd;
  VORTEX_ASSIGN_OR_RETURN(float* out_norm, device_alloc<float>(w, alloc, d.hidden));
  vector("output_norm", d.hidden, 1.0f, kNormJitter, out_norm);
  w.out_norm = out_norm;
  if (c.tie_embeddings) {
    w.lm_head = embd;
  } else {
    VORTEX_ASSIGN_OR_RETURN(bf16 * head, device_alloc<bf16>(w, alloc, d.vocab * d.hidden));
    matrix("output", d.vocab, d.hidden, head);
    w.lm_head = head;
  }
  const int64_t qkv_rows = d.q_dim + 2 * d.kv_dim;
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    CudaLayerWeights lw;
    VORTEX_ASSIGN_OR_RETURN(float* attn_norm, device_alloc<float>(w, alloc, d.hidden));
    vector(p + "attn_norm", d.hidden, 1.0f, kNormJitter, attn_norm);
    lw.attn_norm = attn_norm;
    VORTEX_ASSIGN_OR_RETURN(bf16 * qkv, device_alloc<bf16>(w, alloc, qkv_rows * d.hidden));
    matrix(p + "attn_q", d.q_dim, d.hidden, qkv);
    matrix(p + "attn_k", d.kv_dim, d.hidden, qkv + d.q_dim * d.hidden);
    matrix(p + "attn_v", d.kv_dim, d.hidden, qkv + (d.q_dim + d.kv_dim) * d.hidden);
    lw.qkv = qkv;
    if (c.qkv_bias) {
      VORTEX_ASSIGN_OR_RETURN(float* bias, device_alloc<float>(w, alloc, qkv_rows));
      vector(p + "attn_q.bias", d.q_dim, 0.0f, 0.1f, bias);
      vector(p + "attn_k.bias", d.kv_dim, 0.0f, 0.1f, bias + d.q_dim);
      vector(p + "attn_v.bias", d.kv_dim, 0.0f, 0.1f, bias + d.q_dim + d.kv_dim);
      lw.qkv_bias = bias;
    }
    if (c.qk_norm) {
      VORTEX_ASSIGN_OR_RETURN(float* qn, device_alloc<float>(w, alloc, d.dim));
      vector(p + "attn_q_norm", d.dim, 1.0f, kNormJitter, qn);
      VORTEX_ASSIGN_OR_RETURN(float* kn, device_alloc<float>(w, alloc, d.dim));
      vector(p + "attn_k_norm", d.dim, 1.0f, kNormJitter, kn);
      lw.q_norm = qn;
      lw.k_norm = kn;
    }
    VORTEX_ASSIGN_OR_RETURN(bf16 * o, device_alloc<bf16>(w, alloc, d.hidden * d.q_dim));
    matrix(p + "attn_output", d.hidden, d.q_dim, o);
    lw.o = o;
    VORTEX_ASSIGN_OR_RETURN(float* ffn_norm, device_alloc<float>(w, alloc, d.hidden));
    vector(p + "ffn_norm", d.hidden, 1.0f, kNormJitter, ffn_norm);
    lw.ffn_norm = ffn_norm;
    VORTEX_ASSIGN_OR_RETURN(bf16 * gu, device_alloc<bf16>(w, alloc, 2 * d.ffn * d.hidden));
    matrix(p + "ffn_gate", d.ffn, d.hidden, gu);
    matrix(p + "ffn_up", d.ffn, d.hidden, gu + d.ffn * d.hidden);
    lw.gate_up = gu;
    VORTEX_ASSIGN_OR_RETURN(bf16 * down, device_alloc<bf16>(w, alloc, d.hidden * d.ffn));
    matrix(p + "ffn_down", d.hidden, d.ffn, down);
    lw.down = down;
    w.layers.push_back(lw);
  }
  VORTEX_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return w;
}

}  // namespace vortex::detail

#endif  // VORTEX_WITH_CUDA
