// Internal helpers of the CPU kernels: reading and writing one [D] row of a paged K/V pool in
// either KV dtype (f32 or bf16) as fp32, and the token count of a request's page.
#pragma once

#include <cstdint>

#include "simd.h"
#include "vortex/core/check.h"
#include "vortex/core/dtype.h"
#include "vortex/kvcache/layout.h"

namespace vortex::cpu::detail {

/// Element offset of token `slot` (0..P-1) of (page, head) in a [num_pages, H_kv, P, D] pool.
inline int64_t kv_row_offset(const KVLayerView& kv, int64_t page, int64_t head, int64_t slot) {
  const int64_t block = static_cast<int64_t>(kv.page_size) * kv.head_dim;
  return page_block_offset(page, head, kv.num_kv_heads, block) + slot * kv.head_dim;
}

/// Copies `count` consecutive elements starting at element `offset` of `pool` into `out` as fp32.
inline void load_kv_rows(const void* pool, DType dtype, int64_t offset, int64_t count, float* out) {
  if (dtype == DType::kF32) {
    const float* src = static_cast<const float*>(pool) + offset;
    for (int64_t i = 0; i < count; ++i) out[i] = src[i];
  } else {
    VORTEX_CHECK_MSG(dtype == DType::kBF16, "CPU kernels support f32 or bf16 KV");
    const uint16_t* src = static_cast<const uint16_t*>(pool) + offset;
    VORTEX_SIMD
    for (int64_t i = 0; i < count; ++i) out[i] = bf16_to_f32(src[i]);
  }
}

/// Writes `count` fp32 values into `pool` at element `offset`, rounding to the KV dtype.
inline void store_kv_rows(void* pool, DType dtype, int64_t offset, int64_t count, const float* in) {
  if (dtype == DType::kF32) {
    float* dst = static_cast<float*>(pool) + offset;
    for (int64_t i = 0; i < count; ++i) dst[i] = in[i];
  } else {
    VORTEX_CHECK_MSG(dtype == DType::kBF16, "CPU kernels support f32 or bf16 KV");
    uint16_t* dst = static_cast<uint16_t*>(pool) + offset;
    for (int64_t i = 0; i < count; ++i) dst[i] = f32_to_bf16(in[i]);
  }
}

/// Tokens held by page `index` (0-based) of a request with `num_pages` pages.
inline int32_t tokens_in_page(int64_t index, int64_t num_pages, int32_t page_size,
                              int32_t last_page_len) {
  return index + 1 == num_pages ? last_page_len : page_size;
}

}  // namespace vortex::cpu::detail
