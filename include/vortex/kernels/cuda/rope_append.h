// CUDA RoPE fused with the append of K/V into the paged cache: one pass over the QKV projection
// output adds the bias (Qwen2), applies the per-head q/k RMSNorm (Qwen3) and the rotation (both
// channel pairings, any scaling via a precomputed cos/sin table), writes q for attention and k/v
// straight into their page slots.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "vortex/core/status.h"
#include "vortex/kvcache/layout.h"
#include "vortex/model/model_config.h"

namespace vortex::cuda {

/// Fills table[pos, i] = (cos, sin)(pos · inv_freq[i]) for pos < max_positions, i < D/2, with
/// inv_freq from cpu::rope_inv_freq (default / linear / llama3 scaling) and the angle formed in
/// fp32 exactly like the CPU reference. Enqueued on `stream`.
///   table [max_positions, D/2] float2 (device)
Status build_rope_table(const RopeConfig& rope, int32_t head_dim, int32_t max_positions,
                        float2* table, cudaStream_t stream);

struct RopeAppendParams {
  const __nv_bfloat16* qkv = nullptr;  // [n, qkv_stride]: q heads, then k heads, then v heads
  int64_t qkv_stride = 0;              // elements per token row, >= (H_q + 2 H_kv) D
  const float* bias = nullptr;         // [(H_q + 2 H_kv) D] or null (Qwen2)
  const float* q_norm = nullptr;       // [D] or null (Qwen3)
  const float* k_norm = nullptr;       // [D] or null (Qwen3)
  float norm_eps = 1e-6f;
  const int32_t* positions = nullptr;  // [n] rotation position of each token
  const int32_t* slots = nullptr;      // [n] page * P + offset; < 0: do not write K/V (padding)
  const float2* rope_table = nullptr;  // [max_positions, D/2] from build_rope_table
  int32_t max_positions = 0;
  RopeStyle style = RopeStyle::kHalfSplit;
  __nv_bfloat16* q_out = nullptr;  // [n, H_q, D]
  KVLayerView kv;                  // bf16 K/V pools [num_pages, H_kv, P, D]
  int64_t n = 0;                   // tokens
  int32_t num_q_heads = 0;         // H_q
};

/// Runs the fused kernel; head_dim must be 32, 64, 128 or 256.
void rope_append(const RopeAppendParams& params, cudaStream_t stream);

}  // namespace vortex::cuda
