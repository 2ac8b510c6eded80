// The split-KV schedule arithmetic of paged decode attention (decode_schedule.h), checked on the
// CPU by simulating every CTA the way the kernel walks its range: every (row, page) is covered
// exactly once, partial slots are unique and in bounds, and the merge kernel's view of which CTAs
// touched a row (and whether one CTA finished it) matches what the CTAs did.
#include "vortex/kernels/cuda/decode_schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace vortex::gpu {
namespace {

struct Csr {
  std::vector<int32_t> indptr, indices, last, sel_indptr, sel_indices;
};

Csr random_csr(std::mt19937_64& rng, int32_t batch, int32_t h_kv, int32_t max_pages,
               double empty_prob, bool with_sel) {
  Csr c;
  std::uniform_int_distribution<int32_t> pages(1, max_pages);
  std::bernoulli_distribution empty(empty_prob);
  c.indptr.push_back(0);
  for (int32_t b = 0; b < batch; ++b) {
    const int32_t n = empty(rng) ? 0 : pages(rng);
    for (int32_t j = 0; j < n; ++j) c.indices.push_back(static_cast<int32_t>(c.indices.size()));
    c.indptr.push_back(static_cast<int32_t>(c.indices.size()));
    c.last.push_back(n == 0 ? 0 : 1 + static_cast<int32_t>(rng() % 16));
  }
  if (with_sel) {
    c.sel_indptr.push_back(0);
    for (int32_t b = 0; b < batch; ++b) {
      const int32_t n = c.indptr[b + 1] - c.indptr[b];
      for (int32_t h = 0; h < h_kv; ++h) {
        const int32_t k = n == 0 ? 0 : 1 + static_cast<int32_t>(rng() % n);
        for (int32_t j = n - k; j < n; ++j) c.sel_indices.push_back(c.indices[c.indptr[b] + j]);
        c.sel_indptr.push_back(static_cast<int32_t>(c.sel_indices.size()));
      }
    }
  }
  return c;
}

RowSpace space_of(const Csr& c, int32_t h_kv) {
  RowSpace s;
  s.page_indptr = c.indptr.data();
  s.page_indices = c.indices.data();
  s.last_page_len = c.last.data();
  s.sel_indptr = c.sel_indptr.empty() ? nullptr : c.sel_indptr.data();
  s.sel_indices = c.sel_indptr.empty() ? nullptr : c.sel_indices.data();
  s.batch = static_cast<int32_t>(c.last.size());
  s.num_kv_heads = h_kv;
  s.log2_page = 4;
  return s;
}

void check_schedule(const RowSpace& s, int32_t num_ctas, int32_t min_pages, int32_t pool_units = 0,
                    int32_t pool_percent = 0) {
  const int32_t rows = s.batch * s.num_kv_heads;
  const int64_t total = row_space_total(s);
  const int64_t w = pages_per_cta(total, num_ctas, min_pages);
  const WorkCut cut = work_cut(total, num_ctas, min_pages, pool_units, pool_percent);
  const int64_t units = static_cast<int64_t>(num_ctas) + cut.num_chunks;
  ASSERT_LE(cut.num_chunks, std::max(pool_units, 0));
  if (cut.num_chunks == 0) {
    ASSERT_EQ(cut.per_cta, w);  // no pool: the plain equal cut
  } else {
    ASSERT_GE(cut.per_cta, min_pages);
    ASSERT_LE(cut.static_end, total);
    ASSERT_EQ(unit_end(cut, units - 1), total);
  }
  std::map<std::pair<int32_t, int32_t>, int> covered;  // (row, page) -> times
  std::map<int32_t, std::set<int64_t>> touched;        // row -> CTAs
  std::map<int32_t, int> whole;                        // row -> whole-row segments
  std::set<int64_t> slots;
  int64_t prev_end = 0;
  for (int64_t c = 0; c < units; ++c) {
    const int64_t a = unit_begin(cut, c), e = unit_end(cut, c);
    if (a >= e) continue;
    ASSERT_EQ(a, prev_end) << "unit " << c << " does not continue the previous one";
    prev_end = e;
    ASSERT_EQ(unit_of(cut, a), c);
    ASSERT_EQ(unit_of(cut, e - 1), c);
    int32_t row = row_from_search(s, find_search_index_host(s, a), a);
    const RowInfo first = row_info(s, row);
    ASSERT_LE(first.flat_begin, a);
    ASSERT_GT(first.flat_begin + first.num_pages, a);
    for (;;) {
      const RowInfo ri = row_info(s, row);
      const int64_t rb = ri.flat_begin, re = rb + ri.num_pages;
      if (ri.num_pages > 0) {
        const int64_t sb = std::max(a, rb), se = std::min(e, re);
        ASSERT_LT(sb, se);
        for (int64_t pg = sb; pg < se; ++pg) ++covered[{row, static_cast<int32_t>(pg - rb)}];
        touched[row].insert(c);
        if (sb == rb && se == re) {
          ++whole[row];
        } else {
          ASSERT_TRUE(slots.insert(c + row).second) << "slot reused";
          ASSERT_LT(c + row, static_cast<int64_t>(num_ctas) + std::max(pool_units, 0) + rows);
        }
      }
      if (re >= e || row + 1 >= rows) break;
      ++row;
    }
  }
  for (int32_t r = 0; r < rows; ++r) {
    const RowInfo ri = row_info(s, r);
    for (int32_t pg = 0; pg < ri.num_pages; ++pg) {
      ASSERT_EQ((covered[{r, pg}]), 1) << "row " << r << " page " << pg;
    }
    if (ri.num_pages == 0) {
      ASSERT_EQ(touched.count(r), 0u);
      continue;
    }
    const int64_t c0 = first_unit(cut, ri), c1 = last_unit(cut, ri);
    ASSERT_LT(c1, units);
    if (cut.num_chunks == 0) {
      ASSERT_EQ(c0, first_cta(ri, w));
      ASSERT_EQ(c1, last_cta(ri, w));
    }
    std::set<int64_t> expect;
    for (int64_t c = c0; c <= c1; ++c) expect.insert(c);
    ASSERT_EQ(touched[r], expect) << "row " << r;
    ASSERT_EQ(whole[r], c0 == c1 ? 1 : 0) << "row " << r;
    ASSERT_EQ(ri.num_tokens,
              ((ri.num_pages - 1) << s.log2_page) + s.last_page_len[r / s.num_kv_heads]);
  }
}

TEST(DecodeSchedule, DenseRowsAreCoveredOnce) {
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 60; ++trial) {
    const int32_t batch = 1 + static_cast<int32_t>(rng() % 70);
    const int32_t h_kv = 1 + static_cast<int32_t>(rng() % 8);
    const Csr c = random_csr(rng, batch, h_kv, 1 + static_cast<int32_t>(rng() % 300), 0.15, false);
    if (c.indices.empty()) continue;
    for (int32_t ctas : {1, 7, 132, 396, 1000}) check_schedule(space_of(c, h_kv), ctas, 4);
  }
}

