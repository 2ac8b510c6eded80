// Checkpoint: everything a model needs from disk — config, fp32 weights under canonical names,
// tokenizer description — and the one entry point that loads it from a GGUF file, a Hugging Face
// directory, an alias (`smollm2-135m`) or a synthetic preset (`synthetic:qwen3-1.7b`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/core/tensor.h"
#include "vortex/model/model_config.h"
#include "vortex/model/tokenizer_spec.h"
#include "vortex/model/weights.h"

namespace vortex {

struct Checkpoint {
  ModelConfig config;
  WeightMap weights;                ///< fp32, canonical names (weights.h), [out, in] row-major
  TokenizerSpec tokenizer;          ///< filled from GGUF metadata; HF: ids, template, add_bos only
  std::string tokenizer_json_path;  ///< HF directories: path of tokenizer.json ("" if none/GGUF)
  std::string source;  ///< what was loaded: a file or directory path, or "synthetic:..."
};

/// The file name the `smollm2-135m` alias resolves to inside the model directory.
inline constexpr const char* kSmolLM2FileName = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model directory: $VORTEX_MODEL_DIR, else ~/.cache/vortex/models.
std::string default_model_dir();

/// Resolves an alias to a path (`smollm2-135m` -> <model dir>/SmolLM2-135M-Instruct.Q4_1.gguf);
/// other inputs are returned unchanged. A missing aliased file gives a not-found error telling the
/// user to run scripts/fetch_model.sh.
Expected<std::string> resolve_model_path(const std::string& path_or_alias);

/// A `synthetic:<preset>[@<seed>]` model name, split (seed 0 when omitted).
struct SyntheticSpec {
  std::string preset;
  uint64_t seed = 0;
};
/// Parses `synthetic:<preset>[@<seed>]`; an error for other names or a malformed seed.
Expected<SyntheticSpec> parse_synthetic_spec(std::string_view model);

/// Loads a checkpoint:
///   - `synthetic:<preset>` or `synthetic:<preset>@<seed>` -> make_synthetic_checkpoint (seed 0
///     when omitted);
///   - an alias (`smollm2-135m`);
///   - a `.gguf` file (recognised by its magic);
///   - a Hugging Face directory (config.json + *.safetensors), or a .safetensors file inside one.
/// Every tensor's presence and shape is checked against the config before returning.
Expected<Checkpoint> load_checkpoint(const std::string& path_or_alias);

/// One tensor a config requires, with its shape.
struct ExpectedWeight {
  std::string name;  ///< canonical name
  Shape shape;
};

/// The canonical tensors `config` needs (weights.h), in a stable order: global tensors, then
/// layer by layer. `output` is omitted when tie_embeddings; biases only for qkv_bias; q/k norms
/// only for qk_norm.
std::vector<ExpectedWeight> expected_weights(const ModelConfig& config);

/// Checks that `weights` holds every expected tensor, fp32 and of the expected shape; the error
/// names the first bad tensor and `source`.
Status check_weights(const ModelConfig& config, const WeightMap& weights,
                     const std::string& source);

}  // namespace vortex
