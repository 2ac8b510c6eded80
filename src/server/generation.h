// Generation: one HTTP request's choices running in the engine (prompts × n), turned into OpenAI
// JSON — SSE chunks while streaming, one response object at the end otherwise. Owns the engine
// requests: cancel() (client gone, shutdown) stops every unfinished choice.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vortex/engine/engine.h"
#include "vortex/server/api_request.h"
#include "vortex/server/completion_text.h"
#include "vortex/server/text_codec.h"

namespace vortex::server {

class Generation {
 public:
  /// Submits every choice; on any refusal cancels those already submitted and returns the error.
  static Expected<std::unique_ptr<Generation>> start(engine::Engine& engine,
                                                     const ApiRequest& request,
                                                     const engine::RequestFlow& flow,
                                                     const TextCodec& codec,
                                                     std::string model_name);
  ~Generation();

  /// Waits up to `timeout` for events and applies them. True once every choice has finished.
  bool poll(std::chrono::milliseconds timeout);
  bool done() const;
  /// Streaming: the SSE messages ("data: {...}\n\n") produced since the last call; after the last
  /// choice finished this includes the usage chunk (if asked for) and "data: [DONE]".
  std::string take_sse();
  /// Non-streaming: the whole response object (or an error object if a choice failed).
  std::string response_json() const;
  /// Cancels every unfinished choice (idempotent).
  void cancel();

 private:
  struct Choice;
  Generation(engine::Engine& engine, const ApiRequest& request, const TextCodec& codec,
             std::string model_name);
  void apply(Choice& c, const engine::RequestEvent& e);
  std::string chunk_json(const Choice& c, const std::string& delta, size_t first_lp,
                         bool with_finish) const;

  engine::Engine& engine_;
  const TextCodec& codec_;
  bool chat_;
  bool stream_;
  bool include_usage_;
  int32_t logprobs_;
  std::string id_;
  int64_t created_;
  std::string model_;
  int64_t prompt_tokens_ = 0;
  std::shared_ptr<engine::EventSignal> signal_;
  uint64_t seen_ = 0;
  std::vector<std::unique_ptr<Choice>> choices_;
  std::string sse_;  // pending SSE output
  bool finished_sent_ = false;
  std::string error_;  // first choice error, if any
};

}  // namespace vortex::server
