// The block_topk flow written by hand on the GPU: the indexer (centroid scores of every
// candidate page, over the planner's worklist) and the cache flow (the centroid = mean key of each
// completed page). Baselines that the flow compiler's generated kernels replace and are compared
// against.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "vortex/core/dtype.h"
#include "vortex/core/status.h"
#include "vortex/kernels/cuda/sparse_planner.h"
#include "vortex/kvcache/layout.h"

namespace vortex::gpu {

/// Indexer kernels (same results; for A/B measurements).
enum class CentroidScoreVariant : int32_t {
  kDefault = 0,       ///< VORTEX_INDEXER=old -> kFourInFlight, else kWholeChunk (read once)
  kFourInFlight = 1,  ///< the earlier kernel: 4 centroid loads per lane per round
  kWholeChunk = 2,    ///< a whole 64-page chunk's ids and centroids in flight at once
};

/// block_topk indexer: for every worklist chunk, score of candidate page j of row (b, h) =
/// ⟨mean_g q[b, h*G + g], centroid[page, h, 0]⟩, written to the row page space.
///   q          [B, H_q, D] f32 or bf16
///   centroids  [num_pages, H_kv, 1, D] bf16
///   scores     row page space, fp32
Status centroid_scores(const void* q, DType q_dtype, int32_t num_q_heads, int32_t num_kv_heads,
                       int32_t head_dim, const AuxFieldView& centroids, const PageTableView& pt,
                       const WorkListView& work, float* scores, cudaStream_t stream,
                       CentroidScoreVariant variant = CentroidScoreVariant::kDefault);

/// block_topk cache flow: centroid[page, h, 0, :] = mean over the P keys of K[page, h] (bf16),
/// for the first min(*num_pages_dev, max_pages) ids of `pages` (num_pages_dev null: max_pages).
Status compute_centroids(const KVLayerView& kv, const AuxFieldView& centroids, const int32_t* pages,
                         const int32_t* num_pages_dev, int32_t max_pages, cudaStream_t stream);

}  // namespace vortex::gpu
