// ModelConfig: the architecture description every loader produces (GGUF metadata, HF config.json,
// or a synthetic preset) and the forward pass consumes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vortex/core/status.h"

namespace vortex {

enum class Arch : uint8_t {
  kLlama,  ///< Llama 2/3, SmolLM2, Mistral-style: no biases, no q/k norm
  kQwen2,  ///< Qwen2 / 2.5: bias on q, k, v projections
  kQwen3,  ///< Qwen3: per-head RMSNorm on q and k before RoPE, no biases
};

/// How RoPE pairs the channels of a head.
enum class RopeStyle : uint8_t {
  kHalfSplit,      ///< (i, i + D/2): HF checkpoints and qwen-style GGUF ("NEOX")
  kAdjacentPairs,  ///< (2i, 2i + 1): llama-style GGUF, whose converter permuted Q/K rows ("NORM")
};

enum class RopeScaling : uint8_t { kNone, kLinear, kLlama3 };

struct RopeConfig {
  float theta = 10000.0f;
  RopeStyle style = RopeStyle::kHalfSplit;
  RopeScaling scaling = RopeScaling::kNone;
  float factor = 1.0f;             ///< linear / llama3 scaling factor
  float low_freq_factor = 1.0f;    ///< llama3
  float high_freq_factor = 4.0f;   ///< llama3
  int32_t original_max_position = 8192;  ///< llama3
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string name;  ///< e.g. "smollm2-135m", "synthetic:qwen3-1.7b"
  int32_t vocab_size = 0;
  int32_t hidden_size = 0;
  int32_t intermediate_size = 0;
  int32_t num_layers = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  float rms_norm_eps = 1e-5f;
  RopeConfig rope;
  int32_t max_context = 4096;
  bool tie_embeddings = false;  ///< LM head reuses token_embd
  bool qkv_bias = false;        ///< Qwen2
  bool qk_norm = false;         ///< Qwen3
  int32_t bos_token_id = -1;
  std::vector<int32_t> eos_token_ids;

  int32_t group_size() const { return num_q_heads / num_kv_heads; }  ///< G
  /// Checks the sizes are consistent (heads divide, positive dims); names the bad field.
  Status validate() const;
};

}  // namespace vortex
