// The runtime.h contract beyond selection quality: names, aux fields, flags, and the errors a
// caller can cause (a cache without the flow's fields, head counts, block size, bad page ids).
#include <gtest/gtest.h>

#include "flow_world.h"

namespace vortex::flow::testing {
namespace {

KVGen ones() {
  return [](int32_t, int32_t, int32_t, int64_t t, int32_t d, bool) {
    return static_cast<float>((t + d) % 7) - 3.0f;
  };
}

TEST(RuntimeContract, NamesFlagsAndFields) {
  const std::vector<std::string> want = {"dense",           "streaming",    "block_topk",
                                         "gqa_block_topk",  "quest",        "lserve_quest",
                                         "lserve_centroid", "masked_quest", "venergy_centroid",
                                         "running_avg",     "h2o_pages"};
  EXPECT_EQ(builtin_flow_names(), want);
  auto dense = load_flow("dense").value();
  EXPECT_TRUE(flow_is_dense(*dense));
  EXPECT_TRUE(flow_aux_fields(*dense, 16, 64).empty());
  auto running = load_flow("running_avg").value();
  EXPECT_TRUE(flow_uses_save(*running));
  EXPECT_FALSE(flow_is_dense(*running));
  EXPECT_EQ(flow_name(*running), "running_avg");
  EXPECT_FALSE(flow_uses_save(*load_flow("quest").value()));
  const auto fields = flow_aux_fields(*load_flow("lserve_quest").value(), 64, 128, DType::kF32);
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[0].name, "lserve_quest/max");
  EXPECT_EQ(fields[0].rows, 4);  // 64-token pages: four 16-token sub-pages
  EXPECT_EQ(fields[0].cols, 128);
  EXPECT_EQ(fields[0].dtype, DType::kF32);
  EXPECT_EQ(load_flow("quest").value().get(), load_flow("quest").value().get()) << "shared";
}

TEST(RuntimeContract, OneCacheServesSeveralFlows) {
  auto quest = load_flow("quest").value();
  auto block = load_flow("block_topk").value();
  WorldSpec spec;
  spec.lengths = {20 * 16 + 3};
  World w = make_world(spec, *quest, ones());
  // A second cache with both flows' fields side by side.
  KVCacheConfig cfg = w.cache->config();
  for (const auto& f : flow_aux_fields(*block, 16, spec.head_dim, spec.aux_dtype))
    cfg.aux_fields.push_back(f);
  auto both = KVCache::create(cfg, w.cache->num_pages());
  ASSERT_TRUE(both.has_value());
  EXPECT_EQ(both->field_index("block_topk/centroid"), 2);
  BudgetParams b;
  b.topk_val = 2;
  ASSERT_TRUE(run_cache_flow_cpu(*block, b, *both, 0, w.completed_pages()).is_ok());
  ASSERT_TRUE(run_cache_flow_cpu(*quest, b, *both, 0, w.completed_pages()).is_ok());
  std::vector<float> q(static_cast<size_t>(w.num_q_heads()) * spec.head_dim, 0.5f);
  Selection sel;
  ASSERT_TRUE(
      select_pages_cpu(*block, b, *both, 0, q.data(), w.num_q_heads(), w.view(), &sel).is_ok());
  EXPECT_EQ(sel.sel_indices.size(), static_cast<size_t>(spec.num_kv_heads * 4));
}

TEST(RuntimeContract, ErrorsAreValuesNotCrashes) {
  auto quest = load_flow("quest").value();
  auto block = load_flow("block_topk").value();
  WorldSpec spec;
  spec.lengths = {10 * 16};
  World w = make_world(spec, *quest, ones());
  BudgetParams b;
  b.topk_val = 2;
  std::vector<float> q(static_cast<size_t>(w.num_q_heads()) * spec.head_dim, 1.0f);
  Selection sel;
  auto expect_error = [](const Status& st, const std::string& fragment) {
    ASSERT_FALSE(st.is_ok()) << fragment;
    EXPECT_NE(st.message().find(fragment), std::string::npos) << st.message();
  };
  expect_error(run_cache_flow_cpu(*block, b, *w.cache, 0, w.completed_pages()),
               "the KV cache has no aux field 'block_topk/centroid'");
  expect_error(select_pages_cpu(*block, b, *w.cache, 0, q.data(), w.num_q_heads(), w.view(), &sel),
               "no aux field 'block_topk/centroid'");
  expect_error(select_pages_cpu(*quest, b, *w.cache, 0, q.data(), 3, w.view(), &sel),
               "3 query heads do not divide into 2 KV heads");
  expect_error(select_pages_cpu(*quest, b, *w.cache, 7, q.data(), w.num_q_heads(), w.view(), &sel),
               "layer 7 is outside 0..1");
  BudgetParams wrong_block = b;
  wrong_block.block_size = 32;
  expect_error(
      select_pages_cpu(*quest, wrong_block, *w.cache, 0, q.data(), w.num_q_heads(), w.view(), &sel),
      "set BudgetParams::block_size to the page size");
  BudgetParams negative = b;
  negative.bos = -1;
  expect_error(
      select_pages_cpu(*quest, negative, *w.cache, 0, q.data(), w.num_q_heads(), w.view(), &sel),
      "bos and eos must be >= 0");
  expect_error(run_cache_flow_cpu(*quest, b, *w.cache, 0, std::vector<int32_t>{9999}),
               "page 9999 is outside the pool");
  w.page_indices[3] = 12345;
  expect_error(select_pages_cpu(*quest, b, *w.cache, 0, q.data(), w.num_q_heads(), w.view(), &sel),
               "has id 12345, outside the pool");
  // A layer the budget skips is dense and needs nothing.
  BudgetParams skip = b;
  skip.layers_skip = {0};
  w.page_indices[3] = w.pages[0][3];
  ASSERT_TRUE(select_pages_cpu(*quest, skip, *w.cache, 0, q.data(), w.num_q_heads(), w.view(), &sel)
                  .is_ok());
  EXPECT_EQ(sel.selected_pages, sel.candidate_pages);
  EXPECT_TRUE(run_cache_flow_cpu(*quest, skip, *w.cache, 0, w.completed_pages()).is_ok());
}

TEST(RuntimeContract, CacheFlowWritesRoundedFieldsOnlyForGivenPages) {
  auto quest = load_flow("quest").value();
  WorldSpec spec;
  spec.aux_dtype = DType::kBF16;
  spec.lengths = {3 * 16};
  World w = make_world(spec, *quest, [](int32_t, int32_t, int32_t, int64_t t, int32_t d, bool) {
    return 1.0f + 0.001f * static_cast<float>(t * 64 + d);  // not representable in bf16
  });
  const int32_t page = w.pages[0][1];
  ASSERT_TRUE(
      run_cache_flow_cpu(*quest, BudgetParams{}, *w.cache, 1, std::vector<int32_t>{page}).is_ok());
  const int32_t fmax = w.cache->field_index("quest/max");
  const AuxFieldView av = w.cache->aux(1, fmax);
  for (int32_t h = 0; h < spec.num_kv_heads; ++h) {
    for (int32_t d = 0; d < spec.head_dim; ++d) {
      const int64_t off = page_block_offset(page, h, spec.num_kv_heads, spec.head_dim) + d;
      const float want = w.round_aux(1.0f + 0.001f * static_cast<float>((16 + 15) * 64 + d));
      EXPECT_EQ(load_as_f32(av.data, DType::kBF16, static_cast<size_t>(off)), want);
    }
  }
  // Other pages and the other layer stay poisoned (NaN).
  const int64_t other = page_block_offset(w.pages[0][0], 0, spec.num_kv_heads, spec.head_dim);
  EXPECT_TRUE(std::isnan(load_as_f32(av.data, DType::kBF16, static_cast<size_t>(other))));
  const AuxFieldView l0 = w.cache->aux(0, fmax);
  EXPECT_TRUE(std::isnan(load_as_f32(
      l0.data, DType::kBF16,
      static_cast<size_t>(page_block_offset(page, 0, spec.num_kv_heads, spec.head_dim)))));
}

}  // namespace
}  // namespace vortex::flow::testing
