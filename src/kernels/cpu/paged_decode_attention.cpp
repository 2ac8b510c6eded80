// cpu::paged_decode_attention: one query token per request over the paged cache, dense (every page
// of the request) or over each row's selected pages. Rows (b, h) run in parallel; the G query
// heads of a row share each K/V load; fp32 online softmax advanced one page tile at a time, on
// 8-lane vectors (an x86-64-v3 clone beside the baseline).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "kv_access.h"
#include "parallel_for.h"
#include "vec8.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {
namespace {

using detail::V8;

/// Pages per task of a split row (1,024 tokens at P = 16).
constexpr int64_t kChunkPages = 64;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Online-softmax state of the G query heads of one row (b, h), advanced one page tile at a time.
/// Head vectors are padded with zeros to Dp = D rounded up to 8, so every loop runs on whole
/// 8-lane vectors. Per tile: K and V widened to fp32 once; logits as a [G, D]·[tokens, D]ᵀ tile
/// product (four tokens per pass, each q vector loaded once per four FMAs); one max update (and
/// rescale of the accumulator) per head; the exps eight tokens at a time; then p·V with a head's
/// accumulator held in registers 32 dims at a time.
struct RowAccumulator {
  int32_t groups, dim, dim_pad, page_pad;
  std::vector<float> q;          // [G, Dp] scaled by 1/sqrt(D), zero padded
  std::vector<float> max_logit;  // [G]
  std::vector<float> denom;      // [G]
  std::vector<float> acc;        // [G, Dp]
  std::vector<float> probs;      // [G, Pp] logits, then weights, of the current tile
  std::vector<float> k_tile;     // [P, Dp]
  std::vector<float> v_tile;     // [P, Dp]

  RowAccumulator(const float* q_row, int32_t g, int32_t d, int32_t page_size, float scale)
      : groups(g),
        dim(d),
        dim_pad((d + 7) / 8 * 8),
        page_pad((page_size + 7) / 8 * 8),
        q(static_cast<size_t>(g) * dim_pad, 0.0f),
        max_logit(static_cast<size_t>(g), -std::numeric_limits<float>::infinity()),
        denom(static_cast<size_t>(g), 0.0f),
        acc(static_cast<size_t>(g) * dim_pad, 0.0f),
        probs(static_cast<size_t>(g) * page_pad, 0.0f),
        k_tile(static_cast<size_t>(page_size) * dim_pad, 0.0f),
        v_tile(static_cast<size_t>(page_size) * dim_pad, 0.0f) {
    for (int32_t h = 0; h < g; ++h) {
      for (int32_t i = 0; i < d; ++i) {
        q[static_cast<size_t>(h) * dim_pad + i] = q_row[static_cast<int64_t>(h) * d + i] * scale;
      }
    }
  }

  /// Folds `tokens` tokens (k, v: [tokens, D] in the pool's dtype) into every head's softmax.
  VORTEX_CPU_CLONES void add_tile(const void* k, const void* v, DType kv_dtype, int32_t tokens) {
    if (kv_dtype == DType::kBF16) {
      add_tile_as(static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v), tokens);
    } else {
      VORTEX_CHECK_MSG(kv_dtype == DType::kF32, "CPU kernels support f32 or bf16 KV");
      add_tile_as(static_cast<const float*>(k), static_cast<const float*>(v), tokens);
    }
  }

  /// Partial state for a split row: per head (max logit, denominator, acc [Dp]).
  void save(float* dst) const {
    for (int32_t g = 0; g < groups; ++g) {
      float* p = dst + static_cast<int64_t>(g) * (dim_pad + 2);
      p[0] = max_logit[static_cast<size_t>(g)];
      p[1] = denom[static_cast<size_t>(g)];
      std::copy_n(acc.begin() + static_cast<int64_t>(g) * dim_pad, dim_pad, p + 2);
    }
  }

