// `vortex serve`: load a model, size the KV pool, load the operator's flows, start the engine and
// the HTTP server, and run until SIGINT/SIGTERM (graceful shutdown, exit code 0).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vortex/engine/scheduler.h"
#include "vortex/flow/runtime.h"
#include "vortex/server/server.h"

namespace vortex::server {

struct ServeOptions {
  std::string model = "smollm2-135m";  ///< alias, .gguf, HF directory, or synthetic:<preset>
  std::string served_name;             ///< name in /v1/models; default: the checkpoint's name
  std::vector<std::string> flows;      ///< --flows: names, .json files or directories
  std::string default_flow = "dense";  ///< --flow
  flow::BudgetParams budget;           ///< --topk-val, --topk-ratio, --bos, --eos, --layers-skip
  std::string device = "auto";         ///< cpu, cuda, cuda:N or auto (the GPU when there is one)
  int32_t page_size = 16;
  std::string kv_dtype = "f32";     ///< f32 or bf16 (CPU; the GPU's cache is always bf16)
  double kv_memory_fraction = 0.0;  ///< 0: the backend's default (CPU 0.2 of RAM, GPU 0.9 of free)
  int64_t kv_pages = 0;             ///< > 0 overrides the memory fraction
  engine::SchedulerConfig scheduler;  ///< --max-batch, --max-tokens-per-step, --max-queue
  ServerOptions server;               ///< --host, --port, --api-key, ...
};

/// Runs the server; returns the process exit code (0 after a graceful shutdown, 1 on a startup
/// error, which is printed to stderr).
int run_serve(const ServeOptions& options);

}  // namespace vortex::server
