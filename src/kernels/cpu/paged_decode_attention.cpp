// cpu::paged_decode_attention: one query token per request over the paged cache, dense (every page
// of the request) or over each row's selected pages. Rows (b, h) run in parallel; the G query
// heads of a row share each K/V load; fp32 online softmax.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kv_access.h"
#include "parallel_for.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {
namespace {

/// Online-softmax state of the G query heads of one row.
struct RowAccumulator {
  int32_t groups, dim;
  std::vector<float> max_logit;  // [G]
  std::vector<float> denom;      // [G]
  std::vector<float> acc;        // [G, D]

  RowAccumulator(int32_t g, int32_t d)
      : groups(g),
        dim(d),
        max_logit(static_cast<size_t>(g), -std::numeric_limits<float>::infinity()),
        denom(static_cast<size_t>(g), 0.0f),
        acc(static_cast<size_t>(g) * d, 0.0f) {}

  /// Folds one token (k, v [D]) into every head's running softmax.
  void add(const float* q, const float* k, const float* v, float scale) {
    for (int32_t g = 0; g < groups; ++g) {
      const float* qg = q + static_cast<int64_t>(g) * dim;
      float dot = 0.0f;
      for (int32_t d = 0; d < dim; ++d) dot += qg[d] * k[d];
      const float logit = dot * scale;
      float* a = acc.data() + static_cast<int64_t>(g) * dim;
      float& m = max_logit[static_cast<size_t>(g)];
      if (logit > m) {
        const float correction = std::exp(m - logit);  // 0 on the first token (m = -inf)
        denom[static_cast<size_t>(g)] *= correction;
        for (int32_t d = 0; d < dim; ++d) a[d] *= correction;
        m = logit;
      }
      const float p = std::exp(logit - m);
      denom[static_cast<size_t>(g)] += p;
      for (int32_t d = 0; d < dim; ++d) a[d] += p * v[d];
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
    RowAccumulator accum(groups, dim);
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
      for (int32_t t = 0; t < tokens; ++t) {
        accum.add(q_row, k_tile.data() + static_cast<int64_t>(t) * dim,
                  v_tile.data() + static_cast<int64_t>(t) * dim, scale);
      }
    }
    accum.finish(out_row);
  });
}

}  // namespace vortex::cpu
