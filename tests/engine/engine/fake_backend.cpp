// FakeBackend: token-id "KV cache" and a history hash as the model.
#include "fake_backend.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace vortex::engine::testing {

int32_t fake_next_token(std::span<const int32_t> history, int32_t vocab_size) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over (position, token)
  for (size_t i = 0; i < history.size(); ++i) {
    h ^= static_cast<uint64_t>(history[i]) * 0x9E3779B97F4A7C15ull + i;
    h *= 1099511628211ull;
  }
  h ^= h >> 29;
  return static_cast<int32_t>(h % static_cast<uint64_t>(vocab_size));
}

std::vector<int32_t> fake_generate(std::vector<int32_t> prompt, int32_t max_tokens,
                                   int32_t vocab_size, const std::vector<int32_t>& eos_ids,
                                   int32_t max_context) {
  std::vector<int32_t> out;
  while (static_cast<int32_t>(out.size()) < max_tokens &&
         static_cast<int32_t>(prompt.size()) < max_context) {
    const int32_t t = fake_next_token(prompt, vocab_size);
    out.push_back(t);
    prompt.push_back(t);
    if (std::find(eos_ids.begin(), eos_ids.end(), t) != eos_ids.end()) break;
  }
  return out;
}

FakeBackend::FakeBackend(int32_t num_pages, int32_t page_size, int32_t vocab_size,
                         int32_t max_context, std::vector<int32_t> eos_ids, bool aux_fields_shared)
    : pool_(num_pages), store_(static_cast<size_t>(num_pages) * page_size, -1) {
  info_.name = "fake";
  info_.model_name = "fake-hash";
  info_.page_size = page_size;
  info_.vocab_size = vocab_size;
  info_.max_context = max_context;
  info_.num_layers = 2;
  info_.bytes_per_page = 4LL * page_size;
  info_.eos_token_ids = std::move(eos_ids);
  info_.aux_fields_shared = aux_fields_shared;
}

void FakeBackend::add_sequence(uint64_t seq_id, const SamplingParams& /*params*/) {
  if (!live_.insert(seq_id).second)
    errors_.push_back("add_sequence twice: " + std::to_string(seq_id));
}

void FakeBackend::remove_sequence(uint64_t seq_id) {
  if (live_.erase(seq_id) == 0)
    errors_.push_back("remove_sequence of unknown " + std::to_string(seq_id));
}

Status FakeBackend::plan(const StepPlan& plan) {
  if (plan_ != nullptr) errors_.push_back("plan() twice without launch()");
  if (done_.size() >= 2) errors_.push_back("plan() with two steps in flight");
  if (!overlap_ && !done_.empty()) errors_.push_back("plan() while a step is in flight");
  plan_ = &plan;
  const int32_t P = info_.page_size;
  std::set<int32_t> written;
  for (const ScheduledChunk& c : plan.chunks) {
    if (live_.count(c.seq_id) == 0) errors_.push_back("chunk of unknown sequence");
    if (c.pages == nullptr || c.tokens.empty()) {
      errors_.push_back("empty chunk");
      continue;
    }
    if (c.start_pos != c.pages->num_tokens()) errors_.push_back("chunk start != committed tokens");
    const bool from_prev = c.token_from_prev >= 0;
    if (from_prev) {
      if (!overlap_) errors_.push_back("token_from_prev without overlap support");
      if (c.tokens.size() != 1 || !c.sample) errors_.push_back("token_from_prev on a non-decode");
      if (static_cast<size_t>(c.token_from_prev) >= prev_tokens_.size() && prev_ok_) {
        errors_.push_back("token_from_prev row outside the previous step's samples");
      }
    }
    // Tokens the host knows, plus the one in flight for a chunk that takes it from the device.
    const auto total =
        static_cast<int64_t>(c.prompt.size() + c.generated.size()) + (from_prev ? 1 : 0);
    const bool real_decode = c.start_pos + 1 == total && (!c.generated.empty() || from_prev);
    if (c.tokens.size() == 1 && c.start_pos > 0 && !real_decode) {
      errors_.push_back("a prompt or recomputed token scheduled as a lone decode row (start " +
                        std::to_string(c.start_pos) + " of " + std::to_string(total) + ")");
    }
    const int64_t end = c.start_pos + static_cast<int64_t>(c.tokens.size());
    if (c.sample && c.draw_index() != end - static_cast<int64_t>(c.prompt.size())) {
      errors_.push_back("draw index " + std::to_string(c.draw_index()) + " at position " +
                        std::to_string(end) + " of a " + std::to_string(c.prompt.size()) +
                        "-token prompt");
    }
    if (end > static_cast<int64_t>(c.pages->num_pages()) * P)
      errors_.push_back("pages not reserved");
    std::set<int32_t> mine;
    for (int64_t pos = c.start_pos; pos < end && pos / P < c.pages->num_pages(); ++pos) {
      mine.insert(c.pages->pages()[static_cast<size_t>(pos / P)]);
    }
    for (int32_t page : mine) {
      if (pool_.refcount(page) != 1) errors_.push_back("writing a shared or free page");
      if (!written.insert(page).second) errors_.push_back("two chunks write one page");
    }
  }
  return Status::ok();
}

