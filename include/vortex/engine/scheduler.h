// Scheduler: continuous batching over one paged KV pool. Each step mixes decode tokens of running
// requests with chunked prefill of new (or preempted) ones under a token budget; admission counts
// free pages (the pool is sized in pages that include aux-field bytes); when the pool runs dry the
// youngest running request is preempted by recompute. Single-threaded: the Engine drives it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/engine/backend.h"
#include "vortex/engine/metrics.h"
#include "vortex/engine/prefix_cache.h"
#include "vortex/engine/request.h"
#include "vortex/engine/sequence.h"

namespace vortex::engine {

struct SchedulerState;  // src/engine/scheduler_state.h

struct SchedulerConfig {
  int32_t max_batch = 64;             ///< running sequences at once
  int32_t max_tokens_per_step = 512;  ///< decode tokens + prefill chunk tokens per step
  int32_t max_waiting = 1024;         ///< queue limit; beyond it add() is refused (HTTP 429)
  bool prefix_cache = true;
  /// How many younger requests may be admitted ahead of the oldest waiting one before admission
  /// stops until it fits (FCFS with a starvation guard).
  int32_t starvation_limit = 4;

  Status validate() const;
};

/// A scheduled step, between schedule() and commit().
struct StepContext {
  StepPlan plan;
  std::vector<Sequence*> seqs;  // [plan.chunks.size()] the sequence of each chunk
};

class Scheduler {
 public:
  using EventCallback = std::function<void(uint64_t id, const RequestEvent& event)>;

  Scheduler(SchedulerConfig config, Backend& backend);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  const SchedulerConfig& config() const;
  /// Checks a request against the model and the pool (prompt length, context, page capacity).
  Status validate(const GenerationRequest& request) const;
  /// Queues a request; refused with kResourceExhausted when the queue is full. The id is the
  /// stream's id when a stream is given.
  Expected<uint64_t> add(GenerationRequest request,
                         std::shared_ptr<RequestStream> stream = nullptr);
  /// Asks for a request to stop; its pages are freed at the start of the next step. Unknown or
  /// finished ids are ignored.
  void cancel(uint64_t id);
  /// Cancels every request (shutdown).
  void cancel_all();
  /// Called with every event (besides pushing it to the request's stream).
  void set_event_callback(EventCallback callback);

  /// Plans the next step: handles cancellations, schedules decode tokens and prefill chunks,
  /// reserves their pages (evicting cached pages and preempting as needed). Returns null when
  /// there is nothing to run.
  StepContext* schedule();
  /// Applies a finished step: appends sampled tokens, emits events, finishes requests, feeds the
  /// prefix cache.
  void commit(const StepOutput& output);
  /// The backend failed the step: its requests finish with kError.
  void fail_step(const Status& status);
  /// schedule + backend plan/launch/wait + commit. False when there was nothing to do.
  bool step();

  bool has_work() const;
  int32_t num_running() const;
  int32_t num_waiting() const;
  /// Updates and returns the metrics (gauges refreshed from the pool and queues).
  const EngineMetrics& metrics();

  /// Test support: every page holder (requests and the prefix cache) agrees with the pool's
  /// reference counts, no page is owned twice by one holder, nothing leaked. Empty string if OK.
  std::string check_invariants() const;
  PrefixCache& prefix_cache();

 private:
  std::unique_ptr<SchedulerState> state_;
};

}  // namespace vortex::engine
