// Server: cpp-httplib routes, API-key check, SSE and JSON responses driven by Generation, error
// bodies through the one Status → HTTP mapping, and graceful shutdown.
#include "vortex/server/server.h"

#include <httplib.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "generation.h"
#include "vortex/core/logging.h"
#include "vortex/server/api_error.h"
#include "vortex/server/metrics_text.h"

namespace vortex::server {
namespace {

using json = nlohmann::json;
constexpr auto kPollInterval = std::chrono::milliseconds(100);
constexpr auto kHeartbeatInterval = std::chrono::seconds(1);

/// httplib::Server with access to its listening socket: the library listens with a backlog of 5,
/// which drops connections when many clients connect at once; we raise it after binding.
class HttpServer : public httplib::Server {
 public:
  void raise_backlog() {
    const socket_t s = svr_sock_;
    if (s != INVALID_SOCKET) ::listen(s, SOMAXCONN);  // re-listen updates the backlog on Linux
  }
};

/// Compares in time independent of where the strings differ.
bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

}  // namespace

struct Server::Impl {
  Impl(engine::Engine& e, const engine::FlowSet& f, const TextCodec& c, ServerOptions o)
      : engine(e), flows(f), codec(c), opt(std::move(o)) {}

  engine::Engine& engine;
  const engine::FlowSet& flows;
  const TextCodec& codec;
  ServerOptions opt;
  HttpServer http;
  std::atomic<bool> stopping{false};
  std::atomic<int> active{0};  // generation responses in flight
  std::mutex shutdown_mu;
  bool bound = false;

  void write_error(httplib::Response& res, const Status& status) const;
  void setup_routes();
  void handle_generate(const httplib::Request& req, httplib::Response& res, bool chat);
  void handle_models(httplib::Response& res) const;
};

void Server::Impl::write_error(httplib::Response& res, const Status& status) const {
  res.status = http_status(status);
  if (status.code() == StatusCode::kResourceExhausted) res.set_header("Retry-After", "1");
  res.set_content(error_body(status), "application/json");
}

void Server::Impl::handle_models(httplib::Response& res) const {
  const engine::BackendInfo& info = engine.info();
  const json model = {{"id", info.model_name},
                      {"object", "model"},
                      {"created", 0},
                      {"owned_by", "vortex"},
                      {"max_model_len", info.max_context},
                      {"vortex",
                       {{"backend", info.name},
                        {"flows", flows.names()},
                        {"default_flow", flows.default_name()},
                        {"page_size", info.page_size}}}};
  res.set_content(json{{"object", "list"}, {"data", json::array({model})}}.dump(),
                  "application/json");
}

void Server::Impl::handle_generate(const httplib::Request& req, httplib::Response& res, bool chat) {
  if (stopping.load()) {
    write_error(res, cancelled("the server is shutting down; retry on another instance"));
    return;
  }
  auto parsed = parse_api_request(req.body, chat, codec, opt.limits);
  if (!parsed.has_value()) return write_error(res, parsed.status());
  const ApiRequest& r = *parsed;
  const std::string& served = engine.info().model_name;
  if (!r.model.empty() && r.model != served) {
    return write_error(res, not_found("model '" + r.model +
                                      "' is not served here; this server "
                                      "serves '" +
                                      served + "' (see GET /v1/models)"));
  }
  auto flow = flows.resolve(r.flow);
  if (!flow.has_value()) return write_error(res, flow.status());
  auto started = Generation::start(engine, r, *flow, codec, served);
  if (!started.has_value()) return write_error(res, started.status());
  std::shared_ptr<Generation> gen = std::move(started).value();
  ++active;
  auto release = [this, gen](bool /*success*/) {
    gen->cancel();  // client gone or response complete: stop whatever still runs
    --active;
  };
  if (r.stream) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [gen](size_t /*offset*/, httplib::DataSink& sink) {
          gen->poll(kPollInterval);
          const std::string out = gen->take_sse();
          if (!out.empty() && !sink.write(out.data(), out.size())) return false;  // disconnected
          if (gen->done() && out.find("data: [DONE]") != std::string::npos) sink.done();
          return true;
        },
        release);
    return;
  }
  // Non-streaming: the body is sent when generation ends; meanwhile a space (valid leading JSON
  // whitespace) every second detects a client that went away, which cancels the request.
  auto last_write =
      std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  res.set_chunked_content_provider(
      "application/json",
      [gen, last_write](size_t /*offset*/, httplib::DataSink& sink) {
        if (gen->poll(kPollInterval)) {
          const std::string body = gen->response_json();
          if (!sink.write(body.data(), body.size())) return false;
          sink.done();
          return true;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now - *last_write >= kHeartbeatInterval) {
          *last_write = now;
          if (!sink.write(" ", 1)) return false;
        }
        return true;
      },
      release);
}

