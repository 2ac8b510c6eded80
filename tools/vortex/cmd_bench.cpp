// `vortex bench decode`: the steady-state decode step on one GPU. The KV cache is filled directly
// with random K/V for B requests at context L (no prefill: a steady-state step only needs a full
// cache), the flow's cache flow summarises every full page once, then CUDA-graph-replayed decode
// steps run back to back the way the engine drives them (step N+1 planned and launched before
// step N is read, its tokens fed on the device). Reports tok/s, bytes per step from the roofline
// formula of BENCHMARKS.md against the streaming-read bandwidth measured in the same run, GPU idle
// between steps, and a per-stage breakdown of an eager step timed with events.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "command_registry.h"
#include "vortex/core/check.h"
#include "vortex/core/cuda_allocator.h"
#include "vortex/kernels/device_info.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/synthetic_weights.h"
#include "vortex/version.h"

#if defined(VORTEX_WITH_CUDA)
#include <cuda_runtime.h>

#include "vortex/model/cuda_model.h"
#endif

namespace {

struct DecodeBenchOptions {
  std::string model = "synthetic:qwen3-1.7b";
  int32_t batch = 32;
  int32_t context = 16384;
  std::string flow = "dense";
  int32_t topk_val = 30;
  int32_t bos = 1;
  int32_t eos = 1;
  std::vector<int32_t> layers_skip = {0};
  int32_t page_size = 16;
  int32_t steps = 50;
  int32_t warmup = 5;
  uint64_t seed = 1;
  std::string json;
  bool csv = false;
};

std::string command_line(const DecodeBenchOptions& o) {
  std::string skip;
  for (int32_t l : o.layers_skip) skip += (skip.empty() ? "" : ",") + std::to_string(l);
  return fmt::format(
      "vortex bench decode --model {} --batch {} --context {} --flow {} --topk-val {} --bos {} "
      "--eos {}{} --page-size {} --steps {} --warmup {} --seed {}",
      o.model, o.batch, o.context, o.flow, o.topk_val, o.bos, o.eos,
      skip.empty() ? "" : " --layers-skip " + skip, o.page_size, o.steps, o.warmup, o.seed);
}

#if defined(VORTEX_WITH_CUDA)

using vortex::Status;

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int fail(const Status& s, const std::string& what) {
  fmt::print(stderr, "vortex bench decode: {}: {}\n", what, s.to_string());
  return 1;
}

/// Events around one launched step.
struct StepEvents {
  cudaEvent_t start = nullptr, end = nullptr;
};

int run_decode_bench(const DecodeBenchOptions& o) {
  using namespace vortex;
  if (cuda_device_count() == 0) {
    fmt::print(stderr, "vortex bench decode: no CUDA device is visible; run it on a GPU machine\n");
    return 2;
  }
  if (o.batch <= 0 || o.context <= 0 || o.steps <= 0 || o.warmup < 0) {
    fmt::print(stderr, "vortex bench decode: --batch, --context and --steps must be positive\n");
    return 2;
  }
  // Model: a synthetic preset (weights generated on the device) or a checkpoint.
  ModelConfig config;
  std::unique_ptr<CudaModel> model;
  CudaModelOptions mo;
  mo.max_batch = o.batch;
  mo.max_tokens = std::max(o.batch, 64);
  const int32_t extra = o.warmup + o.steps + 4;
  mo.max_context = o.context + extra + o.page_size;
  mo.graph_buckets = {o.batch};
  fmt::print("vortex bench decode: {}\n", command_line(o));
  fmt::print("device: {}\n", cuda_device_summary(0));
  if (o.model.rfind("synthetic:", 0) == 0) {
    auto c = synthetic_config(o.model);
    if (!c.has_value()) return fail(c.status(), "model");
    config = *c;
    auto m = CudaModel::create_random(config, o.seed, mo);
    if (!m.has_value()) return fail(m.status(), "creating the model");
    model = std::move(*m);
  } else {
    auto ck = load_checkpoint(o.model);
    if (!ck.has_value()) return fail(ck.status(), "loading " + o.model);
    config = ck->config;
    auto m = CudaModel::create(config, ck->weights, mo);
    if (!m.has_value()) return fail(m.status(), "creating the model");
    model = std::move(*m);
  }
  const int32_t L = o.context, B = o.batch, P = o.page_size;
  const int32_t Hkv = config.num_kv_heads, D = config.head_dim, layers = config.num_layers;

  // Flow.
  std::vector<const flow::SparseConfig*> flows;
  std::unique_ptr<flow::SparseConfig> sparse;
  if (o.flow != "dense") {
    flow::BudgetParams budget;
    budget.topk_val = o.topk_val;
    budget.bos = o.bos;
    budget.eos = o.eos;
    budget.layers_skip = o.layers_skip;
    budget.block_size = P;
    auto sc = builtin_sparse_config(o.flow, budget);
    if (!sc.has_value()) return fail(sc.status(), "flow");
    sparse = std::make_unique<flow::SparseConfig>(std::move(*sc));
    flows.push_back(sparse.get());
  }

  // Ceiling first (it needs 4 GiB for a moment).
  auto read_bw = measure_read_bandwidth_gbps(0);
  if (!read_bw.has_value()) return fail(read_bw.status(), "measuring read bandwidth");
  fmt::print("streaming read bandwidth: {:.0f} GB/s (16-byte loads, 4 GiB)\n", *read_bw);

  // KV cache filled with random K/V; B requests at context L.
  const KVCacheConfig kc = model->kv_cache_config(P, flows);
  const int32_t pages_per_request = (L + extra + P - 1) / P + 1;
  const int32_t num_pages = B * pages_per_request + 8;
  auto cache = model->create_kv_cache(kc, num_pages);
  if (!cache.has_value()) return fail(cache.status(), "allocating the KV cache");
  if (Status s = model->fill_kv_random(*cache, o.seed + 1); !s.is_ok()) return fail(s, "KV fill");
  std::vector<PageTable> tables(static_cast<size_t>(B), PageTable(P));
  std::vector<int32_t> full_pages;
  for (PageTable& pt : tables) {
    if (Status s = pt.reserve(L, cache->pool()); !s.is_ok()) return fail(s, "page reservation");
    pt.commit(L);
    for (int32_t i = 0; i < L / P; ++i) full_pages.push_back(pt.pages()[static_cast<size_t>(i)]);
  }
  fmt::print(
      "KV cache filled directly with random K/V for {} requests at context {} (no "
      "prefill: a steady-state decode step only needs a full cache)\n",
      B, L);
  if (sparse) {
    if (Status s = model->run_cache_flow(*cache, *sparse, full_pages); !s.is_ok()) {
      return fail(s, "cache flow over the full pages");
    }
    fmt::print("cache flow '{}' ran once over {} full pages\n", o.flow, full_pages.size());
  }

  // The step loop, pipelined like the engine: plan + launch N+1, then wait for N.
  const std::vector<CudaSampleSpec> specs(static_cast<size_t>(B));  // greedy
  std::vector<int32_t> from_prev(static_cast<size_t>(B));
  for (int32_t b = 0; b < B; ++b) from_prev[static_cast<size_t>(b)] = b;
  const std::vector<int32_t> first_tokens(static_cast<size_t>(B), 1);
  auto make_batch = [&](bool first) {
    ForwardBatch batch;
    for (int32_t b = 0; b < B; ++b) {
      PageTable& pt = tables[static_cast<size_t>(b)];
      VORTEX_CHECK_OK(pt.reserve(1, cache->pool()));
      batch.seqs.push_back(SequenceChunk{first ? &first_tokens[static_cast<size_t>(b)] : nullptr, 1,
                                         pt.num_tokens(), &pt, sparse.get(), true});
    }
    return batch;
  };
  const int32_t total = o.warmup + o.steps;
  std::vector<StepEvents> ev(static_cast<size_t>(total));
  for (auto& e : ev) {
    cudaEventCreate(&e.start);
    cudaEventCreate(&e.end);
  }
  const cudaStream_t stream = model->stream();
  std::vector<CudaStepResult> results(static_cast<size_t>(total));
  std::chrono::steady_clock::time_point t0;
  for (int32_t i = 0; i < total; ++i) {
    if (i == o.warmup) t0 = std::chrono::steady_clock::now();
    const ForwardBatch batch = make_batch(i == 0);
    Status s = i == 0 ? model->plan(batch, specs) : model->plan(batch, specs, from_prev);
    if (!s.is_ok()) return fail(s, "plan");
    cudaEventRecord(ev[static_cast<size_t>(i)].start, stream);
    if (s = model->launch(*cache); !s.is_ok()) return fail(s, "launch");
    cudaEventRecord(ev[static_cast<size_t>(i)].end, stream);
    if (i > 0) {
      if (s = model->wait(&results[static_cast<size_t>(i - 1)]); !s.is_ok()) return fail(s, "wait");
    }
  }
  if (Status s = model->wait(&results.back()); !s.is_ok()) return fail(s, "wait");
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<double> step_ms, idle_ms;
  bool all_graph = true;
  int64_t selected_pages = 0;
  for (int32_t i = o.warmup; i < total; ++i) {
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, ev[static_cast<size_t>(i)].start, ev[static_cast<size_t>(i)].end);
    step_ms.push_back(ms);
    if (i > o.warmup) {
      cudaEventElapsedTime(&ms, ev[static_cast<size_t>(i - 1)].end,
                           ev[static_cast<size_t>(i)].start);
      idle_ms.push_back(std::max(0.0f, ms));
    }
    all_graph = all_graph && results[static_cast<size_t>(i)].graph_replayed;
    selected_pages += results[static_cast<size_t>(i)].stats.selected_pages;
  }
  for (auto& e : ev) {
    cudaEventDestroy(e.start);
    cudaEventDestroy(e.end);
  }
  const double step_med = median(step_ms);
  double sum_step = 0, sum_idle = 0;
  for (double x : step_ms) sum_step += x;
  for (double x : idle_ms) sum_idle += x;
  const double idle_frac = sum_idle / std::max(1e-9, sum_step + sum_idle);

