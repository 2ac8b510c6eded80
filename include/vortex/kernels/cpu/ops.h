// CPU reference kernels: fp32 arithmetic, readable, the oracle every CUDA kernel is tested against.
// Activations are fp32; the KV cache holds `kv_dtype` (f32 or bf16). Shapes next to every pointer.
#pragma once

#include <cstdint>

#include "vortex/core/dtype.h"
#include "vortex/kvcache/layout.h"
#include "vortex/model/model_config.h"

namespace vortex::cpu {

/// y[n, m] = x[n, k] · w[m, k]ᵀ (+ bias[m] when non-null). Multi-threaded (OpenMP): a streaming
/// kernel for few rows (decode reads each weight once), single-threaded OpenBLAS slices above.
void matmul(const float* x, const float* w, const float* bias, int64_t n, int64_t m, int64_t k,
            float* y);

/// out[n, d] = x / rms(x) * weight.
void rms_norm(const float* x, const float* weight, int64_t n, int64_t d, float eps, float* out);

/// residual[n, d] += x; out = rms_norm(residual) * weight  (the fused pre-norm of a block).
void add_rms_norm(float* residual, const float* x, const float* weight, int64_t n, int64_t d,
                  float eps, float* out);

/// Inverse frequencies inv_freq[D/2] of a RoPE config, as Hugging Face computes them (default,
/// linear and llama3 scaling). Pair i rotates by position · inv_freq[i].
void rope_inv_freq(const RopeConfig& rope, int32_t head_dim, float* inv_freq);

/// In place on x[n, heads, D]: rotates each head by its token's position (positions[n]).
void rope(float* x, const int32_t* positions, int64_t n, int32_t heads, int32_t head_dim,
          const RopeConfig& rope);

/// Writes K/V of n tokens into the paged cache. slots[n] = page * P + offset.
///   k, v  [n, H_kv, D] fp32 → kv.k / kv.v [num_pages, H_kv, P, D] in kv_dtype
void append_kv(KVLayerView kv, DType kv_dtype, const float* k, const float* v, const int32_t* slots,
               int64_t n);

/// Decode attention over the paged cache, one query token per request.
///   q    [B, H_q, D]   out [B, H_q, D]
///   sel  null: every page of the request; else the row's selected pages (rows b * H_kv + h),
///        whose last entry is the request's last page (holding last_page_len tokens).
void paged_decode_attention(const float* q, KVLayerView kv, DType kv_dtype, PageTableView pt,
                            const SelectionView* sel, int32_t num_q_heads, float scale, float* out);

/// Prefill attention of one request: n new tokens at positions [start, start + n) attend causally
/// over every cached token (prefix pages + the new tokens, already appended).
///   q [n, H_q, D]   out [n, H_q, D]   pages: the request's page list, num_tokens = start + n
void paged_prefill_attention(const float* q, KVLayerView kv, DType kv_dtype, const int32_t* pages,
                             int64_t start, int64_t n, int32_t num_q_heads, float scale,
                             float* out);

/// out[n, f] = silu(gate) * up, from gate_up [n, 2f] = (gate | up) or two separate inputs.
void silu_mul(const float* gate, const float* up, int64_t count, float* out);

/// out[n, d] = table[ids[n], :]
void embedding(const float* table, const int32_t* ids, int64_t n, int64_t d, float* out);

}  // namespace vortex::cpu
