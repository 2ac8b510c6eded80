// CpuBackend: StepPlan → ForwardBatch → CpuModel::forward → per-request sampling and logprobs.
// Overlap-capable: each step runs at launch, so two may be "in flight" (queued results).
#include "vortex/engine/cpu_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>

#include "backend_common.h"
#include "vortex/kvcache/kv_cache.h"
#include "vortex/model/sampler.h"

namespace vortex::engine {

int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

namespace {

class CpuBackend : public Backend {
 public:
  CpuBackend(std::unique_ptr<CpuModel> model, KVCache cache, BackendInfo info)
      : model_(std::move(model)), cache_(std::move(cache)), info_(std::move(info)) {}

  const BackendInfo& info() const override { return info_; }
  PagePool& pool() override { return cache_.pool(); }

  void add_sequence(uint64_t seq_id, const SamplingParams& params) override {
    samplers_.insert_or_assign(seq_id, std::make_unique<Sampler>(params));
  }
  void remove_sequence(uint64_t seq_id) override { samplers_.erase(seq_id); }

  // Steps run at launch() (in launch order), so a step's token_from_prev reads the samples of the
  // previous launched step directly; wait() hands out the queued results, oldest first.
  bool supports_overlap() const override { return true; }

  Status plan(const StepPlan& plan) override {
    if (plan_ != nullptr) return internal_error("cpu backend: plan() twice without launch()");
    if (done_.size() >= 2) return internal_error("cpu backend: two steps are already in flight");
    batch_.seqs.clear();
    inputs_.assign(plan.chunks.size(), -1);
    int64_t rows = 0;
    for (size_t i = 0; i < plan.chunks.size(); ++i) {
      const ScheduledChunk& c = plan.chunks[i];
      SequenceChunk sc = to_sequence_chunk(c);
      if (c.token_from_prev >= 0) {
        if (c.tokens.size() != 1) {
          return invalid_argument("cpu backend: token_from_prev needs a chunk of one token");
        }
        if (!prev_ok_ || static_cast<size_t>(c.token_from_prev) >= prev_tokens_.size()) {
          return invalid_argument("cpu backend: token_from_prev row " +
                                  std::to_string(c.token_from_prev) +
                                  " is not a sample of the previous step");
        }
        inputs_[i] = prev_tokens_[static_cast<size_t>(c.token_from_prev)];
        sc.tokens = &inputs_[i];
      }
      batch_.seqs.push_back(sc);
      rows += c.sample ? 1 : 0;
    }
    logits_.resize(static_cast<size_t>(rows * info_.vocab_size));
    plan_ = &plan;
    return Status::ok();
  }

  Status launch() override {
    const StepPlan* plan = plan_;
    plan_ = nullptr;
    if (plan == nullptr) return internal_error("cpu backend: launch() without plan()");
    Done d;
    d.status = run(*plan, &d.out);
    if (!d.status.is_ok()) {
      // The launch contract holds on failure too (the engine plans the next step from it): the
      // chunks count as committed; their requests fail at wait().
      for (const ScheduledChunk& c : plan->chunks) {
        if (c.pages != nullptr && c.pages->num_tokens() == c.start_pos) {
          c.pages->commit(static_cast<int64_t>(c.tokens.size()));
        }
      }
    }
    prev_ok_ = d.status.is_ok();
    prev_tokens_.clear();
    for (const SampledToken& t : d.out.samples) prev_tokens_.push_back(t.token);
    done_.push_back(std::move(d));
    return Status::ok();
  }

  Status wait(StepOutput* out) override {
    if (done_.empty()) return internal_error("cpu backend: wait() without launch()");
    Done d = std::move(done_.front());
    done_.pop_front();
    if (!d.status.is_ok()) return d.status;
    *out = std::move(d.out);
    return Status::ok();
  }

