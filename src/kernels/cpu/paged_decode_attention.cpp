// cpu::paged_decode_attention: one query token per request over the paged cache, dense (every page
// of the request) or over each row's selected pages. Rows (b, h) run in parallel; the G query
// heads of a row share each K/V load; fp32 online softmax advanced one page tile at a time.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kv_access.h"
#include "parallel_for.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {
namespace {

/// q·k over D dims (one partial sum per SIMD lane under OpenMP's simd pragma).
inline float dot(const float* a, const float* b, int32_t dim) {
  float s = 0.0f;
  VORTEX_SIMD_SUM_S
  for (int32_t d = 0; d < dim; ++d) s += a[d] * b[d];
  return s;
}

/// Online-softmax state of the G query heads of one row, advanced one page tile at a time: the
/// tile's logits first, then one max update (and rescale of the accumulator) per head and tile,
/// then the tile's values folded in -- per token only an exp and an axpy.
struct RowAccumulator {
  int32_t groups, dim;
  std::vector<float> max_logit;  // [G]
  std::vector<float> denom;      // [G]
  std::vector<float> acc;        // [G, D]
  std::vector<float> logits;     // [P] of the current head and tile

  RowAccumulator(int32_t g, int32_t d, int32_t page_size)
      : groups(g),
        dim(d),
        max_logit(static_cast<size_t>(g), -std::numeric_limits<float>::infinity()),
        denom(static_cast<size_t>(g), 0.0f),
        acc(static_cast<size_t>(g) * d, 0.0f),
        logits(static_cast<size_t>(page_size)) {}

  /// Folds `tokens` tokens (k, v [tokens, D]) into every head's running softmax.
  VORTEX_CPU_CLONES void add_tile(const float* q, const float* k, const float* v, int32_t tokens,
                                  float scale) {
    const int32_t D = dim;
    for (int32_t g = 0; g < groups; ++g) {
      const float* qg = q + static_cast<int64_t>(g) * D;
      float tile_max = -std::numeric_limits<float>::infinity();
      for (int32_t t = 0; t < tokens; ++t) {
        const float logit = dot(qg, k + static_cast<int64_t>(t) * D, D) * scale;
        logits[static_cast<size_t>(t)] = logit;
        tile_max = std::max(tile_max, logit);
      }
      float* a = acc.data() + static_cast<int64_t>(g) * D;
      float& m = max_logit[static_cast<size_t>(g)];
      float& den = denom[static_cast<size_t>(g)];
      if (tile_max > m) {
        const float correction = std::exp(m - tile_max);  // 0 on the first tile (m = -inf)
        den *= correction;
        VORTEX_SIMD
        for (int32_t d = 0; d < D; ++d) a[d] *= correction;
        m = tile_max;
      }
      for (int32_t t = 0; t < tokens; ++t) {
        const float p = std::exp(logits[static_cast<size_t>(t)] - m);
        den += p;
        const float* vt = v + static_cast<int64_t>(t) * D;
        VORTEX_SIMD
        for (int32_t d = 0; d < D; ++d) a[d] += p * vt[d];
      }
    }
  }

  /// out [G, D] = acc / denom; zeros for a row that saw no token.
  void finish(float* out) const {
    for (int32_t g = 0; g < groups; ++g) {
      const float den = denom[static_cast<size_t>(g)];
      const float inv = den > 0.0f ? 1.0f / den : 0.0f;
      for (int32_t d = 0; d < dim; ++d) {
        out[static_cast<int64_t>(g) * dim + d] = acc[static_cast<size_t>(g) * dim + d] * inv;
      }
    }
  }
};

}  // namespace

void paged_decode_attention(const float* q, KVLayerView kv, DType kv_dtype, PageTableView pt,
                            const SelectionView* sel, int32_t num_q_heads, float scale,
                            float* out) {
  const int32_t hkv = kv.num_kv_heads;
  const int32_t dim = kv.head_dim;
  VORTEX_CHECK(hkv > 0 && dim > 0 && num_q_heads % hkv == 0);
  const int32_t groups = num_q_heads / hkv;
  const int64_t num_rows = static_cast<int64_t>(pt.batch_size) * hkv;
  if (sel != nullptr) VORTEX_CHECK(sel->num_rows == num_rows);

  // Work estimate: every visited token costs 2·G·D multiply-adds per row.
  int64_t work = 0;
  for (int64_t b = 0; b < pt.batch_size; ++b) {
    work += int64_t{pt.page_indptr[b + 1] - pt.page_indptr[b]} * kv.page_size;
  }
  work *= int64_t{2} * num_q_heads * dim;
  detail::parallel_for(num_rows, work, [&](int64_t row) {
    const int64_t b = row / hkv;
    const int32_t h = static_cast<int32_t>(row % hkv);
    const float* q_row = q + (b * num_q_heads + static_cast<int64_t>(h) * groups) * dim;  // [G, D]
    float* out_row = out + (b * num_q_heads + static_cast<int64_t>(h) * groups) * dim;    // [G, D]
    RowAccumulator accum(groups, dim, kv.page_size);
    std::vector<float> k_tile(static_cast<size_t>(kv.page_size) * dim);  // [P, D]
    std::vector<float> v_tile(static_cast<size_t>(kv.page_size) * dim);  // [P, D]

    // The pages this row visits: its selection, or every page of the request.
    const int32_t* pages = pt.page_indices + pt.page_indptr[b];
    int64_t count = pt.page_indptr[b + 1] - pt.page_indptr[b];
    if (sel != nullptr) {
      pages = sel->sel_indices + sel->sel_indptr[row];
      count = sel->sel_indptr[row + 1] - sel->sel_indptr[row];
    }
    for (int64_t i = 0; i < count; ++i) {
      const int32_t page = pages[i];
      VORTEX_CHECK(page >= 0 && page < kv.num_pages);
      const int32_t tokens = detail::tokens_in_page(i, count, kv.page_size, pt.last_page_len[b]);
      const int64_t base = detail::kv_row_offset(kv, page, h, 0);
      detail::load_kv_rows(kv.k, kv_dtype, base, static_cast<int64_t>(tokens) * dim, k_tile.data());
      detail::load_kv_rows(kv.v, kv_dtype, base, static_cast<int64_t>(tokens) * dim, v_tile.data());
      accum.add_tile(q_row, k_tile.data(), v_tile.data(), tokens, scale);
    }
    accum.finish(out_row);
  });
}

}  // namespace vortex::cpu
