// Sampling parameters and the CPU sampler: greedy, temperature, top-k, top-p, min-p,
// repetition / frequency / presence penalties, seeded; stop tokens and stop strings.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "vortex/core/status.h"

namespace vortex {

struct SamplingParams {
  float temperature = 0.0f;  ///< 0: greedy
  int32_t top_k = 0;         ///< 0: off
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;  ///< HF-style: divide positive logits, multiply negative
  float frequency_penalty = 0.0f;   ///< OpenAI-style, per occurrence in the generated tokens
  float presence_penalty = 0.0f;
  uint64_t seed = 0;
  int32_t max_tokens = 256;
  bool ignore_eos = false;
  std::vector<std::string> stop;        ///< stop strings (not included in the output)
  std::vector<int32_t> stop_token_ids;  ///< in addition to the model's EOS ids

  /// Range checks with messages naming the field ("top_p must be in (0, 1]").
  Status validate() const;
};

/// Stateful per-request sampler (owns the seeded RNG).
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  /// Picks the next token from logits [vocab]. `prompt` and `generated` feed the penalties.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> prompt,
                 std::span<const int32_t> generated);
  /// Natural-log probability of `token` under the distribution sample() drew from (after
  /// temperature and penalties, before truncation), for OpenAI logprobs.
  float last_logprob(int32_t token) const;

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> scratch_;  // [vocab] adjusted logits of the last call
  float last_log_z_ = 0.0f;
};

}  // namespace vortex
