// Backend: what the engine asks of a model executor for one step. The engine owns scheduling and
// page admission (through the backend's PagePool); a backend only turns a planned batch of
// sequence chunks into sampled tokens. `plan` (host work: CSR page tables, staging, allocation)
// is separate from `launch`/`wait` (execution only), so a CUDA backend can capture decode steps
// in a graph and the engine can overlap host work with a running step. A backend that
// supports_overlap() accepts a second plan/launch while one step is in flight: the engine then
// plans step N+1 on the host while step N runs, feeding N's sampled tokens to N+1 on the device
// (ScheduledChunk::token_from_prev).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/flow/runtime.h"
#include "vortex/kvcache/page_pool.h"
#include "vortex/kvcache/page_table.h"
#include "vortex/model/forward_batch.h"
#include "vortex/model/sampler.h"

namespace vortex::engine {

/// Static facts about a backend that the scheduler and the server need.
struct BackendInfo {
  std::string name;        ///< "cpu", "cuda:0", "fake"
  std::string model_name;  ///< reported by /v1/models
  int32_t page_size = 16;  ///< P: tokens per KV page
  int32_t vocab_size = 0;
  int32_t max_context = 0;     ///< longest sequence (prompt + generated) the model accepts
  int32_t num_layers = 0;      ///< for validating layers_skip
  int64_t bytes_per_page = 0;  ///< KV + aux bytes of one page (KVCacheConfig::bytes_per_page)
  std::vector<int32_t> eos_token_ids;
  /// True when every loaded flow's cache fields are written for every completed page, so a
  /// prefix-cached page is valid for any flow (aux fields travel with the page). When false the
  /// prefix cache keeps one tree per flow.
  bool aux_fields_shared = false;
};

/// One sequence's part of a step: `tokens` are new tokens whose K/V the step computes, at
/// positions start_pos.. (start_pos == pages->num_tokens()). Pages are reserved by the engine
/// before `plan`; the backend commits the tokens to `pages` when the step is launched. The spans
/// and `pages` are valid until `launch` returns; the chunk's own fields until `wait` returns.
struct ScheduledChunk {
  uint64_t seq_id = 0;
  std::span<const int32_t> tokens;  // [num_tokens]
  int64_t start_pos = 0;
  PageTable* pages = nullptr;
  const flow::SparseConfig* sparse = nullptr;  ///< null: dense attention
  /// Sample the next token from the last position's logits (last chunk of a prompt, or decode).
  bool sample = false;
  const SamplingParams* sampling = nullptr;  ///< the request's sampling parameters
  std::span<const int32_t> prompt;           ///< the request's prompt, for sampling penalties
  /// Tokens generated so far (sampling penalties; its size is the draw index of a stateless
  /// device sampler).
  std::span<const int32_t> generated;
  int32_t top_logprobs = -1;  ///< -1: no logprobs; N >= 0: chosen token + top N
  /// >= 0 (overlapped steps only): the chunk's single input token is the token sampled for row
  /// `token_from_prev` (index into StepOutput::samples) of the previous launched step, which is
  /// still in flight; `tokens` then holds a placeholder. That token is generated but not yet in
  /// `generated`: the draw index of a stateless sampler is generated.size() + 1.
  int32_t token_from_prev = -1;

  /// The draw index of a stateless sampler: tokens generated before this chunk's sample.
  int64_t draw_index() const {
    return static_cast<int64_t>(generated.size()) + (token_from_prev >= 0 ? 1 : 0);
  }
};

/// A whole step as the scheduler planned it. Chunks are in batch order.
struct StepPlan {
  std::vector<ScheduledChunk> chunks;
  int64_t num_tokens() const;
  bool empty() const { return chunks.empty(); }
};

/// The token sampled for one chunk with `sample` set, plus its log-probabilities (raw model
/// distribution: log-softmax of the logits) when asked for.
struct SampledToken {
  int32_t token = -1;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  ///< top-N (token, logprob), most likely first
};

/// What a step returns: one SampledToken per sampling chunk, in batch order.
struct StepOutput {
  std::vector<SampledToken> samples;
  ForwardStats stats;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const BackendInfo& info() const = 0;
  /// The page pool behind the backend's KV storage. The engine allocates, shares and frees pages
  /// here; the backend never does.
  virtual PagePool& pool() = 0;

  /// A sequence enters the engine: set up its sampler state (seeded RNG). Called once per
  /// request, before its first step, on the thread that makes every other call of this
  /// interface (the scheduler defers it to the next schedule()); survives preemption.
  virtual void add_sequence(uint64_t seq_id, const SamplingParams& params) = 0;
  /// The sequence finished or was cancelled: drop its sampler state.
  virtual void remove_sequence(uint64_t seq_id) = 0;

  /// True when the backend accepts a second plan/launch while one step is in flight (two steps in
  /// flight at most) and honours ScheduledChunk::token_from_prev.
  virtual bool supports_overlap() const { return false; }

  /// Host-side preparation of a step (page-table CSR, staging buffers). `plan` stays valid until
  /// `wait` returns that step. Every plan is followed by one launch before the next plan.
  virtual Status plan(const StepPlan& plan) = 0;
  /// Starts the planned step and commits its chunks' tokens to their page tables. Asynchronous
  /// backends return at once; the CPU backend runs the step here.
  virtual Status launch() = 0;
  /// Waits for the oldest launched step and returns its sampled tokens.
  virtual Status wait(StepOutput* out) = 0;
};

}  // namespace vortex::engine
