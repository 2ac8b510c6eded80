// FakeBackend (tests only): a deterministic stand-in for a model. Its "KV cache" stores the token
// id written at every (page, slot); the next token is a hash of the whole history read back
// through the request's page table, exactly the way attention reads K/V. Any scheduling bug — a
// page shared that should not be, a page freed while in use, a lost, duplicated or reordered
// token, a wrong start position — changes the tokens that follow. Like the CPU backend it runs a
// step at launch() and supports overlap: a decode chunk's token_from_prev is read from the
// previous launched step's samples.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "vortex/engine/backend.h"

namespace vortex::engine::testing {

/// The fake model's next token after `history` (also the reference for tests).
int32_t fake_next_token(std::span<const int32_t> history, int32_t vocab_size);

/// Greedy generation with the fake model, one request alone: the reference output.
std::vector<int32_t> fake_generate(std::vector<int32_t> prompt, int32_t max_tokens,
                                   int32_t vocab_size, const std::vector<int32_t>& eos_ids,
                                   int32_t max_context);

class FakeBackend : public Backend {
 public:
  FakeBackend(int32_t num_pages, int32_t page_size, int32_t vocab_size, int32_t max_context,
              std::vector<int32_t> eos_ids, bool aux_fields_shared = true);

  const BackendInfo& info() const override { return info_; }
  PagePool& pool() override { return pool_; }
  void add_sequence(uint64_t seq_id, const SamplingParams& params) override;
  void remove_sequence(uint64_t seq_id) override;
  bool supports_overlap() const override { return overlap_; }
  Status plan(const StepPlan& plan) override;
  Status launch() override;
  Status wait(StepOutput* out) override;

  /// Reports no overlap support (the scheduler then runs one step at a time).
  void set_supports_overlap(bool on) { overlap_ = on; }
  /// Most steps launched and not yet waited at once.
  int32_t max_in_flight() const { return max_in_flight_; }

  /// The next step fails with an internal error (after writing nothing). Thread-safe.
  void fail_next_step() { fail_next_ = true; }
  /// Each step sleeps this long (to make steps observable from other threads).
  void set_step_delay(std::chrono::milliseconds d) { delay_ = d; }
  /// Violations of the backend contract the engine committed (empty when none).
  const std::vector<std::string>& errors() const { return errors_; }
  int64_t steps_run() const { return steps_; }
  size_t live_sequences() const { return live_.size(); }

 private:
  BackendInfo info_;
  PagePool pool_;
  std::vector<int32_t> store_;  // [num_pages * P] token id written at each slot
  std::set<uint64_t> live_;
  struct Done {
    Status status;
    StepOutput out;
  };
  Status run(const StepPlan& plan, StepOutput* out);

  bool overlap_ = true;
  const StepPlan* plan_ = nullptr;
  std::deque<Done> done_;             // launched steps' results, oldest first
  std::vector<int32_t> prev_tokens_;  // the previous launched step's samples
  bool prev_ok_ = false;
  int32_t max_in_flight_ = 0;
  std::atomic<bool> fail_next_{false};
  std::chrono::milliseconds delay_{0};
  int64_t steps_ = 0;
  std::vector<std::string> errors_;
};

}  // namespace vortex::engine::testing
