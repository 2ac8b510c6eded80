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

/// Tokens of `seq` to compute in this step within `budget`; 0 when nothing fits. A one-token
/// chunk after position 0 is a decode row for the model (sparse attention, indexer state
/// updates), so it is used only for a sequence's last token once it has generated: prompt tokens
/// (and recomputed ones) always go in chunks of two or more, whatever the budget left, so that
/// they are treated the same however the prompt was split.
int64_t chunk_tokens(const Sequence& seq, int64_t budget) {
  const int64_t remaining = seq.remaining();
  int64_t n = std::min(remaining, budget);
  if (remaining == 1) return n;
  const bool in_prompt = static_cast<int64_t>(seq.tokens.size()) == seq.prompt_len;
  if (in_prompt && remaining - n == 1) --n;
  if (n == 1 && seq.computed() > 0) n = 0;
  return n;
}

void continue_running(SchedulerState& state) {
  const std::vector<Sequence*> snapshot = state.running;
  for (Sequence* seq : snapshot) {
    if (state.budget_left <= 0) return;
    if (seq->status != SequenceStatus::kRunning || seq->scheduled) continue;
    const int64_t n = chunk_tokens(*seq, state.budget_left);
    if (n <= 0) continue;
    const int32_t need = seq->pages.pages_needed(n);
    if (!state.make_room_running(need, seq)) continue;
    VORTEX_CHECK_OK(seq->pages.reserve(n, state.pool));
    state.add_chunk(seq, n);
  }
}

/// Tries to admit one waiting sequence; true when it joined the step.
bool try_admit(SchedulerState& state, Sequence* seq) {
  const bool cacheable = state.cacheable(*seq);
  if (cacheable) {
    // Leave at least one token to compute (its logits give the next token), and for a prompt two,
    // so its last token is not a lone decode row (see chunk_tokens).
    const int64_t keep = seq->generated().empty() && seq->tokens.size() >= 2 ? 2 : 1;
    const auto max_pages =
        static_cast<int32_t>((static_cast<int64_t>(seq->tokens.size()) - keep) / state.page_size);
    const std::vector<int32_t> hit =
        state.cache.match(state.cache_domain(*seq), seq->tokens, max_pages);
    seq->pages.adopt_full_pages(hit);
    seq->cached_pages = static_cast<int32_t>(hit.size());
  }
  const int64_t remaining = seq->remaining();
  const int32_t need_total = seq->pages.pages_needed(remaining + 1);
  // Free pages first; counting evictable cache pages walks the tree, so only when needed.
  const int64_t promised = state.outstanding_prefill_pages();
  int64_t available = static_cast<int64_t>(state.pool.num_free()) - promised;
  if (need_total > available) available += state.cache.num_evictable();
  const int64_t n = chunk_tokens(*seq, state.budget_left);
  if (n <= 0 || need_total > available ||
      !state.make_room(seq->pages.pages_needed(n), seq, false) ||
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
