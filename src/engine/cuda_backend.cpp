// CudaBackend: StepPlan → ForwardBatch + per-chunk device sampling specs → CudaModel's
// plan / launch (graph replay for decode-only steps) / wait → sampled token ids.
#include "vortex/engine/cuda_backend.h"

#if defined(VORTEX_WITH_CUDA)

#include <cuda_runtime_api.h>

#include <algorithm>
#include <deque>

#include "backend_common.h"
#include "vortex/core/cuda_allocator.h"
#include "vortex/kvcache/kv_cache.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/cuda_model.h"
#include "vortex/model/synthetic_weights.h"

namespace vortex::engine {
namespace {

class CudaBackend : public Backend {
 public:
  CudaBackend(std::unique_ptr<CudaModel> model, KVCache cache, BackendInfo info)
      : model_(std::move(model)), cache_(std::move(cache)), info_(std::move(info)) {}

  ~CudaBackend() override {
    // Steps may still be in flight (the engine failed between launch and wait).
    while (!launched_.empty()) {
      (void)model_->wait(nullptr);
      launched_.pop_front();
    }
  }

  const BackendInfo& info() const override { return info_; }
  PagePool& pool() override { return cache_.pool(); }

  // The device sampler is stateless: seed, draw index and the request's parameters come with
  // each chunk.
  void add_sequence(uint64_t, const SamplingParams&) override {}
  void remove_sequence(uint64_t) override {}

  // Two steps may be in flight: CudaModel double-buffers its host staging and takes a decode
  // token from the previous step's samples on the device (token_from_prev).
  bool supports_overlap() const override { return true; }

  Status plan(const StepPlan& plan) override {
    if (planned_.plan != nullptr) {
      return internal_error("cuda backend: plan() twice without launch()");
    }
    if (launched_.size() >= 2) {
      return internal_error("cuda backend: two steps are already in flight");
    }
    batch_.seqs.clear();
    specs_.clear();
    from_prev_.clear();
    Step step;
    bool any_from_prev = false;
    for (const ScheduledChunk& c : plan.chunks) {
      batch_.seqs.push_back(to_sequence_chunk(c));
      from_prev_.push_back(c.token_from_prev);
      any_from_prev = any_from_prev || c.token_from_prev >= 0;
      if (!c.sample) continue;
      CudaSampleSpec spec;
      spec.params = c.sampling;
      spec.prompt = c.prompt;
      spec.generated = c.generated;
      spec.draw_index = c.draw_index();
      specs_.push_back(spec);
      step.host_logits = step.host_logits || c.top_logprobs >= 0;
    }
    VORTEX_RETURN_IF_ERROR(model_->plan(
        batch_, specs_,
        any_from_prev ? std::span<const int32_t>(from_prev_) : std::span<const int32_t>()));
    step.plan = &plan;
    step.samples = specs_.size();
    planned_ = step;
    return Status::ok();
  }

  Status launch() override {
    const Step step = planned_;
    planned_ = Step{};
    if (step.plan == nullptr) return internal_error("cuda backend: launch() without plan()");
    VORTEX_RETURN_IF_ERROR(model_->launch(cache_));
    launched_.push_back(step);
    return Status::ok();
  }

  Status wait(StepOutput* out) override {
    if (launched_.empty()) return internal_error("cuda backend: wait() without launch()");
    const Step step = launched_.front();
    launched_.pop_front();
    VORTEX_RETURN_IF_ERROR(model_->wait(&result_));
    out->samples.clear();
    out->stats = result_.stats;
    if (result_.tokens.size() != step.samples) {
      return internal_error("cuda backend: the step returned " +
                            std::to_string(result_.tokens.size()) + " samples for " +
                            std::to_string(step.samples) + " sampled chunks");
    }
    const auto V = static_cast<size_t>(info_.vocab_size);
    if (step.host_logits) {
      // The logits buffer holds the last step's rows only: a step that returns logprobs must be
      // the last one launched (the scheduler drains the pipeline after it).
      if (!launched_.empty()) {
        return internal_error("cuda backend: logprobs of a step with another step in flight");
      }
      logits_.resize(step.samples * V);
      VORTEX_RETURN_IF_ERROR(
          model_->read_logits(logits_.data(), static_cast<int64_t>(step.samples)));
    }
    size_t row = 0;
    for (const ScheduledChunk& c : step.plan->chunks) {
      if (!c.sample) continue;
      SampledToken s;
      s.token = result_.tokens[row];
      if (c.top_logprobs >= 0) {
        fill_logprobs(std::span<const float>(logits_.data() + row * V, V), c.top_logprobs, &s,
                      &order_);
      }
      out->samples.push_back(std::move(s));
      ++row;
    }
    return Status::ok();
  }

 private:
  /// A planned or launched step: what wait() needs of it.
  struct Step {
    const StepPlan* plan = nullptr;
    size_t samples = 0;        // chunks with sample
    bool host_logits = false;  // a chunk wants logprobs
  };

