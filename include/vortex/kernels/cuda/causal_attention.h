// CUDA causal attention of new tokens over the paged KV cache (prefill chunks, and decode tokens as
// chunks of one): every new token attends to the request's cached prefix and to the chunk's tokens
// up to itself, all read through the page table (the chunk's K/V are already appended). Two
// kernels: a tensor-core one (FlashAttention-2 style: bf16 mma.sync, fp32 accumulation and online
// softmax, cp.async double-buffered K/V tiles gathered through the page table) for head_dim 64 and
// 128, and a simple exact kernel on CUDA cores (fp32 throughout) for every head dim and as a
// fallback. VORTEX_PREFILL_KERNEL=mma|simple (read once per process) picks one; the default is mma
// where it applies.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "vortex/kvcache/layout.h"

namespace vortex::cuda {

/// Rows of queries one block handles: tile_tokens · G <= kCausalTileRows.
inline constexpr int32_t kCausalTileRows = 64;

/// The chunks of a step and the query tiles they are cut into (all device pointers).
struct CausalAttentionBatch {
  const int32_t* q_start = nullptr;    // [C + 1] chunk c owns token rows [q_start[c], q_start[c+1])
  const int32_t* start_pos = nullptr;  // [C] tokens cached before the chunk
  const int32_t* page_indptr = nullptr;   // [C + 1] CSR of each chunk's request pages
  const int32_t* page_indices = nullptr;  // [page_indptr[C]]
  const int32_t* tile_chunk = nullptr;    // [num_tiles] chunk of each tile
  const int32_t* tile_first = nullptr;    // [num_tiles] first token (within its chunk) of the tile
  int32_t num_tiles = 0;
  int32_t tile_tokens = 1;  // tokens per tile, <= kCausalTileRows / G
};

/// Tokens per tile for group size G (the host cuts chunks with it).
inline constexpr int32_t causal_tile_tokens(int32_t group_size) {
  return group_size >= kCausalTileRows ? 1 : kCausalTileRows / group_size;
}

/// Which kernel computes causal_attention. kAuto follows VORTEX_PREFILL_KERNEL (default kMma);
/// kMma falls back to kSimple for head dims other than 64 and 128.
enum class CausalKernel : int32_t { kAuto = 0, kMma = 1, kSimple = 2 };

/// Whether causal_attention(..., kernel) runs the tensor-core kernel for this head dim.
bool causal_attention_uses_mma(int32_t head_dim, CausalKernel kernel = CausalKernel::kAuto);

/// out[t, hq, :] = softmax(scale · q[t, hq] · Kᵀ) · V over the visible keys of token t.
///   q   [T, H_q, D] bf16   out [T, H_q, D] bf16   kv: bf16 pools, D in {64, 128, 256}
void causal_attention(const __nv_bfloat16* q, KVLayerView kv, const CausalAttentionBatch& batch,
                      int32_t num_q_heads, float scale, __nv_bfloat16* out, cudaStream_t stream,
                      CausalKernel kernel = CausalKernel::kAuto);

}  // namespace vortex::cuda