void Server::Impl::setup_routes() {
  http.new_task_queue = [n = opt.http_threads] {
    // httplib's API takes ownership of a raw pointer (it deletes the queue after listen ends).
    return new httplib::ThreadPool(
        static_cast<size_t>(n));  // NOLINT(cppcoreguidelines-owning-memory)
  };
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_keep_alive_max_count(1000);
  http.set_keep_alive_timeout(5);
  http.set_read_timeout(30);
  http.set_write_timeout(10);

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (opt.api_key.empty() || req.path.rfind("/v1/", 0) != 0) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.rfind(prefix, 0) != 0 ||
        !constant_time_equal(auth.substr(prefix.size()), opt.api_key)) {
      write_error(res, unauthenticated("missing or wrong API key; send 'Authorization: Bearer "
                                       "<key>' with the key the server was started with"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  auto guarded = [this](auto fn) {
    return [this, fn](const httplib::Request& req, httplib::Response& res) {
      try {
        fn(req, res);
      } catch (const std::exception& e) {
        write_error(res, internal_error(std::string("unexpected error: ") + e.what()));
      }
    };
  };
  http.Post("/v1/completions", guarded([this](const httplib::Request& req, httplib::Response& res) {
              handle_generate(req, res, false);
            }));
  http.Post("/v1/chat/completions",
            guarded([this](const httplib::Request& req, httplib::Response& res) {
              handle_generate(req, res, true);
            }));
  http.Get("/v1/models", guarded([this](const httplib::Request&, httplib::Response& res) {
             handle_models(res);
           }));
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (stopping.load()) return write_error(res, cancelled("shutting down"));
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  http.Get("/metrics", guarded([this](const httplib::Request&, httplib::Response& res) {
             res.set_content(render_prometheus(engine.metrics()),
                             "text/plain; version=0.0.4; charset=utf-8");
           }));

  // Statuses httplib produces itself (unknown route, body too large, bad request line) get the
  // same JSON error bodies; responses that already carry a body are left alone.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                     httplib::Response& res) {
    if (!res.body.empty() || res.is_chunked_content_provider_) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    Status st;
    if (res.status == 404) {
      st = not_found("no route for " + req.method + " " + req.path +
                     "; see /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics");
    } else if (res.status == 413) {
      st = too_large("the request body exceeds " + std::to_string(opt.max_body_bytes) +
                     " bytes; send a smaller request");
    } else if (res.status >= 400 && res.status < 500) {
      st = invalid_argument("malformed HTTP request (status " + std::to_string(res.status) + ")");
    } else {
      st = internal_error("HTTP error " + std::to_string(res.status));
    }
    const int keep = res.status;
    write_error(res, st);
    if (http_status(st) != keep && keep != 404 && keep != 413) res.status = keep;
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler(
      [this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        write_error(res, internal_error("unexpected error: " + what));
      });
}

Server::Server(engine::Engine& engine, const engine::FlowSet& flows, const TextCodec& codec,
               ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, flows, codec, std::move(options))) {
  impl_->setup_routes();
}

Server::~Server() { shutdown(); }

Expected<int> Server::bind() {
  Impl& s = *impl_;
  int port = s.opt.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.opt.host);
    if (port < 0) return invalid_argument("cannot bind to " + s.opt.host + " (any port)");
  } else if (!s.http.bind_to_port(s.opt.host, port)) {
    return invalid_argument("cannot listen on " + s.opt.host + ":" + std::to_string(port) +
                            "; is the port in use? pick another with --port");
  }
  s.http.raise_backlog();
  s.bound = true;
  return port;
}

Status Server::run() {
  if (!impl_->bound) return internal_error("Server::run() before bind()");
  if (!impl_->http.listen_after_bind() && !impl_->stopping.load()) {
    return internal_error("the HTTP listener stopped unexpectedly");
  }
  return Status::ok();
}

void Server::shutdown() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.shutdown_mu);
  if (s.stopping.exchange(true)) return;
  VORTEX_LOG_INFO("shutting down: draining in-flight requests (up to {} ms)",
                  s.opt.drain_timeout.count());
  s.engine.shutdown(s.opt.drain_timeout);
  // Every engine request has finished now; give the responses a moment to be written.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (s.active.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  s.http.stop();
}

}  // namespace vortex::server
