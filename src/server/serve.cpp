// run_serve: model → KV pool → flows → engine → HTTP server. SIGINT/SIGTERM set a flag (the only
// async-signal-safe thing to do; any thread may take the signal, e.g. a BLAS worker started before
// main) that a watcher thread turns into a graceful shutdown.
#include "vortex/server/serve.h"

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "vortex/core/logging.h"
#include "vortex/engine/cpu_backend.h"
#include "vortex/engine/cuda_backend.h"
#include "vortex/engine/device.h"
#include "vortex/engine/engine.h"
#include "vortex/engine/flow_set.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/cpu_model.h"

namespace vortex::server {
namespace {

std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_shutdown_signal(int sig) { g_signal.store(sig); }

Expected<DType> parse_kv_dtype(const std::string& s) {
  if (s == "f32" || s == "fp32" || s == "float32") return DType::kF32;
  if (s == "bf16" || s == "bfloat16") return DType::kBF16;
  return invalid_argument("--kv-dtype must be f32 or bf16, got '" + s + "'");
}

struct Stack {
  std::unique_ptr<TextCodec> codec;
  std::unique_ptr<engine::FlowSet> flows;
  std::unique_ptr<engine::Engine> engine;
};

Expected<Stack> build(const ServeOptions& o) {
  Stack st;
  VORTEX_ASSIGN_OR_RETURN(Checkpoint ck, load_checkpoint(o.model));
  VORTEX_ASSIGN_OR_RETURN(st.codec, make_text_codec(ck));
  VORTEX_ASSIGN_OR_RETURN(
      engine::FlowSet flows,
      engine::FlowSet::load(o.flows, o.default_flow, o.budget, o.page_size, ck.config.num_layers));
  st.flows = std::make_unique<engine::FlowSet>(std::move(flows));
  VORTEX_ASSIGN_OR_RETURN(engine::DeviceSpec device, engine::parse_device(o.device));
  const std::string name = o.served_name.empty() ? o.model : o.served_name;
  std::unique_ptr<engine::Backend> backend;
  if (device.is_cuda()) {
    if (o.kv_dtype != "f32" && o.kv_dtype != "bf16" && o.kv_dtype != "bfloat16") {
      return invalid_argument("--kv-dtype must be f32 or bf16, got '" + o.kv_dtype + "'");
    }
    engine::CudaBackendOptions bo;
    bo.device = device.ordinal;
    bo.page_size = o.page_size;
    bo.kv_pages = o.kv_pages;
    if (o.kv_memory_fraction > 0.0) bo.kv_memory_fraction = o.kv_memory_fraction;
    bo.max_batch = o.scheduler.max_batch;
    bo.max_tokens = std::max(o.scheduler.max_tokens_per_step, o.scheduler.max_batch);
    bo.flows = st.flows->configs();
    bo.model_name = name;
    VORTEX_ASSIGN_OR_RETURN(backend, engine::make_cuda_backend(o.model, bo, &ck));
  } else {
    VORTEX_ASSIGN_OR_RETURN(DType kv_dtype, parse_kv_dtype(o.kv_dtype));
    VORTEX_ASSIGN_OR_RETURN(std::unique_ptr<CpuModel> model,
                            CpuModel::create(ck.config, std::move(ck.weights)));
    engine::CpuBackendOptions bo;
    bo.page_size = o.page_size;
    bo.kv_dtype = kv_dtype;
    bo.kv_pages = o.kv_pages;
    if (o.kv_memory_fraction > 0.0) bo.kv_memory_fraction = o.kv_memory_fraction;
    bo.flows = st.flows->configs();
    bo.model_name = name;
    VORTEX_ASSIGN_OR_RETURN(backend, engine::make_cpu_backend(std::move(model), bo));
  }
  engine::EngineConfig ec;
  ec.scheduler = o.scheduler;
  VORTEX_ASSIGN_OR_RETURN(st.engine, engine::Engine::create(std::move(backend), ec));
  return st;
}

}  // namespace

int run_serve(const ServeOptions& options) {
  struct sigaction sa {};
  sa.sa_handler = on_shutdown_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto stack = build(options);
  if (!stack.has_value()) {
    fmt::print(stderr, "vortex serve: {}\n", stack.status().to_string());
    return 1;
  }
  ServerOptions so = options.server;
  so.limits.max_context = stack->engine->info().max_context;
  Server server(*stack->engine, *stack->flows, *stack->codec, so);
  auto port = server.bind();
  if (!port.has_value()) {
    fmt::print(stderr, "vortex serve: {}\n", port.status().to_string());
    return 1;
  }
  const engine::BackendInfo& info = stack->engine->info();
  const engine::EngineMetrics m = stack->engine->metrics();
  fmt::print("vortex serve: model {} on {} ({} KV pages of {} bytes, page size {}, flows: {})\n",
             info.model_name, info.name, m.kv_pages_total, info.bytes_per_page, info.page_size,
             fmt::join(stack->flows->names(), ","));
  fmt::print("vortex serve: listening on http://{}:{}\n", so.host, *port);
  std::fflush(stdout);

  std::atomic<bool> stopped{false};
  std::thread waiter([&] {
    while (!stopped.load()) {
      if (const int sig = g_signal.load(); sig != 0) {
        VORTEX_LOG_WARN("vortex serve: signal {} received, shutting down", sig);
        server.shutdown();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  const Status st = server.run();
  stopped.store(true);
  server.shutdown();
  waiter.join();
  if (!st.is_ok()) {
    fmt::print(stderr, "vortex serve: {}\n", st.to_string());
    return 1;
  }
  fmt::print("vortex serve: stopped\n");
  return 0;
}

}  // namespace vortex::server
