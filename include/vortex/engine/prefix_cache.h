// PrefixCache: a radix tree over full KV pages keyed by their token ids, so requests that share a
// prompt prefix share its pages. Each edge is one page (P tokens); a node's K/V (and aux fields,
// which are a pure function of the page's K/V) is valid for exactly the token path from the root.
// The tree holds one PagePool reference per cached page; requests that reuse a page take their own
// (PagePool::retain). Unreferenced pages are evicted least-recently-used first, leaves first.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vortex/kvcache/page_pool.h"

namespace vortex::engine {

class PrefixCache {
 public:
  PrefixCache(PagePool& pool, int32_t page_size);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  /// The longest cached prefix of `tokens` in `domain`, at most `max_pages` pages. The returned
  /// pages are retained for the caller (who releases them like its own pages).
  std::vector<int32_t> match(const std::string& domain, std::span<const int32_t> tokens,
                             int32_t max_pages);

  /// Makes the first `num_full_pages` pages of a sequence known: pages[i] holds the K/V of
  /// tokens[i*P, (i+1)*P). Where the tree already has a page for a path it keeps its own; new
  /// nodes retain the sequence's page.
  void insert(const std::string& domain, std::span<const int32_t> tokens,
              std::span<const int32_t> pages, int32_t num_full_pages);

  /// Frees up to `n` pages that only the tree references (LRU leaves first); returns how many.
  int32_t evict(int32_t n);
  /// Pages that evict() could free now.
  int32_t num_evictable() const;
  /// Pages the tree references.
  int32_t num_pages() const { return num_nodes_; }
  /// Drops every page the tree references (pages still used by requests stay allocated).
  void clear();

  /// Every page the tree references (one entry per node), for ownership accounting in tests.
  std::vector<int32_t> pages() const;
  /// Tree structure agrees with the pool: every node's page is allocated and distinct.
  bool check_invariants() const;

 private:
  struct Node {
    std::vector<int32_t> key;  // [P] token ids of this page
    int32_t page = -1;
    uint64_t last_use = 0;
    Node* parent = nullptr;
    std::map<std::vector<int32_t>, std::unique_ptr<Node>> children;
  };

  Node& root(const std::string& domain);
  void touch(Node* node);
  /// True when `node`'s subtree holds no page that anyone but the tree references; adds the
  /// subtree's size to *count when so.
  bool subtree_evictable(const Node& node, int32_t* count) const;

  PagePool& pool_;
  int32_t page_size_;
  std::map<std::string, std::unique_ptr<Node>> roots_;  // one tree per domain
  int32_t num_nodes_ = 0;
  uint64_t clock_ = 0;
};

}  // namespace vortex::engine
