// Prefill step kind: continues chunked prefills of running sequences (oldest first), then admits
// waiting sequences — new requests and preempted ones, by arrival — into what is left of the
// token budget. Admission matches the prefix cache, then requires that the whole remaining prompt
// fits in the free and evictable pages not already promised to running prefills; FCFS, but a
// younger request may pass an older one that does not fit, at most `starvation_limit` times.
#include <algorithm>
#include <vector>

#include "../scheduler_state.h"
#include "vortex/core/check.h"

namespace vortex::engine::steps::prefill {
namespace {

/// Pages a sequence needs for its whole token list plus the next generated token.
int64_t pages_for_all(const Sequence& seq, int32_t page_size) {
  return (static_cast<int64_t>(seq.tokens.size()) + 1 + page_size - 1) / page_size;
}

void continue_running(SchedulerState& state) {
  const std::vector<Sequence*> snapshot = state.running;
  for (Sequence* seq : snapshot) {
    if (state.budget_left <= 0) return;
    if (seq->status != SequenceStatus::kRunning || seq->scheduled) continue;
    const int64_t n = std::min(seq->remaining(), state.budget_left);
    if (n <= 0) continue;
    const int32_t need = seq->pages.pages_needed(n);
    if (!state.make_room(need, seq, /*allow_preempt=*/true)) continue;
    VORTEX_CHECK_OK(seq->pages.reserve(n, state.pool));
    state.add_chunk(seq, n);
  }
}

/// Tries to admit one waiting sequence; true when it joined the step.
bool try_admit(SchedulerState& state, Sequence* seq) {
  const bool cacheable = state.cacheable(*seq);
  if (cacheable) {
    const auto max_pages = static_cast<int32_t>((seq->tokens.size() - 1) / state.page_size);
    const std::vector<int32_t> hit =
        state.cache.match(state.cache_domain(*seq), seq->tokens, max_pages);
    seq->pages.adopt_full_pages(hit);
    seq->cached_pages = static_cast<int32_t>(hit.size());
  }
  const int64_t remaining = seq->remaining();
  const int32_t need_total = seq->pages.pages_needed(remaining + 1);
  const int64_t available = static_cast<int64_t>(state.pool.num_free()) +
                            state.cache.num_evictable() - state.outstanding_prefill_pages();
  const int64_t n = std::min(remaining, state.budget_left);
  if (need_total > available || !state.make_room(seq->pages.pages_needed(n), seq, false) ||
      !seq->pages.reserve(n, state.pool).is_ok()) {
    seq->pages.release(state.pool);  // drops the prefix-cache references taken by match()
    seq->cached_pages = 0;
    return false;
  }
  if (!seq->admitted_once) {
    seq->admitted_once = true;
    seq->prefix_hit_tokens =
        std::min<int32_t>(seq->prompt_len, static_cast<int32_t>(seq->computed()));
    if (cacheable) {
      state.metrics.prefix_query_tokens += static_cast<uint64_t>(seq->prompt_len);
      state.metrics.prefix_hit_tokens += static_cast<uint64_t>(seq->prefix_hit_tokens);
    }
  }
  SchedulerState::erase_from(state.waiting, seq);
  seq->status = SequenceStatus::kRunning;
  SchedulerState::insert_by_arrival(state.running, seq);
  state.add_chunk(seq, n);
  return true;
}

void admit_waiting(SchedulerState& state) {
  const std::vector<Sequence*> snapshot = state.waiting;
  std::vector<Sequence*> passed;  // older sequences that did not fit
  for (Sequence* seq : snapshot) {
    if (state.budget_left <= 0 ||
        static_cast<int32_t>(state.running.size()) >= state.config.max_batch) {
      return;
    }
    if (pages_for_all(*seq, state.page_size) > state.pool.capacity()) {
      // Grew past what the whole pool can hold (only possible after generating): stop it.
      state.finish(seq, FinishReason::kLength, RequestEvent{});
      continue;
    }
    if (try_admit(state, seq)) {
      for (Sequence* older : passed) ++older->times_passed_over;
      continue;
    }
    if (seq->times_passed_over >= state.config.starvation_limit) return;  // it goes next
    passed.push_back(seq);
  }
}

}  // namespace

void step(SchedulerState& state) {
  continue_running(state);
  admit_waiting(state);
}

}  // namespace vortex::engine::steps::prefill
