// ForwardBatch: what the engine hands a model backend for one step — a mix of prefill chunks and
// decode tokens over the paged KV cache — and what comes back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "vortex/flow/runtime.h"
#include "vortex/kvcache/page_table.h"

namespace vortex {

/// One request's part of a step.
struct SequenceChunk {
  const int32_t* tokens = nullptr;  ///< [num_tokens] new tokens (a prefill chunk, or 1 for decode)
  int32_t num_tokens = 0;
  int64_t start_pos = 0;       ///< tokens already in the cache = position of tokens[0]
  PageTable* pages = nullptr;  ///< reserved for start_pos + num_tokens; committed by forward
  const flow::SparseConfig* sparse = nullptr;  ///< null: dense
  bool want_logits = true;  ///< logits of the last token (false for a mid-prompt chunk)
};

struct ForwardBatch {
  std::vector<SequenceChunk> seqs;
};

/// Per-step counters for reporting (selected-page fraction etc.).
struct ForwardStats {
  int64_t selected_pages = 0;   ///< pages attended by sparse decode rows
  int64_t candidate_pages = 0;  ///< pages dense attention would have read for the same rows
  int64_t tokens = 0;
};

/// One sparse decode group's page selection at one layer, for tests and debugging (a backend's
/// set_selection_hook).
struct SelectionRecord {
  int32_t layer = 0;
  std::vector<size_t> chunks;  ///< batch index of each decode row of the group, in row order
  /// [rows, H_q, D] the queries the pages were scored with (CpuModel: fp32; CudaModel: empty).
  std::vector<float> q;
  /// Rows r * H_kv + h (r indexes `chunks`), physical page ids in attention order (CudaModel
  /// leaves the counters 0).
  flow::Selection selection;
};

/// Called for every sparse decode group and layer after page selection, before its attention.
/// CpuModel attends to the pages the hook leaves in `selection` (sel_indptr, sel_indices).
using SelectionHook = std::function<void(SelectionRecord&)>;

}  // namespace vortex
