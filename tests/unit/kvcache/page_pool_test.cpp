// PagePool: randomized allocate/retain/release sequences against a simple model of ownership,
// invariants checked after every operation; exhaustion is clean.
#include "vortex/kvcache/page_pool.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace vortex {
namespace {

TEST(PagePool, ExhaustionChangesNothing) {
  PagePool pool(4);
  auto a = pool.allocate(3);
  ASSERT_TRUE(a.has_value());
  auto b = pool.allocate(2);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_TRUE(pool.check_invariants());
  int32_t p;
  ASSERT_TRUE(pool.allocate_one(&p).is_ok());
  EXPECT_FALSE(pool.allocate_one(&p).is_ok());
  EXPECT_EQ(pool.num_free(), 0);
}

TEST(PagePool, RandomizedOwnershipModel) {
  constexpr int32_t kCap = 64;
  PagePool pool(kCap);
  std::mt19937 rng(1234);
  // Model: owner id -> pages held (a page can appear under several owners when shared).
  std::map<int, std::vector<int32_t>> owners;
  int next_owner = 0;
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 4);
    if (op == 0 || owners.empty()) {
      const int32_t n = static_cast<int32_t>(rng() % 6);
      auto got = pool.allocate(n);
      int32_t expected_free = kCap;
      std::map<int32_t, int> refs;
      for (auto& [o, ps] : owners)
        for (int32_t p : ps) refs[p]++;
      expected_free -= static_cast<int32_t>(refs.size());
      if (n > expected_free) {
        ASSERT_FALSE(got.has_value());
      } else {
        ASSERT_TRUE(got.has_value());
        for (int32_t p : *got) ASSERT_EQ(refs.count(p), 0u) << "handed out a page still owned";
        owners[next_owner++] = *got;
      }
    } else if (op == 1) {
      // Share: a new owner retains a random subset of an existing owner's pages.
      auto it = std::next(owners.begin(), static_cast<long>(rng() % owners.size()));
      std::vector<int32_t> shared;
      for (int32_t p : it->second) {
        if (rng() % 2) {
          pool.retain(p);
          shared.push_back(p);
        }
      }
      owners[next_owner++] = shared;
    } else {
      auto it = std::next(owners.begin(), static_cast<long>(rng() % owners.size()));
      pool.release(it->second);
      owners.erase(it);
    }
    ASSERT_TRUE(pool.check_invariants()) << "step " << step;
    std::map<int32_t, int> refs;
    for (auto& [o, ps] : owners)
      for (int32_t p : ps) refs[p]++;
    for (int32_t p = 0; p < kCap; ++p) ASSERT_EQ(pool.refcount(p), refs.count(p) ? refs[p] : 0);
    ASSERT_EQ(pool.num_used(), static_cast<int32_t>(refs.size()));
  }
  for (auto& [o, ps] : owners) pool.release(ps);
  EXPECT_EQ(pool.num_free(), kCap);
}

TEST(PagePoolDeathTest, DoubleFreeAborts) {
  PagePool pool(2);
  auto a = pool.allocate(1);
  ASSERT_TRUE(a.has_value());
  pool.release((*a)[0]);
  EXPECT_DEATH(pool.release((*a)[0]), "double free");
}

}  // namespace
}  // namespace vortex
