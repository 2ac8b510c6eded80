// Parsing and validating OpenAI completions / chat request bodies.
#include "vortex/server/api_request.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

namespace vortex::server {
namespace {

using json = nlohmann::json;

std::string type_name(const json& j) {
  if (j.is_number_integer()) return "an integer";
  if (j.is_number_float()) return "a number";
  if (j.is_string()) return "a string";
  if (j.is_boolean()) return "a boolean";
  if (j.is_array()) return "an array";
  if (j.is_object()) return "an object";
  return "null";
}

Status field_error(std::string_view field, const std::string& what) {
  return invalid_argument("'" + std::string(field) + "' " + what);
}

/// The member `key` of `obj` when present and not null.
const json* member(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Expected<int64_t> get_int(const json& j, std::string_view field, int64_t lo, int64_t hi) {
  if (!j.is_number_integer()) return field_error(field, "must be an integer, got " + type_name(j));
  if (j.is_number_unsigned() && j.get<uint64_t>() > static_cast<uint64_t>(hi)) {
    return field_error(field, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                  "], got " + std::to_string(j.get<uint64_t>()));
  }
  const auto v = j.get<int64_t>();
  if (v < lo || v > hi) {
    return field_error(field, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                  "], got " + std::to_string(v));
  }
  return v;
}

Expected<double> get_number(const json& j, std::string_view field, double lo, double hi) {
  if (!j.is_number()) return field_error(field, "must be a number, got " + type_name(j));
  const auto v = j.get<double>();
  if (!std::isfinite(v) || v < lo || v > hi) {
    return field_error(field, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                  "], got " + j.dump());
  }
  return v;
}

Expected<bool> get_bool(const json& j, std::string_view field) {
  if (!j.is_boolean()) return field_error(field, "must be a boolean, got " + type_name(j));
  return j.get<bool>();
}

Expected<std::string> get_string(const json& j, std::string_view field) {
  if (!j.is_string()) return field_error(field, "must be a string, got " + type_name(j));
  return j.get<std::string>();
}

Status parse_vortex(const json& v, engine::FlowOverrides* out) {
  if (!v.is_object()) return field_error("vortex", "must be an object, got " + type_name(v));
  for (const auto& [key, val] : v.items()) {
    const std::string f = "vortex." + key;
    if (val.is_null()) continue;
    if (key == "flow") {
      VORTEX_ASSIGN_OR_RETURN(out->flow, get_string(val, f));
    } else if (key == "topk_val") {
      VORTEX_ASSIGN_OR_RETURN(int64_t x, get_int(val, f, 0, 1 << 20));
      out->topk_val = static_cast<int32_t>(x);
    } else if (key == "topk_ratio") {
      VORTEX_ASSIGN_OR_RETURN(double x, get_number(val, f, 0.0, 1.0));
      out->topk_ratio = static_cast<float>(x);
    } else if (key == "bos" || key == "eos") {
      VORTEX_ASSIGN_OR_RETURN(int64_t x, get_int(val, f, 0, 1 << 20));
      (key == "bos" ? out->bos : out->eos) = static_cast<int32_t>(x);
    } else if (key == "layers_skip") {
      if (!val.is_array()) return field_error(f, "must be an array of layer indices");
      std::vector<int32_t> layers;
      for (const json& l : val) {
        VORTEX_ASSIGN_OR_RETURN(int64_t x, get_int(l, f, 0, 1 << 16));
        layers.push_back(static_cast<int32_t>(x));
      }
      out->layers_skip = std::move(layers);
    } else {
      return field_error(f,
                         "is not a Vortex option; use flow, topk_val, topk_ratio, bos, eos, "
                         "layers_skip");
    }
  }
  return Status::ok();
}

Status parse_stop(const json& j, int32_t max_stop, std::vector<std::string>* out) {
  if (j.is_string()) {
    out->push_back(j.get<std::string>());
  } else if (j.is_array()) {
    for (const json& s : j) {
      VORTEX_ASSIGN_OR_RETURN(std::string str, get_string(s, "stop[]"));
      out->push_back(std::move(str));
    }
  } else {
    return field_error("stop", "must be a string or an array of strings, got " + type_name(j));
  }
  if (static_cast<int32_t>(out->size()) > max_stop) {
    return field_error("stop", "may list at most " + std::to_string(max_stop) + " strings");
  }
  for (const auto& s : *out) {
    if (s.empty()) return field_error("stop", "must not contain an empty string");
  }
  return Status::ok();
}

/// Fields both endpoints share.
Status parse_common(const json& body, const ApiLimits& limits, ApiRequest* r) {
  if (const json* j = member(body, "model")) {
    VORTEX_ASSIGN_OR_RETURN(r->model, get_string(*j, "model"));
  }
  if (const json* j = member(body, "n")) {
    VORTEX_ASSIGN_OR_RETURN(int64_t n, get_int(*j, "n", 1, limits.max_n));
    r->n = static_cast<int32_t>(n);
  }
  SamplingParams& s = r->sampling;
  s.temperature = 1.0f;  // the OpenAI default
  if (const json* j = member(body, "temperature")) {
    VORTEX_ASSIGN_OR_RETURN(double t, get_number(*j, "temperature", 0.0, 2.0));
    s.temperature = static_cast<float>(t);
  }
  if (const json* j = member(body, "top_p")) {
    VORTEX_ASSIGN_OR_RETURN(double p, get_number(*j, "top_p", 0.0, 1.0));
    if (p <= 0.0) return field_error("top_p", "must be greater than 0");
    s.top_p = static_cast<float>(p);
  }
  if (const json* j = member(body, "top_k")) {
    VORTEX_ASSIGN_OR_RETURN(int64_t k, get_int(*j, "top_k", -1, 1 << 20));
    s.top_k = k < 0 ? 0 : static_cast<int32_t>(k);
  }
  if (const json* j = member(body, "min_p")) {
    VORTEX_ASSIGN_OR_RETURN(double p, get_number(*j, "min_p", 0.0, 1.0));
    s.min_p = static_cast<float>(p);
  }
  if (const json* j = member(body, "frequency_penalty")) {
    VORTEX_ASSIGN_OR_RETURN(double p, get_number(*j, "frequency_penalty", -2.0, 2.0));
    s.frequency_penalty = static_cast<float>(p);
  }
  if (const json* j = member(body, "presence_penalty")) {
    VORTEX_ASSIGN_OR_RETURN(double p, get_number(*j, "presence_penalty", -2.0, 2.0));
    s.presence_penalty = static_cast<float>(p);
  }
  if (const json* j = member(body, "repetition_penalty")) {
    VORTEX_ASSIGN_OR_RETURN(double p, get_number(*j, "repetition_penalty", 0.01, 10.0));
    s.repetition_penalty = static_cast<float>(p);
  }
  if (const json* j = member(body, "seed")) {
    VORTEX_ASSIGN_OR_RETURN(int64_t seed, get_int(*j, "seed", std::numeric_limits<int64_t>::min(),
                                                  std::numeric_limits<int64_t>::max()));
    s.seed = static_cast<uint64_t>(seed);
    r->seed_given = true;
  }
  if (const json* j = member(body, "ignore_eos")) {
    VORTEX_ASSIGN_OR_RETURN(s.ignore_eos, get_bool(*j, "ignore_eos"));
  }
  if (const json* j = member(body, "stop"))
    VORTEX_RETURN_IF_ERROR(parse_stop(*j, limits.max_stop, &r->stop));
  if (const json* j = member(body, "stream")) {
    VORTEX_ASSIGN_OR_RETURN(r->stream, get_bool(*j, "stream"));
  }
  if (const json* j = member(body, "stream_options")) {
    if (!j->is_object()) return field_error("stream_options", "must be an object");
    if (!r->stream) return field_error("stream_options", "is only allowed with stream: true");
    if (const json* u = member(*j, "include_usage")) {
      VORTEX_ASSIGN_OR_RETURN(r->include_usage, get_bool(*u, "stream_options.include_usage"));
    }
  }
  if (const json* j = member(body, "user")) VORTEX_RETURN_IF_ERROR(get_string(*j, "user").status());
  if (const json* j = member(body, "logit_bias")) {
    if (!j->is_object()) return field_error("logit_bias", "must be an object");
    if (!j->empty()) return unsupported("'logit_bias' is not supported by this server");
  }
  if (const json* j = member(body, "vortex")) VORTEX_RETURN_IF_ERROR(parse_vortex(*j, &r->flow));
  return Status::ok();
}

Expected<std::vector<int32_t>> token_array(const json& j, std::string_view field) {
  std::vector<int32_t> ids;
  for (const json& t : j) {
    VORTEX_ASSIGN_OR_RETURN(int64_t id, get_int(t, field, 0, std::numeric_limits<int32_t>::max()));
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

Status parse_completions(const json& body, const TextCodec& codec, const ApiLimits& limits,
                         ApiRequest* r) {
  const json* p = member(body, "prompt");
  if (p == nullptr) return field_error("prompt", "is required");
  if (p->is_string()) {
    r->prompts.push_back(codec.encode_prompt(p->get<std::string>()));
  } else if (p->is_array()) {
    if (p->empty()) return field_error("prompt", "must not be an empty array");
    if ((*p)[0].is_number()) {
      VORTEX_ASSIGN_OR_RETURN(auto ids, token_array(*p, "prompt[]"));
      r->prompts.push_back(std::move(ids));
    } else {
      for (const json& e : *p) {
        if (e.is_string()) {
          r->prompts.push_back(codec.encode_prompt(e.get<std::string>()));
        } else if (e.is_array()) {
          VORTEX_ASSIGN_OR_RETURN(auto ids, token_array(e, "prompt[][]"));
          r->prompts.push_back(std::move(ids));
        } else {
          return field_error("prompt",
                             "must be a string, an array of strings, an array of token "
                             "ids or an array of token-id arrays");
        }
      }
    }
  } else {
    return field_error("prompt", "must be a string or an array, got " + type_name(*p));
  }
  if (static_cast<int32_t>(r->prompts.size()) > limits.max_prompts) {
    return field_error("prompt", "may hold at most " + std::to_string(limits.max_prompts) +
                                     " prompts per request");
  }
  r->sampling.max_tokens = limits.default_max_tokens;
  if (const json* j = member(body, "max_tokens")) {
    VORTEX_ASSIGN_OR_RETURN(int64_t m, get_int(*j, "max_tokens", 1, limits.max_context));
    r->sampling.max_tokens = static_cast<int32_t>(m);
  }
  if (const json* j = member(body, "logprobs")) {
    VORTEX_ASSIGN_OR_RETURN(int64_t lp, get_int(*j, "logprobs", 0, limits.max_logprobs));
    r->logprobs = static_cast<int32_t>(lp);
  }
  if (const json* j = member(body, "echo")) {
    VORTEX_ASSIGN_OR_RETURN(bool echo, get_bool(*j, "echo"));
    if (echo) return unsupported("'echo' is not supported by this server; send echo: false");
  }
  if (member(body, "suffix") != nullptr) return unsupported("'suffix' is not supported");
  if (const json* j = member(body, "best_of")) {
    VORTEX_ASSIGN_OR_RETURN(int64_t b, get_int(*j, "best_of", 1, limits.max_n));
    if (b != r->n) return unsupported("'best_of' must equal 'n' (ranking is not supported)");
  }
  return Status::ok();
}

Status parse_chat(const json& body, const TextCodec& codec, const ApiLimits& limits,
                  ApiRequest* r) {
  const json* m = member(body, "messages");
  if (m == nullptr) return field_error("messages", "is required");
  if (!m->is_array() || m->empty()) return field_error("messages", "must be a non-empty array");
  std::vector<ChatTurn> turns;
  for (size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    const std::string f = "messages[" + std::to_string(i) + "]";
    if (!msg.is_object()) return field_error(f, "must be an object with role and content");
    ChatTurn t;
    const json* role = member(msg, "role");
    if (role == nullptr) return field_error(f + ".role", "is required");
    VORTEX_ASSIGN_OR_RETURN(t.role, get_string(*role, f + ".role"));
    if (t.role != "system" && t.role != "user" && t.role != "assistant" && t.role != "developer" &&
        t.role != "tool") {
      return field_error(f + ".role", "must be system, developer, user, assistant or tool");
    }
    if (t.role == "developer") t.role = "system";
    if (const json* c = member(msg, "content")) {
      if (c->is_string()) {
        t.content = c->get<std::string>();
      } else if (c->is_array()) {
        for (const json& part : *c) {
          const json* type = part.is_object() ? member(part, "type") : nullptr;
          if (type == nullptr || !type->is_string() || type->get<std::string>() != "text") {
            return unsupported(f +
                               ".content: only text parts ({\"type\": \"text\"}) are supported");
          }
          const json* text = member(part, "text");
          if (text == nullptr) return field_error(f + ".content[].text", "is required");
          VORTEX_ASSIGN_OR_RETURN(std::string s, get_string(*text, f + ".content[].text"));
          t.content += s;
        }
      } else {
        return field_error(f + ".content", "must be a string or an array of text parts");
      }
    } else if (t.role != "assistant") {
      return field_error(f + ".content", "is required");
    }
    turns.push_back(std::move(t));
  }
  VORTEX_ASSIGN_OR_RETURN(auto ids, codec.encode_chat(turns));
  r->prompts.push_back(std::move(ids));
  const auto prompt_len = static_cast<int32_t>(r->prompts[0].size());
  r->sampling.max_tokens = std::max(1, limits.max_context - prompt_len);
  const json* mt = member(body, "max_completion_tokens");
  if (mt == nullptr) mt = member(body, "max_tokens");
  if (mt != nullptr) {
    VORTEX_ASSIGN_OR_RETURN(int64_t v, get_int(*mt, "max_tokens", 1, limits.max_context));
    r->sampling.max_tokens = static_cast<int32_t>(v);
  }
  bool logprobs = false;
  if (const json* j = member(body, "logprobs")) {
    VORTEX_ASSIGN_OR_RETURN(logprobs, get_bool(*j, "logprobs"));
  }
  if (const json* j = member(body, "top_logprobs")) {
    VORTEX_ASSIGN_OR_RETURN(int64_t k, get_int(*j, "top_logprobs", 0, 20));
    if (!logprobs) return field_error("top_logprobs", "needs logprobs: true");
    r->logprobs = static_cast<int32_t>(k);
  } else if (logprobs) {
    r->logprobs = 0;
  }
  if (const json* j = member(body, "tools"); j != nullptr && !(j->is_array() && j->empty())) {
    return unsupported("'tools' (function calling) is not supported by this server");
  }
  if (const json* j = member(body, "response_format")) {
    const json* type = j->is_object() ? member(*j, "type") : nullptr;
    if (type == nullptr || !type->is_string() || type->get<std::string>() != "text") {
      return unsupported("'response_format' other than {\"type\": \"text\"} is not supported");
    }
  }
  return Status::ok();
}

}  // namespace

Expected<ApiRequest> parse_api_request(std::string_view body, bool chat, const TextCodec& codec,
                                       const ApiLimits& limits) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return invalid_argument("the request body is not valid JSON; send a JSON object");
  }
  if (!j.is_object()) return invalid_argument("the request body must be a JSON object");
  ApiRequest r;
  r.chat = chat;
  VORTEX_RETURN_IF_ERROR(parse_common(j, limits, &r));
  if (chat) {
    VORTEX_RETURN_IF_ERROR(parse_chat(j, codec, limits, &r));
  } else {
    VORTEX_RETURN_IF_ERROR(parse_completions(j, codec, limits, &r));
  }
  return r;
}

}  // namespace vortex::server
