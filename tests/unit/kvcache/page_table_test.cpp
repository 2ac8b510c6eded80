// PageTable growth on page boundaries and CSR construction for ragged batches.
#include "vortex/kvcache/page_table.h"

#include <gtest/gtest.h>

#include <random>

namespace vortex {
namespace {

TEST(PageTable, GrowsOnPageBoundaries) {
  PagePool pool(16);
  PageTable t(4);
  EXPECT_EQ(t.last_page_len(), 0);
  ASSERT_TRUE(t.reserve(1, pool).is_ok());
  t.commit(1);
  EXPECT_EQ(t.num_pages(), 1);
  EXPECT_EQ(t.last_page_len(), 1);
  ASSERT_TRUE(t.reserve(3, pool).is_ok());
  t.commit(3);
  EXPECT_EQ(t.num_pages(), 1);
  EXPECT_EQ(t.last_page_len(), 4);
  ASSERT_TRUE(t.reserve(1, pool).is_ok());
  t.commit(1);
  EXPECT_EQ(t.num_pages(), 2);
  EXPECT_EQ(t.last_page_len(), 1);
  t.truncate(4, pool);
  EXPECT_EQ(t.num_pages(), 1);
  EXPECT_EQ(pool.num_used(), 1);
  t.release(pool);
  EXPECT_EQ(pool.num_used(), 0);
}

TEST(PageTable, ReserveIsAllOrNothing) {
  PagePool pool(3);
  PageTable t(4);
  EXPECT_FALSE(t.reserve(13, pool).is_ok());  // needs 4 pages
  EXPECT_EQ(t.num_pages(), 0);
  EXPECT_EQ(pool.num_free(), 3);
}

TEST(PageTable, RaggedBatchCsr) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const int32_t P = 1 << (rng() % 5);
    PagePool pool(4096);
    std::vector<PageTable> tables;
    std::vector<int64_t> lens;
    const int B = 1 + static_cast<int>(rng() % 12);
    for (int b = 0; b < B; ++b) {
      tables.emplace_back(P);
      const int64_t len = rng() % 100;
      ASSERT_TRUE(tables.back().reserve(len, pool).is_ok());
      tables.back().commit(len);
      lens.push_back(len);
    }
    BatchPageTable batch;
    batch.clear();
    for (int b = 0; b < B; ++b)
      batch.add(tables[static_cast<size_t>(b)], lens[static_cast<size_t>(b)]);
    ASSERT_EQ(batch.batch_size(), B);
    PageTableView v = batch.view();
    for (int b = 0; b < B; ++b) {
      const int64_t pages = (lens[static_cast<size_t>(b)] + P - 1) / P;
      ASSERT_EQ(v.page_indptr[b + 1] - v.page_indptr[b], pages);
      for (int64_t i = 0; i < pages; ++i) {
        ASSERT_EQ(v.page_indices[v.page_indptr[b] + i],
                  tables[static_cast<size_t>(b)].pages()[static_cast<size_t>(i)]);
      }
      const int64_t len = lens[static_cast<size_t>(b)];
      ASSERT_EQ(v.last_page_len[b], len == 0 ? 0 : (len - 1) % P + 1);
      // Every token maps to a distinct (page, slot).
    }
  }
}

}  // namespace
}  // namespace vortex
