// `vortex bench serve`: end-to-end serving throughput and latency.
//   --offline: N requests submitted at once to an in-process engine (prompt length P, generation
//              length G, EOS ignored); throughput = generated tokens / time until the last
//              finishes.
//   --online:  Poisson arrivals at rate R for S seconds against a running server over HTTP (what
//              a client sees): TTFT, TPOT, end-to-end latency percentiles, achieved rate, errors.
#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>

#include "command_registry.h"
#include "progress_bar.h"
#include "vortex/engine/cpu_backend.h"
#include "vortex/engine/cuda_backend.h"
#include "vortex/engine/device.h"
#include "vortex/engine/engine.h"
#include "vortex/engine/flow_set.h"
#include "vortex/kernels/device_info.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/cpu_model.h"
#include "vortex/model/synthetic_weights.h"
#include "vortex/version.h"

namespace {

using Clock = std::chrono::steady_clock;

struct ServeBenchArgs {
  bool offline = false, online = false;
  std::string model = "smollm2-135m";
  std::string device = "auto";
  std::string flow = "dense";
  int topk_val = 30, bos = 1, eos = 1, page_size = 16;
  std::string kv_dtype = "f32";
  float topk_ratio = 0.0f;
  std::string layers_skip;
  int requests = 8, prompt_len = 256, gen_len = 64;
  bool ignore_eos = true;
  int64_t kv_pages = 0;
  int max_batch = 256, max_tokens_per_step = 2048;
  bool overlap = true;
  uint64_t seed = 1;
  // online
  std::string url = "http://127.0.0.1:8000";
  double rate = 1.0, duration = 30.0;
  std::string json_out;
  bool quiet = false;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double idx = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(idx);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

double mean(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

nlohmann::json latency_json(const std::vector<double>& v) {
  return {{"mean", mean(v)},
          {"p50", percentile(v, 50)},
          {"p95", percentile(v, 95)},
          {"p99", percentile(v, 99)}};
}

std::vector<int32_t> parse_list(const std::string& s) {
  std::vector<int32_t> out;
  size_t p = 0;
  while (p < s.size()) {
    size_t q = s.find(',', p);
    if (q == std::string::npos) q = s.size();
    if (q > p) out.push_back(std::stoi(s.substr(p, q - p)));
    p = q + 1;
  }
  return out;
}

int fail(const vortex::Status& s) {
  fmt::print(stderr, "vortex bench serve: {}\n", s.to_string());
  return 1;
}

void write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  std::ofstream(path) << j.dump(2) << "\n";
  fmt::print("JSON written to {}\n", path);
}

int run_offline(const ServeBenchArgs& a, const std::string& cmdline) {
  using namespace vortex;
  auto device = engine::parse_device(a.device);
  if (!device) return fail(device.status());
  const std::optional<DType> kv_dtype = parse_dtype(a.kv_dtype);
  if (!kv_dtype || (*kv_dtype != DType::kF32 && *kv_dtype != DType::kBF16)) {
    return fail(invalid_argument("--kv-dtype must be f32 or bf16, got '" + a.kv_dtype + "'"));
  }
  // A synthetic model on the GPU generates its weights there: no host checkpoint is built.
  const bool device_weights = device->is_cuda() && a.model.rfind("synthetic:", 0) == 0;
  std::optional<Checkpoint> ck;
  ModelConfig cfg;
  if (device_weights) {
    auto spec = parse_synthetic_spec(a.model);
    if (!spec) return fail(spec.status());
    auto c = synthetic_config(spec->preset);
    if (!c) return fail(c.status());
    cfg = *c;
  } else {
    auto loaded = load_checkpoint(a.model);
    if (!loaded) return fail(loaded.status());
    ck = std::move(*loaded);
    cfg = ck->config;
  }
  flow::BudgetParams budget;
  budget.topk_val = a.topk_val;
  budget.topk_ratio = a.topk_ratio;
  budget.bos = a.bos;
  budget.eos = a.eos;
  budget.block_size = a.page_size;
  try {
    budget.layers_skip = parse_list(a.layers_skip);
  } catch (const std::exception&) {
    return fail(invalid_argument("--layers-skip takes comma-separated layer numbers"));
  }
  std::vector<std::string> loaded;
  if (a.flow != "dense") loaded.push_back(a.flow);
  auto flows = engine::FlowSet::load(loaded, a.flow, budget, a.page_size, cfg.num_layers);
  if (!flows) return fail(flows.status());
  auto rflow = flows->resolve({});
  if (!rflow) return fail(rflow.status());
  if (a.prompt_len + a.gen_len > cfg.max_context) {
    return fail(
        invalid_argument(fmt::format("--prompt-len + --gen-len = {} exceeds the model's "
                                     "context of {}",
                                     a.prompt_len + a.gen_len, cfg.max_context)));
  }
  const int64_t kv_pages =
      a.kv_pages > 0 ? a.kv_pages
                     : static_cast<int64_t>(a.requests) *
                           ((a.prompt_len + a.gen_len + a.page_size - 1) / a.page_size + 1);
  std::unique_ptr<engine::Backend> backend;
  if (device->is_cuda()) {
    engine::CudaBackendOptions bo;
    bo.device = device->ordinal;
    bo.page_size = a.page_size;
    bo.kv_pages = kv_pages;
    bo.max_batch = a.max_batch;
    bo.max_tokens = std::max(a.max_tokens_per_step, a.max_batch);
    bo.flows = flows->configs();
    bo.model_name = a.model;
    auto b = engine::make_cuda_backend(a.model, bo, ck ? &*ck : nullptr);
    if (!b) return fail(b.status());
    backend = std::move(*b);
  } else {
    auto model = CpuModel::create(cfg, std::move(ck->weights));
    if (!model) return fail(model.status());
    engine::CpuBackendOptions bo;
    bo.page_size = a.page_size;
    bo.kv_dtype = *kv_dtype;
    bo.kv_pages = kv_pages;
    bo.flows = flows->configs();
    bo.model_name = a.model;
    auto b = engine::make_cpu_backend(std::move(*model), bo);
    if (!b) return fail(b.status());
    backend = std::move(*b);
  }
  ck.reset();  // the host weights are no longer needed
  engine::EngineConfig ec;
  ec.scheduler.max_batch = a.max_batch;
  ec.scheduler.max_tokens_per_step = a.max_tokens_per_step;
  ec.scheduler.max_waiting = std::max(ec.scheduler.max_waiting, a.requests);
  ec.scheduler.overlap = a.overlap;
  auto eng = engine::Engine::create(std::move(backend), ec);
  if (!eng) return fail(eng.status());

  // Random prompts over the ordinary vocabulary (same seed for every flow: same requests).
  std::mt19937_64 rng(a.seed);
  std::uniform_int_distribution<int32_t> tok(cfg.vocab_size > 1024 ? 256 : 0, cfg.vocab_size - 1);
  std::vector<std::shared_ptr<engine::RequestStream>> streams;
  std::vector<Clock::time_point> finished(static_cast<size_t>(a.requests));
  std::vector<double> ttft(static_cast<size_t>(a.requests), 0.0);
  const auto t0 = Clock::now();
  for (int i = 0; i < a.requests; ++i) {
    engine::GenerationRequest r;
    r.prompt.resize(static_cast<size_t>(a.prompt_len));
    for (auto& t : r.prompt) t = tok(rng);
    r.sampling.max_tokens = a.gen_len;
    r.sampling.ignore_eos = a.ignore_eos;
    r.flow = *rflow;
    auto s = (*eng)->submit(std::move(r));
    if (!s) return fail(s.status());
    streams.push_back(*s);
  }
  cli::ProgressBar bar("bench serve", cli::ProgressBar::default_enabled(a.quiet));
  int64_t generated = 0, done = 0;
  int32_t peak_pages = 0;
  std::vector<bool> over(streams.size(), false);
  std::string error;
  while (done < a.requests) {
    for (size_t i = 0; i < streams.size(); ++i) {
      if (over[i]) continue;
      while (auto ev = streams[i]->try_next()) {
        if (!ev->tokens.empty() && ttft[i] == 0.0) {
          ttft[i] = std::chrono::duration<double>(Clock::now() - t0).count();
        }
        if (ev->finish != engine::FinishReason::kNone) {
          over[i] = true;
          finished[i] = Clock::now();
          generated += ev->generated_tokens;
          if (ev->finish == engine::FinishReason::kError) error = ev->error;
          ++done;
          break;
        }
      }
    }
    peak_pages = std::max(peak_pages, (*eng)->metrics().kv_pages_used);
    bar.update(done, a.requests);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!error.empty()) return fail(internal_error("a request failed: " + error));
  std::vector<double> latency;
  for (const auto& f : finished) latency.push_back(std::chrono::duration<double>(f - t0).count());
  const auto m = (*eng)->metrics();
  const std::string leak = (*eng)->check_invariants();
  const std::string device_name =
      device->is_cuda()
          ? fmt::format("{} ({})", (*eng)->info().name, cuda_device_summary(device->ordinal))
          : (*eng)->info().name;
  (*eng)->shutdown(std::chrono::milliseconds(1000));
  const double tput = static_cast<double>(generated) / wall;
  const double sel = m.candidate_pages > 0 ? static_cast<double>(m.selected_pages) /
                                                 static_cast<double>(m.candidate_pages)
                                           : 1.0;
  const std::string label = a.flow == "dense" ? "dense" : fmt::format("{}:{}", a.flow, a.topk_val);
  fmt::print("vortex bench serve --offline ({}, device {})\n", cmdline, device_name);
  fmt::print("  requests {} x (prompt {} + gen {}), flow {}\n", a.requests, a.prompt_len, a.gen_len,
             label);
  fmt::print("  throughput       {:.1f} generated tok/s ({} tokens in {:.2f} s)\n", tput, generated,
             wall);
  fmt::print("  latency (s)      mean {:.2f}  p50 {:.2f}  p95 {:.2f}\n", mean(latency),
             percentile(latency, 50), percentile(latency, 95));
  fmt::print("  TTFT (s)         mean {:.2f}  p50 {:.2f}  p95 {:.2f}\n", mean(ttft),
             percentile(ttft, 50), percentile(ttft, 95));
  fmt::print("  peak KV pages    {} of {}; prefix hit rate {:.3f}; selected pages {:.3f}\n",
             peak_pages, m.kv_pages_total, m.prefix_hit_rate(), sel);
  // Decode after the last request's first token: every request decoding, no prefill left.
  const double decode_phase =
      ttft.empty() ? 0.0 : wall - *std::max_element(ttft.begin(), ttft.end());
  fmt::print("  decode phase     {:.2f} s after the last first token\n", decode_phase);
  fmt::print(
      "  steps            {} ({} overlapped, {} discarded tokens; overlap {}), {:.3f} ms/step\n",
      m.steps, m.overlapped_steps, m.discarded_tokens, a.overlap ? "on" : "off",
      m.steps > 0 ? 1e3 * wall / static_cast<double>(m.steps) : 0.0);
  if (!leak.empty()) fmt::print("  WARNING: scheduler invariant: {}\n", leak);
  nlohmann::json j = {{"git_sha", VORTEX_GIT_SHA},
                      {"command", cmdline},
                      {"mode", "offline"},
                      {"device", device_name},
                      {"model", a.model},
                      {"requests", a.requests},
                      {"prompt_len", a.prompt_len},
                      {"gen_len", a.gen_len},
                      {"generated_tokens", generated},
                      {"seconds", wall},
                      {"latency_s", latency_json(latency)},
                      {"ttft_s", latency_json(ttft)},
                      {"peak_kv_pages", peak_pages},
                      {"kv_pages_total", m.kv_pages_total},
                      {"prefix_hit_rate", m.prefix_hit_rate()},
                      {"selected_fraction", sel},
                      {"overlap", a.overlap},
                      {"kv_dtype", device->is_cuda() ? "bf16" : a.kv_dtype},
                      {"decode_phase_s", decode_phase},
                      {"steps", m.steps},
                      {"overlapped_steps", m.overlapped_steps},
                      {"discarded_tokens", m.discarded_tokens},
                      {"results", {{{"config", label}, {"tokens_per_s", tput}}}}};
  write_json(a.json_out, j);
  return leak.empty() ? 0 : 1;
}

// One streamed chat request: time to first content chunk, then the time of each later chunk.
struct OnlineSample {
  double ttft = 0.0, e2e = 0.0, tpot = 0.0;
  int tokens = 0;
  bool ok = false;
  std::string error;
};

OnlineSample one_request(const std::string& url, const std::string& body) {
  OnlineSample s;
  httplib::Client cli(url);
  cli.set_read_timeout(600, 0);
  const auto t0 = Clock::now();
  Clock::time_point first, last;
  std::string buf;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t /*off*/, uint64_t /*total*/) {
    buf.append(data, n);
    size_t p;
    while ((p = buf.find("\n\n")) != std::string::npos) {
      const std::string ev = buf.substr(0, p);
      buf.erase(0, p + 2);
      if (ev.rfind("data: ", 0) != 0 || ev == "data: [DONE]") continue;
      const auto now = Clock::now();
      if (s.tokens == 0) first = now;
      last = now;
      ++s.tokens;
    }
    return true;
  };
  auto res = cli.send(req);
  if (!res || res->status != 200) {
    s.error = res ? fmt::format("HTTP {}", res->status) : httplib::to_string(res.error());
    return s;
  }
  s.ok = s.tokens > 0;
  s.ttft = std::chrono::duration<double>(first - t0).count();
  s.e2e = std::chrono::duration<double>(last - t0).count();
  s.tpot =
      s.tokens > 1 ? std::chrono::duration<double>(last - first).count() / (s.tokens - 1) : 0.0;
  return s;
}

int run_online(const ServeBenchArgs& a, const std::string& cmdline) {
  if (a.rate <= 0 || a.duration <= 0)
    return fail(vortex::invalid_argument("--rate and --duration must be positive"));
  std::mt19937_64 rng(a.seed);
  std::exponential_distribution<double> gap(a.rate);
  std::uniform_int_distribution<int> letter(0, 25);
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<OnlineSample> samples;
  const auto t0 = Clock::now();
  double t = 0.0;
  int sent = 0;
  while (true) {
    t += gap(rng);
    if (t > a.duration) break;
    std::this_thread::sleep_until(
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(t)));
    // A prompt of ~prompt_len words of random letters (distinct per request: no prefix hits).
    std::string prompt;
    for (int w = 0; w < a.prompt_len; ++w) {
      prompt += static_cast<char>('a' + letter(rng));
      prompt += static_cast<char>('a' + letter(rng));
      prompt += ' ';
    }
    nlohmann::json body = {{"model", a.model}, {"prompt", prompt}, {"max_tokens", a.gen_len},
                           {"temperature", 0}, {"stream", true},   {"ignore_eos", a.ignore_eos}};
    if (a.flow != "dense") body["vortex"] = {{"flow", a.flow}, {"topk_val", a.topk_val}};
    threads.emplace_back([&, b = body.dump()] {
      OnlineSample s = one_request(a.url, b);
      std::lock_guard<std::mutex> lock(mu);
      samples.push_back(s);
    });
    ++sent;
  }
  for (auto& th : threads) th.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> ttft, tpot, e2e;
  int errors = 0;
  std::string first_error;
  for (const auto& s : samples) {
    if (!s.ok) {
      ++errors;
      if (first_error.empty()) first_error = s.error;
      continue;
    }
    ttft.push_back(s.ttft);
    tpot.push_back(s.tpot);
    e2e.push_back(s.e2e);
  }
  fmt::print("vortex bench serve --online ({})\n", cmdline);
  fmt::print("  sent {} requests in {:.1f} s (achieved {:.2f} req/s), errors {}{}\n", sent, wall,
             sent / wall, errors, first_error.empty() ? "" : " (first: " + first_error + ")");
  fmt::print("  TTFT (s)  p50 {:.3f}  p95 {:.3f}  p99 {:.3f}\n", percentile(ttft, 50),
             percentile(ttft, 95), percentile(ttft, 99));
  fmt::print("  TPOT (s)  p50 {:.4f}  p95 {:.4f}  p99 {:.4f}\n", percentile(tpot, 50),
             percentile(tpot, 95), percentile(tpot, 99));
  fmt::print("  E2E (s)   p50 {:.3f}  p95 {:.3f}  p99 {:.3f}\n", percentile(e2e, 50),
             percentile(e2e, 95), percentile(e2e, 99));
  nlohmann::json j = {{"git_sha", VORTEX_GIT_SHA},
                      {"command", cmdline},
                      {"mode", "online"},
                      {"url", a.url},
                      {"rate", a.rate},
                      {"duration", a.duration},
                      {"sent", sent},
                      {"achieved_rate", sent / wall},
                      {"errors", errors},
                      {"ttft_s", latency_json(ttft)},
                      {"tpot_s", latency_json(tpot)},
                      {"e2e_s", latency_json(e2e)}};
  write_json(a.json_out, j);
  return errors == 0 ? 0 : 1;
}

}  // namespace

