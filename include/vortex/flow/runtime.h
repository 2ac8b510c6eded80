// The contract between the flow module and its users (model forward, engine, CUDA backend).
// The flow module (IR, builder, JSON, passes, interpreter) implements everything declared here;
// callers never see the IR.
//
// Aux fields of every loaded flow live side by side in one KVCache, named "<flow>/<field>", so
// requests with different flows share one batch and one pool, and prefix-shared pages carry the
// fields of every flow (they are pure functions of the page's K/V).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/kvcache/kv_cache.h"
#include "vortex/kvcache/layout.h"

namespace vortex::flow {

class FlowProgram;  // a verified, lowered flow; opaque outside the flow module
class PolicyExpr;   // a parsed budget policy expression

/// Budget parameters of a request (FLOW_SPEC "Selection"). Defaults match the reference.
struct BudgetParams {
  int32_t topk_val = 30;
  float topk_ratio = 0.0f;
  int32_t bos = 1;
  int32_t eos = 1;  ///< the last page (partial, no summary yet) is always selected, even when 0
  std::vector<int32_t> layers_skip;  ///< dense layers
  int32_t block_size = 16;           ///< page size P the flow was written for
  int32_t workload_chunk_size = 64;  ///< pages per indexer work item (CUDA worklist)
  std::shared_ptr<const PolicyExpr> policy;  ///< null: max(topk_val + bos + eos, floor(n * ratio))

  bool layer_is_dense(int32_t layer) const;
  /// budget = policy(pages, topk_val, topk_ratio, bos, eos, layer), clamped to >= bos + eos + 1.
  int64_t budget(int64_t pages, int32_t layer) const;
};

/// Per-request sparse configuration: which flow and which budget.
struct SparseConfig {
  std::shared_ptr<const FlowProgram> program;  ///< null means dense
  BudgetParams budget;
};

/// Per-row selection CSR on the host (rows b * H_kv + h), plus counters for reporting.
struct Selection {
  std::vector<int32_t> sel_indptr;   // [B * H_kv + 1]
  std::vector<int32_t> sel_indices;  // [sel_indptr.back()] physical page ids
  int64_t selected_pages = 0;        ///< Σ rows |selection|
  int64_t candidate_pages = 0;       ///< Σ rows n (what dense would read)
  SelectionView view() const;
};

/// Loads a built-in flow by name ("block_topk") or a flow from a .json file.
Expected<std::shared_ptr<const FlowProgram>> load_flow(std::string_view name_or_path);
/// Names of the built-in flows.
std::vector<std::string> builtin_flow_names();
/// Parses a policy expression (variables pages, topk_val, topk_ratio, bos, eos, layer);
/// errors give the column.
Expected<std::shared_ptr<const PolicyExpr>> parse_policy(std::string_view text);

/// Name of the flow ("block_topk").
const std::string& flow_name(const FlowProgram& program);
/// True for a flow without an indexer (dense).
bool flow_is_dense(const FlowProgram& program);
/// True when the flow uses Save (per-page state depending on history: no prefix cache).
bool flow_uses_save(const FlowProgram& program);
/// The aux fields the flow declares, for a cache with page size P and head dim D, named
/// "<flow>/<field>" with dtype `aux_dtype`.
std::vector<AuxFieldSpec> flow_aux_fields(const FlowProgram& program, int32_t page_size,
                                          int32_t head_dim, DType aux_dtype = DType::kBF16);

/// CPU: runs the cache flow on `pages` (physical ids whose last token was just written) of
/// `layer`, for every KV head, writing the flow's aux fields in `cache`. No-op for dense layers.
Status run_cache_flow_cpu(const FlowProgram& program, const BudgetParams& budget, KVCache& cache,
                          int32_t layer, std::span<const int32_t> pages);

/// CPU: selects pages for every row (b, h) of a decode batch at `layer`.
///   q    [B, H_q, D] fp32, the current query of each request (after RoPE / q-norm)
///   pt   the batch's page tables (CSR)
/// Rows within budget get all their pages. Writes `out` (resized).
Status select_pages_cpu(const FlowProgram& program, const BudgetParams& budget, const KVCache& cache,
                        int32_t layer, const float* q, int32_t num_q_heads, PageTableView pt,
                        Selection* out);

}  // namespace vortex::flow
