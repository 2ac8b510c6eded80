// Internal to CpuModel: the calls into the flow runtime (cache flows, page selection, aux fields),
// gathered in one place.
#pragma once

#include <span>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/flow/runtime.h"
#include "vortex/kvcache/kv_cache.h"

namespace vortex::detail {

/// True when `sparse` names a flow with an indexer (null, no program, or `dense` are dense).
bool is_sparse(const flow::SparseConfig* sparse);
/// True when a sparse request runs dense attention at `layer` (layers_skip).
bool layer_is_dense(const flow::SparseConfig& sparse, int32_t layer);
/// The aux fields of every sparse flow in `flows`, without duplicates.
std::vector<AuxFieldSpec> union_aux_fields(const std::vector<const flow::SparseConfig*>& flows,
                                           int32_t page_size, int32_t head_dim);
/// Runs `sparse`'s cache flow over `pages` of `layer`.
Status run_cache_flow(const flow::SparseConfig& sparse, KVCache& cache, int32_t layer,
                      std::span<const int32_t> pages);
/// Selects pages for every row of a decode batch whose requests all use `sparse`.
///   q [B, H_q, D]
Status select_pages(const flow::SparseConfig& sparse, const KVCache& cache, int32_t layer,
                    const float* q, int32_t num_q_heads, PageTableView pt, flow::Selection* out);

}  // namespace vortex::detail
