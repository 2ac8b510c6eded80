// Decode step kind: one new token for every running sequence whose prompt (or recompute) is done.
// Oldest first; a sequence that needs a new page and finds the pool dry evicts cached pages, then
// preempts the youngest running sequence (possibly itself) by recompute. In a speculative step
// (the previous step still in flight) a sequence whose token is in flight decodes it straight
// from the device, unless that token ends it by length; nothing is preempted.
#include <vector>

#include "../scheduler_state.h"
#include "vortex/core/check.h"

namespace vortex::engine::steps::decode {

void step(SchedulerState& state) {
  const std::vector<Sequence*> snapshot = state.running;  // preemption edits `running`
  for (Sequence* seq : snapshot) {
    if (seq->status != SequenceStatus::kRunning || seq->scheduled) continue;
    const bool from_prev = seq->tokens_in_flight > 0;
    if (from_prev) {
      VORTEX_CHECK(state.speculating && seq->tokens_in_flight == 1);
      if (state.ends_after_in_flight(*seq)) continue;
    } else if (seq->remaining() != 1) {
      continue;  // still prefilling: the prefill step's job
    }
    if (state.budget_left < 1) break;
    const int32_t need = seq->pages.pages_needed(1);
    if (!state.make_room_running(need, seq)) continue;  // seq was preempted, or must wait
    VORTEX_CHECK_OK(seq->pages.reserve(1, state.pool));
    if (from_prev) {
      state.add_chunk_from_prev(seq);
    } else {
      state.add_chunk(seq, 1);
    }
  }
}

}  // namespace vortex::engine::steps::decode
