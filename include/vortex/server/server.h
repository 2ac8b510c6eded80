// Server: the OpenAI-compatible HTTP front end of an Engine. POST /v1/completions and
// /v1/chat/completions (JSON or SSE streaming), GET /v1/models, /health and /metrics. A thin
// layer: requests are parsed and validated here, then run by the engine; every error is a Status
// mapped to HTTP by api_error.h. HTTP details stay in the implementation.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "vortex/core/status.h"
#include "vortex/engine/engine.h"
#include "vortex/engine/flow_set.h"
#include "vortex/server/api_request.h"
#include "vortex/server/text_codec.h"

namespace vortex::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                  ///< 0: any free port (bind() returns it)
  std::string api_key;              ///< non-empty: /v1/* need "Authorization: Bearer <key>"
  size_t max_body_bytes = 4 << 20;  ///< larger bodies get 413
  int http_threads = 256;           ///< concurrent connections served (a stream holds one)
  std::chrono::milliseconds drain_timeout{10000};  ///< graceful shutdown: time to finish
  ApiLimits limits;
};

class Server {
 public:
  /// `engine`, `flows` and `codec` must outlive the server.
  Server(engine::Engine& engine, const engine::FlowSet& flows, const TextCodec& codec,
         ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds the listening socket; returns the port (useful with port 0).
  Expected<int> bind();
  /// Serves until shutdown() (call bind() first). Returns OK after a graceful stop.
  Status run();
  /// Graceful stop: new requests get 503, in-flight ones get `drain_timeout` to finish (then are
  /// cancelled), the listener closes and run() returns. Thread-safe and idempotent.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vortex::server