Status FakeBackend::launch() {
  const StepPlan* plan = plan_;
  plan_ = nullptr;
  if (plan == nullptr) {
    errors_.push_back("launch() without plan()");
    return internal_error("fake backend: launch without plan");
  }
  Done d;
  if (fail_next_.exchange(false)) {
    d.status = internal_error("fake backend: injected failure");
  } else {
    d.status = run(*plan, &d.out);
  }
  if (!d.status.is_ok()) {
    // As a device that fails while running a launched step: the chunks count as committed (the
    // launch contract), their K/V is garbage (here: nothing written), the error comes at wait().
    for (const ScheduledChunk& c : plan->chunks) {
      if (c.pages != nullptr && c.pages->num_tokens() == c.start_pos) {
        c.pages->commit(static_cast<int64_t>(c.tokens.size()));
      }
    }
  }
  prev_ok_ = d.status.is_ok();
  prev_tokens_.clear();
  for (const SampledToken& t : d.out.samples) prev_tokens_.push_back(t.token);
  done_.push_back(std::move(d));
  max_in_flight_ = std::max(max_in_flight_, static_cast<int32_t>(done_.size()));
  return Status::ok();
}

Status FakeBackend::wait(StepOutput* out) {
  if (done_.empty()) {
    errors_.push_back("wait() without launch()");
    return internal_error("fake backend: wait without launch");
  }
  if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
  Done d = std::move(done_.front());
  done_.pop_front();
  if (!d.status.is_ok()) return d.status;
  *out = std::move(d.out);
  return Status::ok();
}

Status FakeBackend::run(const StepPlan& plan, StepOutput* out) {
  const int32_t P = info_.page_size;
  // Inputs taken from the previous step: unavailable when it failed (this step fails too).
  std::vector<int32_t> inputs(plan.chunks.size(), -1);
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    const int32_t r = plan.chunks[i].token_from_prev;
    if (r < 0) continue;
    if (!prev_ok_ || static_cast<size_t>(r) >= prev_tokens_.size()) {
      return internal_error("fake backend: the previous step has no sample row " +
                            std::to_string(r));
    }
    inputs[i] = prev_tokens_[static_cast<size_t>(r)];
  }
  ++steps_;
  out->samples.clear();
  out->stats = ForwardStats{};
  for (size_t ci = 0; ci < plan.chunks.size(); ++ci) {
    const ScheduledChunk& c = plan.chunks[ci];
    const auto& pages = c.pages->pages();
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      const int64_t pos = c.start_pos + static_cast<int64_t>(i);
      const int32_t token = inputs[ci] >= 0 ? inputs[ci] : c.tokens[i];
      store_[static_cast<size_t>(pages[static_cast<size_t>(pos / P)]) * P + pos % P] = token;
    }
    c.pages->commit(static_cast<int64_t>(c.tokens.size()));
    out->stats.tokens += static_cast<int64_t>(c.tokens.size());
    if (!c.sample) continue;
    // "Attention": read the whole history back through the page table.
    std::vector<int32_t> history(static_cast<size_t>(c.pages->num_tokens()));
    for (size_t pos = 0; pos < history.size(); ++pos) {
      history[pos] = store_[static_cast<size_t>(pages[pos / P]) * P + pos % P];
    }
    SampledToken s;
    s.token = fake_next_token(history, info_.vocab_size);
    s.logprob = -static_cast<float>(s.token % 7) / 4.0f;
    for (int32_t k = 0; k < c.top_logprobs; ++k) {
      s.top.emplace_back((s.token + k) % info_.vocab_size, s.logprob - static_cast<float>(k));
    }
    out->samples.push_back(std::move(s));
    out->stats.candidate_pages += c.pages->num_pages();
    out->stats.selected_pages += c.pages->num_pages();
  }
  return Status::ok();
}

}  // namespace vortex::engine::testing
