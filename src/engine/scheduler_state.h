// SchedulerState: the scheduler's data (queues, sequences, prefix cache, the step being planned)
// and the small operations the step kinds share — reserve room, preempt, add a chunk, finish.
// Internal to the engine module: steps/decode.cpp and steps/prefill.cpp work on it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vortex/engine/scheduler.h"

namespace vortex::engine {

struct SchedulerState {
  SchedulerState(SchedulerConfig config, Backend& backend);

  SchedulerConfig config;
  Backend& backend;
  PagePool& pool;
  int32_t page_size;
  PrefixCache cache;

  std::map<uint64_t, std::unique_ptr<Sequence>> seqs;  // every unfinished sequence, by id
  std::vector<Sequence*> running;                      // ascending arrival (oldest first)
  std::vector<Sequence*> waiting;                      // ascending arrival (oldest first)
  std::vector<uint64_t> cancels;                       // ids to cancel at the next step
  // Requests added since the last schedule(): the backend learns of them there, on the thread that
  // makes every other backend call (add() may run on a client thread while a step runs).
  std::vector<uint64_t> pending_adds;
  uint64_t next_id = 1;
  uint64_t next_arrival = 0;
  EngineMetrics metrics;
  Scheduler::EventCallback on_event;

  /// The step being planned, between schedule() and launched(); else null.
  std::unique_ptr<StepContext> planning;
  /// Launched steps not yet committed, oldest first (two at most, when overlapping).
  std::deque<std::unique_ptr<StepContext>> inflight;
  int64_t budget_left = 0;  // tokens still free in the step being planned
  bool overlap = false;     // config.overlap && backend.supports_overlap()
  /// The step being planned is speculative (a step is in flight): no preemption, and a
  /// sequence that needs it sets drain_next instead.
  bool speculating = false;
  /// The step after the one in flight must be planned with nothing in flight (preemption).
  bool drain_next = false;

  /// The prefix cache applies to this sequence (enabled, and its flow does not use Save).
  bool cacheable(const Sequence& seq) const;
  /// The prefix-cache tree the sequence uses: one per flow unless aux fields are shared.
  std::string cache_domain(const Sequence& seq) const;

  /// Makes `pages` pages free: evicts unreferenced cached pages, then (when `allow_preempt`)
  /// preempts the youngest running sequences. Returns false when it could not, or when
  /// `requester` itself was the youngest and got preempted.
  bool make_room(int32_t pages, Sequence* requester, bool allow_preempt);
  /// make_room for a running sequence's next chunk: preempts in a normal step; in a speculative
  /// one it only evicts, and on failure asks for a drained step next.
  bool make_room_running(int32_t pages, Sequence* requester);
  /// Preemption by recompute: frees the sequence's pages, drops its chunk from the step being
  /// planned, and re-queues it by arrival with its generated tokens kept.
  void preempt(Sequence* seq);
  /// Adds the next `n` uncomputed tokens of `seq` to the step (pages already reserved).
  void add_chunk(Sequence* seq, int64_t n);
  /// Adds a one-token decode chunk whose input is the token `seq` samples in the step in flight
  /// (pages already reserved).
  void add_chunk_from_prev(Sequence* seq);
  /// The token in flight ends the sequence by length (max_tokens or the context): nothing may be
  /// scheduled after it.
  bool ends_after_in_flight(const Sequence& seq) const;
  /// Pages running sequences still need to finish their prompts (admission keeps them free).
  int32_t outstanding_prefill_pages() const;
  /// Ends a sequence: frees its pages, removes it from the queues, emits the finish event, and
  /// destroys it.
  void finish(Sequence* seq, FinishReason reason, RequestEvent event);
  /// Sends an event to the sequence's stream and the callback.
  void emit(const Sequence& seq, const RequestEvent& event);

  static void insert_by_arrival(std::vector<Sequence*>& queue, Sequence* seq);
  static void erase_from(std::vector<Sequence*>& queue, const Sequence* seq);
};

namespace steps {
/// Schedules one decode token for every running sequence whose prompt is computed (growing its
/// pages, preempting the youngest when the pool is dry). In a speculative step, also for every
/// sequence whose token is in flight (taken from the previous step on the device).
namespace decode {
void step(SchedulerState& state);
}
/// Continues chunked prefills of running sequences and admits waiting ones (prefix-cache match,
/// page admission, FCFS with a starvation guard) into the rest of the token budget.
namespace prefill {
void step(SchedulerState& state);
}
}  // namespace steps

}  // namespace vortex::engine
