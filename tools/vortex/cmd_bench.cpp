// `vortex bench decode`: the steady-state decode step on one GPU. The KV cache is filled directly
// with random K/V for B requests at context L (no prefill: a steady-state step only needs a full
// cache), the flow's cache flow summarises every full page once, then CUDA-graph-replayed decode
// steps run back to back the way the engine drives them (step N+1 planned and launched before
// step N is read, its tokens fed on the device). Reports tok/s, bytes per step from the roofline
// formula of BENCHMARKS.md against the streaming-read bandwidth measured in the same run, GPU idle
// between steps, and a per-stage breakdown of an eager step timed with events.
//
// Sweep mode (--contexts, with --flows and --budgets): one process measures every (context, flow,
// budget) point over one model and one KV cache sized for the largest context (filled and
// summarised by every flow's cache flow once; each point takes fresh page tables over the same
// pages), dense once per context; reports tok/s, step time, bytes per step, % of roofline and the
// speed-up over dense at the same context, and writes the JSON after every point (a run killed
// by its time limit keeps what it measured). tools/gpu/plot_sweep.py plots it.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "command_registry.h"
#include "vortex/core/check.h"
#include "vortex/core/cuda_allocator.h"
#include "vortex/core/cuda_check.h"
#include "vortex/flow/runtime.h"
#include "vortex/kernels/device_info.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/synthetic_weights.h"
#include "vortex/version.h"

#if defined(VORTEX_WITH_CUDA)
#include <cuda_runtime.h>

#include "cupti_trace.h"
#include "vortex/core/kernel_timeline.h"
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
  std::string layers_skip_text = "0";  ///< --layers-skip as given: layer indices, or "none"
  std::vector<int32_t> layers_skip;    ///< parsed from layers_skip_text by the command
  int32_t page_size = 16;
  int32_t steps = 50;
  int32_t warmup = 5;
  uint64_t seed = 1;
  std::string json;
  bool csv = false;
  std::string trace;  ///< Chrome trace of `trace_steps` graph-replayed steps (CUPTI)
  int32_t trace_steps = 3;
  // Sweep mode: non-empty `contexts`.
  std::vector<int32_t> contexts;
  std::vector<int32_t> budgets;  ///< pages kept per row and sparse layer: topk_val + bos + eos
  std::vector<std::string> flows = {"dense", "block_topk"};
  double kv_gib = 0;  ///< cap of the sweep's KV cache (0: what fits in free memory)
};

/// --layers-skip: "none" (every layer sparse) or a comma list of layer indices >= 0.
vortex::Expected<std::vector<int32_t>> parse_layers_skip(const std::string& text) {
  std::vector<int32_t> layers;
  if (text == "none") return layers;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::optional<int32_t> value =
        vortex::cli::parse_layer_index(text.substr(start, comma - start));
    if (!value) {
      return vortex::invalid_argument(
          "--layers-skip '" + text +
          "': expected 'none' or comma-separated layer indices >= 0 (0,1)");
    }
    layers.push_back(*value);
    start = comma + 1;
  }
  return layers;
}

constexpr int32_t kSweepSteps = 20;
constexpr int32_t kSweepWarmup = 10;

std::string command_line(const DecodeBenchOptions& o) {
  std::string skip;
  for (int32_t l : o.layers_skip) skip += (skip.empty() ? "" : ",") + std::to_string(l);
  return fmt::format(
      "vortex bench decode --model {} --batch {} --context {} --flow {} --topk-val {} --bos {} "
      "--eos {}{} --page-size {} --steps {} --warmup {} --seed {}",
      o.model, o.batch, o.context, o.flow, o.topk_val, o.bos, o.eos,
      skip.empty() ? " --layers-skip none" : " --layers-skip " + skip, o.page_size, o.steps,
      o.warmup, o.seed);
}

std::string sweep_command_line(const DecodeBenchOptions& o) {
  auto join = [](const auto& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + fmt::format("{}", x);
    return s;
  };
  return fmt::format(
      "vortex bench decode --model {} --batch {} --contexts {} --flows {}{} --bos {} --eos {}{} "
      "--page-size {} --steps {} --warmup {} --seed {}{}",
      o.model, o.batch, join(o.contexts), join(o.flows),
      o.budgets.empty() ? "" : " --budgets " + join(o.budgets), o.bos, o.eos,
      o.layers_skip.empty() ? " --layers-skip none" : " --layers-skip " + join(o.layers_skip),
      o.page_size, o.steps, o.warmup, o.seed,
      o.kv_gib > 0 ? fmt::format(" --kv-gib {}", o.kv_gib) : "");
}

