// config.json parsing and writing through nlohmann_json; every JSON type error is turned into a
// Status naming the file and the key.
#include "vortex/model/hf_config.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace vortex {
namespace {

using json = nlohmann::json;

Status bad_key(const std::string& source, const std::string& key, const std::string& why) {
  return invalid_argument(source + ": '" + key + "' " + why);
}

Expected<json> parse_object(std::string_view text, const std::string& source) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return invalid_argument(source + ": not a valid JSON object");
  }
  return j;
}

// An int field that must be positive and fit int32; `fallback` < 0 means required.
Expected<int32_t> get_size(const json& j, const std::string& key, const std::string& source,
                           int64_t fallback = -1) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback >= 0) return static_cast<int32_t>(fallback);
    return bad_key(source, key, "is missing");
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 ||
      it->get<int64_t>() > std::numeric_limits<int32_t>::max()) {
    return bad_key(source, key, "must be a positive integer, got " + it->dump());
  }
  return static_cast<int32_t>(it->get<int64_t>());
}

Expected<double> get_number(const json& j, const std::string& key, const std::string& source,
                            double fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) return bad_key(source, key, "must be a number, got " + it->dump());
  return it->get<double>();
}

Expected<bool> get_bool(const json& j, const std::string& key, const std::string& source,
                        bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return bad_key(source, key, "must be true or false, got " + it->dump());
  return it->get<bool>();
}

// A token id field: int, list of ints, or null.
Expected<std::vector<int32_t>> get_ids(const json& j, const std::string& key,
                                       const std::string& source) {
  std::vector<int32_t> ids;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ids;
  auto one = [&](const json& v) -> Status {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        v.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return bad_key(source, key, "must hold non-negative integer token ids, got " + v.dump());
    }
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
    return Status::ok();
  };
  if (it->is_array()) {
    for (const json& v : *it) VORTEX_RETURN_IF_ERROR(one(v));
  } else {
    VORTEX_RETURN_IF_ERROR(one(*it));
  }
  return ids;
}

Status parse_rope_scaling(const json& j, const std::string& source, RopeConfig* rope) {
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return Status::ok();
  if (!it->is_object()) return bad_key(source, "rope_scaling", "must be an object or null");
  const json& rs = *it;
  std::string type;
  for (const char* k : {"rope_type", "type"}) {
    auto t = rs.find(k);
    if (t != rs.end() && t->is_string()) {
      type = t->get<std::string>();
      break;
    }
  }
  if (type.empty() || type == "default") return Status::ok();
  VORTEX_ASSIGN_OR_RETURN(double factor, get_number(rs, "factor", source, 1.0));
  rope->factor = static_cast<float>(factor);
  if (type == "linear") {
    rope->scaling = RopeScaling::kLinear;
  } else if (type == "llama3") {
    rope->scaling = RopeScaling::kLlama3;
    VORTEX_ASSIGN_OR_RETURN(double lo, get_number(rs, "low_freq_factor", source, 1.0));
    VORTEX_ASSIGN_OR_RETURN(double hi, get_number(rs, "high_freq_factor", source, 4.0));
    VORTEX_ASSIGN_OR_RETURN(int32_t orig,
                            get_size(rs, "original_max_position_embeddings", source, 8192));
    rope->low_freq_factor = static_cast<float>(lo);
    rope->high_freq_factor = static_cast<float>(hi);
    rope->original_max_position = orig;
  } else {
    return unsupported(source + ": rope_scaling type '" + type +
                       "' is not supported (default, linear and llama3 are)");
  }
  return Status::ok();
}

