// Sampler: penalties → temperature → top-k → top-p → min-p → a seeded draw (or greedy argmax).
// Deterministic for a given seed: the draw uses the raw 64-bit stream, not a library distribution.
#include "vortex/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace vortex {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

Status bad_param(const std::string& what) { return invalid_argument("sampling parameter " + what); }

/// Index of the largest value, the lowest index among equals; NaN never wins.
int32_t argmax_lowest(std::span<const float> v) {
  int32_t best = 0;
  float best_value = kNegInf;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] > best_value) {
      best_value = v[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

}  // namespace

Status SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
    return bad_param("temperature must be a finite number >= 0 (0 means greedy), got " +
                     std::to_string(temperature));
  }
  if (top_k < 0)
    return bad_param("top_k must be >= 0 (0 disables it), got " + std::to_string(top_k));
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return bad_param("top_p must be in (0, 1], got " + std::to_string(top_p));
  }
  if (!(min_p >= 0.0f && min_p <= 1.0f)) {
    return bad_param("min_p must be in [0, 1], got " + std::to_string(min_p));
  }
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty)) {
    return bad_param("repetition_penalty must be > 0 (1 disables it), got " +
                     std::to_string(repetition_penalty));
  }
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) {
    return bad_param("frequency_penalty must be in [-2, 2], got " +
                     std::to_string(frequency_penalty));
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) {
    return bad_param("presence_penalty must be in [-2, 2], got " +
                     std::to_string(presence_penalty));
  }
  if (max_tokens < 1) {
    return bad_param("max_tokens must be >= 1, got " + std::to_string(max_tokens));
  }
  for (const std::string& s : stop) {
    if (s.empty()) return bad_param("stop strings must not be empty");
  }
  for (int32_t id : stop_token_ids) {
    if (id < 0) return bad_param("stop_token_ids must be >= 0, got " + std::to_string(id));
  }
  return Status::ok();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> prompt,
                        std::span<const int32_t> generated) {
  const auto vocab = static_cast<int32_t>(logits.size());
  scratch_.assign(logits.begin(), logits.end());  // [vocab]
  for (float& x : scratch_) {
    if (std::isnan(x)) x = kNegInf;
  }
  // Penalties. Repetition (HF): every distinct token of prompt + output, once. Frequency and
  // presence (OpenAI): output tokens only, frequency once per occurrence.
  if (params_.repetition_penalty != 1.0f) {
    std::vector<uint8_t> seen(static_cast<size_t>(vocab), 0);
    for (auto span : {prompt, generated}) {
      for (int32_t t : span) {
        if (t < 0 || t >= vocab || seen[static_cast<size_t>(t)]) continue;
        seen[static_cast<size_t>(t)] = 1;
        float& x = scratch_[static_cast<size_t>(t)];
        x = x > 0.0f ? x / params_.repetition_penalty : x * params_.repetition_penalty;
      }
    }
  }
  if (params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f) {
    std::vector<int32_t> count(static_cast<size_t>(vocab), 0);
    for (int32_t t : generated) {
      if (t >= 0 && t < vocab) ++count[static_cast<size_t>(t)];
    }
    for (int32_t t = 0; t < vocab; ++t) {
      const int32_t n = count[static_cast<size_t>(t)];
      if (n > 0) {
        scratch_[static_cast<size_t>(t)] -=
            params_.frequency_penalty * static_cast<float>(n) + params_.presence_penalty;
      }
    }
  }
  const bool greedy = params_.temperature == 0.0f;
  if (!greedy) {
    for (float& x : scratch_) x /= params_.temperature;
  }
  // log Z of the adjusted distribution, for last_logprob.
  const float mx = scratch_[static_cast<size_t>(argmax_lowest(scratch_))];
  double z = 0.0;
  if (mx != kNegInf) {
    for (float x : scratch_) z += std::exp(static_cast<double>(x) - mx);
  }
  last_log_z_ = mx == kNegInf ? 0.0f : mx + static_cast<float>(std::log(z));
  if (greedy || mx == kNegInf) return argmax_lowest(scratch_);

  // Candidates with their probabilities; truncation keeps a prefix of them sorted by
  // (probability desc, index asc).
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  std::vector<double> prob(static_cast<size_t>(vocab));
  for (int32_t t = 0; t < vocab; ++t) prob[t] = std::exp(static_cast<double>(scratch_[t]) - mx);
  auto higher = [&](int32_t a, int32_t b) {
    return prob[a] > prob[b] || (prob[a] == prob[b] && a < b);
  };
  size_t keep = ids.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end(),
                      higher);
  } else if (params_.top_p < 1.0f) {
    std::sort(ids.begin(), ids.end(), higher);
  }
  if (params_.top_p < 1.0f) {
    // Smallest prefix whose mass reaches top_p of the (renormalised) kept mass.
    double total = 0.0;
    for (size_t i = 0; i < keep; ++i) total += prob[ids[i]];
    double cum = 0.0;
    size_t n = 0;
    while (n < keep) {
      cum += prob[ids[n++]];
      if (cum >= params_.top_p * total) break;
    }
    keep = n;
  }
  if (params_.min_p > 0.0f) {
    // prob is relative to the max (max = 1), so the threshold is min_p itself.
    size_t n = 0;
    for (size_t i = 0; i < keep; ++i) {
      if (prob[ids[i]] >= params_.min_p) ids[n++] = ids[i];
    }
    keep = n;
  }
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) total += prob[ids[i]];
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * total;  // [0, total)
  double cum = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    cum += prob[ids[i]];
    if (u < cum) return ids[i];
  }
  return ids[keep - 1];  // rounding at the very end of the range
}

float Sampler::last_logprob(int32_t token) const {
  if (token < 0 || static_cast<size_t>(token) >= scratch_.size()) return kNegInf;
  return scratch_[static_cast<size_t>(token)] - last_log_z_;
}

}  // namespace vortex