/// Checks and normalises the sweep options (contexts ascending, no duplicates); an error message
/// or empty. Runs in every build, so a CPU build rejects bad sweeps the same way.
std::string check_sweep_options(DecodeBenchOptions* o) {
  if (o->batch <= 0 || o->steps <= 0 || o->warmup < 0 || o->page_size <= 0) {
    return "--batch, --steps and --page-size must be positive and --warmup >= 0";
  }
  if (o->bos < 0 || o->eos < 0) return "--bos and --eos must be >= 0";
  for (int32_t l : o->contexts) {
    if (l <= 0) return fmt::format("context {} in --contexts must be positive", l);
  }
  std::sort(o->contexts.begin(), o->contexts.end());
  o->contexts.erase(std::unique(o->contexts.begin(), o->contexts.end()), o->contexts.end());
  if (o->flows.empty()) return "--flows is empty";
  std::vector<std::string> flows;
  bool any_sparse = false;
  for (const std::string& f : o->flows) {
    if (std::find(flows.begin(), flows.end(), f) != flows.end()) continue;
    auto program = vortex::flow::load_flow(f);
    if (!program.has_value()) {
      return fmt::format("flow '{}' in --flows: {}", f, program.status().to_string());
    }
    any_sparse = any_sparse || !vortex::flow::flow_is_dense(**program);
    flows.push_back(f);
  }
  o->flows = std::move(flows);
  std::vector<int32_t> budgets;
  for (int32_t b : o->budgets) {
    if (b <= o->bos + o->eos) {
      return fmt::format(
          "budget {} in --budgets must exceed bos + eos = {} (a budget counts every page kept per "
          "row: topk_val + bos + eos)",
          b, o->bos + o->eos);
    }
    if (std::find(budgets.begin(), budgets.end(), b) == budgets.end()) budgets.push_back(b);
  }
  o->budgets = std::move(budgets);
  if (any_sparse && o->budgets.empty()) {
    o->budgets.push_back(o->topk_val + o->bos + o->eos);
  }
  if (o->kv_gib < 0) return "--kv-gib must be >= 0";
  return "";
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

/// Events around one launched step (destroyed with it).
struct StepEvents {
  cudaEvent_t start = nullptr, end = nullptr;
  StepEvents() {
    cudaEventCreate(&start);
    cudaEventCreate(&end);
  }
  ~StepEvents() {
    if (start != nullptr) cudaEventDestroy(start);
    if (end != nullptr) cudaEventDestroy(end);
  }
  StepEvents(const StepEvents&) = delete;
  StepEvents& operator=(const StepEvents&) = delete;
};

/// One decode token for every table (reserving its slot); `first_tokens` null: the token comes
/// from the previous step's samples on the device.
vortex::ForwardBatch decode_batch(std::vector<vortex::PageTable>& tables, vortex::KVCache& cache,
                                  const vortex::flow::SparseConfig* sparse,
                                  const int32_t* first_tokens) {
  vortex::ForwardBatch batch;
  for (size_t b = 0; b < tables.size(); ++b) {
    vortex::PageTable& pt = tables[b];
    VORTEX_CHECK_OK(pt.reserve(1, cache.pool()));
    batch.seqs.push_back(vortex::SequenceChunk{first_tokens ? &first_tokens[b] : nullptr, 1,
                                               pt.num_tokens(), &pt, sparse, true});
  }
  return batch;
}

/// What the timed steps of a step loop measured.
struct StepLoop {
  std::vector<double> step_ms;  ///< GPU time between the events around each timed launch
  std::vector<double> idle_ms;  ///< GPU idle between consecutive timed steps
  double wall_s = 0;            ///< host wall clock over the timed steps (pipelined)
  bool all_graph = true;
  int64_t selected_pages = 0;  ///< Σ over the timed steps (rows x sparse layers)
  int32_t warmup = 0;          ///< warm-up steps run (see run_step_loop)
};

/// warmup + steps decode steps of `tables`, pipelined like the engine: plan + launch N+1, then
/// wait for N. The warm-up runs on until a step has completed a page (at most page_size - 1
/// steps more, within the KV slack the callers reserve): the model keeps one decode graph for
/// steps that complete a page and one for those that do not, and both must be captured before
/// the timed steps. On an error, `*usable` says whether the model has nothing planned or in
/// flight (false: a launch or a wait failed and the model should not run more steps).
Status run_step_loop(vortex::CudaModel& model, vortex::KVCache& cache,
                     std::vector<vortex::PageTable>& tables,
                     const vortex::flow::SparseConfig* sparse, int32_t warmup, int32_t steps,
                     int32_t page_size, StepLoop* out, bool* usable) {
  using namespace vortex;
  *usable = true;
  const size_t B = tables.size();
  if (B > 0 && page_size > 0) {
    // Step i appends token L0 + i of every row (all rows have the same length here); it
    // completes a page when L0 + i + 1 is a multiple of the page size.
    const int64_t l0 = tables[0].num_tokens();
    const int32_t first_completion =
        static_cast<int32_t>((page_size - (l0 + 1) % page_size) % page_size);
    warmup = std::max(warmup, first_completion + 1);
  }
  out->warmup = warmup;
  const std::vector<CudaSampleSpec> specs(B);  // greedy
  std::vector<int32_t> from_prev(B);
  for (size_t b = 0; b < B; ++b) from_prev[b] = static_cast<int32_t>(b);
  const std::vector<int32_t> first_tokens(B, 1);
  const int32_t total = warmup + steps;
  std::vector<StepEvents> ev(static_cast<size_t>(total));
  const cudaStream_t stream = model.stream();
  std::vector<CudaStepResult> results(static_cast<size_t>(total));
  std::chrono::steady_clock::time_point t0;
  for (int32_t i = 0; i < total; ++i) {
    if (i == warmup) t0 = std::chrono::steady_clock::now();
    const ForwardBatch batch =
        decode_batch(tables, cache, sparse, i == 0 ? first_tokens.data() : nullptr);
    Status s = i == 0 ? model.plan(batch, specs) : model.plan(batch, specs, from_prev);
    if (!s.is_ok()) {
      if (i > 0) {  // drain the step in flight
        CudaStepResult r;
        *usable = model.wait(&r).is_ok();
      }
      return s.with_context("plan");
    }
    cudaEventRecord(ev[static_cast<size_t>(i)].start, stream);
    if (s = model.launch(cache); !s.is_ok()) {
      *usable = false;
      return s.with_context("launch");
    }
    cudaEventRecord(ev[static_cast<size_t>(i)].end, stream);
    if (i > 0) {
      if (s = model.wait(&results[static_cast<size_t>(i - 1)]); !s.is_ok()) {
        *usable = false;
        return s.with_context("wait");
      }
    }
  }
  if (Status s = model.wait(&results.back()); !s.is_ok()) {
    *usable = false;
    return s.with_context("wait");
  }
  out->wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int32_t i = warmup; i < total; ++i) {
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, ev[static_cast<size_t>(i)].start, ev[static_cast<size_t>(i)].end);
    out->step_ms.push_back(ms);
    if (i > warmup) {
      cudaEventElapsedTime(&ms, ev[static_cast<size_t>(i - 1)].end,
                           ev[static_cast<size_t>(i)].start);
      out->idle_ms.push_back(std::max(0.0f, ms));
    }
    out->all_graph = out->all_graph && results[static_cast<size_t>(i)].graph_replayed;
    out->selected_pages += results[static_cast<size_t>(i)].stats.selected_pages;
  }
  return Status::ok();
}

