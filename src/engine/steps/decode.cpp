// Decode step kind: one new token for every running sequence whose prompt (or recompute) is done.
// Oldest first; a sequence that needs a new page and finds the pool dry evicts cached pages, then
// preempts the youngest running sequence (possibly itself) by recompute.
#include <vector>

#include "../scheduler_state.h"
#include "vortex/core/check.h"

namespace vortex::engine::steps::decode {

void step(SchedulerState& state) {
  const std::vector<Sequence*> snapshot = state.running;  // preemption edits `running`
  for (Sequence* seq : snapshot) {
    if (seq->status != SequenceStatus::kRunning || seq->scheduled) continue;
    if (seq->remaining() != 1) continue;  // still prefilling: the prefill step's job
    if (state.budget_left < 1) break;
    const int32_t need = seq->pages.pages_needed(1);
    if (!state.make_room(need, seq, /*allow_preempt=*/true)) continue;  // seq was preempted
    VORTEX_CHECK_OK(seq->pages.reserve(1, state.pool));
    state.add_chunk(seq, 1);
  }
}

}  // namespace vortex::engine::steps::decode
