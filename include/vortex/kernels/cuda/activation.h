// CUDA SwiGLU: silu(gate) * up from the fused gate/up projection output.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace vortex::cuda {

/// out[t, i] = silu(gate_up[t, i]) · gate_up[t, ffn + i] in fp32, rounded to bf16.
///   gate_up [n, 2 ffn] bf16 (gate columns first, then up)   out [n, ffn] bf16
void silu_mul(const __nv_bfloat16* gate_up, int64_t n, int32_t ffn, __nv_bfloat16* out,
              cudaStream_t stream);

}  // namespace vortex::cuda
