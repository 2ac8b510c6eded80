// Exact and approximate radix top-k per row on the GPU: fills each row's selection (FLOW_SPEC
// "Selection") from the planner's sel_indptr and the indexer's scores. One CTA per row, any n,
// any number of rows, no temporary buffers: graph-safe.
//
// Score layout ("row page space" of the dense page table): the score of page j of row (b, h) is
//   scores[page_indptr[b] * H_kv + h * n_b + j]            n_b = page_indptr[b + 1] -
//   page_indptr[b]
// (fp32 or bf16). Only the candidates [bos, n - eos) of sparse rows are read.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "vortex/core/dtype.h"
#include "vortex/core/status.h"
#include "vortex/kvcache/layout.h"

namespace vortex::gpu {

/// Fills sel_indices of every row from the planner's sel_indptr: dense rows (count >= n) copy the
/// request's pages; sparse rows get pages [0, bos), then the k = count - bos - eos best-scoring
/// candidates of [bos, n - eos) in ascending page order (exact radix select, ties to the lower
/// page), then pages [n - eos, n) (eos counted as effective_eos(eos) >= 1). With tolerance > 0
/// the select may stop early (approxTopK): at most floor(tolerance * k) chosen pages differ from
/// the exact set. Any n, any number of rows. Rows ending past `sel_capacity` are left unwritten
/// (the planner clamps its offsets to the capacity and flags the overflow).
///   scores      row page space (see above), f32 or bf16
///   sel_indptr  [B * H_kv + 1]      sel_indices [sel_capacity]
Status select_topk(const void* scores, DType score_dtype, const PageTableView& pt,
                   int32_t num_kv_heads, const int32_t* sel_indptr, int32_t* sel_indices,
                   int64_t sel_capacity, int32_t bos, int32_t eos, float tolerance,
                   cudaStream_t stream);

}  // namespace vortex::gpu
