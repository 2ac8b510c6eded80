// The GGUF checkpoint loader: maps llama / qwen2 / qwen3 GGUF metadata to ModelConfig and
// TokenizerSpec, and dequantizes the tensors to fp32 under canonical names.
#pragma once

#include <string>

#include "vortex/core/status.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/gguf_file.h"
#include "vortex/model/model_config.h"
#include "vortex/model/tokenizer_spec.h"

namespace vortex {

/// The architecture from `general.architecture` and `<arch>.*` metadata. RoPE: llama GGUF ->
/// kAdjacentPairs (its converter permuted the Q/K rows), qwen2/qwen3 -> kHalfSplit. Tied
/// embeddings when `output.weight` is absent. Vocab size from the token list (else token_embd).
/// Llama-3 RoPE scaling, which GGUF stores as a `rope_freqs` tensor, is recognised by fitting the
/// Llama-3 formula to it. Validated before returning.
Expected<ModelConfig> gguf_model_config(const GgufFile& file);

/// The tokenizer description from `tokenizer.ggml.*` and `tokenizer.chat_template`. End-of-turn
/// ids: `tokenizer.ggml.eot_token_id` / `eom_token_id` and the well-known end-of-generation
/// control tokens present in the vocabulary (<|im_end|>, <|eot_id|>, <|endoftext|>, ...).
Expected<TokenizerSpec> gguf_tokenizer_spec(const GgufFile& file);

/// Loads a whole GGUF checkpoint; tensors are dequantized in parallel straight from the mapping.
Expected<Checkpoint> load_gguf_checkpoint(const std::string& path);

}  // namespace vortex