  std::unique_ptr<CudaModel> model_;
  KVCache cache_;
  BackendInfo info_;
  Step planned_;
  std::deque<Step> launched_;  // oldest first, at most two
  ForwardBatch batch_;         // scratch of plan(): CudaModel stages it on the host
  std::vector<CudaSampleSpec> specs_;
  std::vector<int32_t> from_prev_;
  CudaStepResult result_;
  std::vector<float> logits_;  // [sampled rows, vocab], only when a chunk wants logprobs
  std::vector<int32_t> order_;
};

CudaModelOptions model_options(const CudaBackendOptions& o) {
  CudaModelOptions mo;
  mo.device = o.device;
  mo.max_batch = o.max_batch;
  mo.max_tokens = o.max_tokens;
  mo.use_graphs = o.use_graphs;
  mo.gemm_autotune = o.gemm_autotune;
  return mo;
}

Expected<std::unique_ptr<CudaModel>> load_model(const std::string& spec,
                                                const CudaBackendOptions& options,
                                                const Checkpoint* checkpoint) {
  const CudaModelOptions mo = model_options(options);
  if (checkpoint != nullptr) return CudaModel::create(checkpoint->config, checkpoint->weights, mo);
  if (spec.rfind("synthetic:", 0) == 0) {
    VORTEX_ASSIGN_OR_RETURN(SyntheticSpec s, parse_synthetic_spec(spec));
    VORTEX_ASSIGN_OR_RETURN(ModelConfig config, synthetic_config(s.preset));
    return CudaModel::create_random(config, s.seed, mo);
  }
  VORTEX_ASSIGN_OR_RETURN(Checkpoint ck, load_checkpoint(spec));
  return CudaModel::create(ck.config, ck.weights, mo);
}

}  // namespace

Expected<std::unique_ptr<Backend>> make_cuda_backend(const std::string& spec,
                                                     const CudaBackendOptions& options,
                                                     const Checkpoint* checkpoint) {
  if (options.page_size < 16 || (options.page_size & (options.page_size - 1)) != 0) {
    return invalid_argument("page size on the GPU must be a power of two >= 16, got " +
                            std::to_string(options.page_size));
  }
  VORTEX_ASSIGN_OR_RETURN(std::unique_ptr<CudaModel> model, load_model(spec, options, checkpoint));
  const ModelConfig& mc = model->config();
  const KVCacheConfig kc = model->kv_cache_config(options.page_size, options.flows);
  VORTEX_RETURN_IF_ERROR(kc.validate());
  int64_t pages = options.kv_pages;
  if (pages <= 0) {
    if (!(options.kv_memory_fraction > 0.0 && options.kv_memory_fraction < 1.0)) {
      return invalid_argument("--kv-memory-fraction must be in (0, 1), got " +
                              std::to_string(options.kv_memory_fraction));
    }
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(options.device) != cudaSuccess ||
        cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
      (void)cudaGetLastError();
      return internal_error("cannot read the free memory of cuda:" +
                            std::to_string(options.device) + "; pass --kv-pages");
    }
    // Keep room for what the model allocates on its first steps (attention split buffers,
    // planner worklists, CUDA graphs): a GiB, or a tenth of what is free on small devices.
    const auto reserve = static_cast<int64_t>(std::min<size_t>(size_t{1} << 30, free_bytes / 10));
    const auto usable = static_cast<int64_t>(free_bytes) - reserve;
    pages = kc.pages_for_budget(
        static_cast<int64_t>(static_cast<double>(usable) * options.kv_memory_fraction));
  }
  pages = std::min<int64_t>(pages, int64_t{1} << 30);  // page ids are int32
  if (pages < 1) {
    return invalid_argument("the KV budget holds no page of " +
                            std::to_string(kc.bytes_per_page()) +
                            " bytes; raise --kv-memory-fraction or pass --kv-pages");
  }
  VORTEX_ASSIGN_OR_RETURN(KVCache cache, model->create_kv_cache(kc, static_cast<int32_t>(pages)));
  BackendInfo info;
  info.name = "cuda:" + std::to_string(options.device);
  info.model_name = options.model_name.empty() ? mc.name : options.model_name;
  info.page_size = options.page_size;
  info.vocab_size = mc.vocab_size;
  info.max_context = model->options().max_context > 0
                         ? std::min(mc.max_context, model->options().max_context)
                         : mc.max_context;
  info.num_layers = mc.num_layers;
  info.bytes_per_page = kc.bytes_per_page();
  info.eos_token_ids = mc.eos_token_ids;
  info.aux_fields_shared = false;  // CudaModel summarises completed pages for the step's flows
  return std::unique_ptr<Backend>(
      std::make_unique<CudaBackend>(std::move(model), std::move(cache), std::move(info)));
}

}  // namespace vortex::engine

#else  // !VORTEX_WITH_CUDA

#include "vortex/model/checkpoint.h"

namespace vortex::engine {

Expected<std::unique_ptr<Backend>> make_cuda_backend(const std::string&, const CudaBackendOptions&,
                                                     const Checkpoint*) {
  return unsupported(
      "this build has no CUDA backend; rebuild with the cuda preset (cmake --preset cuda) or use "
      "--device cpu");
}

}  // namespace vortex::engine

#endif  // VORTEX_WITH_CUDA
