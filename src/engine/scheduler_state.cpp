// SchedulerState: room-making, preemption, chunk planning and finishing shared by the step kinds.
#include "scheduler_state.h"

#include <algorithm>

#include "vortex/core/check.h"
#include "vortex/core/logging.h"

namespace vortex::engine {

SchedulerState::SchedulerState(SchedulerConfig config_, Backend& backend_)
    : config(std::move(config_)),
      backend(backend_),
      pool(backend_.pool()),
      page_size(backend_.info().page_size),
      cache(backend_.pool(), backend_.info().page_size),
      overlap(config.overlap && backend_.supports_overlap()) {}

bool SchedulerState::cacheable(const Sequence& seq) const {
  return config.prefix_cache && seq.request.flow.prefix_cacheable;
}

std::string SchedulerState::cache_domain(const Sequence& seq) const {
  return backend.info().aux_fields_shared ? std::string() : seq.request.flow.name;
}

void SchedulerState::insert_by_arrival(std::vector<Sequence*>& queue, Sequence* seq) {
  auto it = std::upper_bound(
      queue.begin(), queue.end(), seq,
      [](const Sequence* a, const Sequence* b) { return a->arrival < b->arrival; });
  queue.insert(it, seq);
}

void SchedulerState::erase_from(std::vector<Sequence*>& queue, const Sequence* seq) {
  auto it = std::find(queue.begin(), queue.end(), seq);
  if (it != queue.end()) queue.erase(it);
}

bool SchedulerState::make_room(int32_t pages, Sequence* requester, bool allow_preempt) {
  while (pool.num_free() < pages) {
    if (cache.evict(pages - pool.num_free()) > 0) continue;
    if (!allow_preempt || running.empty()) return false;
    Sequence* victim = running.back();  // the youngest
    if (requester->status == SequenceStatus::kRunning && victim->arrival < requester->arrival) {
      return false;  // never preempt an older request for a younger one
    }
    preempt(victim);
    if (victim == requester) return false;
  }
  return true;
}

bool SchedulerState::make_room_running(int32_t pages, Sequence* requester) {
  if (!speculating) return make_room(pages, requester, /*allow_preempt=*/true);
  if (make_room(pages, requester, /*allow_preempt=*/false)) return true;
  drain_next = true;  // preemption needs an empty pipeline
  return false;
}

void SchedulerState::preempt(Sequence* seq) {
  VORTEX_CHECK(seq->status == SequenceStatus::kRunning);
  VORTEX_CHECK_MSG(seq->chunks_in_flight == 0,
                   "preempting request " << seq->id << " with a step in flight");
  if (seq->scheduled) {
    StepContext& step = *planning;
    for (size_t i = 0; i < step.seqs.size(); ++i) {
      if (step.seqs[i] != seq) continue;
      budget_left += static_cast<int64_t>(step.plan.chunks[i].tokens.size());
      step.seqs.erase(step.seqs.begin() + static_cast<ptrdiff_t>(i));
      step.plan.chunks.erase(step.plan.chunks.begin() + static_cast<ptrdiff_t>(i));
      break;
    }
    seq->scheduled = false;
  }
  seq->pages.release(pool);
  seq->cached_pages = 0;
  seq->status = SequenceStatus::kWaiting;
  ++seq->num_preemptions;
  erase_from(running, seq);
  insert_by_arrival(waiting, seq);
  ++metrics.preemptions;
  VORTEX_LOG_DEBUG("preempted request {} ({} tokens kept, {} generated)", seq->id,
                   seq->tokens.size(), seq->num_generated());
}

void SchedulerState::add_chunk(Sequence* seq, int64_t n) {
  VORTEX_CHECK(n > 0 && n <= seq->remaining());
  VORTEX_CHECK(!seq->scheduled);
  const int64_t start = seq->computed();
  ScheduledChunk c;
  c.seq_id = seq->id;
  c.tokens = std::span<const int32_t>(seq->tokens.data() + start, static_cast<size_t>(n));
  c.start_pos = start;
  c.pages = &seq->pages;
  c.sparse = seq->request.flow.sparse.get();
  c.sample = start + n == static_cast<int64_t>(seq->tokens.size());
  c.sampling = &seq->request.sampling;
  c.prompt = seq->prompt();
  c.generated = seq->generated();
  c.top_logprobs = seq->request.top_logprobs;
  planning->plan.chunks.push_back(c);
  planning->seqs.push_back(seq);
  seq->scheduled = true;
  budget_left -= n;
}

void SchedulerState::add_chunk_from_prev(Sequence* seq) {
  VORTEX_CHECK(seq->remaining() == 0 && seq->tokens_in_flight == 1 && seq->last_sample_row >= 0);
  VORTEX_CHECK(!seq->scheduled);
  ScheduledChunk c;
  c.seq_id = seq->id;
  seq->placeholder_token = -1;
  c.tokens = std::span<const int32_t>(&seq->placeholder_token, 1);
  c.start_pos = seq->computed();
  c.pages = &seq->pages;
  c.sparse = seq->request.flow.sparse.get();
  c.sample = true;
  c.sampling = &seq->request.sampling;
  c.prompt = seq->prompt();
  c.generated = seq->generated();
  c.top_logprobs = seq->request.top_logprobs;
  c.token_from_prev = seq->last_sample_row;
  planning->plan.chunks.push_back(c);
  planning->seqs.push_back(seq);
  seq->scheduled = true;
  budget_left -= 1;
}

bool SchedulerState::ends_after_in_flight(const Sequence& seq) const {
  const int64_t tokens = static_cast<int64_t>(seq.tokens.size()) + seq.tokens_in_flight;
  return seq.num_generated() + seq.tokens_in_flight >= seq.request.sampling.max_tokens ||
         tokens >= backend.info().max_context;
}

int32_t SchedulerState::outstanding_prefill_pages() const {
  int32_t total = 0;
  for (const Sequence* s : running) total += s->pages.pages_needed(s->remaining());
  return total;
}

void SchedulerState::emit(const Sequence& seq, const RequestEvent& event) {
  if (seq.stream) seq.stream->push(event);
  if (on_event) on_event(seq.id, event);
}

void SchedulerState::finish(Sequence* seq, FinishReason reason, RequestEvent event) {
  VORTEX_CHECK(reason != FinishReason::kNone);
  VORTEX_CHECK(!seq->scheduled || planning == nullptr);
  if (seq->chunks_in_flight > 0) {
    // Steps in flight still compute this sequence's chunks: their samples are discarded at
    // commit. Its pages may be reused by a later step, which runs after them (stream order).
    for (auto& ctx : inflight) {
      for (Sequence*& s : ctx->seqs) {
        if (s == seq) s = nullptr;
      }
    }
    seq->chunks_in_flight = 0;
    seq->tokens_in_flight = 0;
  }
  seq->pages.release(pool);
  erase_from(running, seq);
  erase_from(waiting, seq);
  if (seq->backend_added) backend.remove_sequence(seq->id);
  seq->status = SequenceStatus::kFinished;
  seq->finish = reason;
  event.finish = reason;
  event.prompt_tokens = seq->prompt_len;
  event.cached_tokens = seq->prefix_hit_tokens;
  event.generated_tokens = seq->num_generated();
  ++metrics.requests_finished;
  switch (reason) {
    case FinishReason::kStop:
      ++metrics.requests_stopped;
      break;
    case FinishReason::kLength:
      ++metrics.requests_length;
      break;
    case FinishReason::kCancelled:
      ++metrics.requests_cancelled;
      break;
    case FinishReason::kError:
    case FinishReason::kNone:
      ++metrics.requests_failed;
      break;
  }
  emit(*seq, event);
  seqs.erase(seq->id);  // destroys *seq
}

}  // namespace vortex::engine
