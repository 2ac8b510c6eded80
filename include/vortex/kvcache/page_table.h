// PageTable: one request's pages (grow on page boundaries) and the CSR batch view over many.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/kvcache/layout.h"
#include "vortex/kvcache/page_pool.h"

namespace vortex {

/// Pages of one request. Tokens are appended in two phases so a step can be planned before it runs:
/// `reserve(n)` makes room for n more tokens (allocating pages; all or nothing), `commit(n)` marks
/// them written.
class PageTable {
 public:
  explicit PageTable(int32_t page_size = 16);

  int32_t page_size() const { return page_size_; }
  int64_t num_tokens() const { return num_tokens_; }
  int32_t num_pages() const { return static_cast<int32_t>(pages_.size()); }
  const std::vector<int32_t>& pages() const { return pages_; }
  /// Tokens in the last page (1..P), or 0 when empty.
  int32_t last_page_len() const;
  /// Pages needed to hold `num_tokens() + extra` tokens, minus those already held.
  int32_t pages_needed(int64_t extra) const;

  /// Allocates pages from `pool` so that `extra` more tokens fit; all or nothing.
  Status reserve(int64_t extra, PagePool& pool);
  /// Marks `n` reserved tokens as written.
  void commit(int64_t n);
  /// Appends already-owned (shared, retained by the caller) full pages, e.g. a prefix-cache hit.
  void adopt_full_pages(std::span<const int32_t> pages);
  /// Drops the table's last pages beyond `num_tokens` tokens (and tokens beyond it).
  void truncate(int64_t num_tokens, PagePool& pool);
  /// Releases every page back to `pool` and empties the table.
  void release(PagePool& pool);

 private:
  int32_t page_size_;
  int64_t num_tokens_ = 0;
  std::vector<int32_t> pages_;
};

/// Host-side CSR for a batch of page tables; `view()` is the kernel ABI struct.
struct BatchPageTable {
  std::vector<int32_t> page_indptr;    // [B + 1]
  std::vector<int32_t> page_indices;   // [page_indptr[B]]
  std::vector<int32_t> last_page_len;  // [B]

  void clear();
  /// Appends one request; `num_tokens` (<= table.num_tokens() + reserved) is how many tokens the
  /// kernel should see (lets a step include tokens reserved but not yet committed).
  void add(const PageTable& table, int64_t num_tokens);
  int32_t batch_size() const { return static_cast<int32_t>(last_page_len.size()); }
  PageTableView view() const;
};

}  // namespace vortex