VORTEX_REGISTER_COMMAND(bench_serve, 61, [](CLI::App& app, int* exit_code) {
  CLI::App* bench = app.get_subcommand("bench");  // registered by cmd_bench.cpp (order 60)
  auto args = std::make_shared<ServeBenchArgs>();
  auto* cmd = bench->add_subcommand(
      "serve", "end-to-end serving throughput (--offline) or latency (--online)");
  cmd->add_flag("--offline", args->offline, "N requests at once to an in-process engine");
  cmd->add_flag("--online", args->online, "Poisson arrivals against a running server (--url)");
  cmd->add_option("--model", args->model, "model path, alias or synthetic:<preset>");
  cmd->add_option("--device", args->device, "offline: cpu, cuda, cuda:N or auto");
  cmd->add_option("--flow", args->flow, "dense or a flow name / .json");
  cmd->add_option("--topk-val", args->topk_val, "pages per row");
  cmd->add_option("--topk-ratio", args->topk_ratio, "budget as a fraction of the pages");
  cmd->add_option("--bos", args->bos, "sink pages");
  cmd->add_option("--eos", args->eos, "recent pages");
  cmd->add_option("--layers-skip", args->layers_skip, "dense layers, comma list");
  cmd->add_option("--page-size", args->page_size, "P");
  cmd->add_option(
      "--kv-dtype", args->kv_dtype,
      "offline, CPU backend: KV cache dtype f32 (exact, default) or bf16 (half the bytes "
      "per decode step); the CUDA backend's cache is bf16");
  cmd->add_option("--requests", args->requests, "offline: number of requests");
  cmd->add_option("--prompt-len", args->prompt_len, "prompt tokens (online: words)");
  cmd->add_option("--gen-len", args->gen_len, "generated tokens per request");
  cmd->add_flag("!--respect-eos", args->ignore_eos, "stop at EOS (default: ignore EOS)");
  cmd->add_option("--kv-pages", args->kv_pages, "offline: KV pool pages (default: enough for all)");
  cmd->add_option("--max-batch", args->max_batch, "offline: scheduler batch limit");
  cmd->add_option("--max-tokens-per-step", args->max_tokens_per_step, "offline: step token budget");
  cmd->add_flag("!--no-overlap", args->overlap,
                "offline: run one engine step at a time (default: plan step N+1 while N runs)");
  cmd->add_option("--seed", args->seed, "prompt seed");
  cmd->add_option("--url", args->url, "online: server URL");
  cmd->add_option("--rate", args->rate, "online: requests per second (Poisson)");
  cmd->add_option("--duration", args->duration, "online: seconds of arrivals");
  cmd->add_option("--json", args->json_out, "write results JSON here");
  cmd->add_flag("--quiet", args->quiet, "no progress bar");
  cmd->callback([args, exit_code, cmd] {
    if (args->offline == args->online) {
      fmt::print(stderr, "vortex bench serve: pass exactly one of --offline or --online\n");
      *exit_code = 2;
      return;
    }
    const std::string line = vortex::cli::command_line("vortex bench serve", *cmd);
    *exit_code = args->offline ? run_offline(*args, line) : run_online(*args, line);
  });
});
