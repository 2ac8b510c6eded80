// ApiRequest: a /v1/completions or /v1/chat/completions body, parsed, type-checked, range-checked
// and tokenized. Every bad field is an invalid-argument Status naming the field and what it
// accepts; nothing here throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/engine/flow_set.h"
#include "vortex/model/sampler.h"
#include "vortex/server/text_codec.h"

namespace vortex::server {

struct ApiLimits {
  int32_t max_context = 4096;       ///< the model's context (default chat max_tokens fills it)
  int32_t max_n = 16;               ///< choices per prompt
  int32_t max_prompts = 16;         ///< prompts per completions request
  int32_t max_stop = 8;             ///< stop strings
  int32_t max_logprobs = 5;         ///< completions `logprobs`; chat `top_logprobs` allows 20
  int32_t default_max_tokens = 16;  ///< completions default (the OpenAI default)
};

struct ApiRequest {
  bool chat = false;
  std::string model;
  std::vector<std::vector<int32_t>> prompts;  ///< token ids, one entry per prompt
  int32_t n = 1;
  SamplingParams sampling;  ///< max_tokens, temperature, top_p, penalties, seed
  bool seed_given = false;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  ///< stream_options.include_usage
  int32_t logprobs = -1;       ///< -1: none; else top-N alternatives per token (0: chosen only)
  engine::FlowOverrides flow;  ///< the `vortex` field
};

/// Parses a request body. `chat` selects the chat schema (messages) over the completions one
/// (prompt). Prompts are tokenized with `codec`.
Expected<ApiRequest> parse_api_request(std::string_view body, bool chat, const TextCodec& codec,
                                       const ApiLimits& limits);

}  // namespace vortex::server