Expected<ModelConfig> parse_config_object(const json& j, const std::string& source) {
  ModelConfig c;
  std::string arch_name;
  if (auto a = j.find("architectures"); a != j.end() && a->is_array()) {
    for (const json& v : *a) {
      if (v.is_string()) {
        arch_name = v.get<std::string>();
        break;
      }
    }
  }
  std::string model_type;
  if (auto m = j.find("model_type"); m != j.end() && m->is_string()) {
    model_type = m->get<std::string>();
  }
  if (arch_name == "LlamaForCausalLM" || (arch_name.empty() && model_type == "llama")) {
    c.arch = Arch::kLlama;
  } else if (arch_name == "Qwen2ForCausalLM" || (arch_name.empty() && model_type == "qwen2")) {
    c.arch = Arch::kQwen2;
    c.qkv_bias = true;
  } else if (arch_name == "Qwen3ForCausalLM" || (arch_name.empty() && model_type == "qwen3")) {
    c.arch = Arch::kQwen3;
    c.qk_norm = true;
  } else {
    return unsupported(source + ": architecture '" + (arch_name.empty() ? model_type : arch_name) +
                       "' is not supported (LlamaForCausalLM, Qwen2ForCausalLM and "
                       "Qwen3ForCausalLM are)");
  }
  if (auto act = j.find("hidden_act"); act != j.end() && !act->is_null()) {
    if (!act->is_string() || act->get<std::string>() != "silu") {
      return unsupported(source + ": hidden_act " + act->dump() + " is not supported (silu is)");
    }
  }
  VORTEX_ASSIGN_OR_RETURN(bool attn_bias, get_bool(j, "attention_bias", source, false));
  if (attn_bias && c.arch != Arch::kQwen2) {
    return unsupported(source + ": attention_bias=true is not supported for this architecture");
  }
  VORTEX_ASSIGN_OR_RETURN(bool sliding, get_bool(j, "use_sliding_window", source, false));
  if (sliding) return unsupported(source + ": use_sliding_window=true is not supported");

  VORTEX_ASSIGN_OR_RETURN(c.vocab_size, get_size(j, "vocab_size", source));
  VORTEX_ASSIGN_OR_RETURN(c.hidden_size, get_size(j, "hidden_size", source));
  VORTEX_ASSIGN_OR_RETURN(c.intermediate_size, get_size(j, "intermediate_size", source));
  VORTEX_ASSIGN_OR_RETURN(c.num_layers, get_size(j, "num_hidden_layers", source));
  VORTEX_ASSIGN_OR_RETURN(c.num_q_heads, get_size(j, "num_attention_heads", source));
  VORTEX_ASSIGN_OR_RETURN(c.num_kv_heads,
                          get_size(j, "num_key_value_heads", source, c.num_q_heads));
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    VORTEX_ASSIGN_OR_RETURN(c.head_dim, get_size(j, "head_dim", source));
  } else if (c.hidden_size % c.num_q_heads == 0) {
    c.head_dim = c.hidden_size / c.num_q_heads;
  } else {
    return bad_key(source, "hidden_size",
                   "is not a multiple of num_attention_heads and head_dim is not given");
  }
  VORTEX_ASSIGN_OR_RETURN(double eps, get_number(j, "rms_norm_eps", source, 1e-6));
  c.rms_norm_eps = static_cast<float>(eps);
  VORTEX_ASSIGN_OR_RETURN(double theta, get_number(j, "rope_theta", source, 10000.0));
  c.rope.theta = static_cast<float>(theta);
  c.rope.style = RopeStyle::kHalfSplit;
  VORTEX_RETURN_IF_ERROR(parse_rope_scaling(j, source, &c.rope));
  VORTEX_ASSIGN_OR_RETURN(c.max_context, get_size(j, "max_position_embeddings", source, 4096));
  VORTEX_ASSIGN_OR_RETURN(c.tie_embeddings, get_bool(j, "tie_word_embeddings", source, false));
  VORTEX_ASSIGN_OR_RETURN(auto bos, get_ids(j, "bos_token_id", source));
  if (bos.size() > 1) return bad_key(source, "bos_token_id", "must be a single id");
  c.bos_token_id = bos.empty() ? -1 : bos[0];
  VORTEX_ASSIGN_OR_RETURN(c.eos_token_ids, get_ids(j, "eos_token_id", source));
  if (auto n = j.find("_name_or_path"); n != j.end() && n->is_string()) {
    c.name = n->get<std::string>();
  }
  return c;
}

