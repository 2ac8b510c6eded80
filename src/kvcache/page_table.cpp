// PageTable and the CSR batch view.
#include "vortex/kvcache/page_table.h"

#include "vortex/core/check.h"

namespace vortex {

PageTable::PageTable(int32_t page_size) : page_size_(page_size) {
  VORTEX_CHECK_MSG(page_size > 0 && (page_size & (page_size - 1)) == 0,
                   "page size must be a power of two, got " << page_size);
}

int32_t PageTable::last_page_len() const {
  if (num_tokens_ == 0) return 0;
  return static_cast<int32_t>((num_tokens_ - 1) % page_size_ + 1);
}

int32_t PageTable::pages_needed(int64_t extra) const {
  const int64_t want = (num_tokens_ + extra + page_size_ - 1) / page_size_;
  return want > num_pages() ? static_cast<int32_t>(want - num_pages()) : 0;
}

Status PageTable::reserve(int64_t extra, PagePool& pool) {
  if (extra < 0) return invalid_argument("PageTable::reserve: negative token count");
  const int32_t need = pages_needed(extra);
  if (need == 0) return Status::ok();
  VORTEX_ASSIGN_OR_RETURN(auto fresh, pool.allocate(need));
  pages_.insert(pages_.end(), fresh.begin(), fresh.end());
  return Status::ok();
}

void PageTable::commit(int64_t n) {
  VORTEX_CHECK(n >= 0);
  VORTEX_CHECK_MSG(num_tokens_ + n <= static_cast<int64_t>(num_pages()) * page_size_,
                   "commit beyond reserved capacity");
  num_tokens_ += n;
}

void PageTable::adopt_full_pages(std::span<const int32_t> pages) {
  VORTEX_CHECK_MSG(num_tokens_ % page_size_ == 0 &&
                       num_tokens_ == static_cast<int64_t>(num_pages()) * page_size_,
                   "adopting pages requires the table to end on a full page");
  pages_.insert(pages_.end(), pages.begin(), pages.end());
  num_tokens_ += static_cast<int64_t>(pages.size()) * page_size_;
}

void PageTable::truncate(int64_t num_tokens, PagePool& pool) {
  VORTEX_CHECK(num_tokens >= 0 && num_tokens <= num_tokens_);
  const int64_t keep = (num_tokens + page_size_ - 1) / page_size_;
  while (static_cast<int64_t>(pages_.size()) > keep) {
    pool.release(pages_.back());
    pages_.pop_back();
  }
  num_tokens_ = num_tokens;
}

void PageTable::release(PagePool& pool) {
  pool.release(pages_);
  pages_.clear();
  num_tokens_ = 0;
}

void BatchPageTable::clear() {
  page_indptr.assign(1, 0);
  page_indices.clear();
  last_page_len.clear();
}

void BatchPageTable::add(const PageTable& table, int64_t num_tokens) {
  if (page_indptr.empty()) page_indptr.push_back(0);
  const int32_t P = table.page_size();
  const int64_t pages = (num_tokens + P - 1) / P;
  VORTEX_CHECK_MSG(pages <= table.num_pages(), "batch view asks for unreserved tokens");
  page_indices.insert(page_indices.end(), table.pages().begin(), table.pages().begin() + pages);
  page_indptr.push_back(static_cast<int32_t>(page_indices.size()));
  last_page_len.push_back(num_tokens == 0 ? 0 : static_cast<int32_t>((num_tokens - 1) % P + 1));
}

PageTableView BatchPageTable::view() const {
  return PageTableView{page_indptr.data(), page_indices.data(), last_page_len.data(), batch_size()};
}

}  // namespace vortex
