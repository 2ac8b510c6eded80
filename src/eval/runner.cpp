// The eval runner: same prompts for every config, greedy decoding, RULER scoring, perplexity.
#include "vortex/eval/runner.h"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "vortex/model/tokenizer.h"

namespace vortex::eval {

Expected<EvalConfig> parse_eval_config(const std::string& spec, const flow::BudgetParams& base) {
  EvalConfig c;
  c.label = spec;
  c.options.budget = base;
  const size_t colon = spec.find(':');
  c.options.flow = spec.substr(0, colon);
  if (c.options.flow.empty()) return invalid_argument("empty flow name in config '" + spec + "'");
  if (colon == std::string::npos) return c;
  const std::string budget = spec.substr(colon + 1);
  const size_t slash = budget.find('/');
  try {
    size_t used = 0;
    if (slash == std::string::npos) {
      const int v = std::stoi(budget, &used);
      if (used != budget.size() || v <= 0) throw std::invalid_argument(budget);
      c.options.budget.topk_val = v;
      c.options.budget.topk_ratio = 0.0f;
    } else {
      const double num = std::stod(budget.substr(0, slash));
      const double den = std::stod(budget.substr(slash + 1));
      if (num <= 0 || den <= 0 || num > den) throw std::invalid_argument(budget);
      c.options.budget.topk_val = 0;
      c.options.budget.topk_ratio = static_cast<float>(num / den);
    }
  } catch (const std::exception&) {
    return invalid_argument("config '" + spec +
                            "': the budget after ':' must be a page count (block_topk:30) or a "
                            "fraction of the context (quest:1/8)");
  }
  return c;
}

namespace {

Expected<std::vector<flow::SparseConfig>> resolve(const std::vector<EvalConfig>& configs) {
  std::vector<flow::SparseConfig> out;
  for (const auto& c : configs) {
    auto sc = make_sparse_config(c.options);
    if (!sc) return sc.status().with_context("config '" + c.label + "'");
    out.push_back(std::move(*sc));
  }
  return out;
}

}  // namespace

Expected<EvalRun> run_eval(Generator& generator, const EvalOptions& options,
                           const Progress& progress) {
  if (options.configs.empty()) return invalid_argument("eval needs at least one config (--flows)");
  VORTEX_ASSIGN_OR_RETURN(auto sparse, resolve(options.configs));
  const Tokenizer& tok = generator.tokenizer();
  auto count = [&](std::string_view s) {
    return static_cast<int64_t>(tok.encode(s, /*add_special=*/false).size());
  };
  const auto start = std::chrono::steady_clock::now();
  const int64_t n_cfg = static_cast<int64_t>(options.configs.size());
  const int64_t total =
      n_cfg * (static_cast<int64_t>(options.tasks.size() * options.contexts.size()) * options.samples +
               static_cast<int64_t>(options.ppl_contexts.size()) * options.ppl_windows);
  int64_t done = 0;
  auto tick = [&] {
    ++done;
    if (progress) progress(done, total);
  };

  EvalRun run;
  TaskGenerator gen(options.haystack, count);
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  greedy.max_tokens = options.max_tokens;
  greedy.stop = {"\n\n"};
  for (TaskKind kind : options.tasks) {
    for (int64_t ctx : options.contexts) {
      for (int32_t i = 0; i < options.samples; ++i) {
        const double depth = options.depths[static_cast<size_t>(i) % options.depths.size()];
        const uint64_t seed = options.seed * 1000003ULL + static_cast<uint64_t>(i);
        // Leave room for the answer inside the model's context.
        const int64_t budget_tokens = std::min<int64_t>(ctx, generator.config().max_context - options.max_tokens - 8);
        VORTEX_ASSIGN_OR_RETURN(Sample s, gen.generate(kind, budget_tokens, depth, seed));
        GenerationRequest req;
        req.prompt = s.prompt();
        req.sampling = greedy;
        for (size_t c = 0; c < sparse.size(); ++c) {
          req.sparse = sparse[c];
          auto out = generator.generate(req);
          if (!out) return out.status().with_context(fmt::format("{} sample {}", task_name(kind), i));
          run.samples.push_back({options.configs[c].label, std::string(task_name(kind)), ctx, depth, i,
                                 score_output(s, out->text), out->selected_fraction()});
          tick();
        }
      }
    }
  }

  // Perplexity: windows of the haystack; prefill `ctx` tokens densely, then score the next
  // `ppl_tokens` one decode step at a time (the flow selects pages as in generation).
  if (!options.ppl_contexts.empty()) {
    const std::string& text = options.haystack;
    if (text.empty()) return invalid_argument("perplexity needs a haystack text (--haystack)");
    const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false);
    for (int64_t ctx : options.ppl_contexts) {
      const int64_t need = ctx + options.ppl_tokens;
      if (need > generator.config().max_context || need > static_cast<int64_t>(ids.size())) {
        return invalid_argument(fmt::format("perplexity context {} + {} tokens exceeds the model's "
                                            "context or the text", ctx, options.ppl_tokens));
      }
      const int64_t stride = (static_cast<int64_t>(ids.size()) - need) / std::max(1, options.ppl_windows);
      for (size_t c = 0; c < sparse.size(); ++c) {
        ScoreResult sum;
        for (int32_t w = 0; w < options.ppl_windows; ++w) {
          const int32_t* base = ids.data() + w * stride;
          auto r = generator.score({base, static_cast<size_t>(ctx)},
                                   {base + ctx, static_cast<size_t>(options.ppl_tokens)}, sparse[c]);
          if (!r) return r.status().with_context(fmt::format("perplexity at {}", ctx));
          sum.nll_sum += r->nll_sum;
          sum.scored_tokens += r->scored_tokens;
          sum.selected_pages += r->selected_pages;
          sum.candidate_pages += r->candidate_pages;
          tick();
        }
        run.perplexity.push_back({options.configs[c].label, ctx, sum.perplexity(), sum.scored_tokens,
                                  sum.candidate_pages > 0 ? static_cast<double>(sum.selected_pages) /
                                                                static_cast<double>(sum.candidate_pages)
                                                          : 1.0});
      }
    }
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

}  // namespace vortex::eval
