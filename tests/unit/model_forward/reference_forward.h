// A from-scratch dense forward pass for tests: contiguous K/V, double precision, no paging, no
// kernels from src/ — the independent oracle the CPU model's logits are compared with.
#pragma once

#include <cstdint>
#include <vector>

#include "vortex/model/model_config.h"
#include "vortex/model/weights.h"

namespace vortex::testing {

/// Logits [tokens.size(), vocab] of every position of `tokens` (positions 0..n-1).
std::vector<std::vector<double>> reference_logits(const ModelConfig& config,
                                                  const WeightMap& weights,
                                                  const std::vector<int32_t>& tokens);

}  // namespace vortex::testing
