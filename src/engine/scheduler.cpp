// Scheduler: request intake and cancellation, the step loop (schedule → backend → commit), token
// bookkeeping and finish conditions, and the ownership audit used by the tests.
#include "vortex/engine/scheduler.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "scheduler_state.h"
#include "vortex/core/check.h"

namespace vortex::engine {

Status SchedulerConfig::validate() const {
  if (max_batch < 1) return invalid_argument("--max-batch must be at least 1");
  if (max_tokens_per_step < 2) {
    return invalid_argument(
        "--max-tokens-per-step must be at least 2 (a prompt's last chunk "
        "holds at least two tokens)");
  }
  if (max_tokens_per_step < max_batch) {
    return invalid_argument("--max-tokens-per-step (" + std::to_string(max_tokens_per_step) +
                            ") must be at least --max-batch (" + std::to_string(max_batch) +
                            ") so every running request can decode each step");
  }
  if (max_waiting < 1) return invalid_argument("the waiting-queue limit must be at least 1");
  if (starvation_limit < 0) return invalid_argument("the starvation limit must be >= 0");
  return Status::ok();
}

int64_t StepPlan::num_tokens() const {
  int64_t n = 0;
  for (const auto& c : chunks) n += static_cast<int64_t>(c.tokens.size());
  return n;
}

Scheduler::Scheduler(SchedulerConfig config, Backend& backend)
    : state_(std::make_unique<SchedulerState>(std::move(config), backend)) {
  VORTEX_CHECK_OK(state_->config.validate());
  state_->metrics.kv_pages_total = state_->pool.capacity();
}

Scheduler::~Scheduler() {
  // Steps in flight may still write pages: let them finish first.
  while (!state_->inflight.empty()) {
    StepOutput out;
    (void)state_->backend.wait(&out);
    state_->inflight.pop_front();
  }
  // Release every page before the pool's owner (the backend) goes away.
  for (auto& [id, seq] : state_->seqs) {
    seq->pages.release(state_->pool);
    if (seq->backend_added) state_->backend.remove_sequence(id);
  }
  state_->cache.clear();
}

const SchedulerConfig& Scheduler::config() const { return state_->config; }
PrefixCache& Scheduler::prefix_cache() { return state_->cache; }
void Scheduler::set_event_callback(EventCallback callback) {
  state_->on_event = std::move(callback);
}
int32_t Scheduler::num_running() const { return static_cast<int32_t>(state_->running.size()); }
int32_t Scheduler::num_waiting() const { return static_cast<int32_t>(state_->waiting.size()); }
bool Scheduler::has_work() const { return !state_->seqs.empty() || !state_->inflight.empty(); }
int32_t Scheduler::num_in_flight() const { return static_cast<int32_t>(state_->inflight.size()); }
bool Scheduler::overlap() const { return state_->overlap; }

Status Scheduler::validate(const GenerationRequest& request) const {
  const BackendInfo& info = state_->backend.info();
  const auto n = static_cast<int64_t>(request.prompt.size());
  if (n == 0) return invalid_argument("the prompt is empty; send at least one token");
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= info.vocab_size) {
      return invalid_argument("prompt token id " + std::to_string(t) +
                              " is outside the vocabulary (0.." +
                              std::to_string(info.vocab_size - 1) + ")");
    }
  }
  if (n >= info.max_context) {
    return invalid_argument("the prompt has " + std::to_string(n) +
                            " tokens; the model's context is " + std::to_string(info.max_context) +
                            " tokens, shorten the prompt");
  }
  if (request.sampling.max_tokens < 1) return invalid_argument("max_tokens must be at least 1");
  if (n + request.sampling.max_tokens > info.max_context) {
    return invalid_argument("the prompt (" + std::to_string(n) + " tokens) plus max_tokens (" +
                            std::to_string(request.sampling.max_tokens) +
                            ") exceeds the model's context of " + std::to_string(info.max_context) +
                            " tokens; lower max_tokens");
  }
  const int64_t pages = (n + 1 + info.page_size - 1) / info.page_size;
  if (pages > state_->pool.capacity()) {
    return invalid_argument("the prompt needs " + std::to_string(pages) +
                            " KV pages but the pool has " +
                            std::to_string(state_->pool.capacity()) +
                            "; shorten the prompt or raise --kv-pages / --kv-memory-fraction");
  }
  if (request.top_logprobs > 20) return invalid_argument("logprobs must be at most 20");
  return Status::ok();
}