const char* hf_arch_name(Arch a) {
  switch (a) {
    case Arch::kLlama:
      return "LlamaForCausalLM";
    case Arch::kQwen2:
      return "Qwen2ForCausalLM";
    case Arch::kQwen3:
      return "Qwen3ForCausalLM";
  }
  return "?";
}

const char* hf_model_type(Arch a) {
  switch (a) {
    case Arch::kLlama:
      return "llama";
    case Arch::kQwen2:
      return "qwen2";
    case Arch::kQwen3:
      return "qwen3";
  }
  return "?";
}

json ids_json(const std::vector<int32_t>& ids) {
  if (ids.empty()) return nullptr;
  if (ids.size() == 1) return ids[0];
  return ids;
}

}  // namespace

Expected<ModelConfig> parse_hf_config(std::string_view json_text, const std::string& source) {
  VORTEX_ASSIGN_OR_RETURN(json j, parse_object(json_text, source));
  try {
    return parse_config_object(j, source);
  } catch (const std::exception& e) {  // a JSON type error the checks above missed
    return invalid_argument(source + ": malformed config: " + e.what());
  }
}

Status apply_hf_generation_config(std::string_view json_text, const std::string& source,
                                  ModelConfig* config) {
  VORTEX_ASSIGN_OR_RETURN(json j, parse_object(json_text, source));
  try {
    VORTEX_ASSIGN_OR_RETURN(auto eos, get_ids(j, "eos_token_id", source));
    if (!eos.empty()) config->eos_token_ids = eos;
    VORTEX_ASSIGN_OR_RETURN(auto bos, get_ids(j, "bos_token_id", source));
    if (bos.size() == 1) config->bos_token_id = bos[0];
  } catch (const std::exception& e) {
    return invalid_argument(source + ": malformed generation config: " + e.what());
  }
  return Status::ok();
}

Expected<std::string> hf_config_json(const ModelConfig& c) {
  VORTEX_RETURN_IF_ERROR(c.validate());
  json j;
  j["architectures"] = {hf_arch_name(c.arch)};
  j["model_type"] = hf_model_type(c.arch);
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_q_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = static_cast<double>(c.rms_norm_eps);
  j["rope_theta"] = static_cast<double>(c.rope.theta);
  j["max_position_embeddings"] = c.max_context;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["attention_bias"] = c.qkv_bias;
  j["torch_dtype"] = "float32";
  switch (c.rope.scaling) {
    case RopeScaling::kNone:
      j["rope_scaling"] = nullptr;
      break;
    case RopeScaling::kLinear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", static_cast<double>(c.rope.factor)}};
      break;
    case RopeScaling::kLlama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", static_cast<double>(c.rope.factor)},
                           {"low_freq_factor", static_cast<double>(c.rope.low_freq_factor)},
                           {"high_freq_factor", static_cast<double>(c.rope.high_freq_factor)},
                           {"original_max_position_embeddings", c.rope.original_max_position}};
      break;
  }
  j["bos_token_id"] = c.bos_token_id >= 0 ? json(c.bos_token_id) : json(nullptr);
  j["eos_token_id"] = ids_json(c.eos_token_ids);
  if (!c.name.empty()) j["_name_or_path"] = c.name;
  return j.dump(2) + "\n";
}

std::string hf_generation_config_json(const ModelConfig& c) {
  json j;
  j["bos_token_id"] = c.bos_token_id >= 0 ? json(c.bos_token_id) : json(nullptr);
  j["eos_token_id"] = ids_json(c.eos_token_ids);
  return j.dump(2) + "\n";
}

}  // namespace vortex
