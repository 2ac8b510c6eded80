// PrefixCache: radix tree over full pages; matching, insertion, LRU leaf eviction.
#include "vortex/engine/prefix_cache.h"

#include <functional>
#include <queue>
#include <set>

#include "vortex/core/check.h"

namespace vortex::engine {

PrefixCache::PrefixCache(PagePool& pool, int32_t page_size) : pool_(pool), page_size_(page_size) {
  VORTEX_CHECK(page_size > 0);
}

PrefixCache::~PrefixCache() { clear(); }

PrefixCache::Node& PrefixCache::root(const std::string& domain) {
  auto& r = roots_[domain];
  if (!r) r = std::make_unique<Node>();
  return *r;
}

void PrefixCache::touch(Node* node) {
  const uint64_t now = ++clock_;
  for (; node != nullptr && node->page >= 0; node = node->parent) node->last_use = now;
}

std::vector<int32_t> PrefixCache::match(const std::string& domain, std::span<const int32_t> tokens,
                                        int32_t max_pages) {
  std::vector<int32_t> out;
  auto it = roots_.find(domain);
  if (it == roots_.end()) return out;
  Node* node = it->second.get();
  const int64_t full = static_cast<int64_t>(tokens.size()) / page_size_;
  std::vector<int32_t> key(static_cast<size_t>(page_size_));
  for (int64_t i = 0; i < full && static_cast<int64_t>(out.size()) < max_pages; ++i) {
    key.assign(tokens.begin() + i * page_size_, tokens.begin() + (i + 1) * page_size_);
    auto child = node->children.find(key);
    if (child == node->children.end()) break;
    node = child->second.get();
    pool_.retain(node->page);
    out.push_back(node->page);
  }
  if (!out.empty()) touch(node);
  return out;
}

void PrefixCache::insert(const std::string& domain, std::span<const int32_t> tokens,
                         std::span<const int32_t> pages, int32_t num_full_pages) {
  VORTEX_CHECK(static_cast<int64_t>(tokens.size()) >=
               static_cast<int64_t>(num_full_pages) * page_size_);
  VORTEX_CHECK(static_cast<int64_t>(pages.size()) >= num_full_pages);
  Node* node = &root(domain);
  for (int32_t i = 0; i < num_full_pages; ++i) {
    std::vector<int32_t> key(tokens.begin() + static_cast<int64_t>(i) * page_size_,
                             tokens.begin() + static_cast<int64_t>(i + 1) * page_size_);
    auto child = node->children.find(key);
    if (child == node->children.end()) {
      auto fresh = std::make_unique<Node>();
      fresh->key = key;
      fresh->page = pages[static_cast<size_t>(i)];
      fresh->parent = node;
      pool_.retain(fresh->page);
      ++num_nodes_;
      child = node->children.emplace(std::move(key), std::move(fresh)).first;
    }
    node = child->second.get();
  }
  if (num_full_pages > 0) touch(node);
}

bool PrefixCache::subtree_evictable(const Node& node, int32_t* count) const {
  int32_t below = 0;
  bool all = true;
  for (const auto& [key, child] : node.children) {
    if (!subtree_evictable(*child, &below)) all = false;
  }
  // A node whose own page is shared, or with a shared descendant, cannot go (leaves go first);
  // its evictable descendants still can.
  *count += below;
  if (node.page < 0) return all;  // a root holds no page
  if (all && pool_.refcount(node.page) == 1) {
    *count += 1;
    return true;
  }
  return false;
}

int32_t PrefixCache::num_evictable() const {
  int32_t count = 0;
  for (const auto& [domain, r] : roots_) subtree_evictable(*r, &count);
  return count;
}

int32_t PrefixCache::evict(int32_t n) {
  if (n <= 0) return 0;
  // Min-heap of evictable leaves by last use; a parent joins when its last child goes.
  auto older = [](const Node* a, const Node* b) { return a->last_use > b->last_use; };
  std::priority_queue<Node*, std::vector<Node*>, decltype(older)> leaves(older);
  std::function<void(Node*)> collect = [&](Node* node) {
    for (auto& [key, child] : node->children) collect(child.get());
    if (node->page >= 0 && node->children.empty() && pool_.refcount(node->page) == 1) {
      leaves.push(node);
    }
  };
  for (auto& [domain, r] : roots_) collect(r.get());
  int32_t freed = 0;
  while (freed < n && !leaves.empty()) {
    Node* leaf = leaves.top();
    leaves.pop();
    Node* parent = leaf->parent;
    pool_.release(leaf->page);
    ++freed;
    --num_nodes_;
    parent->children.erase(leaf->key);  // destroys leaf
    if (parent->page >= 0 && parent->children.empty() && pool_.refcount(parent->page) == 1) {
      leaves.push(parent);
    }
  }
  return freed;
}

void PrefixCache::clear() {
  std::function<void(Node&)> drop = [&](Node& node) {
    for (auto& [key, child] : node.children) drop(*child);
    if (node.page >= 0) pool_.release(node.page);
  };
  for (auto& [domain, r] : roots_) drop(*r);
  roots_.clear();
  num_nodes_ = 0;
}

std::vector<int32_t> PrefixCache::pages() const {
  std::vector<int32_t> out;
  std::function<void(const Node&)> walk = [&](const Node& node) {
    if (node.page >= 0) out.push_back(node.page);
    for (const auto& [key, child] : node.children) walk(*child);
  };
  for (const auto& [domain, r] : roots_) walk(*r);
  return out;
}

bool PrefixCache::check_invariants() const {
  std::set<int32_t> seen;
  bool ok = true;
  int32_t count = 0;
  std::function<void(const Node&, const Node*)> walk = [&](const Node& node, const Node* parent) {
    if (node.parent != parent) ok = false;
    if (parent != nullptr) {
      ++count;
      if (node.page < 0 || node.page >= pool_.capacity() || pool_.refcount(node.page) < 1 ||
          !seen.insert(node.page).second || static_cast<int32_t>(node.key.size()) != page_size_) {
        ok = false;
      }
    }
    for (const auto& [key, child] : node.children) {
      if (key != child->key) ok = false;
      walk(*child, &node);
    }
  };
  for (const auto& [domain, r] : roots_) walk(*r, nullptr);
  return ok && count == num_nodes_;
}

}  // namespace vortex::engine
