// Synthetic checkpoints: seeded random weights at the shapes of a named preset (e.g. qwen3-1.7b,
// qwen3-8b, llama-3.1-8b, smollm2-135m), scaled so activations stay finite over long generations.
// load_checkpoint("synthetic:<preset>[@<seed>]") calls this.
#pragma once

#include <cstdint>
#include <string>

#include "vortex/core/status.h"
#include "vortex/model/checkpoint.h"

namespace vortex {

/// A checkpoint with random weights for `preset`; an unknown preset gives an error listing the
/// known ones. The same (preset, seed) always gives the same weights.
Expected<Checkpoint> make_synthetic_checkpoint(const std::string& preset, uint64_t seed);

}  // namespace vortex
