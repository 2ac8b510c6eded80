// `vortex serve`: the OpenAI-compatible server. Flags map onto server::ServeOptions; everything
// else lives in the server module.
#include <memory>
#include <sstream>

#include "command_registry.h"
#include "vortex/server/serve.h"

namespace {

struct ServeFlags {
  vortex::server::ServeOptions opt;
  std::string flows;        // comma-separated, or a directory
  std::string layers_skip;  // comma-separated layer indices
};

/// "1,2,3" → {1, 2, 3}; throws CLI::ValidationError naming the flag on anything else.
std::vector<int32_t> parse_layers(const std::string& text) {
  std::vector<int32_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const std::optional<int32_t> value = vortex::cli::parse_layer_index(item);
    if (!value) {
      throw CLI::ValidationError("--layers-skip",
                                 "expected comma-separated layer indices, got '" + item + "'");
    }
    out.push_back(*value);
  }
  return out;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

VORTEX_REGISTER_COMMAND(serve, 20, [](CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<ServeFlags>();
  auto& o = flags->opt;
  auto* cmd = app.add_subcommand("serve", "serve a model over an OpenAI-compatible HTTP API");
  cmd->add_option("--model", o.model,
                  "model: alias (smollm2-135m), .gguf file, HF directory or synthetic:<preset>")
      ->capture_default_str();
  cmd->add_option("--served-model-name", o.served_name, "model name in the API (default: --model)");
  cmd->add_option("--host", o.server.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", o.server.port, "port (0: any free port)")->capture_default_str();
  cmd->add_option("--api-key", o.server.api_key, "require 'Authorization: Bearer KEY' on /v1/*");
  cmd->add_option("--flows", flags->flows,
                  "flows requests may choose: comma-separated names / .json files, or a directory");
  cmd->add_option("--flow", o.default_flow, "default flow of requests")->capture_default_str();
  cmd->add_option("--topk-val", o.budget.topk_val, "default budget: pages kept besides bos/eos")
      ->capture_default_str();
  cmd->add_option("--topk-ratio", o.budget.topk_ratio, "default budget: fraction of pages kept")
      ->capture_default_str();
  cmd->add_option("--bos", o.budget.bos, "default budget: leading pages always kept")
      ->capture_default_str();
  cmd->add_option("--eos", o.budget.eos, "default budget: trailing pages always kept")
      ->capture_default_str();
  cmd->add_option("--layers-skip", flags->layers_skip, "default budget: dense layers, e.g. 0,1");
  cmd->add_option("--device", o.device, "cpu, cuda, cuda:N, or auto (the GPU when there is one)")
      ->capture_default_str();
  cmd->add_option("--page-size", o.page_size, "KV page size in tokens (power of two)")
      ->capture_default_str();
  cmd->add_option("--kv-dtype", o.kv_dtype, "KV cache element type: f32 or bf16")
      ->capture_default_str();
  cmd->add_option(
      "--kv-memory-fraction", o.kv_memory_fraction,
      "KV pool (incl. aux fields) as a fraction of RAM (cpu, default 0.2) or of the GPU "
      "memory free after loading (cuda, default 0.9)");
  cmd->add_option("--kv-pages", o.kv_pages, "KV pool size in pages (overrides the fraction)");
  cmd->add_option("--max-batch", o.scheduler.max_batch, "requests running at once")
      ->capture_default_str();
  cmd->add_option("--max-tokens-per-step", o.scheduler.max_tokens_per_step,
                  "decode + prefill tokens per engine step")
      ->capture_default_str();
  cmd->add_option("--max-queue", o.scheduler.max_waiting, "waiting requests before 429")
      ->capture_default_str();
  cmd->add_flag("--no-prefix-cache{false}", o.scheduler.prefix_cache, "disable the prefix cache");
  cmd->add_flag("--no-overlap{false}", o.scheduler.overlap,
                "run one engine step at a time (default: plan step N+1 while step N runs)");
  cmd->add_option("--max-body-bytes", o.server.max_body_bytes, "largest request body (else 413)")
      ->capture_default_str();
  cmd->add_option("--http-threads", o.server.http_threads, "concurrent HTTP connections")
      ->capture_default_str();
  cmd->callback([flags, exit_code] {
    flags->opt.flows = split_commas(flags->flows);
    flags->opt.budget.layers_skip = parse_layers(flags->layers_skip);
    *exit_code = vortex::server::run_serve(flags->opt);
  });
});