// With a work pool (kStream's dynamic balance): the CTAs' static ranges plus the claimed chunks
// still cover every page once, slots stay unique and in bounds, and each row's contributors are
// the units first_unit .. last_unit.
TEST(DecodeSchedule, PoolChunksCoverTheRestOnce) {
  std::mt19937_64 rng(3);
  int pooled = 0;
  for (int trial = 0; trial < 24; ++trial) {
    const int32_t batch = 1 + static_cast<int32_t>(rng() % 40);
    const int32_t h_kv = 1 + static_cast<int32_t>(rng() % 8);
    const bool sel = trial % 3 == 0;
    const Csr c = random_csr(rng, batch, h_kv, 1 + static_cast<int32_t>(rng() % 600), 0.1, sel);
    if (c.indices.empty() || (sel && c.sel_indices.empty())) continue;
    for (int32_t ctas : {1, 7, 132, 396}) {
      for (int32_t pct : {5, 10, 25, 50}) {
        const RowSpace s = space_of(c, h_kv);
        pooled += work_cut(row_space_total(s), ctas, 4, 8 * ctas, pct).num_chunks > 0;
        check_schedule(s, ctas, 4, 8 * ctas, pct);
        check_schedule(s, ctas, 1, 3, pct);  // fewer chunks than pool pages
      }
    }
  }
  EXPECT_GT(pooled, 20);
  // Out-of-range settings fall back to the static cut.
  EXPECT_EQ(work_cut(100000, 132, 4, 1056, 0).num_chunks, 0);
  EXPECT_EQ(work_cut(100000, 132, 4, 1056, 51).num_chunks, 0);
  EXPECT_EQ(work_cut(100000, 132, 4, 0, 10).num_chunks, 0);
  EXPECT_EQ(work_cut(1000, 132, 4, 1056, 10).num_chunks, 0);  // too small to pool
}

TEST(DecodeSchedule, SelectionRowsAreCoveredOnce) {
  std::mt19937_64 rng(2);
  for (int trial = 0; trial < 60; ++trial) {
    const int32_t batch = 1 + static_cast<int32_t>(rng() % 40);
    const int32_t h_kv = 1 + static_cast<int32_t>(rng() % 8);
    const Csr c = random_csr(rng, batch, h_kv, 1 + static_cast<int32_t>(rng() % 200), 0.2, true);
    if (c.sel_indices.empty()) continue;
    for (int32_t ctas : {1, 3, 264, 2000}) check_schedule(space_of(c, h_kv), ctas, 1 + trial % 5);
  }
}

TEST(DecodeSchedule, ManyRequestsNeedManySearchSteps) {
  std::mt19937_64 rng(3);
  const Csr c = random_csr(rng, 5000, 8, 5, 0.3, true);
  check_schedule(space_of(c, 8), 396, 1);
  Csr d = c;
  d.sel_indptr.clear();
  check_schedule(space_of(d, 8), 396, 2);
}

TEST(DecodeSchedule, SearchFindsTheRowOfEveryOffset) {
  std::mt19937_64 rng(4);
  const Csr c = random_csr(rng, 300, 4, 40, 0.25, false);
  const RowSpace s = space_of(c, 4);
  for (int64_t a = 0; a < row_space_total(s); ++a) {
    const int32_t r = row_from_search(s, find_search_index_host(s, a), a);
    const RowInfo ri = row_info(s, r);
    ASSERT_LE(ri.flat_begin, a);
    ASSERT_LT(a, ri.flat_begin + ri.num_pages);
  }
}

}  // namespace
}  // namespace vortex::gpu