  // One eager step with stage events.
  StepProfile profile;
  profile.enabled = true;
  {
    const ForwardBatch batch = make_batch(false);
    if (Status s = model->plan(batch, specs, from_prev); !s.is_ok()) return fail(s, "plan");
    if (Status s = model->launch(*cache, &profile); !s.is_ok()) return fail(s, "profiled launch");
    CudaStepResult r;
    if (Status s = model->wait(&r); !s.is_ok()) return fail(s, "wait");
  }

  // Roofline (BENCHMARKS.md): weights + KV pages read (K and V) + page summaries.
  const double ctx_mean = L + o.warmup + 1 + (o.steps - 1) / 2.0;  // tokens seen by a measured step
  const double n_pages = std::ceil(ctx_mean / P);
  const double page_kv = static_cast<double>(P) * D * 2 * 2;  // K and V bf16 of one page-head
  const int64_t tied_extra =
      config.tie_embeddings ? 0 : int64_t{config.vocab_size} * config.hidden_size * 2;
  const double weight_bytes = static_cast<double>(model->weight_bytes() - tied_extra) +
                              static_cast<double>(B) * config.hidden_size * 2;
  int32_t sparse_layers = 0;
  for (int32_t l = 0; l < layers && sparse; ++l) {
    sparse_layers +=
        std::find(o.layers_skip.begin(), o.layers_skip.end(), l) == o.layers_skip.end();
  }
  const double dense_layers = layers - sparse_layers;
  const double rows = static_cast<double>(B) * Hkv;
  const double sel_per_step = static_cast<double>(selected_pages) / o.steps;  // over sparse layers
  const double kv_bytes = (dense_layers * rows * n_pages + sel_per_step) * page_kv;
  const double summary_bytes = sparse_layers * rows * n_pages * D * 2.0;  // bf16 centroid per page
  const double bytes = weight_bytes + kv_bytes + summary_bytes;
  const double roof_ms = bytes / (*read_bw * 1e9) * 1e3;
  const double tok_s = B / (step_med * 1e-3);
  const double pct = 100.0 * roof_ms / step_med;

