// The eval runner: generates the task samples once, runs dense and every flow/budget config on
// the same prompts (greedy), scores them, and measures perplexity of long text under each config.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "vortex/eval/report.h"
#include "vortex/eval/tasks.h"
#include "vortex/model/generation.h"

namespace vortex::eval {

/// "dense", "block_topk:30" (topk_val 30 pages), "quest:1/8" (budget = 1/8 of the pages).
struct EvalConfig {
  std::string label;
  FlowOptions options;
};

/// Parses one config; `base` supplies bos / eos / layers_skip / block size.
Expected<EvalConfig> parse_eval_config(const std::string& spec, const flow::BudgetParams& base);

struct EvalOptions {
  std::vector<TaskKind> tasks;
  std::vector<int64_t> contexts;       ///< tokens
  std::vector<double> depths = {0.5};  ///< needle depths (cycled over samples)
  int32_t samples = 10;                ///< per (task, context)
  std::vector<EvalConfig> configs;     ///< the first "dense" one is the baseline
  uint64_t seed = 1;
  int32_t max_tokens = 48;
  std::string haystack;                 ///< text; empty uses noise sentences
  std::vector<int64_t> ppl_contexts;    ///< perplexity: context lengths (tokens); empty skips
  int32_t ppl_tokens = 128;             ///< scored continuation tokens per window
  int32_t ppl_windows = 2;              ///< windows per context length
};

struct PerplexityResult {
  std::string config;
  int64_t context = 0;
  double perplexity = 0.0;
  int64_t scored_tokens = 0;
  double selected_fraction = 1.0;
};

struct EvalRun {
  std::vector<SampleResult> samples;
  std::vector<PerplexityResult> perplexity;
  double seconds = 0.0;
};

/// Progress: (done, total) units of work.
using Progress = std::function<void(int64_t done, int64_t total)>;

Expected<EvalRun> run_eval(Generator& generator, const EvalOptions& options,
                           const Progress& progress = {});

}  // namespace vortex::eval
