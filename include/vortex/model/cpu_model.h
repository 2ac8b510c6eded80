// CpuModel: the reference forward pass (Llama / Qwen2 / Qwen3) on the CPU over the paged KV cache,
// with sparse decode attention driven by each request's flow. fp32 activations and accumulation.
#pragma once

#include <memory>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/kvcache/kv_cache.h"
#include "vortex/model/forward_batch.h"
#include "vortex/model/model_config.h"
#include "vortex/model/weights.h"

namespace vortex {

class CpuModel {
 public:
  /// Takes the weights (fp32, canonical names); checks every tensor's presence and shape.
  static Expected<std::unique_ptr<CpuModel>> create(const ModelConfig& config, WeightMap weights);
  ~CpuModel();

  const ModelConfig& config() const;
  /// The KVCacheConfig this model needs (layers, kv heads, head dim) for page size P, KV dtype,
  /// and the union of the aux fields of `flows` (each flow's layers_skip ignored: aux everywhere
  /// except layers every flow skips).
  KVCacheConfig kv_cache_config(int32_t page_size, DType kv_dtype,
                                const std::vector<const flow::SparseConfig*>& flows) const;

  /// Runs one step: appends every chunk's K/V to its pages (already reserved), runs the cache
  /// flows of pages completed by this step, selects pages for decode rows of sparse requests
  /// (chunks with num_tokens == 1 and start_pos > 0), and writes the last-token logits of every
  /// chunk with want_logits, in batch order, to `logits` [count(want_logits), vocab]. Commits the
  /// chunks' tokens to their page tables (only when the step succeeds). One forward at a time per
  /// model: the step's scratch buffers live in the model.
  Status forward(const ForwardBatch& batch, KVCache& cache, float* logits, ForwardStats* stats);

  /// Tests and debugging: `hook` sees every sparse decode group's selection (with its fp32
  /// queries) per layer and may replace it; the attention uses what it leaves. Null removes it.
  void set_selection_hook(SelectionHook hook);

 private:
  CpuModel();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vortex