  fmt::print("\n{:<34} {}\n", "model", config.name);
  fmt::print("{:<34} {} x {} tokens, page {}, flow {}\n", "batch x context", B, L, P, o.flow);
  fmt::print("{:<34} {}\n", "graph replayed", all_graph ? "yes" : "NO (eager)");
  fmt::print("{:<34} {:.3f} ms (median of {})\n", "decode step", step_med, o.steps);
  fmt::print("{:<34} {:.0f} tok/s\n", "throughput (B / step)", tok_s);
  fmt::print("{:<34} {:.0f} tok/s\n", "throughput (wall clock, pipelined)", o.steps * B / wall_s);
  fmt::print("{:<34} {:.2f} GB (weights {:.2f}, KV {:.2f}, summaries {:.3f})\n", "bytes per step",
             bytes / 1e9, weight_bytes / 1e9, kv_bytes / 1e9, summary_bytes / 1e9);
  if (sparse) {
    fmt::print("{:<34} {:.1f} of {:.0f} per row and sparse layer\n", "selected pages",
               sel_per_step / std::max(1.0, rows * sparse_layers), n_pages);
  }
  fmt::print("{:<34} {:.3f} ms at {:.0f} GB/s -> {:.1f}% of roofline\n", "roofline", roof_ms,
             *read_bw, pct);
  fmt::print("{:<34} {:.2f}% of the step ({:.1f} us mean)\n", "GPU idle between steps",
             100.0 * idle_frac, idle_ms.empty() ? 0.0 : 1e3 * sum_idle / idle_ms.size());
  const double other =
      profile.embedding_ms + profile.elementwise_ms + profile.rope_append_ms + profile.sampling_ms;
  fmt::print("\nstage breakdown of one eager step ({:.3f} ms, events between stages):\n",
             profile.total_ms);
  const std::vector<std::pair<std::string, double>> stages = {
      {"attention", profile.attention_ms}, {"indexer", profile.indexer_ms},
      {"top-k", profile.topk_ms},          {"cache flow", profile.cache_flow_ms},
      {"planner", profile.planner_ms},     {"GEMMs", profile.gemm_ms},
      {"LM head", profile.lm_head_ms},     {"other (norms, rope+append, embed, sample)", other}};
  for (const auto& [name, ms] : stages) {
    fmt::print("  {:<42} {:8.3f} ms {:5.1f}%\n", name, ms,
               100.0 * ms / std::max(1e-9, profile.total_ms));
  }

