// Generation on the CPU reference engine (or one CUDA GPU): load a checkpoint, size a KV cache for
// one request, prefill the prompt in chunks, decode until max_tokens / EOS / a stop string while
// streaming text, and report prompt and generated token counts, speed and the selected-page
// fraction. Used by `vortex generate` and by end-to-end tests (dense vs sparse).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/flow/runtime.h"
#include "vortex/model/model_config.h"
#include "vortex/model/sampler.h"

namespace vortex {

struct Checkpoint;
class CpuModel;
class Tokenizer;

/// Which flow and budget a request uses (the CLI's --flow and budget flags).
struct FlowOptions {
  std::string flow;  ///< "" or "dense": dense attention; else a built-in name or a .json file
  flow::BudgetParams budget;  ///< topk_val, topk_ratio, bos, eos, layers_skip, block_size
  std::string policy;         ///< budget policy expression; "" keeps the default
};

/// Resolves FlowOptions into a request's SparseConfig (program null for dense); errors name the
/// flow or the policy column.
Expected<flow::SparseConfig> make_sparse_config(const FlowOptions& options);

/// Engine-wide settings of a Generator.
struct GeneratorOptions {
  int32_t cuda_device = -1;      ///< >= 0: run on this CUDA GPU (CudaModel); -1: the CPU
  DType kv_dtype = DType::kF32;  ///< f32 or bf16 (CPU; the GPU's cache is always bf16)
  int32_t page_size = 16;        ///< P for dense requests (sparse ones use budget.block_size)
  int32_t prefill_chunk = 512;   ///< prompt tokens per prefill step
};

/// One text request.
struct GenerationRequest {
  std::string prompt;           ///< raw text, or the user message when `chat`
  bool chat = false;            ///< render through the checkpoint's chat template
  std::string system;           ///< chat: system message ("" keeps the template's default)
  bool enable_thinking = true;  ///< chat, Qwen3: false pre-fills an empty reasoning block
  SamplingParams sampling;
  flow::SparseConfig sparse;  ///< from make_sparse_config; default: dense
};

/// What a generation produced and how fast.
struct GenerationResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> output_ids;  ///< generated tokens, without a final EOS / stop token
  std::string text;                 ///< output text (stop string excluded)
  std::string finish_reason;        ///< "stop" (EOS, stop token, stop string) or "length"
  double prefill_seconds = 0.0;     ///< prompt processing, up to the first sampled token
  double decode_seconds = 0.0;      ///< every later step
  int64_t selected_pages = 0;       ///< Σ over sparse decode rows of pages attended
  int64_t candidate_pages = 0;      ///< Σ over the same rows of pages dense would read

  /// Decode throughput: tokens after the first / decode_seconds (0 when undefined).
  double decode_tokens_per_second() const;
  /// selected / candidate pages of sparse decode rows; 1 when no row was sparse.
  double selected_fraction() const;
};

/// Teacher-forced scoring of a continuation (for perplexity).
struct ScoreResult {
  double nll_sum = 0.0;  ///< Σ −log p(token) over the scored tokens (nats)
  int64_t scored_tokens = 0;
  int64_t selected_pages = 0;  ///< as in GenerationResult
  int64_t candidate_pages = 0;
  double perplexity() const;  ///< exp(nll_sum / scored_tokens)
};

/// Called with each new piece of output text (always whole UTF-8); return false to stop.
using TextCallback = std::function<bool(std::string_view piece)>;
/// Called with each generated token id (before text decoding); return false to stop.
using TokenCallback = std::function<bool(int32_t token)>;

/// Incremental stop-string search over streamed text: emits text as soon as it cannot be the
/// start of a stop string, and cuts the output before the first stop string.
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);
  /// Adds text; returns what is safe to emit now. Once a stop string is found, returns the text
  /// before it and stopped() turns true (later pushes return nothing).
  std::string push(std::string_view text);
  /// Ends the stream: returns any held-back text (unless stopped).
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // text that may still begin a stop string
  bool stopped_ = false;
};

/// A loaded model with its tokenizer and chat template, generating one request at a time.
class Generator {
 public:
  /// Loads `model` (a path, alias or synthetic:<preset>, see load_checkpoint).
  static Expected<std::unique_ptr<Generator>> load(const std::string& model,
                                                   const GeneratorOptions& options = {});
  static Expected<std::unique_ptr<Generator>> from_checkpoint(Checkpoint checkpoint,
                                                              const GeneratorOptions& options = {});
  ~Generator();

  const ModelConfig& config() const;
  const Tokenizer& tokenizer() const;
  /// EOS and end-of-turn ids that end a generation (model config + tokenizer).
  const std::vector<int32_t>& stop_ids() const;

  /// Prefills `context` (dense, chunked) and then feeds `continuation` one token per decode step
  /// — so the sparse flow selects pages exactly as in generation — summing the negative
  /// log-likelihood of each continuation token under the model's distribution before it.
  Expected<ScoreResult> score(std::span<const int32_t> context,
                              std::span<const int32_t> continuation,
                              const flow::SparseConfig& sparse);

  /// The prompt's token ids: chat template (when `chat`) then encoding, BOS as the vocabulary asks.
  Expected<std::vector<int32_t>> encode_prompt(const GenerationRequest& request) const;

  /// Text level: encodes the prompt, generates, decodes with stop strings, streams pieces.
  Expected<GenerationResult> generate(const GenerationRequest& request,
                                      const TextCallback& on_text = {});

  /// Token level: generates from `prompt` ids until max_tokens, an EOS / stop token (unless
  /// ignore_eos; stop_token_ids always stop) or `on_token` returning false. No text, no stop
  /// strings.
  Expected<GenerationResult> generate_ids(std::span<const int32_t> prompt,
                                          const SamplingParams& sampling,
                                          const flow::SparseConfig& sparse,
                                          const TokenCallback& on_token = {});

 private:
  Generator();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vortex
