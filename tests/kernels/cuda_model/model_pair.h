// Test harness for CudaModel: the same bf16-exact weights in a CpuModel (the oracle, bf16 KV) and a
// CudaModel, each with its own KV cache and page tables, stepped through identical batches.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "vortex/model/cpu_model.h"
#include "vortex/model/cuda_model.h"
#include "vortex/model/synthetic_weights.h"

namespace vortex::testing {

/// A small config at CUDA-supported head dims.
inline ModelConfig small_config(const std::string& name, Arch arch, int32_t layers, int32_t hidden,
                                int32_t hq, int32_t hkv, int32_t dim, int32_t ffn, int32_t vocab) {
  ModelConfig c;
  c.arch = arch;
  c.name = name;
  c.num_layers = layers;
  c.hidden_size = hidden;
  c.num_q_heads = hq;
  c.num_kv_heads = hkv;
  c.head_dim = dim;
  c.intermediate_size = ffn;
  c.vocab_size = vocab;
  c.max_context = 2048;
  c.rms_norm_eps = 1e-6f;
  c.qkv_bias = arch == Arch::kQwen2;
  c.qk_norm = arch == Arch::kQwen3;
  c.tie_embeddings = arch != Arch::kLlama;
  c.rope.theta = arch == Arch::kLlama ? 10000.0f : 1000000.0f;
  return c;
}

/// Rounds every weight to bf16 (in new tensors), so both backends compute with the same values.
inline WeightMap bf16_exact(const WeightMap& w) {
  WeightMap out;
  for (const auto& [name, t] : w.all()) {
    Tensor copy = Tensor::empty(t.shape(), DType::kF32).value();
    const float* src = t.data_as<float>();
    float* dst = copy.data_as<float>();
    for (int64_t i = 0; i < t.numel(); ++i) dst[i] = bf16_to_f32(f32_to_bf16(src[i]));
    out.put(name, std::move(copy));
  }
  return out;
}

inline int32_t argmax(const float* v, int32_t n) {
  return static_cast<int32_t>(std::max_element(v, v + n) - v);
}

inline std::vector<int32_t> random_tokens(size_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = dist(rng);
  return t;
}

/// One backend's side: its KV cache and the page tables of requests by index.
struct Side {
  std::optional<KVCache> cache;
  std::vector<PageTable> tables;
};

/// A step description shared by both sides: (request, tokens, want_logits).
struct ChunkSpec {
  size_t request;
  std::vector<int32_t> tokens;
  bool want = true;
};

struct ModelPair {
  ModelConfig config;
  std::unique_ptr<CpuModel> cpu;
  std::unique_ptr<CudaModel> gpu;
  Side cpu_side, gpu_side;
  int32_t page_size;

  ModelPair(const ModelConfig& c, uint64_t seed, int32_t P, int32_t pages, int32_t requests,
            CudaModelOptions options = {})
      : ModelPair(c, synthetic_weights(c, seed).value(), P, pages, requests, std::move(options)) {}

  /// Both backends on `weights` rounded to bf16.
  ModelPair(const ModelConfig& c, const WeightMap& weights, int32_t P, int32_t pages,
            int32_t requests, CudaModelOptions options = {})
      : config(c), page_size(P) {
    const WeightMap w = bf16_exact(weights);
    auto cm = CpuModel::create(c, w);
    EXPECT_TRUE(cm.has_value()) << cm.status().to_string();
    cpu = std::move(cm).value();
    auto gm = CudaModel::create(c, w, options);
    EXPECT_TRUE(gm.has_value()) << gm.status().to_string();
    gpu = std::move(gm).value();
    cpu_side.cache.emplace(
        KVCache::create(cpu->kv_cache_config(P, DType::kBF16, {}), pages).value());
    gpu_side.cache.emplace(gpu->create_kv_cache(gpu->kv_cache_config(P, {}), pages).value());
    for (int32_t r = 0; r < requests; ++r) {
      cpu_side.tables.emplace_back(P);
      gpu_side.tables.emplace_back(P);
    }
  }

  static ForwardBatch batch_for(Side& side, const std::vector<ChunkSpec>& chunks) {
    ForwardBatch b;
    for (const ChunkSpec& s : chunks) {
      PageTable& pt = side.tables[s.request];
      EXPECT_TRUE(pt.reserve(static_cast<int64_t>(s.tokens.size()), side.cache->pool()).is_ok());
      b.seqs.push_back(SequenceChunk{s.tokens.data(), static_cast<int32_t>(s.tokens.size()),
                                     pt.num_tokens(), &pt, nullptr, s.want});
    }
    return b;
  }

  /// Runs one step on both backends; returns {cpu logits, gpu logits}, [count(want), vocab] each.
  std::pair<std::vector<float>, std::vector<float>> step(const std::vector<ChunkSpec>& chunks) {
    size_t want = 0;
    for (const ChunkSpec& s : chunks) want += s.want ? 1 : 0;
    const size_t n = want * static_cast<size_t>(config.vocab_size);
    std::vector<float> a(n, std::numeric_limits<float>::quiet_NaN()), b = a;
    ForwardStats sa, sb;
    const Status s1 = cpu->forward(batch_for(cpu_side, chunks), *cpu_side.cache, a.data(), &sa);
    EXPECT_TRUE(s1.is_ok()) << s1.to_string();
    const Status s2 = gpu->forward(batch_for(gpu_side, chunks), *gpu_side.cache, b.data(), &sb);
    EXPECT_TRUE(s2.is_ok()) << s2.to_string();
    EXPECT_EQ(sa.tokens, sb.tokens);
    return {std::move(a), std::move(b)};
  }
};

}  // namespace vortex::testing