Expected<uint64_t> Scheduler::add(GenerationRequest request,
                                  std::shared_ptr<RequestStream> stream) {
  SchedulerState& s = *state_;
  if (Status st = validate(request); !st.is_ok()) {
    ++s.metrics.requests_rejected;
    return st;
  }
  if (static_cast<int32_t>(s.waiting.size()) >= s.config.max_waiting) {
    ++s.metrics.requests_rejected;
    return resource_exhausted("the request queue is full (" + std::to_string(s.config.max_waiting) +
                              " waiting); retry later");
  }
  const uint64_t id = stream ? stream->id() : s.next_id++;
  if (s.seqs.count(id) != 0) return invalid_argument("duplicate request id " + std::to_string(id));
  auto seq = std::make_unique<Sequence>(id, s.next_arrival++, std::move(request), s.page_size);
  seq->stream = std::move(stream);
  s.pending_adds.push_back(id);  // Backend::add_sequence at the next schedule()
  ++s.metrics.requests_submitted;
  s.metrics.prompt_tokens += static_cast<uint64_t>(seq->prompt_len);
  SchedulerState::insert_by_arrival(s.waiting, seq.get());
  s.seqs.emplace(id, std::move(seq));
  return id;
}

void Scheduler::cancel(uint64_t id) { state_->cancels.push_back(id); }

void Scheduler::cancel_all() {
  for (const auto& [id, seq] : state_->seqs) state_->cancels.push_back(id);
}

namespace {

bool has_penalties(const SamplingParams& p) {
  return p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
}

/// Whether the step after `ctx` (in flight) may be planned before `ctx` is committed. Not when
/// the host needs what `ctx` produces first: logits for logprobs (the backend's logits buffer
/// would be overwritten), or a sampled token for the penalties of the next draw.
bool may_speculate_after(const StepContext& ctx) {
  for (size_t i = 0; i < ctx.seqs.size(); ++i) {
    const ScheduledChunk& c = ctx.plan.chunks[i];
    if (!c.sample) continue;
    if (c.top_logprobs >= 0) return false;
    const Sequence* seq = ctx.seqs[i];
    if (seq != nullptr && has_penalties(seq->request.sampling)) return false;
  }
  return true;
}

}  // namespace

StepContext* Scheduler::schedule() {
  SchedulerState& s = *state_;
  VORTEX_CHECK_MSG(s.planning == nullptr, "schedule() called twice without launched()");
  // Cancellations apply at once, also to requests with chunks in flight (their samples are
  // discarded when those steps commit).
  for (uint64_t id : s.cancels) {
    auto it = s.seqs.find(id);
    if (it != s.seqs.end()) s.finish(it->second.get(), FinishReason::kCancelled, RequestEvent{});
  }
  s.cancels.clear();
  // The backend learns of new requests here, never on the thread that called add(): an engine
  // runs add() on client threads while the loop thread is inside a backend call.
  for (uint64_t id : s.pending_adds) {
    auto it = s.seqs.find(id);
    if (it == s.seqs.end() || it->second->backend_added) continue;
    s.backend.add_sequence(id, it->second->request.sampling);
    it->second->backend_added = true;
  }
  s.pending_adds.clear();
  if (!s.inflight.empty()) {
    // Speculate only behind a single step in flight, when nothing asks for a drained pipeline.
    if (!s.overlap || s.inflight.size() > 1 || s.drain_next ||
        !may_speculate_after(*s.inflight.back())) {
      return nullptr;
    }
    s.speculating = true;
  } else {
    s.speculating = false;
    s.drain_next = false;
  }
  s.planning = std::make_unique<StepContext>();
  s.planning->speculative = s.speculating;
  s.budget_left = s.config.max_tokens_per_step;
  steps::decode::step(s);
  steps::prefill::step(s);
  s.speculating = false;
  if (s.planning->plan.empty()) {
    s.planning.reset();
    return nullptr;
  }
  return s.planning.get();
}

void Scheduler::launched(const Status& status) {
  SchedulerState& s = *state_;
  VORTEX_CHECK_MSG(s.planning != nullptr, "launched() without schedule()");
  std::unique_ptr<StepContext> ctx = std::move(s.planning);
  for (Sequence* seq : ctx->seqs) seq->scheduled = false;
  if (!status.is_ok()) {
    // The step never ran: its requests fail (also in the step in flight, whose samples for them
    // are then discarded).
    const std::vector<Sequence*> failed = ctx->seqs;
    for (Sequence* seq : failed) {
      // A failed launch leaves the reserved tokens uncommitted; release() frees them.
      RequestEvent event;
      event.error = status.to_string();
      s.finish(seq, FinishReason::kError, std::move(event));
    }
    return;
  }
  if (ctx->speculative) ++s.metrics.overlapped_steps;
  int32_t row = 0;
  for (size_t i = 0; i < ctx->seqs.size(); ++i) {
    Sequence* seq = ctx->seqs[i];
    ++seq->chunks_in_flight;
    if (ctx->plan.chunks[i].sample) {
      ++seq->tokens_in_flight;
      seq->last_sample_row = row++;
    }
  }
  s.inflight.push_back(std::move(ctx));
}