nlohmann::json timeline_json(const vortex::KernelTimeline& t, size_t top) {
  auto groups = [](const std::vector<vortex::KernelTimeline::Group>& gs, size_t n) {
    nlohmann::json a = nlohmann::json::array();
    for (size_t i = 0; i < std::min(n, gs.size()); ++i) {
      a.push_back({{"name", gs[i].name}, {"count", gs[i].count}, {"total_us", gs[i].total_us}});
    }
    return a;
  };
  return {{"span_us", t.span_us},
          {"busy_us", t.busy_us},
          {"idle_us", t.idle_us},
          {"kernels", t.kernels},
          {"gaps", t.gaps},
          {"median_gap_us", t.median_gap_us},
          {"stages", groups(t.stages, t.stages.size())},
          {"kernels_by_name", groups(t.by_name, top)}};
}

/// `steps` more decode steps, one at a time, with CUPTI recording every kernel the GPU ran
/// (graph replays included): each step summarised (span, idle gaps, time per stage and kernel)
/// into *out, and all of them written to `path` as a Chrome trace. Tracing adds its own
/// overhead to the gaps; the timed steps ran before it, untraced.
Status run_kernel_trace(vortex::CudaModel& model, vortex::KVCache& cache,
                        std::vector<vortex::PageTable>& tables,
                        const vortex::flow::SparseConfig* sparse, int32_t steps,
                        const std::string& path, nlohmann::json* out) {
  using namespace vortex;
  VORTEX_ASSIGN_OR_RETURN(std::unique_ptr<tools::KernelTracer> tracer,
                          tools::KernelTracer::create());
  const size_t B = tables.size();
  const std::vector<CudaSampleSpec> specs(B);  // greedy
  std::vector<int32_t> from_prev(B);
  for (size_t b = 0; b < B; ++b) from_prev[b] = static_cast<int32_t>(b);
  std::vector<KernelSpan> all;
  std::vector<KernelTimeline> timelines;
  nlohmann::json per_step = nlohmann::json::array();
  for (int32_t i = 0; i < steps; ++i) {
    const ForwardBatch batch = decode_batch(tables, cache, sparse, nullptr);
    VORTEX_RETURN_IF_ERROR(model.plan(batch, specs, from_prev).with_context("plan"));
    VORTEX_RETURN_IF_ERROR(tracer->begin());
    VORTEX_RETURN_IF_ERROR(model.launch(cache).with_context("launch"));
    CudaStepResult r;
    VORTEX_RETURN_IF_ERROR(model.wait(&r).with_context("wait"));
    VORTEX_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
    VORTEX_ASSIGN_OR_RETURN(std::vector<KernelSpan> spans, tracer->end());
    if (spans.empty()) {
      return internal_error(
          "CUPTI recorded no kernel for a decode step (is another profiler "
          "attached?)");
    }
    timelines.push_back(summarize_timeline(spans));
    nlohmann::json js = timeline_json(timelines.back(), 20);
    js["graph_replayed"] = r.graph_replayed;
    per_step.push_back(std::move(js));
    all.insert(all.end(), spans.begin(), spans.end());
  }
  std::ofstream f(path);
  if (!f) return invalid_argument("cannot write the trace to " + path);
  f << chrome_trace_json(all);
  // The step with the median span stands for the run.
  std::vector<size_t> order(timelines.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return timelines[a].span_us < timelines[b].span_us; });
  const KernelTimeline& t = timelines[order[order.size() / 2]];
  fmt::print("\nkernel trace of the median of {} graph-replayed steps (CUPTI; {} kernels):\n",
             steps, t.kernels);
  fmt::print("  {:<42} {:8.1f} us\n", "span (first kernel start to last end)", t.span_us);
  fmt::print("  {:<42} {:8.1f} us {:5.1f}% ({} gaps, median {:.2f} us)\n", "no kernel running",
             t.idle_us, 100.0 * t.idle_us / std::max(1e-9, t.span_us), t.gaps, t.median_gap_us);
  for (const KernelTimeline::Group& g : t.stages) {
    fmt::print("  {:<42} {:8.1f} us {:5.1f}% ({} kernels, {:.2f} us each)\n", g.name, g.total_us,
               100.0 * g.total_us / std::max(1e-9, t.span_us), g.count,
               g.total_us / std::max<int64_t>(1, g.count));
  }
  fmt::print("  top kernels:\n");
  for (size_t i = 0; i < std::min<size_t>(8, t.by_name.size()); ++i) {
    const KernelTimeline::Group& g = t.by_name[i];
    fmt::print("    {:<60} {:8.1f} us x{}\n", g.name.substr(0, 60), g.total_us, g.count);
  }
  fmt::print("Chrome trace of {} steps written to {}\n", steps, path);
  *out = {{"file", path}, {"steps", per_step}, {"median_step", timeline_json(t, 40)}};
  return Status::ok();
}

