// PagePool: fixed-capacity allocator of KV pages with reference counts (prefix sharing).
// O(1) allocate and free; exhaustion returns a Status and changes nothing.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vortex/core/status.h"

namespace vortex {

class PagePool {
 public:
  explicit PagePool(int32_t capacity);

  int32_t capacity() const { return static_cast<int32_t>(refcount_.size()); }
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  int32_t num_used() const { return capacity() - num_free(); }

  /// Allocates `n` pages (refcount 1 each), all or nothing.
  Expected<std::vector<int32_t>> allocate(int32_t n);
  /// Allocates one page into `out`.
  Status allocate_one(int32_t* out);
  /// Adds a reference to a page that is in use (sharing).
  void retain(int32_t page);
  /// Drops a reference; the page returns to the free list at zero.
  void release(int32_t page);
  void release(std::span<const int32_t> pages);
  int32_t refcount(int32_t page) const { return refcount_[static_cast<size_t>(page)]; }

  /// Checks internal consistency (free list and refcounts agree); for tests and debug builds.
  bool check_invariants() const;

 private:
  std::vector<int32_t> refcount_;  // [capacity]
  std::vector<int32_t> free_;      // stack of free page ids
};

}  // namespace vortex