namespace {

bool is_stop_token(const Sequence& seq, int32_t token, const BackendInfo& info) {
  const SamplingParams& p = seq.request.sampling;
  if (std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) !=
      p.stop_token_ids.end()) {
    return true;
  }
  return !p.ignore_eos && std::find(info.eos_token_ids.begin(), info.eos_token_ids.end(), token) !=
                              info.eos_token_ids.end();
}

double seconds_between(Sequence::Clock::time_point a, Sequence::Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

void Scheduler::commit(const StepOutput& output) {
  SchedulerState& s = *state_;
  VORTEX_CHECK_MSG(!s.inflight.empty(), "commit() without a launched step");
  const std::unique_ptr<StepContext> ctx = std::move(s.inflight.front());
  s.inflight.pop_front();
  const BackendInfo& info = s.backend.info();
  const auto now = Sequence::Clock::now();
  ++s.metrics.steps;
  s.metrics.selected_pages += static_cast<uint64_t>(output.stats.selected_pages);
  s.metrics.candidate_pages += static_cast<uint64_t>(output.stats.candidate_pages);
  for (Sequence* seq : ctx->seqs) {
    if (seq != nullptr) --seq->chunks_in_flight;
  }

  size_t sample_idx = 0;
  for (size_t i = 0; i < ctx->seqs.size(); ++i) {
    Sequence* seq = ctx->seqs[i];
    const ScheduledChunk& chunk = ctx->plan.chunks[i];
    const auto n = static_cast<int64_t>(chunk.tokens.size());
    s.metrics.computed_tokens += static_cast<uint64_t>(n);
    const SampledToken* t = nullptr;
    if (chunk.sample) {
      VORTEX_CHECK_MSG(sample_idx < output.samples.size(), "backend returned too few samples");
      t = &output.samples[sample_idx++];
      VORTEX_CHECK_MSG(t->token >= 0 && t->token < info.vocab_size, "sampled token out of range");
    }
    if (seq == nullptr) {  // finished while this step was in flight
      s.metrics.discarded_tokens += t != nullptr ? 1 : 0;
      continue;
    }
    // A later step in flight may have committed more tokens to the page table.
    VORTEX_CHECK_MSG(seq->computed() >= chunk.start_pos + n &&
                         static_cast<int64_t>(seq->tokens.size()) >= chunk.start_pos + n,
                     "backend did not commit the chunk of request " << seq->id);
    RequestEvent event;
    FinishReason reason = FinishReason::kNone;
    if (t != nullptr) {
      --seq->tokens_in_flight;
      seq->tokens.push_back(t->token);
      event.tokens.push_back(*t);
      ++s.metrics.generated_tokens;
      if (!seq->got_first_token) {
        seq->got_first_token = true;
        s.metrics.ttft.observe(seconds_between(seq->arrival_time, now));
      } else {
        s.metrics.itl.observe(seconds_between(seq->last_token_time, now));
      }
      seq->last_token_time = now;
      if (is_stop_token(*seq, t->token, info)) {
        reason = FinishReason::kStop;
        event.stopped_on_token = true;
      } else if (seq->num_generated() >= seq->request.sampling.max_tokens ||
                 static_cast<int64_t>(seq->tokens.size()) >= info.max_context) {
        reason = FinishReason::kLength;
      }
    }
    if (s.cacheable(*seq)) {
      // Only pages this step (or an earlier one) completed: never a page a step in flight
      // still writes, whose tokens the host may not know yet.
      const auto full = static_cast<int32_t>((chunk.start_pos + n) / s.page_size);
      if (full > seq->cached_pages) {
        s.cache.insert(s.cache_domain(*seq), seq->tokens, seq->pages.pages(), full);
        seq->cached_pages = full;
      }
    }
    if (reason != FinishReason::kNone) {
      s.finish(seq, reason, std::move(event));
    } else if (!event.tokens.empty()) {
      s.emit(*seq, event);
    }
  }
  VORTEX_CHECK_MSG(sample_idx == output.samples.size(), "backend returned too many samples");
}

void Scheduler::fail_step(const Status& status) {
  SchedulerState& s = *state_;
  VORTEX_CHECK_MSG(!s.inflight.empty(), "fail_step() without a launched step");
  const std::unique_ptr<StepContext> ctx = std::move(s.inflight.front());
  s.inflight.pop_front();
  for (Sequence* seq : ctx->seqs) {
    if (seq != nullptr) --seq->chunks_in_flight;
  }
  for (Sequence* seq : ctx->seqs) {
    if (seq == nullptr) continue;
    RequestEvent event;
    event.error = status.to_string();
    s.finish(seq, FinishReason::kError, std::move(event));
  }
}

bool Scheduler::step() {
  Backend& backend = state_->backend;
  bool progress = false;
  while (StepContext* ctx = schedule()) {
    Status st = backend.plan(ctx->plan);
    if (st.is_ok()) st = backend.launch();
    launched(st);
    progress = true;
    if (!st.is_ok()) break;
  }
  if (num_in_flight() > 0) {
    StepOutput out;
    const Status st = backend.wait(&out);
    if (st.is_ok()) {
      commit(out);
    } else {
      fail_step(st);
    }
    progress = true;
  }
  return progress;
}

const EngineMetrics& Scheduler::metrics() {
  SchedulerState& s = *state_;
  s.metrics.running = static_cast<int32_t>(s.running.size());
  s.metrics.waiting = static_cast<int32_t>(s.waiting.size());
  s.metrics.kv_pages_total = s.pool.capacity();
  s.metrics.kv_pages_free = s.pool.num_free();
  s.metrics.kv_pages_used = s.pool.num_used();
  s.metrics.prefix_cache_pages = s.cache.num_pages();
  return s.metrics;
}

std::string Scheduler::check_invariants() const {
  const SchedulerState& s = *state_;
  std::ostringstream err;
  if (!s.pool.check_invariants()) err << "page pool free list and refcounts disagree; ";
  if (!s.cache.check_invariants()) err << "prefix cache tree is inconsistent; ";
  // Every holder's references, counted: requests (each page at most once per request) and the
  // prefix cache (each page at most once). Their sum must equal the pool's refcount exactly.
  std::map<int32_t, int32_t> refs;
  for (const auto& [id, seq] : s.seqs) {
    std::map<int32_t, int> mine;
    for (int32_t p : seq->pages.pages()) {
      if (++mine[p] > 1) err << "request " << id << " holds page " << p << " twice; ";
      ++refs[p];
    }
    if (seq->status == SequenceStatus::kWaiting && seq->pages.num_pages() != 0) {
      err << "waiting request " << id << " holds pages; ";
    }
    // A page this request may still write (beyond its full, possibly shared pages) must be its
    // own: writing a shared page would corrupt another request's cache.
    const int64_t first_writable = seq->computed() / s.page_size;
    for (int64_t i = first_writable; i < seq->pages.num_pages(); ++i) {
      const int32_t p = seq->pages.pages()[static_cast<size_t>(i)];
      if (s.pool.refcount(p) != 1)
        err << "request " << id << " may write shared page " << p << "; ";
    }
  }
  for (int32_t p : s.cache.pages()) ++refs[p];
  // Steps in flight: every chunk's sequence is alive and counts it.
  std::map<const Sequence*, std::pair<int32_t, int32_t>> in_flight;  // chunks, samples
  for (const auto& ctx : s.inflight) {
    for (size_t i = 0; i < ctx->seqs.size(); ++i) {
      const Sequence* seq = ctx->seqs[i];
      if (seq == nullptr) continue;
      if (s.seqs.count(seq->id) == 0 || s.seqs.at(seq->id).get() != seq) {
        err << "a step in flight refers to a finished request; ";
        continue;
      }
      ++in_flight[seq].first;
      in_flight[seq].second += ctx->plan.chunks[i].sample ? 1 : 0;
    }
  }
  for (const auto& [id, seq] : s.seqs) {
    const auto it = in_flight.find(seq.get());
    const auto counts = it == in_flight.end() ? std::pair<int32_t, int32_t>{0, 0} : it->second;
    if (seq->chunks_in_flight != counts.first || seq->tokens_in_flight != counts.second) {
      err << "request " << id << " counts " << seq->chunks_in_flight << " chunks / "
          << seq->tokens_in_flight << " tokens in flight, the steps hold " << counts.first << " / "
          << counts.second << "; ";
    }
    if (seq->scheduled && s.planning == nullptr) err << "request " << id << " left scheduled; ";
  }
  if (s.inflight.size() > (s.overlap ? 2u : 1u)) err << "too many steps in flight; ";
  int32_t held = 0;
  for (int32_t p = 0; p < s.pool.capacity(); ++p) {
    const auto it = refs.find(p);
    const int32_t expect = it == refs.end() ? 0 : it->second;
    if (s.pool.refcount(p) != expect) {
      err << "page " << p << " has refcount " << s.pool.refcount(p) << " but " << expect
          << " holders; ";
    }
    held += expect > 0 ? 1 : 0;
  }
  if (held != s.pool.num_used())
    err << "used pages " << s.pool.num_used() << " != held " << held << "; ";
  if (s.running.size() + s.waiting.size() != s.seqs.size())
    err << "queues and sequences disagree; ";
  if (static_cast<int32_t>(s.running.size()) > s.config.max_batch)
    err << "running exceeds max_batch; ";
  return err.str();
}

}  // namespace vortex::engine