 private:
  Status run(const StepPlan& plan, StepOutput* out) {
    out->samples.clear();
    out->stats = ForwardStats{};
    VORTEX_RETURN_IF_ERROR(model_->forward(batch_, cache_, logits_.data(), &out->stats));
    size_t row = 0;
    for (const ScheduledChunk& c : plan.chunks) {
      if (!c.sample) continue;
      const std::span<const float> logits(logits_.data() + row * info_.vocab_size,
                                          static_cast<size_t>(info_.vocab_size));
      ++row;
      auto it = samplers_.find(c.seq_id);
      if (it == samplers_.end()) {
        return internal_error("cpu backend: no sampler for request " + std::to_string(c.seq_id));
      }
      SampledToken s;
      s.token = it->second->sample(logits, c.prompt, c.generated);
      if (c.top_logprobs >= 0) fill_logprobs(logits, c.top_logprobs, &s, &order_);
      out->samples.push_back(std::move(s));
    }
    return Status::ok();
  }

  struct Done {
    Status status;
    StepOutput out;
  };

  std::unique_ptr<CpuModel> model_;
  KVCache cache_;
  BackendInfo info_;
  std::map<uint64_t, std::unique_ptr<Sampler>> samplers_;
  const StepPlan* plan_ = nullptr;
  ForwardBatch batch_;
  std::vector<int32_t> inputs_;  // [chunks] tokens taken from the previous step
  std::vector<float> logits_;    // [rows with sample, vocab]
  std::vector<int32_t> order_;
  std::vector<int32_t> prev_tokens_;  // the previous launched step's samples
  bool prev_ok_ = false;
  std::deque<Done> done_;  // launched steps' results, oldest first
};

}  // namespace

Expected<std::unique_ptr<Backend>> make_cpu_backend(std::unique_ptr<CpuModel> model,
                                                    const CpuBackendOptions& options) {
  if (model == nullptr) return invalid_argument("make_cpu_backend: no model");
  if (options.page_size <= 0 || (options.page_size & (options.page_size - 1)) != 0) {
    return invalid_argument("page size must be a power of two, got " +
                            std::to_string(options.page_size));
  }
  const ModelConfig& mc = model->config();
  const KVCacheConfig kc =
      model->kv_cache_config(options.page_size, options.kv_dtype, options.flows);
  VORTEX_RETURN_IF_ERROR(kc.validate());
  int64_t pages = options.kv_pages;
  if (pages <= 0) {
    if (!(options.kv_memory_fraction > 0.0 && options.kv_memory_fraction < 1.0)) {
      return invalid_argument("--kv-memory-fraction must be in (0, 1), got " +
                              std::to_string(options.kv_memory_fraction));
    }
    const int64_t ram = physical_memory_bytes();
    if (ram <= 0) return invalid_argument("cannot read physical memory size; pass --kv-pages");
    pages = kc.pages_for_budget(
        static_cast<int64_t>(static_cast<double>(ram) * options.kv_memory_fraction));
  }
  // Page ids are int32.
  pages = std::min<int64_t>(pages, int64_t{1} << 30);
  if (pages < 1) {
    return invalid_argument("the KV budget holds no page of " +
                            std::to_string(kc.bytes_per_page()) +
                            " bytes; raise --kv-memory-fraction or pass --kv-pages");
  }
  VORTEX_ASSIGN_OR_RETURN(KVCache cache, KVCache::create(kc, static_cast<int32_t>(pages)));
  BackendInfo info;
  info.name = "cpu";
  info.model_name = options.model_name.empty() ? mc.name : options.model_name;
  info.page_size = options.page_size;
  info.vocab_size = mc.vocab_size;
  info.max_context = mc.max_context;
  info.num_layers = mc.num_layers;
  info.bytes_per_page = kc.bytes_per_page();
  info.eos_token_ids = mc.eos_token_ids;
  info.aux_fields_shared = false;  // CpuModel summarises completed pages for the batch's flows only
  return std::unique_ptr<Backend>(
      std::make_unique<CpuBackend>(std::move(model), std::move(cache), std::move(info)));
}

}  // namespace vortex::engine
