// Hugging Face directory checkpoints: loading (config.json, generation_config.json,
// tokenizer_config.json, *.safetensors incl. a sharded model.safetensors.index.json) and writing
// (save_safetensors, used by tests and to export synthetic checkpoints).
#pragma once

#include <string>

#include "vortex/core/status.h"
#include "vortex/model/checkpoint.h"

namespace vortex {

/// Loads an HF directory. Tensors (F32 / F16 / BF16) are converted to fp32 under canonical names;
/// unknown tensor names are ignored; with tie_word_embeddings an lm_head.weight is ignored. The
/// tokenizer spec carries bos/eos ids, add_bos and the chat template (tokenizer_config.json);
/// the vocabulary stays in tokenizer.json, whose path is returned in tokenizer_json_path.
Expected<Checkpoint> load_hf_checkpoint(const std::string& dir);

struct HfSaveOptions {
  DType dtype = DType::kF32;  ///< stored dtype: kF32, kF16 or kBF16
  int num_shards = 1;         ///< > 1 writes model-0000i-of-0000N.safetensors + index json
};

/// Writes `weights` (checked against `config`) as an HF directory `dir` (created if needed):
/// config.json, generation_config.json and the safetensors file(s). Checkpoints whose RoPE style
/// is kAdjacentPairs (llama GGUF) get their Q/K rows permuted back to the HF half-split layout,
/// so the saved directory describes the same model.
Status save_safetensors(const std::string& dir, const WeightMap& weights, const ModelConfig& config,
                        const HfSaveOptions& options = {});

/// Permutes the rows of a Q or K projection ([heads * D, in], or a [heads * D] bias) from the
/// adjacent-pairs layout of llama GGUF (row h*D + 2i + s) to the HF half-split layout
/// (row h*D + s*D/2 + i).
Expected<Tensor> adjacent_to_half_split_rows(const Tensor& w, int32_t heads, int32_t head_dim);

}  // namespace vortex
