// PagePool implementation: a free stack plus per-page reference counts.
#include "vortex/kvcache/page_pool.h"

#include <string>

#include "vortex/core/check.h"

namespace vortex {

PagePool::PagePool(int32_t capacity) : refcount_(static_cast<size_t>(capacity), 0) {
  VORTEX_CHECK(capacity >= 0);
  free_.reserve(static_cast<size_t>(capacity));
  // Hand out low page ids first: pages are popped from the back.
  for (int32_t p = capacity - 1; p >= 0; --p) free_.push_back(p);
}

Expected<std::vector<int32_t>> PagePool::allocate(int32_t n) {
  if (n < 0) return invalid_argument("PagePool::allocate: negative page count");
  if (n > num_free()) {
    return resource_exhausted("KV page pool exhausted: need " + std::to_string(n) + " pages, " +
                              std::to_string(num_free()) + " of " + std::to_string(capacity()) +
                              " free; raise --kv-memory-fraction or lower the batch");
  }
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (auto& p : out) {
    p = free_.back();
    free_.pop_back();
    refcount_[static_cast<size_t>(p)] = 1;
  }
  return out;
}

Status PagePool::allocate_one(int32_t* out) {
  if (free_.empty()) {
    return resource_exhausted("KV page pool exhausted: all " + std::to_string(capacity()) +
                              " pages in use");
  }
  *out = free_.back();
  free_.pop_back();
  refcount_[static_cast<size_t>(*out)] = 1;
  return Status::ok();
}

void PagePool::retain(int32_t page) {
  VORTEX_CHECK(page >= 0 && page < capacity());
  VORTEX_CHECK_MSG(refcount_[static_cast<size_t>(page)] > 0, "retain of free page " << page);
  ++refcount_[static_cast<size_t>(page)];
}

void PagePool::release(int32_t page) {
  VORTEX_CHECK(page >= 0 && page < capacity());
  int32_t& rc = refcount_[static_cast<size_t>(page)];
  VORTEX_CHECK_MSG(rc > 0, "double free of page " << page);
  if (--rc == 0) free_.push_back(page);
}

void PagePool::release(std::span<const int32_t> pages) {
  for (int32_t p : pages) release(p);
}

bool PagePool::check_invariants() const {
  std::vector<char> in_free(refcount_.size(), 0);
  for (int32_t p : free_) {
    if (p < 0 || p >= capacity() || in_free[static_cast<size_t>(p)]) return false;
    in_free[static_cast<size_t>(p)] = 1;
    if (refcount_[static_cast<size_t>(p)] != 0) return false;
  }
  for (size_t p = 0; p < refcount_.size(); ++p) {
    if (refcount_[p] < 0) return false;
    if (refcount_[p] == 0 && !in_free[p]) return false;
  }
  return true;
}

}  // namespace vortex