  nlohmann::json j;
  j["benchmark"] = "decode_step";
  j["git_sha"] = VORTEX_GIT_SHA;
  j["device"] = cuda_device_summary(0);
  j["command"] = command_line(o);
  j["note"] = "KV cache filled directly with random K/V (no prefill); steady-state decode step";
  j["ceilings"] = {{"read_gbps", *read_bw}};
  j["config"] = {{"model", config.name}, {"batch", B},        {"context", L},
                 {"page_size", P},       {"flow", o.flow},    {"topk_val", o.topk_val},
                 {"bos", o.bos},         {"eos", o.eos},      {"layers_skip", o.layers_skip},
                 {"steps", o.steps},     {"warmup", o.warmup}};
  j["result"] = {{"step_ms_median", step_med},
                 {"step_ms", step_ms},
                 {"tok_s", tok_s},
                 {"tok_s_wall", o.steps * B / wall_s},
                 {"graph_replayed", all_graph},
                 {"bytes_per_step", bytes},
                 {"weight_bytes", weight_bytes},
                 {"kv_bytes", kv_bytes},
                 {"summary_bytes", summary_bytes},
                 {"selected_pages_per_step", sel_per_step},
                 {"roofline_ms", roof_ms},
                 {"pct_of_roofline", pct},
                 {"gpu_idle_fraction", idle_frac}};
  j["stages_ms"] = {{"total", profile.total_ms},
                    {"attention", profile.attention_ms},
                    {"indexer", profile.indexer_ms},
                    {"topk", profile.topk_ms},
                    {"cache_flow", profile.cache_flow_ms},
                    {"planner", profile.planner_ms},
                    {"gemm", profile.gemm_ms},
                    {"lm_head", profile.lm_head_ms},
                    {"embedding", profile.embedding_ms},
                    {"elementwise", profile.elementwise_ms},
                    {"rope_append", profile.rope_append_ms},
                    {"sampling", profile.sampling_ms}};
  if (!o.json.empty()) {
    std::ofstream f(o.json);
    if (!f) {
      fmt::print(stderr, "vortex bench decode: cannot write {}\n", o.json);
      return 1;
    }
    f << j.dump(2) << "\n";
    fmt::print("\nJSON written to {}\n", o.json);
  }
  if (o.csv) {
    fmt::print(
        "\nmodel,flow,batch,context,step_ms,tok_s,bytes_per_step,roofline_ms,pct_roofline,"
        "gpu_idle_pct,read_gbps,device,git\n");
    fmt::print("{},{},{},{},{:.4f},{:.1f},{:.0f},{:.4f},{:.2f},{:.3f},{:.0f},\"{}\",{}\n",
               config.name, o.flow, B, L, step_med, tok_s, bytes, roof_ms, pct, 100 * idle_frac,
               *read_bw, cuda_device_summary(0), VORTEX_GIT_SHA);
  }
  return 0;
}

