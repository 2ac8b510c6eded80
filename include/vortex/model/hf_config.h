// Hugging Face config.json / generation_config.json <-> ModelConfig for LlamaForCausalLM,
// Qwen2ForCausalLM and Qwen3ForCausalLM (RoPE scaling: none, linear, llama3).
#pragma once

#include <string>
#include <string_view>

#include "vortex/core/status.h"
#include "vortex/model/model_config.h"

namespace vortex {

/// Parses config.json text; `source` names the file in errors. RoPE style is kHalfSplit (HF
/// checkpoints are not permuted). The result is not yet validated (the caller adds
/// generation_config.json first).
Expected<ModelConfig> parse_hf_config(std::string_view json_text, const std::string& source);

/// Applies generation_config.json: `eos_token_id` (an int or a list) replaces the eos ids,
/// `bos_token_id` the bos id.
Status apply_hf_generation_config(std::string_view json_text, const std::string& source,
                                  ModelConfig* config);

/// config.json text describing `config` (the inverse of parse_hf_config).
Expected<std::string> hf_config_json(const ModelConfig& config);
/// generation_config.json text with the bos / eos ids of `config`.
std::string hf_generation_config_json(const ModelConfig& config);

}  // namespace vortex
