// Generator, token level: one request at a time over a KV cache sized for it — chunked prefill,
// then sample / decode until max_tokens, a stop token or the caller says stop.
#include <algorithm>
#include <chrono>

#include "generate_impl.h"
#include "vortex/model/tokenizer.h"

namespace vortex {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

bool contains(const std::vector<int32_t>& ids, int32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

double GenerationResult::decode_tokens_per_second() const {
  const auto steps = static_cast<double>(output_ids.size()) - 1.0;
  return decode_seconds > 0.0 && steps > 0.0 ? steps / decode_seconds : 0.0;
}

double GenerationResult::selected_fraction() const {
  return candidate_pages > 0 ? static_cast<double>(selected_pages) / candidate_pages : 1.0;
}

namespace {

class CpuRunner : public ForwardRunner {
 public:
  explicit CpuRunner(std::unique_ptr<CpuModel> model) : model_(std::move(model)) {}
  const ModelConfig& config() const override { return model_->config(); }
  Expected<KVCache> make_cache(int32_t page_size, DType kv_dtype, const flow::SparseConfig& sparse,
                               int32_t pages) override {
    return KVCache::create(model_->kv_cache_config(page_size, kv_dtype, {&sparse}), pages);
  }
  Status forward(const ForwardBatch& batch, KVCache& cache, float* logits,
                 ForwardStats* stats) override {
    return model_->forward(batch, cache, logits, stats);
  }

 private:
  std::unique_ptr<CpuModel> model_;
};

}  // namespace

std::unique_ptr<ForwardRunner> make_cpu_runner(std::unique_ptr<CpuModel> model) {
  return std::make_unique<CpuRunner>(std::move(model));
}

Generator::Generator() : impl_(std::make_unique<Impl>()) {}
Generator::~Generator() = default;

Expected<std::unique_ptr<Generator>> Generator::load(const std::string& model,
                                                     const GeneratorOptions& options) {
  VORTEX_ASSIGN_OR_RETURN(Checkpoint ck, load_checkpoint(model));
  return from_checkpoint(std::move(ck), options);
}

Expected<std::unique_ptr<Generator>> Generator::from_checkpoint(Checkpoint checkpoint,
                                                                const GeneratorOptions& options) {
  if (options.kv_dtype != DType::kF32 && options.kv_dtype != DType::kBF16) {
    return invalid_argument("KV dtype must be f32 or bf16 on the CPU, got " +
                            std::string(dtype_name(options.kv_dtype)));
  }
  if (options.page_size <= 0 || (options.page_size & (options.page_size - 1)) != 0) {
    return invalid_argument("page size must be a power of two, got " +
                            std::to_string(options.page_size));
  }
  if (options.prefill_chunk <= 0) {
    return invalid_argument("prefill chunk must be positive, got " +
                            std::to_string(options.prefill_chunk));
  }
  std::unique_ptr<Generator> g(new Generator());
  Impl& m = *g->impl_;
  m.options = options;
  VORTEX_RETURN_IF_ERROR(m.load_text_side(checkpoint));
  const ModelConfig& c = checkpoint.config;
  auto add_stop = [&](int32_t id) {
    if (id >= 0 && id < c.vocab_size && !contains(m.stop_ids, id)) m.stop_ids.push_back(id);
  };
  for (int32_t id : c.eos_token_ids) add_stop(id);
  for (int32_t id : m.tokenizer->end_of_generation_ids()) add_stop(id);
  if (options.cuda_device >= 0) {
    VORTEX_ASSIGN_OR_RETURN(m.model, make_cuda_runner(c, checkpoint.weights, options.cuda_device,
                                                      options.prefill_chunk));
  } else {
    VORTEX_ASSIGN_OR_RETURN(std::unique_ptr<CpuModel> cpu,
                            CpuModel::create(c, std::move(checkpoint.weights)));
    m.model = make_cpu_runner(std::move(cpu));
  }
  return g;
}

const ModelConfig& Generator::config() const { return impl_->model->config(); }
const Tokenizer& Generator::tokenizer() const { return *impl_->tokenizer; }
const std::vector<int32_t>& Generator::stop_ids() const { return impl_->stop_ids; }

Expected<GenerationResult> Generator::generate_ids(std::span<const int32_t> prompt,
                                                   const SamplingParams& sampling,
                                                   const flow::SparseConfig& sparse,
                                                   const TokenCallback& on_token) {
  Impl& m = *impl_;
  const ModelConfig& c = m.model->config();
  VORTEX_RETURN_IF_ERROR(sampling.validate());
  if (prompt.empty()) return invalid_argument("the prompt has no tokens; give a non-empty prompt");
  for (int32_t id : prompt) {
    if (id < 0 || id >= c.vocab_size) {
      return invalid_argument("prompt token " + std::to_string(id) +
                              " is outside the vocabulary of " + std::to_string(c.vocab_size));
    }
  }
  const auto prompt_len = static_cast<int64_t>(prompt.size());
  const int64_t total = prompt_len + sampling.max_tokens;
  if (total > c.max_context) {
    return invalid_argument("prompt (" + std::to_string(prompt_len) + " tokens) + max_tokens (" +
                            std::to_string(sampling.max_tokens) + ") exceeds the context of " +
                            std::to_string(c.max_context) + "; lower --max-tokens");
  }
  const int32_t P = sparse.program != nullptr ? sparse.budget.block_size : m.options.page_size;
  if (P <= 0 || (P & (P - 1)) != 0) {
    return invalid_argument("the flow's block size must be a power of two, got " +
                            std::to_string(P));
  }
  const auto pages = static_cast<int32_t>((total + P - 1) / P);
  VORTEX_ASSIGN_OR_RETURN(KVCache cache, m.model->make_cache(P, m.options.kv_dtype, sparse, pages));
  PageTable table(P);
  VORTEX_RETURN_IF_ERROR(table.reserve(total, cache.pool()));

  GenerationResult result;
  result.prompt_ids.assign(prompt.begin(), prompt.end());
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));  // [vocab]
  ForwardStats stats;
  const auto start = Clock::now();
  for (int64_t first = 0; first < prompt_len; first += m.options.prefill_chunk) {
    const int64_t n = std::min<int64_t>(m.options.prefill_chunk, prompt_len - first);
    const bool last = first + n == prompt_len;
    const ForwardBatch batch{{SequenceChunk{prompt.data() + first, static_cast<int32_t>(n), first,
                                            &table, &sparse, last}}};
    VORTEX_RETURN_IF_ERROR(m.model->forward(batch, cache, logits.data(), nullptr));
  }
  Sampler sampler(sampling);
  Clock::time_point decode_start;
  result.finish_reason = "length";
  while (true) {
    const int32_t token = sampler.sample(logits, result.prompt_ids, result.output_ids);
    if (result.output_ids.empty()) {
      result.prefill_seconds = seconds_since(start);
      decode_start = Clock::now();
    }
    if (contains(sampling.stop_token_ids, token) ||
        (!sampling.ignore_eos && contains(m.stop_ids, token))) {
      result.finish_reason = "stop";
      break;
    }
    result.output_ids.push_back(token);
    if (on_token && !on_token(token)) {
      result.finish_reason = "stop";
      break;
    }
    if (static_cast<int32_t>(result.output_ids.size()) >= sampling.max_tokens) break;
    const ForwardBatch batch{{SequenceChunk{&token, 1, table.num_tokens(), &table, &sparse, true}}};
    VORTEX_RETURN_IF_ERROR(m.model->forward(batch, cache, logits.data(), &stats));
  }
  result.decode_seconds = seconds_since(decode_start);
  result.selected_pages = stats.selected_pages;
  result.candidate_pages = stats.candidate_pages;
  return result;
}

}  // namespace vortex
