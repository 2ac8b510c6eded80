// Requests as the engine's users see them: what to generate (GenerationRequest), the events a
// running request emits (RequestEvent), and the thread-safe stream a consumer reads them from.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/engine/backend.h"
#include "vortex/flow/runtime.h"
#include "vortex/model/sampler.h"

namespace vortex::engine {

/// Why a request ended.
enum class FinishReason : uint8_t {
  kNone,       ///< still running
  kStop,       ///< an EOS / stop token was generated
  kLength,     ///< max_tokens, the model's context, or the KV pool's capacity was reached
  kCancelled,  ///< the user (or a disconnect, or shutdown) cancelled it
  kError,      ///< the backend failed; the message is in the event
};

/// "stop", "length", "cancelled", "error" ("" for kNone); the OpenAI finish_reason strings.
std::string_view finish_reason_name(FinishReason reason);

/// The sparse configuration a request runs with, resolved from the operator's loaded set.
struct RequestFlow {
  std::string name = "dense";                        ///< flow name, for reporting
  std::shared_ptr<const flow::SparseConfig> sparse;  ///< null: dense attention
  bool prefix_cacheable = true;                      ///< false for flows that use Save
};

/// Everything the engine needs to run one generation (one OpenAI "choice").
struct GenerationRequest {
  std::vector<int32_t> prompt;  ///< token ids, non-empty
  SamplingParams sampling;      ///< max_tokens, temperature, seed, stop_token_ids, ...
  RequestFlow flow;
  int32_t top_logprobs = -1;  ///< -1: none; N >= 0: per token the chosen logprob and top N
};

/// One event of a request's life, delivered in order: zero or more token events, then exactly
/// one finish event (`finish != kNone`), which may also carry the last token.
struct RequestEvent {
  std::vector<SampledToken> tokens;  ///< new tokens, in order (may be empty)
  FinishReason finish = FinishReason::kNone;
  /// When finish == kStop because of an EOS / stop token: that token is the last one in
  /// `tokens` (counted in usage, not part of the text).
  bool stopped_on_token = false;
  std::string error;             ///< for kError
  int32_t prompt_tokens = 0;     ///< set on the finish event
  int32_t cached_tokens = 0;     ///< prompt tokens served from the prefix cache (finish event)
  int32_t generated_tokens = 0;  ///< set on the finish event
};

/// Wakes one consumer that waits on several streams at once (n > 1 choices of one HTTP request).
class EventSignal {
 public:
  void notify();
  /// Waits until notify() was called after the call that returned `*seen`, or `timeout`.
  /// Updates `*seen`; true when notified.
  bool wait(uint64_t* seen, std::chrono::milliseconds timeout);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t count_ = 0;
};

/// Single-producer (the engine) / single-consumer queue of one request's events.
class RequestStream {
 public:
  explicit RequestStream(uint64_t id, std::shared_ptr<EventSignal> signal = nullptr)
      : id_(id), signal_(std::move(signal)) {}
  uint64_t id() const { return id_; }

  /// Engine side: appends an event and wakes the consumer.
  void push(RequestEvent event);
  /// Consumer side: waits up to `timeout` for the next event; nullopt on timeout. After the
  /// finish event has been taken, returns nullopt at once.
  std::optional<RequestEvent> next(std::chrono::milliseconds timeout);
  /// The next event if one is queued, without waiting.
  std::optional<RequestEvent> try_next() { return next(std::chrono::milliseconds(0)); }
  /// True once the finish event has been pushed (it may not have been read yet).
  bool finished() const;

 private:
  uint64_t id_;
  std::shared_ptr<EventSignal> signal_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestEvent> events_;
  bool finish_pushed_ = false;
  bool finish_taken_ = false;
};

}  // namespace vortex::engine
