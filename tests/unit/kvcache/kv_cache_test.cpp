// KVCache sizing (the per-page byte formula) and storage views.
#include "vortex/kvcache/kv_cache.h"

#include <gtest/gtest.h>

namespace vortex {
namespace {

TEST(KVCache, BytesPerPageQwen3Shape) {
  KVCacheConfig c;
  c.num_layers = 28;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.page_size = 16;
  c.kv_dtype = DType::kBF16;
  // 114,688 bytes per token (BENCHMARKS.md) x 16 tokens.
  EXPECT_EQ(c.bytes_per_page(), 114688 * 16);
  c.aux_fields = {{"centroid", 1, 128, DType::kBF16}};
  c.layers_skip = {0};
  EXPECT_EQ(c.bytes_per_page(), 114688 * 16 + 27 * 8 * 256);
  EXPECT_EQ(c.pages_for_budget(c.bytes_per_page() * 10 + 5), 10);
}

TEST(KVCache, CreateAndViews) {
  KVCacheConfig c;
  c.num_layers = 3;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  c.page_size = 8;
  c.kv_dtype = DType::kF32;
  c.aux_fields = {{"max", 1, 4, DType::kF32}, {"min", 1, 4, DType::kF32}};
  c.layers_skip = {1};
  auto cache = KVCache::create(c, 5);
  ASSERT_TRUE(cache.has_value()) << cache.status().to_string();
  EXPECT_EQ(cache->pool().capacity(), 5);
  KVLayerView l = cache->layer(2);
  EXPECT_NE(l.k, nullptr);
  EXPECT_EQ(l.page_size, 8);
  EXPECT_EQ(cache->aux(1, 0).data, nullptr);  // skipped layer keeps no aux
  EXPECT_NE(cache->aux(2, 1).data, nullptr);
  EXPECT_EQ(cache->field_index("min"), 1);
  EXPECT_EQ(cache->field_index("nope"), -1);
  // Writes to every block land in distinct memory.
  float* k = static_cast<float*>(l.k);
  for (int i = 0; i < 5 * 2 * 8 * 4; ++i) k[i] = static_cast<float>(i);
  EXPECT_EQ(k[page_block_offset(4, 1, 2, 8 * 4)], static_cast<float>((4 * 2 + 1) * 32));
}

TEST(KVCache, BadConfigsAreErrors) {
  KVCacheConfig c;
  c.num_layers = 1;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.page_size = 12;
  EXPECT_EQ(KVCache::create(c, 4).status().code(), StatusCode::kInvalidArgument);
  c.page_size = 16;
  c.layers_skip = {3};
  EXPECT_FALSE(KVCache::create(c, 4).has_value());
  c.layers_skip = {};
  EXPECT_FALSE(KVCache::create(c, 0).has_value());
}

}  // namespace
}  // namespace vortex
