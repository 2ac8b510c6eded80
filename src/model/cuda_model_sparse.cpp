// CudaModel's bridge to the flow runtime: the aux fields its KV cache needs, and which chunks ask
// for sparse attention. (The sparse decode pipeline itself — device planner, cache flow, indexer,
// top-k — plugs in here once the CUDA flow kernels land; until then sparse requests are refused
// with a clear error rather than silently run dense.)
#if defined(VORTEX_WITH_CUDA)

#include <algorithm>
#include <string>
#include <vector>

#include "cuda_model_impl.h"

namespace vortex {
namespace {

#if VORTEX_HAVE_FLOW
bool is_sparse(const flow::SparseConfig* sparse) {
  return sparse != nullptr && sparse->program != nullptr && !flow::flow_is_dense(*sparse->program);
}
#else
bool is_sparse(const flow::SparseConfig* sparse) {
  return sparse != nullptr && sparse->program != nullptr;
}
#endif

}  // namespace

KVCacheConfig CudaModel::kv_cache_config(
    int32_t page_size, const std::vector<const flow::SparseConfig*>& flows) const {
  const ModelConfig& c = impl_->config;
  KVCacheConfig kc;
  kc.num_layers = c.num_layers;
  kc.num_kv_heads = c.num_kv_heads;
  kc.head_dim = c.head_dim;
  kc.page_size = page_size;
  kc.kv_dtype = DType::kBF16;
#if VORTEX_HAVE_FLOW
  for (const flow::SparseConfig* f : flows) {
    if (!is_sparse(f)) continue;
    for (AuxFieldSpec& spec : flow::flow_aux_fields(*f->program, page_size, c.head_dim)) {
      const bool seen = std::any_of(kc.aux_fields.begin(), kc.aux_fields.end(),
                                    [&](const AuxFieldSpec& s) { return s.name == spec.name; });
      if (!seen) kc.aux_fields.push_back(std::move(spec));
    }
  }
  if (kc.aux_fields.empty()) return kc;
  for (int32_t l = 0; l < c.num_layers; ++l) {  // aux everywhere except layers all flows skip
    bool all_dense = true;
    for (const flow::SparseConfig* f : flows) {
      if (is_sparse(f) && !f->budget.layer_is_dense(l)) all_dense = false;
    }
    if (all_dense) kc.layers_skip.push_back(l);
  }
#else
  (void)flows;
#endif
  return kc;
}

Status CudaModel::Impl::check_dense_only(const ForwardBatch& batch) const {
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    if (is_sparse(batch.seqs[i].sparse)) {
      return unsupported("forward batch chunk " + std::to_string(i) +
                         ": sparse attention is not available on the CUDA backend in this build "
                         "(the GPU flow pipeline is not integrated yet); use --device cpu or a "
                         "dense request");
    }
  }
  return Status::ok();
}

}  // namespace vortex

#endif  // VORTEX_WITH_CUDA
