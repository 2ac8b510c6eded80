// Generator on a CUDA GPU: CudaModel behind the ForwardRunner interface (one request at a time,
// synchronous forward; bf16 KV cache in device memory, allocated per request).
#include "generate_impl.h"

#if defined(VORTEX_WITH_CUDA)
#include "vortex/model/cuda_model.h"
#endif

namespace vortex {

#if defined(VORTEX_WITH_CUDA)

namespace {

class CudaRunner : public ForwardRunner {
 public:
  explicit CudaRunner(std::unique_ptr<CudaModel> model) : model_(std::move(model)) {}
  const ModelConfig& config() const override { return model_->config(); }
  Expected<KVCache> make_cache(int32_t page_size, DType /*kv_dtype: always bf16 here*/,
                               const flow::SparseConfig& sparse, int32_t pages) override {
    return model_->create_kv_cache(model_->kv_cache_config(page_size, {&sparse}), pages);
  }
  Status forward(const ForwardBatch& batch, KVCache& cache, float* logits,
                 ForwardStats* stats) override {
    return model_->forward(batch, cache, logits, stats);
  }

 private:
  std::unique_ptr<CudaModel> model_;
};

}  // namespace

Expected<std::unique_ptr<ForwardRunner>> make_cuda_runner(const ModelConfig& config,
                                                          const WeightMap& weights, int32_t device,
                                                          int32_t max_tokens) {
  CudaModelOptions o;
  o.device = device;
  o.max_batch = 1;
  o.max_tokens = std::max(max_tokens, 1);
  o.use_graphs = false;  // one request, synchronous: nothing to replay
  VORTEX_ASSIGN_OR_RETURN(std::unique_ptr<CudaModel> model, CudaModel::create(config, weights, o));
  return std::unique_ptr<ForwardRunner>(std::make_unique<CudaRunner>(std::move(model)));
}

#else

Expected<std::unique_ptr<ForwardRunner>> make_cuda_runner(const ModelConfig&, const WeightMap&,
                                                          int32_t device, int32_t) {
  return unsupported("CUDA device " + std::to_string(device) +
                     " requested, but this build has no CUDA backend; rebuild with the cuda "
                     "preset or use --device cpu");
}

#endif

}  // namespace vortex
