// Internal to Generator: its state, shared by the token-level core (generate.cpp) and the text
// level (generate_text.cpp).
#pragma once

#include <memory>
#include <vector>

#include "vortex/kvcache/kv_cache.h"
#include "vortex/model/chat_template.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/cpu_model.h"
#include "vortex/model/generation.h"
#include "vortex/model/tokenizer.h"

namespace vortex {

/// The forward pass a Generator drives: CpuModel, or CudaModel when GeneratorOptions::cuda_device
/// is set. One request at a time, synchronously (CpuModel::forward's contract).
class ForwardRunner {
 public:
  virtual ~ForwardRunner() = default;
  virtual const ModelConfig& config() const = 0;
  /// A KV cache of `pages` pages of `page_size` tokens for one request using `sparse`.
  virtual Expected<KVCache> make_cache(int32_t page_size, DType kv_dtype,
                                       const flow::SparseConfig& sparse, int32_t pages) = 0;
  virtual Status forward(const ForwardBatch& batch, KVCache& cache, float* logits,
                         ForwardStats* stats) = 0;
};

std::unique_ptr<ForwardRunner> make_cpu_runner(std::unique_ptr<CpuModel> model);
/// CudaModel on device `device` (generate_cuda.cpp); an error in a build without CUDA.
Expected<std::unique_ptr<ForwardRunner>> make_cuda_runner(const ModelConfig& config,
                                                          const WeightMap& weights, int32_t device,
                                                          int32_t max_tokens);

struct Generator::Impl {
  GeneratorOptions options;
  std::unique_ptr<ForwardRunner> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat_template;  // null: the checkpoint has no usable template
  Status chat_template_error;                   // why chat_template is null
  std::vector<int32_t> stop_ids;                // EOS / end-of-turn ids

  /// Builds the tokenizer and chat template of `checkpoint` (generate_text.cpp).
  Status load_text_side(const Checkpoint& checkpoint);
};

}  // namespace vortex
