// cpu::paged_prefill_attention: causal attention of a chunk of new tokens over everything cached
// for the request (prefix pages + the chunk itself, already appended). Per KV head the cached K/V
// are gathered to fp32 once; query tiles then run in parallel, each as two single-threaded GEMMs
// (scores, weighted values) with an exact fp32 softmax between them.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kv_access.h"
#include "parallel_for.h"
#include "vec8.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {
namespace {

constexpr int64_t kQueryTile = 32;  // query tokens per GEMM tile

/// Gathers tokens [0, total) of head h into a contiguous fp32 [total, D] buffer.
void gather_head(const void* pool, DType kv_dtype, const KVLayerView& kv, const int32_t* pages,
                 int32_t h, int64_t total, float* out) {
  const int64_t P = kv.page_size;
  for (int64_t first = 0; first < total; first += P) {
    const int32_t page = pages[first / P];
    VORTEX_CHECK(page >= 0 && page < kv.num_pages);
    const int64_t tokens = std::min(P, total - first);
    detail::load_kv_rows(pool, kv_dtype, detail::kv_row_offset(kv, page, h, 0),
                         tokens * kv.head_dim, out + first * kv.head_dim);
  }
}

/// s[0, visible) = softmax(s[0, visible)) in fp32 (exp8: within 2 ulp of e^x); s[visible, keys) =
/// 0 (the causal mask). Eight lanes at a time; the max and the sum take a fixed lane order.
VORTEX_CPU_CLONES void softmax_prefix(float* s, int64_t visible, int64_t keys) {
  const int64_t whole = visible / 8 * 8;
  float mx = s[0];
  if (whole > 0) {
    detail::V8 m8 = detail::load8(s);
    for (int64_t j = 8; j < whole; j += 8) {
      const detail::V8 x = detail::load8(s + j);
      m8 = x > m8 ? x : m8;
    }
    mx = detail::hmax8(m8);
  }
  for (int64_t j = whole; j < visible; ++j) mx = std::max(mx, s[j]);
  const detail::V8 mv = detail::splat8(mx);
  detail::V8 sum8{};
  for (int64_t j = 0; j < whole; j += 8) {
    const detail::V8 e = detail::exp8(detail::load8(s + j) - mv);
    detail::store8(s + j, e);
    sum8 += e;
  }
  float sum = detail::hsum8(sum8);
  for (int64_t j = whole; j < visible; ++j) {
    s[j] = std::exp(s[j] - mx);
    sum += s[j];
  }
  const float inv = 1.0f / sum;
  const detail::V8 iv = detail::splat8(inv);
  for (int64_t j = 0; j < whole; j += 8) detail::store8(s + j, detail::load8(s + j) * iv);
  for (int64_t j = whole; j < visible; ++j) s[j] *= inv;
  std::fill(s + visible, s + keys, 0.0f);
}

}  // namespace

void paged_prefill_attention(const float* q, KVLayerView kv, DType kv_dtype, const int32_t* pages,
                             int64_t start, int64_t n, int32_t num_q_heads, float scale,
                             float* out) {
  const int32_t hkv = kv.num_kv_heads;
  const int64_t dim = kv.head_dim;
  VORTEX_CHECK(hkv > 0 && dim > 0 && num_q_heads % hkv == 0 && start >= 0 && n >= 0);
  if (n == 0) return;
  detail::blas_in_caller_thread();
  const int64_t groups = num_q_heads / hkv;
  const int64_t total = start + n;
  std::vector<float> k_head(static_cast<size_t>(total * dim));  // [total, D]
  std::vector<float> v_head(static_cast<size_t>(total * dim));  // [total, D]
  const int64_t tiles = (n + kQueryTile - 1) / kQueryTile;
  // Per head: two GEMMs per query tile over keys [0, start + i0 + tile).
  const int64_t work = 2 * groups * dim * n * (start + (n + 1) / 2);

  for (int32_t h = 0; h < hkv; ++h) {
    gather_head(kv.k, kv_dtype, kv, pages, h, total, k_head.data());
    gather_head(kv.v, kv_dtype, kv, pages, h, total, v_head.data());
    // Tiles in parallel, the longest (last) first; each thread keeps its scratch across calls.
    detail::parallel_for(tiles, work, [&](int64_t t) {
      thread_local std::vector<float> q_tile, o_tile, scores;
      const int64_t i0 = (tiles - 1 - t) * kQueryTile;
      const int64_t tile = std::min(kQueryTile, n - i0);
      const int64_t rows = tile * groups;      // row (i, g): token i0 + i, query head h * G + g
      const int64_t keys = start + i0 + tile;  // causal bound of the tile's last token
      q_tile.resize(static_cast<size_t>(rows * dim));
      o_tile.resize(static_cast<size_t>(rows * dim));
      scores.resize(static_cast<size_t>(rows * keys));
      for (int64_t i = 0; i < tile; ++i) {
        const float* src = q + ((i0 + i) * num_q_heads + h * groups) * dim;  // [G, D]
        std::copy(src, src + groups * dim, q_tile.begin() + i * groups * dim);
      }
      // scores [rows, keys] = scale · q_tile · k_headᵀ
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows),
                  static_cast<blasint>(keys), static_cast<blasint>(dim), scale, q_tile.data(),
                  static_cast<blasint>(dim), k_head.data(), static_cast<blasint>(dim), 0.0f,
                  scores.data(), static_cast<blasint>(keys));
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t visible = start + i0 + r / groups + 1;  // keys [0, visible)
        softmax_prefix(scores.data() + r * keys, visible, keys);
      }
      // o_tile [rows, D] = scores · v_head[0:keys]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(rows),
                  static_cast<blasint>(dim), static_cast<blasint>(keys), 1.0f, scores.data(),
                  static_cast<blasint>(keys), v_head.data(), static_cast<blasint>(dim), 0.0f,
                  o_tile.data(), static_cast<blasint>(dim));
      for (int64_t i = 0; i < tile; ++i) {
        float* dst = out + ((i0 + i) * num_q_heads + h * groups) * dim;  // [G, D]
        std::copy(o_tile.begin() + i * groups * dim, o_tile.begin() + (i + 1) * groups * dim, dst);
      }
    });
  }
}

}  // namespace vortex::cpu
