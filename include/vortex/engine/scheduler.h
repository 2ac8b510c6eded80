// Scheduler: continuous batching over one paged KV pool. Each step mixes decode tokens of running
// requests with chunked prefill of new (or preempted) ones under a token budget; admission counts
// free pages (the pool is sized in pages that include aux-field bytes); when the pool runs dry the
// youngest running request is preempted by recompute. Single-threaded: the Engine drives it.
//
// Overlap (SchedulerConfig::overlap, on backends that support it): after launching step N the
// scheduler plans step N+1 speculatively — every request that samples in N continues with one
// decode token taken on the device from N's samples — and launches it before waiting for N, so
// the host work of a step (scheduling, the backend's plan) hides behind the running step. A
// request that finishes at N (stop token, cancellation) already has a chunk in N+1: that sample
// is discarded. Ends known in advance (max_tokens, the context) are never scheduled past.
// Whenever speculation is not simple the pipeline drains (N is committed before N+1 is
// planned): a step that returns logprobs, a request with sampling penalties, or a step that
// would need preemption.
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
  /// Overlap the host work of step N+1 with step N (when the backend supports it).
  bool overlap = true;

  Status validate() const;
};

/// A scheduled step, between schedule() and commit().
struct StepContext {
  StepPlan plan;
  /// [plan.chunks.size()] the sequence of each chunk; null once that sequence finished while the
  /// step was in flight (its sample is discarded at commit).
  std::vector<Sequence*> seqs;
  bool speculative = false;  ///< planned while the previous step was in flight
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

  /// The step pipeline, which step() runs (the Engine runs the backend calls outside its lock):
  ///   while (StepContext* ctx = schedule()) { launched(plan(ctx->plan) + launch()); }
  ///   if (num_in_flight() > 0) { wait(&out) ok ? commit(out) : fail_step(error); }
  ///
  /// Handles cancellations, then plans the next step to launch: with no step in flight a normal
  /// step (decode tokens and prefill chunks, pages reserved, evicting cached pages and preempting
  /// as needed); with one in flight and overlap on, a speculative continuation of it. Returns
  /// null when there is nothing to launch now (nothing to run, the pipeline is full, or it must
  /// drain first).
  StepContext* schedule();
  /// The backend's plan + launch of the scheduled step returned `status`: on success the step is
  /// in flight; on failure its requests finish with kError.
  void launched(const Status& status);
  /// Steps launched and not yet committed (0..2).
  int32_t num_in_flight() const;
  /// Applies the oldest launched step: appends sampled tokens, emits events, finishes requests,
  /// feeds the prefix cache.
  void commit(const StepOutput& output);
  /// The backend failed the oldest launched step: its requests finish with kError.
  void fail_step(const Status& status);
  /// Launches what can run (one step, or two when overlapping), then waits for and commits the
  /// oldest. False when there was nothing to do.
  bool step();
  /// Overlap is on: configured and supported by the backend.
  bool overlap() const;

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
