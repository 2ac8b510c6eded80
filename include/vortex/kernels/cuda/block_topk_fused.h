// The block_topk sparse decode layer fused into one kernel: per row (b, h) of a decode batch, the
// centroid scores of the candidate pages, the row's exact (or approxTopK) top-k selection and
// attention over the selected pages, one CTA per row. Scores stay in shared memory; the
// selection is written to the planner's sel_indices (the same entries select_topk writes, so
// selection hooks and tests read it as before). Bitwise the selection of centroid_scores +
// select_topk (same score arithmetic, same radix select); the attention output matches
// PagedDecodeAttention over that selection to fp32 rounding. One CTA per row fills the GPU only
// when there are at least as many rows as SMs; the model uses it there
// (CudaModelOptions::fused_sparse).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "vortex/core/dtype.h"
#include "vortex/core/status.h"
#include "vortex/kernels/cuda/l2_prefetch.h"
#include "vortex/kvcache/layout.h"

namespace vortex::gpu {

/// Most pages per request the fused kernel takes (page ids and score keys of a row are kept in
/// shared memory: 8 bytes per page).
constexpr int32_t kBlockTopKFusedMaxPages = 4096;

struct BlockTopKFusedArgs {
  const void* q = nullptr;        ///< [B, H_q, D] io_dtype (after RoPE)
  DType io_dtype = DType::kBF16;  ///< q and out: bf16 or f32
  int32_t num_q_heads = 0, num_kv_heads = 0, head_dim = 0;
  AuxFieldView centroids;  ///< [num_pages, H_kv, 1, D] bf16
  KVLayerView kv;          ///< bf16 K/V pools
  PageTableView pt;
  const int32_t* sel_indptr = nullptr;  ///< the planner's per-row counts (CSR), [B * H_kv + 1]
  int32_t* sel_indices = nullptr;       ///< written: each row's selection
  int64_t sel_capacity = 0;
  int32_t bos = 0, eos = 1;
  float tolerance = 0.f;  ///< approxTopK tolerance (0: exact)
  float scale = 0.f;      ///< softmax scale (1 / sqrt(D))
  int32_t max_pages = 0;  ///< bound on any request's page count (<= kBlockTopKFusedMaxPages)
  void* out = nullptr;    ///< [B, H_q, D] io_dtype
  /// For stage timings (vortex_kernel_bench): 1 stops after the scores, 2 after the selection
  /// (then `out`, and for 1 the middle of the selection, are left unwritten); 3: the whole layer.
  int32_t stages = 3;
  /// A byte range the CTAs prefetch into the L2 as they finish (the next GEMM's weights;
  /// l2_prefetch.h), none by default.
  cuda::L2Range l2_prefetch;
};

/// Whether the fused kernel covers the shape: head_dim 64/128, group 1/2/3/4/8, page size a power
/// of two from 32 / (head_dim / 8) to 256, bf16/f32 q and output, max_pages within the bound.
bool block_topk_fused_supported(int32_t num_q_heads, int32_t num_kv_heads, int32_t head_dim,
                                int32_t page_size, DType io_dtype, int32_t max_pages);

/// One launch (graph-capturable, no host sync). Rows with more than max_pages pages or no pages
/// get a zero output (the caller guarantees the bound).
Status block_topk_fused(const BlockTopKFusedArgs& args, cudaStream_t stream);

/// The same selection + attention for any flow: the candidates' scores are read from `scores`
/// (fp32, the row page space of row_topk.h, as an indexer wrote them) instead of computed from
/// centroids (`args.centroids` unused). The selection is bitwise select_topk's over those scores.
Status fused_select_attend(const BlockTopKFusedArgs& args, const float* scores,
                           cudaStream_t stream);

}  // namespace vortex::gpu