/// The roofline of BENCHMARKS.md for one measured configuration: weights + KV pages read (K and
/// V) + page summaries.
struct Roofline {
  double n_pages = 0;       ///< pages per request seen by a measured step (mean context)
  double weight_bytes = 0;  ///< weights read once per step, plus the embedding rows
  double kv_bytes = 0;
  double summary_bytes = 0;
  double bytes = 0;
  double sel_per_step = 0;  ///< selected pages per step, Σ over rows and sparse layers
  double roof_ms = 0;
};

Roofline decode_roofline(const vortex::ModelConfig& config, int64_t model_weight_bytes, int32_t B,
                         int32_t L, int32_t P, int32_t warmup, int32_t steps, int32_t sparse_layers,
                         int64_t selected_pages, double summary_bytes_per_page_head,
                         double read_gbps) {
  Roofline r;
  const double ctx_mean = L + warmup + 1 + (steps - 1) / 2.0;  // tokens seen by a measured step
  r.n_pages = std::ceil(ctx_mean / P);
  const double page_kv = static_cast<double>(P) * config.head_dim * 2 * 2;  // K and V bf16
  const int64_t tied_extra =
      config.tie_embeddings ? 0 : int64_t{config.vocab_size} * config.hidden_size * 2;
  r.weight_bytes = static_cast<double>(model_weight_bytes - tied_extra) +
                   static_cast<double>(B) * config.hidden_size * 2;
  const double dense_layers = config.num_layers - sparse_layers;
  const double rows = static_cast<double>(B) * config.num_kv_heads;
  r.sel_per_step = static_cast<double>(selected_pages) / steps;  // over sparse layers
  r.kv_bytes = (dense_layers * rows * r.n_pages + r.sel_per_step) * page_kv;
  r.summary_bytes = sparse_layers * rows * r.n_pages * summary_bytes_per_page_head;
  r.bytes = r.weight_bytes + r.kv_bytes + r.summary_bytes;
  r.roof_ms = r.bytes / (read_gbps * 1e9) * 1e3;
  return r;
}

int32_t count_sparse_layers(int32_t layers, const std::vector<int32_t>& layers_skip) {
  int32_t n = 0;
  for (int32_t l = 0; l < layers; ++l) {
    n += std::find(layers_skip.begin(), layers_skip.end(), l) == layers_skip.end();
  }
  return n;
}

/// A synthetic preset (weights generated on the device) or a checkpoint.
vortex::Expected<std::unique_ptr<vortex::CudaModel>> make_model(const std::string& name,
                                                                uint64_t seed,
                                                                const vortex::CudaModelOptions& mo,
                                                                vortex::ModelConfig* config) {
  using namespace vortex;
  if (name.rfind("synthetic:", 0) == 0) {
    VORTEX_ASSIGN_OR_RETURN(*config, synthetic_config(name));
    return CudaModel::create_random(*config, seed, mo);
  }
  auto ck = load_checkpoint(name);
  if (!ck.has_value()) return ck.status().with_context("loading " + name);
  *config = ck->config;
  return CudaModel::create(*config, ck->weights, mo);
}

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
  const int32_t extra = o.warmup + o.steps + 4 + (o.trace.empty() ? 0 : o.trace_steps);
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
  const int32_t D = config.head_dim, layers = config.num_layers;

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
  StepLoop loop;
  bool usable = true;
  if (Status s = run_step_loop(*model, *cache, tables, sparse.get(), o.warmup, o.steps, o.page_size,
                               &loop, &usable);
      !s.is_ok()) {
    return fail(s, "decode step");
  }
  const std::vector<double>& step_ms = loop.step_ms;
  const std::vector<double>& idle_ms = loop.idle_ms;
  const double wall_s = loop.wall_s;
  const bool all_graph = loop.all_graph;
  const double step_med = median(step_ms);
  double sum_step = 0, sum_idle = 0;
  for (double x : step_ms) sum_step += x;
  for (double x : idle_ms) sum_idle += x;
  const double idle_frac = sum_idle / std::max(1e-9, sum_step + sum_idle);

  // One eager step with stage events.
  StepProfile profile;
  profile.enabled = true;
  {
    const std::vector<CudaSampleSpec> specs(static_cast<size_t>(B));  // greedy
    std::vector<int32_t> from_prev(static_cast<size_t>(B));
    for (int32_t b = 0; b < B; ++b) from_prev[static_cast<size_t>(b)] = b;
    const ForwardBatch batch = decode_batch(tables, *cache, sparse.get(), nullptr);
    if (Status s = model->plan(batch, specs, from_prev); !s.is_ok()) return fail(s, "plan");
    if (Status s = model->launch(*cache, &profile); !s.is_ok()) return fail(s, "profiled launch");
    CudaStepResult r;
    if (Status s = model->wait(&r); !s.is_ok()) return fail(s, "wait");
  }

  nlohmann::json trace;
  if (!o.trace.empty()) {
    if (Status s =
            run_kernel_trace(*model, *cache, tables, sparse.get(), o.trace_steps, o.trace, &trace);
        !s.is_ok()) {
      return fail(s, "kernel trace");
    }
  }

  // Roofline (BENCHMARKS.md): weights + KV pages read (K and V) + the flow's page summaries
  // (every aux field, e.g. quest's max and min).
  const int32_t sparse_layers = sparse ? count_sparse_layers(layers, o.layers_skip) : 0;
  const double rows = static_cast<double>(B) * config.num_kv_heads;
  double summary_bytes_per_page_head = 0;
  if (sparse) {
    for (const AuxFieldSpec& a : flow::flow_aux_fields(*sparse->program, P, D)) {
      summary_bytes_per_page_head +=
          static_cast<double>(a.rows) * a.cols * static_cast<double>(dtype_size(a.dtype));
    }
  }
  const Roofline rl =
      decode_roofline(config, model->weight_bytes(), B, L, P, loop.warmup, o.steps, sparse_layers,
                      loop.selected_pages, summary_bytes_per_page_head, *read_bw);
  const double n_pages = rl.n_pages, weight_bytes = rl.weight_bytes, kv_bytes = rl.kv_bytes;
  const double summary_bytes = rl.summary_bytes, bytes = rl.bytes, roof_ms = rl.roof_ms;
  const double sel_per_step = rl.sel_per_step;
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
      {"attention", profile.attention_ms},
      {"indexer", profile.indexer_ms},
      {"top-k", profile.topk_ms},
      {"fused sparse layer", profile.sparse_fused_ms},
      {"cache flow", profile.cache_flow_ms},
      {"planner", profile.planner_ms},
      {"GEMMs", profile.gemm_ms},
      {"LM head", profile.lm_head_ms},
      {"other (norms, rope+append, embed, sample)", other}};
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
                 {"warmup_run", loop.warmup},
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
                    {"sparse_fused", profile.sparse_fused_ms},
                    {"cache_flow", profile.cache_flow_ms},
                    {"planner", profile.planner_ms},
                    {"gemm", profile.gemm_ms},
                    {"lm_head", profile.lm_head_ms},
                    {"embedding", profile.embedding_ms},
                    {"elementwise", profile.elementwise_ms},
                    {"rope_append", profile.rope_append_ms},
                    {"sampling", profile.sampling_ms}};
  if (!trace.is_null()) j["trace"] = std::move(trace);
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