  /// out [G, D] = acc / denom; zeros for a row that saw no token.
  void finish(float* out) const {
    for (int32_t g = 0; g < groups; ++g) {
      const float den = denom[static_cast<size_t>(g)];
      const float inv = den > 0.0f ? 1.0f / den : 0.0f;
      for (int32_t d = 0; d < dim; ++d) {
        out[static_cast<int64_t>(g) * dim + d] = acc[static_cast<size_t>(g) * dim_pad + d] * inv;
      }
    }
  }

 private:
  /// [tokens, D] rows of type T into a [tokens, Dp] fp32 tile (the padding stays zero).
  template <typename T>
  [[gnu::always_inline]] void widen(const T* src, int32_t tokens, float* dst) const {
    for (int32_t t = 0; t < tokens; ++t) {
      const T* s = src + static_cast<int64_t>(t) * dim;
      float* o = dst + static_cast<int64_t>(t) * dim_pad;
      int32_t i = 0;
      for (; i + 8 <= dim; i += 8) detail::store8(o + i, detail::load8(s + i));
      for (; i < dim; ++i) o[i] = to_f32(s[i]);
    }
  }
  static float to_f32(float x) { return x; }
  static float to_f32(uint16_t x) { return bf16_to_f32(x); }

  template <typename T>
  [[gnu::always_inline]] void add_tile_as(const T* k, const T* v, int32_t tokens) {
    if (tokens <= 0) return;
    // fp32 rows without padding are read in place; anything else is widened into the tiles.
    const float* kt_base = k_tile.data();
    const float* vt_base = v_tile.data();
    if constexpr (std::is_same_v<T, float>) {
      if (dim_pad == dim) {
        kt_base = k;
        vt_base = v;
      }
    }
    if (kt_base == k_tile.data()) {
      widen(k, tokens, k_tile.data());
      widen(v, tokens, v_tile.data());
    }
    const int32_t nv = dim_pad / 8;
    for (int32_t g = 0; g < groups; ++g) {
      const float* qg = q.data() + static_cast<int64_t>(g) * dim_pad;
      float* lg = probs.data() + static_cast<int64_t>(g) * page_pad;
      // Logits, four tokens per pass.
      int32_t t = 0;
      for (; t + 4 <= tokens; t += 4) {
        const float* k0 = kt_base + static_cast<int64_t>(t) * dim_pad;
        V8 a0{}, a1{}, a2{}, a3{};
        for (int32_t c = 0; c < nv; ++c) {
          const V8 qv = detail::load8(qg + 8 * c);
          a0 += qv * detail::load8(k0 + 8 * c);
          a1 += qv * detail::load8(k0 + dim_pad + 8 * c);
          a2 += qv * detail::load8(k0 + 2 * dim_pad + 8 * c);
          a3 += qv * detail::load8(k0 + 3 * dim_pad + 8 * c);
        }
        lg[t] = detail::hsum8(a0);
        lg[t + 1] = detail::hsum8(a1);
        lg[t + 2] = detail::hsum8(a2);
        lg[t + 3] = detail::hsum8(a3);
      }
      for (; t < tokens; ++t) {
        const float* kt = kt_base + static_cast<int64_t>(t) * dim_pad;
        V8 a{};
        for (int32_t c = 0; c < nv; ++c) a += detail::load8(qg + 8 * c) * detail::load8(kt + 8 * c);
        lg[t] = detail::hsum8(a);
      }
      // One max update per head and tile.
      float tile_max = lg[0];
      for (int32_t i = 1; i < tokens; ++i) tile_max = std::max(tile_max, lg[i]);
      float* a = acc.data() + static_cast<int64_t>(g) * dim_pad;
      float& m = max_logit[static_cast<size_t>(g)];
      float& den = denom[static_cast<size_t>(g)];
      if (tile_max > m) {
        const float correction = std::exp(m - tile_max);  // 0 on the first tile (m = -inf)
        den *= correction;
        for (int32_t c = 0; c < nv; ++c) {
          detail::store8(a + 8 * c, detail::load8(a + 8 * c) * correction);
        }
        m = tile_max;
      }
      // Weights p = e^(logit - m), eight at a time; lanes past the tile are zeroed.
      for (int32_t i = tokens; i < page_pad; ++i) lg[i] = -std::numeric_limits<float>::infinity();
      const V8 mv = detail::splat8(m);
      float sum = 0.0f;
      for (int32_t i = 0; i < page_pad; i += 8) {
        const V8 p = detail::exp8(detail::load8(lg + i) - mv);
        detail::store8(lg + i, p);
        sum += detail::hsum8(p);
      }
      den += sum;
      // acc += p · V, 32 dims of the accumulator in registers at a time.
      int32_t c = 0;
      for (; c + 4 <= nv; c += 4) {
        float* ac = a + 8 * c;
        V8 r0 = detail::load8(ac), r1 = detail::load8(ac + 8), r2 = detail::load8(ac + 16),
           r3 = detail::load8(ac + 24);
        for (int32_t i = 0; i < tokens; ++i) {
          const V8 p = detail::splat8(lg[i]);
          const float* vt = vt_base + static_cast<int64_t>(i) * dim_pad + 8 * c;
          r0 += p * detail::load8(vt);
          r1 += p * detail::load8(vt + 8);
          r2 += p * detail::load8(vt + 16);
          r3 += p * detail::load8(vt + 24);
        }
        detail::store8(ac, r0);
        detail::store8(ac + 8, r1);
        detail::store8(ac + 16, r2);
        detail::store8(ac + 24, r3);
      }
      for (; c < nv; ++c) {
        V8 r = detail::load8(a + 8 * c);
        for (int32_t i = 0; i < tokens; ++i) {
          r += detail::splat8(lg[i]) *
               detail::load8(vt_base + static_cast<int64_t>(i) * dim_pad + 8 * c);
        }
        detail::store8(a + 8 * c, r);
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
  VORTEX_CHECK_MSG(kv_dtype == DType::kF32 || kv_dtype == DType::kBF16,
                   "CPU kernels support f32 or bf16 KV");
  const int32_t groups = num_q_heads / hkv;
  const int64_t num_rows = static_cast<int64_t>(pt.batch_size) * hkv;
  if (sel != nullptr) VORTEX_CHECK(sel->num_rows == num_rows);
  const size_t elem = kv_dtype == DType::kBF16 ? 2 : 4;

  // The pages row (b, h) visits: its selection, or every page of the request.
  auto row_pages = [&](int64_t row) -> std::pair<const int32_t*, int64_t> {
    if (sel != nullptr) {
      return {sel->sel_indices + sel->sel_indptr[row],
              sel->sel_indptr[row + 1] - sel->sel_indptr[row]};
    }
    const int64_t b = row / hkv;
    return {pt.page_indices + pt.page_indptr[b], pt.page_indptr[b + 1] - pt.page_indptr[b]};
  };
  // Split-KV: rows longer than kChunkPages run as several tasks (so a batch of one long request
  // still fills every core), merged by log-sum-exp. The split depends only on the row's length:
  // results do not depend on the number of threads or on the rest of the batch.
  std::vector<int64_t> first_task(static_cast<size_t>(num_rows) + 1, 0);  // row -> its tasks
  int64_t work = 0;
  for (int64_t row = 0; row < num_rows; ++row) {
    const int64_t count = row_pages(row).second;
    work += count * kv.page_size;
    first_task[static_cast<size_t>(row) + 1] =
        first_task[static_cast<size_t>(row)] + std::max<int64_t>(1, ceil_div(count, kChunkPages));
  }
  work *= int64_t{2} * groups * dim;  // every visited token: 2·G·D multiply-adds
  const int64_t tasks = first_task.back();
  const int32_t dim_pad = (dim + 7) / 8 * 8;
  // Partial states of split rows: per task and head (max logit, denominator, acc [Dp]).
  const int64_t part_stride = static_cast<int64_t>(groups) * (dim_pad + 2);
  std::vector<float> parts;
  if (tasks > num_rows) parts.resize(static_cast<size_t>(tasks * part_stride));
  std::vector<int64_t> task_row(static_cast<size_t>(tasks));
  for (int64_t row = 0; row < num_rows; ++row) {
    for (int64_t t = first_task[static_cast<size_t>(row)];
         t < first_task[static_cast<size_t>(row) + 1]; ++t) {
      task_row[static_cast<size_t>(t)] = row;
    }
  }
  const auto* k_pool = static_cast<const char*>(kv.k);
  const auto* v_pool = static_cast<const char*>(kv.v);
  const size_t tile_bytes = static_cast<size_t>(kv.page_size) * dim * elem;
  auto head_offset = [&](int64_t row) {  // [G, D] block of the row's query heads in q and out
    return ((row / hkv) * num_q_heads + (row % hkv) * groups) * dim;
  };

  detail::parallel_for(tasks, work, [&](int64_t task) {
    const int64_t row = task_row[static_cast<size_t>(task)];
    const int64_t b = row / hkv;
    const int32_t h = static_cast<int32_t>(row % hkv);
    const auto [pages, count] = row_pages(row);
    const int64_t chunk = task - first_task[static_cast<size_t>(row)];
    const int64_t begin = chunk * kChunkPages, end = std::min(count, begin + kChunkPages);
    RowAccumulator accum(q + head_offset(row), groups, dim, kv.page_size, scale);
    auto tile_offset = [&](int64_t i) {
      const int32_t page = pages[i];
      VORTEX_CHECK(page >= 0 && page < kv.num_pages);
      return static_cast<size_t>(detail::kv_row_offset(kv, page, h, 0)) * elem;
    };
    size_t next = begin < end ? tile_offset(begin) : 0;
    for (int64_t i = begin; i < end; ++i) {
      const size_t base = next;
      // The next tile's K and V are requested while this one computes: page blocks are scattered,
      // so the hardware prefetcher alone leaves one row's loads waiting on memory.
      if (i + 1 < end) {
        next = tile_offset(i + 1);
        for (size_t line = 0; line < tile_bytes; line += 64) {
          __builtin_prefetch(k_pool + next + line);
          __builtin_prefetch(v_pool + next + line);
        }
      }
      const int32_t tokens = detail::tokens_in_page(i, count, kv.page_size, pt.last_page_len[b]);
      accum.add_tile(k_pool + base, v_pool + base, kv_dtype, tokens);
    }
    if (first_task[static_cast<size_t>(row) + 1] - first_task[static_cast<size_t>(row)] == 1) {
      accum.finish(out + head_offset(row));
    } else {
      accum.save(parts.data() + task * part_stride);
    }
  });
  if (tasks == num_rows) return;
  // Merge the split rows' chunks in chunk order.
  detail::parallel_for(num_rows, num_rows * part_stride * 4, [&](int64_t row) {
    const int64_t t0 = first_task[static_cast<size_t>(row)];
    const int64_t t1 = first_task[static_cast<size_t>(row) + 1];
    if (t1 - t0 == 1) return;
    float* o = out + head_offset(row);
    for (int32_t g = 0; g < groups; ++g) {
      const int64_t off = static_cast<int64_t>(g) * (dim_pad + 2);
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t t = t0; t < t1; ++t) m = std::max(m, parts[t * part_stride + off]);
      float den = 0.0f;
      float* og = o + static_cast<int64_t>(g) * dim;  // accumulates in place, then scaled
      std::fill(og, og + dim, 0.0f);
      for (int64_t t = t0; t < t1; ++t) {
        const float* p = parts.data() + t * part_stride + off;
        if (p[1] <= 0.0f) continue;  // a chunk that saw no token
        const float w = std::exp(p[0] - m);
        den += p[1] * w;
        for (int32_t d = 0; d < dim; ++d) og[d] += p[2 + d] * w;
      }
      const float inv = den > 0.0f ? 1.0f / den : 0.0f;
      for (int32_t d = 0; d < dim; ++d) og[d] *= inv;
    }
  });
}

}  // namespace vortex::cpu
