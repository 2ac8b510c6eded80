// The tensor-core causal attention kernel (head_dim 64 and 128), private to prefill_attention/:
// causal_attention.cu dispatches to it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "vortex/kernels/cuda/causal_attention.h"

namespace vortex::cuda::detail {

/// Head dims the tensor-core kernel handles.
inline constexpr bool causal_mma_supports(int32_t head_dim) {
  return head_dim == 64 || head_dim == 128;
}

/// Same contract as cuda::causal_attention; kv.head_dim must satisfy causal_mma_supports.
void causal_attention_mma(const __nv_bfloat16* q, KVLayerView kv, const CausalAttentionBatch& batch,
                          int32_t num_q_heads, float scale, __nv_bfloat16* out,
                          cudaStream_t stream);

}  // namespace vortex::cuda::detail