#else

int run_decode_bench(const DecodeBenchOptions& o) {
  fmt::print(stderr,
             "vortex bench decode: this build has no CUDA backend ({}). Rebuild with "
             "`cmake --preset cuda` and run it on a GPU machine.\n",
             command_line(o));
  return 2;
}

#endif

}  // namespace

VORTEX_REGISTER_COMMAND(bench, 60, [](CLI::App& app, int* exit_code) {
  auto* bench = app.add_subcommand("bench", "benchmarks (GPU)");
  bench->require_subcommand(1);
  auto opts = std::make_shared<DecodeBenchOptions>();
  auto* decode = bench->add_subcommand(
      "decode", "time the steady-state decode step (graph-replayed) against its roofline");
  decode->add_option("--model", opts->model, "synthetic:<preset> or a checkpoint path")
      ->capture_default_str();
  decode->add_option("--batch", opts->batch, "requests B")->capture_default_str();
  decode->add_option("--context", opts->context, "tokens per request L")->capture_default_str();
  decode->add_option("--flow", opts->flow, "dense or a built-in flow (block_topk)")
      ->capture_default_str();
  decode->add_option("--topk-val", opts->topk_val, "pages kept by top-k")->capture_default_str();
  decode->add_option("--bos", opts->bos, "leading pages always kept")->capture_default_str();
  decode->add_option("--eos", opts->eos, "trailing pages always kept")->capture_default_str();
  decode->add_option("--layers-skip", opts->layers_skip, "layers that stay dense")
      ->delimiter(',')
      ->capture_default_str();
  decode->add_option("--page-size", opts->page_size, "tokens per KV page")->capture_default_str();
  decode->add_option("--steps", opts->steps, "timed steps")->capture_default_str();
  decode->add_option("--warmup", opts->warmup, "untimed steps first")->capture_default_str();
  decode->add_option("--seed", opts->seed, "weights and KV seed")->capture_default_str();
  decode->add_option("--json", opts->json, "write the report as JSON here");
  decode->add_flag("--csv", opts->csv, "also print one CSV line");
  decode->callback([opts, exit_code] { *exit_code = run_decode_bench(*opts); });
});