/// One flow of a sweep: dense, or a sparse flow with one SparseConfig per budget (kept alive as
/// long as the model, which keys its per-flow state and graphs by the config's address).
struct SweepFlow {
  std::string name;
  bool dense = false;
  int32_t sparse_layers = 0;
  double summary_bytes_per_page_head = 0;  ///< Σ aux fields r x c x element size
  std::vector<std::unique_ptr<vortex::flow::SparseConfig>> configs;  ///< [budgets]
  std::string error;  ///< why the flow cannot run (its points record it)
};

int run_decode_sweep(DecodeBenchOptions o) {
  using namespace vortex;
  if (std::string e = check_sweep_options(&o); !e.empty()) {
    fmt::print(stderr, "vortex bench decode: {}\n", e);
    return 2;
  }
  if (cuda_device_count() == 0) {
    fmt::print(stderr, "vortex bench decode: no CUDA device is visible; run it on a GPU machine\n");
    return 2;
  }
  const auto t_start = std::chrono::steady_clock::now();
  const int32_t B = o.batch, P = o.page_size, Lmax = o.contexts.back();
  const int32_t extra = o.warmup + o.steps + 4;
  auto pages_per_request = [&](int32_t L) { return (L + extra + P - 1) / P + 1; };
  fmt::print("vortex bench decode (sweep): {}\n", sweep_command_line(o));
  fmt::print("device: {}\n", cuda_device_summary(0));

  // One model for every point: graphs for every batch size a context may need (captured lazily),
  // page lists and the RoPE table for the largest context.
  CudaModelOptions mo;
  mo.max_batch = B;
  mo.max_tokens = std::max(B, 64);
  mo.max_context = Lmax + extra + P;
  mo.graph_buckets.clear();
  for (int32_t b = 1; b <= B; ++b) mo.graph_buckets.push_back(b);

  // Flows (host only, before anything is allocated on the device): one config per budget.
  ModelConfig config;
  std::vector<SweepFlow> flows;
  for (const std::string& name : o.flows) {
    SweepFlow f;
    f.name = name;
    auto program = flow::load_flow(name);
    if (!program.has_value()) return fail(program.status(), "flow " + name);
    f.dense = flow::flow_is_dense(**program);
    if (!f.dense) {
      for (int32_t budget : o.budgets) {
        flow::BudgetParams bp;
        bp.topk_val = budget - o.bos - o.eos;
        bp.bos = o.bos;
        bp.eos = o.eos;
        bp.layers_skip = o.layers_skip;
        bp.block_size = P;
        auto sc = builtin_sparse_config(name, bp);
        if (!sc.has_value()) return fail(sc.status(), "flow " + name);
        f.configs.push_back(std::make_unique<flow::SparseConfig>(std::move(*sc)));
      }
    }
    flows.push_back(std::move(f));
  }
  // Dense first: the sparse points of a context report their speed-up over it.
  std::stable_partition(flows.begin(), flows.end(), [](const SweepFlow& f) { return f.dense; });

  std::unique_ptr<CudaModel> model;
  {
    auto m = make_model(o.model, o.seed, mo, &config);
    if (!m.has_value()) return fail(m.status(), "creating the model");
    model = std::move(*m);
  }
  std::vector<const flow::SparseConfig*> all_configs;
  for (SweepFlow& f : flows) {
    if (f.dense) continue;
    f.sparse_layers = count_sparse_layers(config.num_layers, o.layers_skip);
    for (const AuxFieldSpec& a :
         flow::flow_aux_fields(*f.configs.front()->program, P, config.head_dim)) {
      f.summary_bytes_per_page_head +=
          static_cast<double>(a.rows) * a.cols * static_cast<double>(dtype_size(a.dtype));
    }
    for (const auto& c : f.configs) all_configs.push_back(c.get());
  }

  // Ceiling first (it needs 4 GiB for a moment).
  auto read_bw = measure_read_bandwidth_gbps(0);
  if (!read_bw.has_value()) return fail(read_bw.status(), "measuring read bandwidth");
  fmt::print("streaming read bandwidth: {:.0f} GB/s (16-byte loads, 4 GiB)\n", *read_bw);

  // One KV cache (K/V and every flow's aux fields) for B requests at the largest context, or as
  // many pages as fit in free memory less a margin (then shorter batches where they must be).
  const KVCacheConfig kc = model->kv_cache_config(P, all_configs);
  const int64_t page_bytes = kc.bytes_per_page();
  size_t free_b = 0, total_b = 0;
  if (cudaError_t e = cudaMemGetInfo(&free_b, &total_b); e != cudaSuccess) {
    fmt::print(stderr, "vortex bench decode: cudaMemGetInfo: {}\n", cudaGetErrorString(e));
    return 1;
  }
  constexpr int64_t kHeadroom = int64_t{3} << 30;  // graphs, flow runners, cuBLAS, page lists
  int64_t cache_budget = static_cast<int64_t>(free_b) - kHeadroom;
  if (o.kv_gib > 0) {
    cache_budget = std::min(cache_budget, static_cast<int64_t>(o.kv_gib * (int64_t{1} << 30)));
  }
  const int64_t want_pages = int64_t{B} * pages_per_request(Lmax) + 8;
  const int64_t num_pages =
      std::min<int64_t>({want_pages, std::max<int64_t>(0, cache_budget / page_bytes),
                         int64_t{std::numeric_limits<int32_t>::max()}});
  if (num_pages < pages_per_request(o.contexts.front()) + 8) {
    fmt::print(stderr,
               "vortex bench decode: {:.1f} GiB free ({:.2f} MB per page) hold {} pages, not one "
               "request at context {}\n",
               static_cast<double>(free_b) / (1 << 30), page_bytes / 1e6, num_pages,
               o.contexts.front());
    return 1;
  }
  auto batch_at = [&](int32_t L) {
    return static_cast<int32_t>(std::min<int64_t>(B, (num_pages - 8) / pages_per_request(L)));
  };
  auto cache = model->create_kv_cache(kc, static_cast<int32_t>(num_pages));
  if (!cache.has_value()) return fail(cache.status(), "allocating the KV cache");
  if (Status s = model->fill_kv_random(*cache, o.seed + 1); !s.is_ok()) return fail(s, "KV fill");
  fmt::print(
      "KV cache: {} pages x {:.3f} MB = {:.1f} GiB ({:.1f} GiB were free), filled directly with "
      "random K/V (no prefill: a steady-state decode step only needs a full cache)\n",
      num_pages, page_bytes / 1e6, static_cast<double>(num_pages * page_bytes) / (1 << 30),
      static_cast<double>(free_b) / (1 << 30));
  for (int32_t L : o.contexts) {
    if (batch_at(L) < B) {
      fmt::print("batch at context {}: {} (the cache holds {} pages; {} would need {})\n", L,
                 batch_at(L), num_pages, B, int64_t{B} * pages_per_request(L) + 8);
    }
  }
  // Every page gets every flow's summaries once, so any page table over any pages is ready.
  std::vector<int32_t> all_pages(static_cast<size_t>(num_pages));
  for (int32_t p = 0; p < static_cast<int32_t>(num_pages); ++p)
    all_pages[static_cast<size_t>(p)] = p;
  for (SweepFlow& f : flows) {
    if (f.dense) continue;
    if (Status s = model->run_cache_flow(*cache, *f.configs.front(), all_pages); !s.is_ok()) {
      f.error = "cache flow: " + s.to_string();
      fmt::print(stderr, "vortex bench decode: flow {}: {}\n", f.name, f.error);
      continue;
    }
    fmt::print("cache flow '{}' ran once over all {} pages\n", f.name, num_pages);
  }

  nlohmann::json j;
  j["benchmark"] = "decode_sweep";
  j["git_sha"] = VORTEX_GIT_SHA;
  j["device"] = cuda_device_summary(0);
  j["command"] = sweep_command_line(o);
  j["note"] =
      "KV cache filled directly with random K/V (no prefill); steady-state graph-replayed decode "
      "steps; one model and one KV cache (sized for the largest context) for every point; "
      "budget = pages kept per row and sparse layer (topk_val + bos + eos)";
  j["ceilings"] = {{"read_gbps", *read_bw}};
  j["config"] = {{"model", config.name},
                 {"batch", B},
                 {"page_size", P},
                 {"contexts", o.contexts},
                 {"flows", o.flows},
                 {"budgets", o.budgets},
                 {"bos", o.bos},
                 {"eos", o.eos},
                 {"layers_skip", o.layers_skip},
                 {"steps", o.steps},
                 {"warmup", o.warmup},
                 {"seed", o.seed},
                 {"max_context", mo.max_context}};
  nlohmann::json batches = nlohmann::json::object();
  for (int32_t L : o.contexts) batches[std::to_string(L)] = batch_at(L);
  j["kv_cache"] = {{"pages", num_pages},
                   {"bytes_per_page", page_bytes},
                   {"bytes", num_pages * page_bytes},
                   {"free_bytes_before", static_cast<int64_t>(free_b)},
                   {"device_bytes", static_cast<int64_t>(total_b)},
                   {"batch_by_context", batches}};
  j["points"] = nlohmann::json::array();
  j["complete"] = false;
  auto write_json = [&]() {
    if (o.json.empty()) return true;
    std::ofstream f(o.json);
    if (!f) return false;
    f << j.dump(2) << "\n";
    return static_cast<bool>(f);
  };
  if (!write_json()) {
    fmt::print(stderr, "vortex bench decode: cannot write {}\n", o.json);
    return 1;
  }

  fmt::print("\n{:>7} {:>4} {:<12} {:>6} {:>9} {:>9} {:>8} {:>9} {:>7} {:>6}\n", "context", "B",
             "flow", "budget", "step ms", "tok/s", "x dense", "GB/step", "% roof", "graph");
  std::fflush(stdout);
  std::vector<std::string> csv;
  bool any_error = false;
  for (int32_t L : o.contexts) {
    const int32_t BL = batch_at(L);
    double dense_tok_s = 0;
    for (SweepFlow& f : flows) {
      const size_t n_budgets = f.dense ? 1 : f.configs.size();
      for (size_t k = 0; k < n_budgets; ++k) {
        const flow::SparseConfig* sparse = f.dense ? nullptr : f.configs[k].get();
        nlohmann::json pt = {{"context", L},
                             {"batch", BL},
                             {"batch_reduced", BL < B},
                             {"flow", f.name},
                             {"budget_pages", nullptr},
                             {"topk_val", nullptr}};
        if (!f.dense) {
          pt["budget_pages"] = o.budgets[k];
          pt["topk_val"] = sparse->budget.topk_val;
        }
        auto record_error = [&](const std::string& e) {
          any_error = true;
          pt["error"] = e;
          j["points"].push_back(pt);
          (void)write_json();
          fmt::print("{:>7} {:>4} {:<12} {:>6} error: {}\n", L, BL, f.name,
                     f.dense ? "-" : std::to_string(o.budgets[k]), e);
          std::fflush(stdout);
        };
        if (!f.error.empty()) {
          record_error(f.error);
          continue;
        }
        if (BL < 1) {
          record_error("no request of this context fits in the KV cache");
          continue;
        }
        // Fresh page tables at context L over the filled (and summarised) pages.
        std::vector<PageTable> tables(static_cast<size_t>(BL), PageTable(P));
        auto release = [&]() {
          for (PageTable& t : tables) t.release(cache->pool());
        };
        Status s = Status::ok();
        for (PageTable& t : tables) {
          if (s = t.reserve(L, cache->pool()); !s.is_ok()) break;
          t.commit(L);
        }
        if (!s.is_ok()) {
          release();
          record_error("page reservation: " + s.to_string());
          continue;
        }
        StepLoop loop;
        bool usable = true;
        s = run_step_loop(*model, *cache, tables, sparse, o.warmup, o.steps, P, &loop, &usable);
        release();
        if (!s.is_ok()) {
          record_error("decode step: " + s.to_string());
          if (!usable) {
            fmt::print(stderr, "vortex bench decode: stopping the sweep: {}\n", s.to_string());
            j["wall_s"] =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
            (void)write_json();
            return 1;
          }
          continue;
        }
        const double step_med = median(loop.step_ms);
        double sum_step = 0, sum_idle = 0;
        for (double x : loop.step_ms) sum_step += x;
        for (double x : loop.idle_ms) sum_idle += x;
        const double idle_frac = sum_idle / std::max(1e-9, sum_step + sum_idle);
        const Roofline rl = decode_roofline(config, model->weight_bytes(), BL, L, P, loop.warmup,
                                            o.steps, f.sparse_layers, loop.selected_pages,
                                            f.summary_bytes_per_page_head, *read_bw);
        const double tok_s = BL / (step_med * 1e-3);
        const double pct = 100.0 * rl.roof_ms / step_med;
        if (f.dense) dense_tok_s = tok_s;
        const double rows = static_cast<double>(BL) * config.num_kv_heads;
        pt["step_ms_median"] = step_med;
        pt["step_ms"] = loop.step_ms;
        pt["tok_s"] = tok_s;
        pt["tok_s_wall"] = o.steps * BL / loop.wall_s;
        pt["speedup_vs_dense"] = dense_tok_s > 0 ? nlohmann::json(tok_s / dense_tok_s) : nullptr;
        pt["graph_replayed"] = loop.all_graph;
        pt["warmup_run"] = loop.warmup;  // >= --warmup: until a step completed a page
        pt["bytes_per_step"] = rl.bytes;
        pt["weight_bytes"] = rl.weight_bytes;
        pt["kv_bytes"] = rl.kv_bytes;
        pt["summary_bytes"] = rl.summary_bytes;
        pt["pages_per_row"] = rl.n_pages;
        pt["selected_pages_per_row"] =
            f.dense ? nlohmann::json(nullptr)
                    : nlohmann::json(rl.sel_per_step / std::max(1.0, rows * f.sparse_layers));
        pt["roofline_ms"] = rl.roof_ms;
        pt["pct_of_roofline"] = pct;
        pt["gpu_idle_fraction"] = idle_frac;
        j["points"].push_back(pt);
        if (!write_json()) {
          fmt::print(stderr, "vortex bench decode: cannot write {}\n", o.json);
          return 1;
        }
        fmt::print("{:>7} {:>4} {:<12} {:>6} {:>9.3f} {:>9.0f} {:>8} {:>9.2f} {:>7.1f} {:>6}\n", L,
                   BL, f.name, f.dense ? "-" : std::to_string(o.budgets[k]), step_med, tok_s,
                   dense_tok_s > 0 ? fmt::format("{:.2f}x", tok_s / dense_tok_s) : "-",
                   rl.bytes / 1e9, pct, loop.all_graph ? "yes" : "NO");
        std::fflush(stdout);
        csv.push_back(fmt::format(
            "{},{},{},{},{},{:.4f},{:.1f},{},{:.0f},{:.4f},{:.2f},{:.3f},{:.0f},\"{}\",{}",
            config.name, f.name, f.dense ? "" : std::to_string(o.budgets[k]), BL, L, step_med,
            tok_s, dense_tok_s > 0 ? fmt::format("{:.3f}", tok_s / dense_tok_s) : "", rl.bytes,
            rl.roof_ms, pct, 100 * idle_frac, *read_bw, cuda_device_summary(0), VORTEX_GIT_SHA));
      }
    }
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  j["wall_s"] = wall;
  j["complete"] = true;
  if (!write_json()) {
    fmt::print(stderr, "vortex bench decode: cannot write {}\n", o.json);
    return 1;
  }
  fmt::print("\nsweep of {} points in {:.1f} s ({} graphs captured)\n", j["points"].size(), wall,
             model->num_graphs());
  if (!o.json.empty()) fmt::print("JSON written to {}\n", o.json);
  if (o.csv) {
    fmt::print(
        "\nmodel,flow,budget,batch,context,step_ms,tok_s,speedup_vs_dense,bytes_per_step,"
        "roofline_ms,pct_roofline,gpu_idle_pct,read_gbps,device,git\n");
    for (const std::string& line : csv) fmt::print("{}\n", line);
  }
  return any_error ? 1 : 0;
}

#else

int run_decode_bench(const DecodeBenchOptions& o) {
  fmt::print(stderr,
             "vortex bench decode: this build has no CUDA backend ({}). Rebuild with "
             "`cmake --preset cuda` and run it on a GPU machine.\n",
             command_line(o));
  return 2;
}

int run_decode_sweep(DecodeBenchOptions o) {
  if (std::string e = check_sweep_options(&o); !e.empty()) {
    fmt::print(stderr, "vortex bench decode: {}\n", e);
    return 2;
  }
  fmt::print(stderr,
             "vortex bench decode: this build has no CUDA backend ({}). Rebuild with "
             "`cmake --preset cuda` and run it on a GPU machine.\n",
             sweep_command_line(o));
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
  auto* context =
      decode->add_option("--context", opts->context, "tokens per request L")->capture_default_str();
  auto* flow = decode->add_option("--flow", opts->flow, "dense or a built-in flow (block_topk)")
                   ->capture_default_str();
  auto* topk = decode->add_option("--topk-val", opts->topk_val, "pages kept by top-k")
                   ->capture_default_str();
  decode->add_option("--bos", opts->bos, "leading pages always kept")->capture_default_str();
  decode->add_option("--eos", opts->eos, "trailing pages always kept")->capture_default_str();
  decode
      ->add_option("--layers-skip", opts->layers_skip_text,
                   "layers that stay dense: comma-separated indices, or none")
      ->capture_default_str();
  decode->add_option("--page-size", opts->page_size, "tokens per KV page")->capture_default_str();
  auto* steps = decode->add_option("--steps", opts->steps, "timed steps (sweep: 20 per point)")
                    ->capture_default_str();
  auto* warmup =
      decode
          ->add_option("--warmup", opts->warmup,
                       "untimed steps first (sweep: 10 per point); runs on until a step has "
                       "completed a page, so both decode graphs are captured before timing")
          ->capture_default_str();
  decode->add_option("--seed", opts->seed, "weights and KV seed")->capture_default_str();
  decode->add_option("--json", opts->json, "write the report as JSON here");
  decode->add_flag("--csv", opts->csv, "also print one CSV line (sweep: one per point)");
  auto* trace = decode->add_option("--trace", opts->trace,
                                   "after the timed steps, record every kernel of --trace-steps "
                                   "more graph-replayed steps with CUPTI: per-stage and per-kernel "
                                   "times and the gaps between kernels (printed, and under "
                                   "\"trace\" in --json), Chrome trace JSON written here");
  decode->add_option("--trace-steps", opts->trace_steps, "steps --trace records")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  auto* contexts = decode
                       ->add_option("--contexts", opts->contexts,
                                    "sweep: tokens per request, e.g. 4096,8192,16384,32768 "
                                    "(one process, one model, one KV cache)")
                       ->delimiter(',');
  auto* flows =
      decode
          ->add_option("--flows", opts->flows,
                       "sweep: flows, dense once per context (e.g. dense,block_topk,quest)")
          ->delimiter(',')
          ->capture_default_str();
  auto* budgets = decode
                      ->add_option("--budgets", opts->budgets,
                                   "sweep: pages kept per row and sparse layer, topk_val + bos + "
                                   "eos (e.g. 16,32,64,128; default: --topk-val + bos + eos)")
                      ->delimiter(',');
  auto* kv_gib = decode
                     ->add_option("--kv-gib", opts->kv_gib,
                                  "sweep: cap the KV cache at this many GiB (0: what fits; the "
                                  "batch shrinks at contexts that do not fit)")
                     ->capture_default_str();
  contexts->excludes(context)->excludes(flow);
  trace->excludes(contexts);
  budgets->excludes(topk);
  flows->needs(contexts);
  budgets->needs(contexts);
  kv_gib->needs(contexts);
  decode->callback([opts, exit_code, contexts, steps, warmup] {
    auto skip = parse_layers_skip(opts->layers_skip_text);
    if (!skip.has_value()) {
      std::fprintf(stderr, "vortex bench decode: %s\n", skip.status().to_string().c_str());
      *exit_code = 2;
      return;
    }
    opts->layers_skip = std::move(skip).value();
    if (contexts->count() == 0) {
      *exit_code = run_decode_bench(*opts);
      return;
    }
    DecodeBenchOptions o = *opts;
    if (steps->count() == 0) o.steps = kSweepSteps;
    if (warmup->count() == 0) o.warmup = kSweepWarmup;
    *exit_code = run_decode_sweep(o);
  });
});
