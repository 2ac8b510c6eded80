// HF <-> canonical tensor names (table in the header).
#include "vortex/model/hf_tensor_names.h"

#include <charconv>

namespace vortex {
namespace {

struct NamePair {
  std::string_view hf;
  std::string_view canonical;
};

constexpr NamePair kGlobal[] = {
    {"model.embed_tokens.weight", "token_embd"},
    {"model.norm.weight", "output_norm"},
    {"lm_head.weight", "output"},
};

// Per-layer names, relative to "model.layers.{i}." and "blk.{i}.".
constexpr NamePair kLayer[] = {
    {"input_layernorm.weight", "attn_norm"},
    {"self_attn.q_proj.weight", "attn_q"},
    {"self_attn.k_proj.weight", "attn_k"},
    {"self_attn.v_proj.weight", "attn_v"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output"},
    {"self_attn.q_norm.weight", "attn_q_norm"},
    {"self_attn.k_norm.weight", "attn_k_norm"},
    {"post_attention_layernorm.weight", "ffn_norm"},
    {"mlp.gate_proj.weight", "ffn_gate"},
    {"mlp.up_proj.weight", "ffn_up"},
    {"mlp.down_proj.weight", "ffn_down"},
};

// Splits "<prefix><digits>.<rest>" into the layer number text and rest.
bool split_layer(std::string_view name, std::string_view prefix, std::string_view* num,
                 std::string_view* rest) {
  if (name.substr(0, prefix.size()) != prefix) return false;
  name.remove_prefix(prefix.size());
  const size_t dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot > 9) return false;
  int layer = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + dot, layer);
  if (ec != std::errc() || p != name.data() + dot) return false;
  if (dot > 1 && name[0] == '0') return false;  // no leading zeros: one spelling per layer
  *num = name.substr(0, dot);
  *rest = name.substr(dot + 1);
  return true;
}

}  // namespace

std::optional<std::string> hf_to_canonical(std::string_view hf_name) {
  for (const NamePair& p : kGlobal) {
    if (hf_name == p.hf) return std::string(p.canonical);
  }
  std::string_view num, rest;
  if (!split_layer(hf_name, "model.layers.", &num, &rest)) return std::nullopt;
  for (const NamePair& p : kLayer) {
    if (rest == p.hf) return "blk." + std::string(num) + "." + std::string(p.canonical);
  }
  return std::nullopt;
}

std::optional<std::string> canonical_to_hf(std::string_view canonical) {
  for (const NamePair& p : kGlobal) {
    if (canonical == p.canonical) return std::string(p.hf);
  }
  std::string_view num, rest;
  if (!split_layer(canonical, "blk.", &num, &rest)) return std::nullopt;
  for (const NamePair& p : kLayer) {
    if (rest == p.canonical) return "model.layers." + std::string(num) + "." + std::string(p.hf);
  }
  return std::nullopt;
}

}  // namespace vortex
