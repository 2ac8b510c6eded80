// Test harness for CpuModel: a synthetic model, a KV cache, and helpers that prefill (in chunks)
// and decode one request at a time or a mixed batch.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "vortex/model/cpu_model.h"
#include "vortex/model/synthetic_weights.h"

namespace vortex::testing {

inline double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

inline std::vector<int32_t> random_tokens(size_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = dist(rng);
  return t;
}

struct ModelHarness {
  ModelConfig config;
  WeightMap weights;  // shares storage with the model's copy
  std::unique_ptr<CpuModel> model;
  std::optional<KVCache> cache;
  int32_t page_size = 16;
  ForwardStats stats;

  ModelHarness(const ModelConfig& c, uint64_t seed, int32_t P, DType kv_dtype, int32_t pages,
               const std::vector<const flow::SparseConfig*>& flows = {})
      : config(c), page_size(P) {
    weights = synthetic_weights(config, seed).value();
    auto m = CpuModel::create(config, weights);
    EXPECT_TRUE(m.has_value()) << m.status().to_string();
    model = std::move(m).value();
    auto kc = KVCache::create(model->kv_cache_config(P, kv_dtype, flows), pages);
    EXPECT_TRUE(kc.has_value()) << kc.status().to_string();
    cache.emplace(std::move(kc).value());
  }

  /// Runs one forward over `chunks`, reserving their pages; returns [count(want_logits), vocab].
  std::vector<float> forward(std::vector<SequenceChunk> chunks) {
    size_t want = 0;
    for (auto& c : chunks) {
      EXPECT_TRUE(c.pages->reserve(c.num_tokens, cache->pool()).is_ok());
      want += c.want_logits ? 1 : 0;
    }
    std::vector<float> logits(want * static_cast<size_t>(config.vocab_size),
                              std::numeric_limits<float>::quiet_NaN());
    ForwardBatch batch{std::move(chunks)};
    const Status s = model->forward(batch, *cache, logits.data(), &stats);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return logits;
  }

  static SequenceChunk chunk(PageTable& pt, const int32_t* tokens, int32_t n, bool want = true,
                             const flow::SparseConfig* sparse = nullptr) {
    return SequenceChunk{tokens, n, pt.num_tokens(), &pt, sparse, want};
  }

  /// Prefills `tokens` in chunks of `chunk_size`; returns the last token's logits.
  std::vector<float> prefill(PageTable& pt, const std::vector<int32_t>& tokens, size_t chunk_size,
                             const flow::SparseConfig* sparse = nullptr) {
    std::vector<float> last;
    for (size_t i = 0; i < tokens.size(); i += chunk_size) {
      const auto n = static_cast<int32_t>(std::min(chunk_size, tokens.size() - i));
      const bool is_last = i + static_cast<size_t>(n) == tokens.size();
      auto out = forward({chunk(pt, tokens.data() + i, n, is_last, sparse)});
      if (is_last) last = std::move(out);
    }
    return last;
  }

  /// One decode step of one request.
  std::vector<float> decode(PageTable& pt, int32_t token,
                            const flow::SparseConfig* sparse = nullptr) {
    return forward({chunk(pt, &token, 1, true, sparse)});
  }
};

inline int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace vortex::testing
