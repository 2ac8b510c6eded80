// Warming the L2 ahead of a kernel that streams a byte range once (decode GEMM weights): bulk L2
// prefetches (cp.async.bulk.prefetch.L2, sm_90) issued by a small grid on a side stream, so the
// DRAM reads of the next GEMM start while the kernels before it still run. Nothing is returned to
// the SMs and nothing waits for completion: the kernel only issues requests, and a later reader
// finds the lines in the L2 or in flight. It changes no result (no stores).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "vortex/kvcache/layout.h"

namespace vortex::cuda {

/// A byte range to prefetch into the L2 (p 16-byte aligned; null or empty: none).
struct L2Range {
  const void* p = nullptr;
  size_t bytes = 0;
};

/// Prefetches [p, p + bytes) into the L2 with `ctas` CTAs of one warp (each thread a few
/// 16 KiB chunks). p must be 16-byte aligned; a tail of fewer than 16 bytes is skipped. Returns
/// the launch error, if any.
cudaError_t l2_prefetch(const void* p, size_t bytes, int ctas, cudaStream_t stream);

/// Prefetches, for every request b of `pt`, the rows of its first ceil(fraction · n_b) pages in
/// a per-page pool (page p at pool + p · page_bytes; page_bytes a multiple of 16, at most 1 MiB):
/// the page summaries an indexer is about to read, in the order it reads them. One-warp CTAs,
/// requests dealt round robin. Reads the page table on the device (graph-safe).
cudaError_t l2_prefetch_pages(const PageTableView& pt, const void* pool, size_t page_bytes,
                              float fraction, int ctas, cudaStream_t stream);

}  // namespace vortex::cuda
