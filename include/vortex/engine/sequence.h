// Sequence: the scheduler's state of one request — its tokens (prompt, then generated), its pages,
// where it is in its life (waiting, running, finished), and the bookkeeping that preemption,
// the prefix cache and fairness need.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "vortex/engine/request.h"
#include "vortex/kvcache/page_table.h"

namespace vortex::engine {

enum class SequenceStatus : uint8_t { kWaiting, kRunning, kFinished };

struct Sequence {
  using Clock = std::chrono::steady_clock;

  Sequence(uint64_t id_, uint64_t arrival_, GenerationRequest request_, int32_t page_size)
      : id(id_),
        arrival(arrival_),
        tokens(request_.prompt),
        prompt_len(static_cast<int32_t>(request_.prompt.size())),
        request(std::move(request_)),
        pages(page_size) {}

  uint64_t id;
  uint64_t arrival;  ///< FCFS rank: lower is older; kept across preemption
  /// Prompt then generated tokens. Tokens [0, computed()) have K/V in `pages`; the rest are fed
  /// to the next step (a prefill chunk, or the one token of a decode step).
  std::vector<int32_t> tokens;
  int32_t prompt_len;
  GenerationRequest request;
  PageTable pages;
  SequenceStatus status = SequenceStatus::kWaiting;

  /// How many leading full pages the prefix cache already knows (adopted on admission or
  /// inserted after being computed).
  int32_t cached_pages = 0;
  int32_t prefix_hit_tokens = 0;  ///< prompt tokens served by the prefix cache on first admission
  bool admitted_once = false;
  int32_t num_preemptions = 0;
  /// Times a younger request was admitted while this one waited (starvation guard).
  int32_t times_passed_over = 0;
  bool scheduled = false;      ///< has a chunk in the step being planned
  bool backend_added = false;  ///< Backend::add_sequence has been called (at a schedule())
  /// Overlapped steps: launched steps not yet committed that hold a chunk of this sequence, and
  /// how many of those sample it (their tokens are not in `tokens` yet).
  int32_t chunks_in_flight = 0;
  int32_t tokens_in_flight = 0;
  /// The sample row of this sequence in the last launched step (when it sampled there).
  int32_t last_sample_row = -1;
  /// Placeholder input of a decode chunk whose token comes from the previous step on the device.
  int32_t placeholder_token = -1;
  FinishReason finish = FinishReason::kNone;

  Clock::time_point arrival_time = Clock::now();
  Clock::time_point last_token_time{};
  bool got_first_token = false;

  std::shared_ptr<RequestStream> stream;  ///< may be null (tests that read events directly)

  int64_t computed() const { return pages.num_tokens(); }
  int64_t remaining() const { return static_cast<int64_t>(tokens.size()) - computed(); }
  int32_t num_generated() const { return static_cast<int32_t>(tokens.size()) - prompt_len; }
  std::span<const int32_t> prompt() const {
    return {tokens.data(), static_cast<size_t>(prompt_len)};
  }
  std::span<const int32_t> generated() const {
    return {tokens.data() + prompt_len, tokens.size() - static_cast<size_t>(prompt_len)};
  }
};

}  // namespace vortex::engine
