// Hugging Face (transformers) tensor names <-> canonical (GGUF-style) names of weights.h, for the
// Llama / Qwen2 / Qwen3 layouts:
//   model.embed_tokens.weight                    token_embd
//   model.norm.weight                            output_norm
//   lm_head.weight                               output
//   model.layers.{i}.input_layernorm.weight      blk.{i}.attn_norm
//   model.layers.{i}.self_attn.{q,k,v}_proj.weight / .bias   blk.{i}.attn_{q,k,v}[.bias]
//   model.layers.{i}.self_attn.o_proj.weight     blk.{i}.attn_output
//   model.layers.{i}.self_attn.{q,k}_norm.weight blk.{i}.attn_{q,k}_norm
//   model.layers.{i}.post_attention_layernorm.weight          blk.{i}.ffn_norm
//   model.layers.{i}.mlp.{gate,up,down}_proj.weight           blk.{i}.ffn_{gate,up,down}
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vortex {

/// The canonical name of an HF tensor name, or nullopt for names the models do not use.
std::optional<std::string> hf_to_canonical(std::string_view hf_name);
/// The HF name of a canonical name, or nullopt for an unknown canonical name.
std::optional<std::string> canonical_to_hf(std::string_view canonical);

}  // namespace vortex
