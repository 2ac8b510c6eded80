// What the CPU and CUDA backends share: the model's view of a scheduled chunk, and the
// log-probabilities of the raw model distribution (log-softmax of the logits) for a sampled token
// and the top N alternatives (what the OpenAI `logprobs` fields report).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vortex/engine/backend.h"

namespace vortex::engine {

/// The model's view of a scheduled chunk (logits only when the chunk samples).
SequenceChunk to_sequence_chunk(const ScheduledChunk& c);

/// Fills s->logprob for s->token and, when top_n > 0, s->top with the N most likely tokens (ties
/// towards the lower id). `scratch` is reused between calls.
void fill_logprobs(std::span<const float> logits, int32_t top_n, SampledToken* s,
                   std::vector<int32_t>* scratch);

}  // namespace vortex::engine
