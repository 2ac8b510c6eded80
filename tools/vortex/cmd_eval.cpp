// `vortex eval`: accuracy of dense vs sparse configs on the same RULER-style prompts, plus
// perplexity of long public-domain text, as JSON + Markdown (+ an SVG scatter with a bench JSON).
#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "command_registry.h"
#include "progress_bar.h"
#include "vortex/engine/device.h"
#include "vortex/eval/runner.h"
#include "vortex/kernels/device_info.h"
#include "vortex/version.h"

namespace {

struct EvalArgs {
  std::string model = "smollm2-135m";
  std::string device = "auto";
  std::string tasks = "passkey,niah_single,niah_multikey,niah_multivalue,niah_multiquery,vt,cwe";
  std::string contexts = "1024";
  std::string depths = "0.1,0.3,0.5,0.7,0.9";
  std::string flows = "dense,block_topk:1/8,quest:1/8";
  int samples = 10;
  uint64_t seed = 1;
  int max_tokens = 48;
  int bos = 1, eos = 1, block_size = 16;
  std::string layers_skip;
  std::string haystack;  // path, or "noise"
  std::string ppl_contexts;
  int ppl_tokens = 128, ppl_windows = 2;
  std::string kv_dtype = "f32";
  std::string json_out, md_out, bench_json, svg_out;
  bool quiet = false;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string default_haystack_path() {
  const char* dir = std::getenv("VORTEX_DATA_DIR");
  const char* home = std::getenv("HOME");
  return dir ? std::string(dir) + "/austen.txt"
             : std::string(home ? home : "/root") + "/.cache/vortex/data/austen.txt";
}

int fail(const vortex::Status& s) {
  fmt::print(stderr, "vortex eval: {}\n", s.to_string());
  return 1;
}

int run(const EvalArgs& a, const std::string& command_line) {
  using namespace vortex;
  eval::EvalOptions opt;
  try {
    for (const auto& t : split(a.tasks)) {
      auto k = eval::parse_task(t);
      if (!k) return fail(k.status());
      opt.tasks.push_back(*k);
    }
    for (const auto& c : split(a.contexts)) opt.contexts.push_back(std::stoll(c));
    for (const auto& d : split(a.depths)) opt.depths.push_back(std::stod(d));
    for (const auto& c : split(a.ppl_contexts)) opt.ppl_contexts.push_back(std::stoll(c));
  } catch (const std::exception&) {
    return fail(
        invalid_argument("--contexts, --depths and --ppl-contexts take comma-separated numbers"));
  }
  if (opt.depths.empty()) return fail(invalid_argument("--depths needs at least one value"));
  flow::BudgetParams base;
  base.bos = a.bos;
  base.eos = a.eos;
  base.block_size = a.block_size;
  try {
    for (const auto& l : split(a.layers_skip)) base.layers_skip.push_back(std::stoi(l));
  } catch (const std::exception&) {
    return fail(invalid_argument("--layers-skip takes comma-separated layer numbers"));
  }
  for (const auto& spec : split(a.flows)) {
    auto c = eval::parse_eval_config(spec, base);
    if (!c) return fail(c.status());
    opt.configs.push_back(*c);
  }
  opt.samples = a.samples;
  opt.seed = a.seed;
  opt.max_tokens = a.max_tokens;
  opt.ppl_tokens = a.ppl_tokens;
  opt.ppl_windows = a.ppl_windows;
  const std::string hay_path = a.haystack.empty() ? default_haystack_path() : a.haystack;
  if (a.haystack != "noise") {
    opt.haystack = read_file(hay_path);
    if (opt.haystack.empty()) {
      return fail(not_found("haystack text " + hay_path +
                            " is missing; run scripts/setup.sh, or pass --haystack noise"));
    }
  }
  GeneratorOptions gopt;
  auto kv = parse_dtype(a.kv_dtype);
  if (!kv || (*kv != DType::kF32 && *kv != DType::kBF16)) {
    return fail(invalid_argument("--kv-dtype must be f32 or bf16"));
  }
  gopt.kv_dtype = *kv;
  auto device = engine::parse_device(a.device);
  if (!device) return fail(device.status());
  if (device->is_cuda()) gopt.cuda_device = device->ordinal;
  auto gen = Generator::load(a.model, gopt);
  if (!gen) return fail(gen.status());

  cli::ProgressBar bar("eval", cli::ProgressBar::default_enabled(a.quiet));
  auto run = eval::run_eval(**gen, opt, [&](int64_t d, int64_t t) { bar.update(d, t); });
  if (!run) return fail(run.status());
  const std::string baseline = opt.configs.front().label;
  const auto cells = eval::summarize(run->samples, baseline);

  std::string md =
      fmt::format("# vortex eval — {} (git {})\n\n`{}`\n\n", a.model, VORTEX_GIT_SHA, command_line);
  md += eval::to_markdown(cells);
  if (!run->perplexity.empty()) {
    md +=
        "\n| perplexity | context | config | tokens | ppl | vs dense | selected pages "
        "|\n|---|---|---|---|---|---|---|\n";
    std::map<int64_t, double> dense;
    for (const auto& p : run->perplexity)
      if (p.config == baseline) dense[p.context] = p.perplexity;
    for (const auto& p : run->perplexity) {
      md += fmt::format("| | {} | {} | {} | {:.3f} | {:+.2f}% | {:.3f} |\n", p.context, p.config,
                        p.scored_tokens, p.perplexity,
                        100.0 * (p.perplexity / dense[p.context] - 1.0), p.selected_fraction);
    }
  }
  md += fmt::format("\n{} samples in {:.1f} s\n", run->samples.size(), run->seconds);
  fmt::print("{}", md);

  nlohmann::json j = {{"git_sha", VORTEX_GIT_SHA},
                      {"model", a.model},
                      {"device", device->is_cuda() ? cuda_device_summary(device->ordinal) : "cpu"},
                      {"command", command_line},
                      {"baseline", baseline},
                      {"seconds", run->seconds},
                      {"cells", eval::to_json(cells)}};
  j["perplexity"] = nlohmann::json::array();
  for (const auto& p : run->perplexity) {
    j["perplexity"].push_back({{"config", p.config},
                               {"context", p.context},
                               {"ppl", p.perplexity},
                               {"tokens", p.scored_tokens},
                               {"selected_fraction", p.selected_fraction}});
  }
  j["samples"] = nlohmann::json::array();
  for (const auto& s : run->samples) {
    j["samples"].push_back({{"config", s.config},
                            {"task", s.task},
                            {"context", s.context},
                            {"depth", s.depth},
                            {"index", s.index},
                            {"score", s.score},
                            {"selected_fraction", s.selected_fraction}});
  }
  if (!a.json_out.empty()) std::ofstream(a.json_out) << j.dump(2) << "\n";
  if (!a.md_out.empty()) std::ofstream(a.md_out) << md;
  if (!a.svg_out.empty()) {
    std::map<std::string, double> tput;
    if (!a.bench_json.empty()) {
      try {
        auto b = nlohmann::json::parse(read_file(a.bench_json));
        for (const auto& r : b.at("results"))
          tput[r.at("config").get<std::string>()] = r.at("tokens_per_s").get<double>();
      } catch (const std::exception& e) {
        return fail(
            invalid_argument(fmt::format("--bench {}: expected {{\"results\": [{{\"config\", "
                                         "\"tokens_per_s\"}}]}} ({})",
                                         a.bench_json, e.what())));
      }
    }
    std::ofstream(a.svg_out) << eval::scatter_svg(cells, tput,
                                                  "accuracy vs throughput: " + a.model);
  }
  return 0;
}

}  // namespace

VORTEX_REGISTER_COMMAND(eval, 50, [](CLI::App& app, int* exit_code) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand(
      "eval", "accuracy of dense vs sparse flows on RULER-style tasks and perplexity");
  cmd->add_option("--model", args->model, "model path, alias or synthetic:<preset>");
  cmd->add_option("--device", args->device, "cpu, cuda, cuda:N or auto (the GPU when there is one)")
      ->capture_default_str();
  cmd->add_option(
      "--tasks", args->tasks,
      "comma list: passkey,niah_single,niah_multikey,niah_multivalue,niah_multiquery,vt,cwe");
  cmd->add_option("--contexts", args->contexts, "comma list of context lengths in tokens");
  cmd->add_option("--depths", args->depths, "needle depths in [0,1], cycled over samples");
  cmd->add_option("--samples", args->samples, "samples per (task, context)");
  cmd->add_option(
      "--flows", args->flows,
      "configs: dense,block_topk:30 (pages),quest:1/8 (of the context); the first is the baseline");
  cmd->add_option("--seed", args->seed, "task seed");
  cmd->add_option("--max-tokens", args->max_tokens, "answer tokens per sample");
  cmd->add_option("--bos", args->bos, "sink pages");
  cmd->add_option("--eos", args->eos, "recent pages");
  cmd->add_option("--block-size", args->block_size, "page size P");
  cmd->add_option("--layers-skip", args->layers_skip, "dense layers, comma list");
  cmd->add_option("--haystack", args->haystack,
                  "haystack text file (default: the Austen text from setup) or 'noise'");
  cmd->add_option("--ppl-contexts", args->ppl_contexts,
                  "perplexity context lengths (comma list); empty skips");
  cmd->add_option("--ppl-tokens", args->ppl_tokens, "scored tokens per perplexity window");
  cmd->add_option("--ppl-windows", args->ppl_windows, "perplexity windows per context");
  cmd->add_option("--kv-dtype", args->kv_dtype, "f32 or bf16");
  cmd->add_option("--json", args->json_out, "write results JSON here");
  cmd->add_option("--md", args->md_out, "write the Markdown table here");
  cmd->add_option("--bench", args->bench_json,
                  "bench JSON with per-config tokens_per_s (for --svg)");
  cmd->add_option("--svg", args->svg_out, "write an accuracy-vs-throughput scatter here");
  cmd->add_flag("--quiet", args->quiet, "no progress bar");
  cmd->callback([args, exit_code, &app] {
    const std::string line = vortex::cli::command_line("vortex eval", *app.get_subcommand("eval"));
    *exit_code = run(*args, line);
  });
});
