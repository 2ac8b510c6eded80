// The split-KV schedule of paged decode attention, as closed-form arithmetic over the page-table
// (or selection) CSR that the host and the device both evaluate: no plan buffers, no host sync.
//
// Every row r = b * H_kv + h owns a contiguous range of a flattened "row page space":
//   dense:     [indptr[b] * H_kv + h * n_b, ... + n_b)        n_b = indptr[b + 1] - indptr[b]
//   selection: [sel_indptr[r], sel_indptr[r + 1])
// That space is cut into equal ranges of W pages, one per CTA (W = max(ceil(total / ctas),
// min_pages)). A CTA walks the rows its range intersects (a segment per row); a row touched by
// one CTA is written straight to `out`, otherwise each CTA c writes its partial (o, lse) to slot
// c + r (unique: CTA ranges and rows are both ordered) and a merge kernel combines slots
// first_cta(r) .. last_cta(r). Plain C++ (also compiled by the CPU tests) plus CUDA qualifiers.
#pragma once

#include <stdint.h>

#include "vortex/kernels/cuda/host_device.h"

namespace vortex::gpu {

/// The CSR arrays a decode schedule is computed from (device pointers on the GPU).
struct RowSpace {
  const int32_t* page_indptr = nullptr;    // [B + 1]
  const int32_t* page_indices = nullptr;   // [page_indptr[B]]
  const int32_t* last_page_len = nullptr;  // [B]
  const int32_t* sel_indptr = nullptr;     // [B * H_kv + 1] or null (dense)
  const int32_t* sel_indices = nullptr;    // [sel_indptr[B * H_kv]] or null
  int32_t batch = 0;                       // B
  int32_t num_kv_heads = 0;                // H_kv
  int32_t log2_page = 4;                   // log2(P)
};

/// One row's pages and tokens.
struct RowInfo {
  int64_t flat_begin = 0;          ///< offset of the row in the flattened page space
  int32_t num_pages = 0;           ///< n (selected pages for a selection row)
  int32_t num_tokens = 0;          ///< (n - 1) * P + last_page_len, 0 when n == 0
  const int32_t* pages = nullptr;  ///< [n] physical page ids
  int32_t batch_index = 0;         ///< b
  int32_t kv_head = 0;             ///< h
};

VORTEX_HD int64_t row_space_total(const RowSpace& s) {
  return s.sel_indptr != nullptr ? static_cast<int64_t>(s.sel_indptr[s.batch * s.num_kv_heads])
                                 : static_cast<int64_t>(s.page_indptr[s.batch]) * s.num_kv_heads;
}

VORTEX_HD RowInfo row_info(const RowSpace& s, int32_t row) {
  RowInfo ri;
  ri.batch_index = row / s.num_kv_heads;
  ri.kv_head = row - ri.batch_index * s.num_kv_heads;
  const int32_t pb = s.page_indptr[ri.batch_index];
  const int32_t nb = s.page_indptr[ri.batch_index + 1] - pb;
  if (s.sel_indptr != nullptr) {
    const int32_t sb = s.sel_indptr[row];
    ri.flat_begin = sb;
    ri.num_pages = s.sel_indptr[row + 1] - sb;
    ri.pages = s.sel_indices + sb;
  } else {
    ri.flat_begin =
        static_cast<int64_t>(pb) * s.num_kv_heads + static_cast<int64_t>(ri.kv_head) * nb;
    ri.num_pages = nb;
    ri.pages = s.page_indices + pb;
  }
  ri.num_tokens =
      ri.num_pages > 0 ? ((ri.num_pages - 1) << s.log2_page) + s.last_page_len[ri.batch_index] : 0;
  return ri;
}

/// Pages of the flattened space per CTA.
VORTEX_HD int64_t pages_per_cta(int64_t total, int32_t num_ctas, int32_t min_pages) {
  const int64_t w = (total + num_ctas - 1) / num_ctas;
  return w > min_pages ? w : static_cast<int64_t>(min_pages);
}

/// Key of the k-ary search that finds the row holding flattened offset a: the flattened begin of
/// "index i", where i is a request (dense) or a row (selection).
VORTEX_HD int64_t search_key(const RowSpace& s, int32_t i) {
  return s.sel_indptr != nullptr ? static_cast<int64_t>(s.sel_indptr[i])
                                 : static_cast<int64_t>(s.page_indptr[i]) * s.num_kv_heads;
}
/// Number of search keys (requests or rows).
VORTEX_HD int32_t search_size(const RowSpace& s) {
  return s.sel_indptr != nullptr ? s.batch * s.num_kv_heads : s.batch;
}
/// Turns the search result (largest i with search_key(i) <= a) into the row holding a.
VORTEX_HD int32_t row_from_search(const RowSpace& s, int32_t i, int64_t a) {
  if (s.sel_indptr != nullptr) return i;
  const int64_t base = static_cast<int64_t>(s.page_indptr[i]) * s.num_kv_heads;
  const int32_t nb = s.page_indptr[i + 1] - s.page_indptr[i];  // > 0 because key(i+1) > a
  return i * s.num_kv_heads + static_cast<int32_t>((a - base) / nb);
}

/// One step of a 32-way search for the largest i in [lo, hi) with key(i) <= a (key(lo) <= a):
/// probe p of 32 is lo + p * step. Given the highest probe that satisfied the predicate, returns
/// the narrowed [lo, hi). Host and device share this arithmetic; the device probes in parallel.
struct SearchRange {
  int32_t lo;
  int32_t hi;
};
VORTEX_HD int32_t search_step(SearchRange r) { return (r.hi - r.lo + 31) / 32; }
VORTEX_HD SearchRange search_narrow(SearchRange r, int32_t last_true_probe) {
  const int32_t step = search_step(r);
  SearchRange n;
  n.lo = r.lo + last_true_probe * step;
  n.hi = n.lo + step < r.hi ? n.lo + step : r.hi;
  return n;
}

/// Host version of the search (the device runs the 32 probes in parallel).
inline int32_t find_search_index_host(const RowSpace& s, int64_t a) {
  SearchRange r{0, search_size(s)};
  while (r.hi - r.lo > 1) {
    const int32_t step = search_step(r);
    int32_t last = 0;
    for (int32_t p = 0; p < 32; ++p) {
      const int32_t i = r.lo + p * step;
      if (i < r.hi && search_key(s, i) <= a) last = p;
    }
    r = search_narrow(r, last);
  }
  return r.lo;
}

/// kStream's work units: unit c < num_ctas is CTA c's own range of `per_cta` pages from 0; with a
/// pool, the space past static_end is cut into num_chunks chunks of `chunk` pages (units num_ctas
/// ...) that CTAs claim from a counter once their own range is done, so SMs that stream faster
/// take more of the work (a static cut left the slowest SM 6 % behind the average on an H200).
/// Without a pool static_end = total and the cut is pages_per_cta's. A unit's partial slot for row
/// r is unit + r (unique, as with CTAs: units and rows are both ordered along the space).
struct WorkCut {
  int64_t total = 0;
  int64_t per_cta = 1;
  int64_t static_end = 0;
  int64_t chunk = 1;
  int32_t num_ctas = 1;
  int32_t num_chunks = 0;
};

/// The cut for `total` pages: `pool_percent` (0..50) of the space goes to a pool of at most
/// `pool_units` chunks, when the space is large enough (>= 8 pages per CTA beyond min_pages) that
/// every CTA keeps a static range of at least min_pages.
VORTEX_HD WorkCut work_cut(int64_t total, int32_t num_ctas, int32_t min_pages, int32_t pool_units,
                           int32_t pool_percent) {
  WorkCut c;
  c.total = total;
  c.num_ctas = num_ctas;
  const int64_t floor_pages = static_cast<int64_t>(num_ctas) * (min_pages > 0 ? min_pages : 1);
  if (pool_units <= 0 || pool_percent <= 0 || pool_percent > 50 || total < 8 * floor_pages) {
    c.per_cta = pages_per_cta(total, num_ctas, min_pages);
    c.static_end = total;
    return c;
  }
  c.per_cta = total * (100 - pool_percent) / 100 / num_ctas;  // >= 4 * min_pages
  c.static_end = c.per_cta * num_ctas;
  const int64_t pool = total - c.static_end;
  c.chunk = (pool + pool_units - 1) / pool_units;
  if (c.chunk < 1) c.chunk = 1;
  c.num_chunks = static_cast<int32_t>((pool + c.chunk - 1) / c.chunk);
  return c;
}

/// Work unit holding flattened offset a (a < total).
VORTEX_HD int64_t unit_of(const WorkCut& c, int64_t a) {
  return a < c.static_end ? a / c.per_cta : c.num_ctas + (a - c.static_end) / c.chunk;
}
/// Range [unit_begin, unit_end) of unit u (empty when u's range lies past the end).
VORTEX_HD int64_t unit_begin(const WorkCut& c, int64_t u) {
  const int64_t b = u < c.num_ctas ? u * c.per_cta : c.static_end + (u - c.num_ctas) * c.chunk;
  return b < c.total ? b : c.total;
}
VORTEX_HD int64_t unit_end(const WorkCut& c, int64_t u) {
  const int64_t e =
      u < c.num_ctas ? (u + 1) * c.per_cta : c.static_end + (u - c.num_ctas + 1) * c.chunk;
  const int64_t lim = u < c.num_ctas ? c.static_end : c.total;
  return e < lim ? e : lim;
}
/// The units whose ranges intersect a row with pages (first <= last).
VORTEX_HD int64_t first_unit(const WorkCut& c, const RowInfo& ri) {
  return unit_of(c, ri.flat_begin);
}
VORTEX_HD int64_t last_unit(const WorkCut& c, const RowInfo& ri) {
  return unit_of(c, ri.flat_begin + ri.num_pages - 1);
}

/// The CTAs whose ranges intersect a row with pages (first <= last); slot of CTA c is c + row.
VORTEX_HD int64_t first_cta(const RowInfo& ri, int64_t per_cta) { return ri.flat_begin / per_cta; }
VORTEX_HD int64_t last_cta(const RowInfo& ri, int64_t per_cta) {
  return (ri.flat_begin + ri.num_pages - 1) / per_cta;
}

}  // namespace vortex::gpu
