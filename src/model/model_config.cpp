// ModelConfig::validate: the consistency checks every loader runs before allocating weights.
#include "vortex/model/model_config.h"

#include <cmath>
#include <string>

namespace vortex {
namespace {

Status bad(const std::string& name, const std::string& field, const std::string& why) {
  return invalid_argument("model config" + (name.empty() ? std::string() : " '" + name + "'") +
                          ": " + field + " " + why);
}

}  // namespace

Status ModelConfig::validate() const {
  struct PositiveField {
    const char* name;
    int32_t value;
  };
  const PositiveField positive[] = {
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_layers", num_layers},
      {"num_q_heads", num_q_heads},
      {"num_kv_heads", num_kv_heads},
      {"head_dim", head_dim},
      {"max_context", max_context},
  };
  for (const PositiveField& f : positive) {
    if (f.value <= 0) return bad(name, f.name, "is " + std::to_string(f.value) + "; must be > 0");
  }
  if (num_q_heads % num_kv_heads != 0) {
    return bad(name, "num_q_heads",
               "(" + std::to_string(num_q_heads) + ") is not a multiple of num_kv_heads (" +
                   std::to_string(num_kv_heads) + ")");
  }
  if (head_dim % 2 != 0) {
    return bad(name, "head_dim", "is " + std::to_string(head_dim) + "; RoPE needs an even size");
  }
  // Every weight matrix must be addressable with int64 element offsets and fit in memory
  // plausibly; 2^40 elements (4 TiB of fp32) is far beyond any real checkpoint.
  const int64_t kMaxElems = int64_t{1} << 40;
  const int64_t q_dim = int64_t{num_q_heads} * head_dim;
  const int64_t matrices[][2] = {
      {vocab_size, hidden_size}, {q_dim, hidden_size}, {intermediate_size, hidden_size}};
  for (const auto& m : matrices) {
    if (m[0] * m[1] > kMaxElems) {
      return bad(name, "sizes",
                 "describe a " + std::to_string(m[0]) + " x " + std::to_string(m[1]) +
                     " matrix, beyond any real model");
    }
  }
  if (num_layers > 65536) {
    return bad(name, "num_layers", "is " + std::to_string(num_layers) + "; at most 65536");
  }
  if (!(rms_norm_eps > 0.0f) || !std::isfinite(rms_norm_eps)) {
    return bad(name, "rms_norm_eps", "is " + std::to_string(rms_norm_eps) + "; must be > 0");
  }
  if (!(rope.theta > 0.0f) || !std::isfinite(rope.theta)) {
    return bad(name, "rope.theta", "is " + std::to_string(rope.theta) + "; must be > 0");
  }
  if (rope.scaling != RopeScaling::kNone) {
    if (!(rope.factor > 0.0f) || !std::isfinite(rope.factor)) {
      return bad(name, "rope.factor", "is " + std::to_string(rope.factor) + "; must be > 0");
    }
  }
  if (rope.scaling == RopeScaling::kLlama3) {
    if (!(rope.low_freq_factor > 0.0f) || !(rope.high_freq_factor > rope.low_freq_factor)) {
      return bad(name, "rope.high_freq_factor",
                 "must exceed rope.low_freq_factor > 0 (got " +
                     std::to_string(rope.high_freq_factor) + " and " +
                     std::to_string(rope.low_freq_factor) + ")");
    }
    if (rope.original_max_position <= 0) {
      return bad(name, "rope.original_max_position", "must be > 0");
    }
  }
  if (bos_token_id < -1 || bos_token_id >= vocab_size) {
    return bad(name, "bos_token_id", std::to_string(bos_token_id) + " is outside the vocabulary");
  }
  for (int32_t id : eos_token_ids) {
    if (id < 0 || id >= vocab_size) {
      return bad(name, "eos_token_ids",
                 "contains " + std::to_string(id) + ", outside the vocabulary of " +
                     std::to_string(vocab_size));
    }
  }
  return Status::ok();
}

}  // namespace vortex
