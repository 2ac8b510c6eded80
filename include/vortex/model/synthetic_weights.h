// Synthetic models: named architecture presets (the benchmark shapes of BENCHMARKS.md and tiny
// shapes for tests) and seeded random weights for any ModelConfig, scaled so activations stay
// finite over long generations.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/model/model_config.h"
#include "vortex/model/weights.h"

namespace vortex {

/// Names of the presets: "qwen3-1.7b", "qwen3-8b", "llama-3.1-8b", "smollm2-135m", and the test
/// shapes "tiny-llama", "tiny-qwen2", "tiny-qwen3".
std::vector<std::string> synthetic_presets();

/// The architecture of a preset (also accepts "synthetic:<preset>"). The config is named
/// "synthetic:<preset>" and has no BOS/EOS ids, so generation runs to max_tokens. An unknown
/// preset gives an error listing the known ones.
Expected<ModelConfig> synthetic_config(std::string_view preset);

/// Seeded random fp32 weights for `config`, under the canonical names of weights.h. Matrices are
/// uniform with standard deviation 1/sqrt(fan_in) (so every projection keeps unit scale), the
/// embedding table likewise by hidden size (tied LM heads give unit-scale logits), norm weights
/// close to 1, biases small. Each tensor's values depend only on (seed, tensor name, index): the
/// same seed always gives the same weights, whatever the thread count.
Expected<WeightMap> synthetic_weights(const ModelConfig& config, uint64_t seed);

}  // namespace vortex
