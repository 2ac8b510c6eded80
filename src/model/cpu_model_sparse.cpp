// CpuModel's bridge to the flow runtime (flow/runtime.h).
#include "cpu_model_sparse.h"

#include <algorithm>

namespace vortex::detail {

bool is_sparse(const flow::SparseConfig* sparse) {
  return sparse != nullptr && sparse->program != nullptr && !flow::flow_is_dense(*sparse->program);
}

bool layer_is_dense(const flow::SparseConfig& sparse, int32_t layer) {
  return sparse.budget.layer_is_dense(layer);
}

std::vector<AuxFieldSpec> union_aux_fields(const std::vector<const flow::SparseConfig*>& flows,
                                           int32_t page_size, int32_t head_dim) {
  std::vector<AuxFieldSpec> fields;
  for (const flow::SparseConfig* f : flows) {
    if (!is_sparse(f)) continue;
    for (AuxFieldSpec& spec : flow::flow_aux_fields(*f->program, page_size, head_dim)) {
      const bool seen = std::any_of(fields.begin(), fields.end(),
                                    [&](const AuxFieldSpec& s) { return s.name == spec.name; });
      if (!seen) fields.push_back(std::move(spec));
    }
  }
  return fields;
}

Status run_cache_flow(const flow::SparseConfig& sparse, KVCache& cache, int32_t layer,
                      std::span<const int32_t> pages) {
  return flow::run_cache_flow_cpu(*sparse.program, sparse.budget, cache, layer, pages);
}

Status select_pages(const flow::SparseConfig& sparse, const KVCache& cache, int32_t layer,
                    const float* q, int32_t num_q_heads, PageTableView pt, flow::Selection* out) {
  return flow::select_pages_cpu(*sparse.program, sparse.budget, cache, layer, q, num_q_heads, pt,
                                out);
}

}  // namespace vortex::detail
