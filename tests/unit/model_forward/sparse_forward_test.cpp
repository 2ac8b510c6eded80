// Tests of the sparse decode path of CpuModel and Generator with real flows: a budget that covers
// the whole context, the `dense` flow, and dense layers_skip are bitwise dense; a small budget
// attends exactly budget pages per sparse row and changes the output.
#include <gtest/gtest.h>

#include "model_harness.h"
#include "vortex/model/generation.h"

namespace vortex::testing {
namespace {

flow::SparseConfig sparse_config(const std::string& name, int32_t topk_val, int32_t block_size,
                                 std::vector<int32_t> layers_skip = {}) {
  FlowOptions o;
  o.flow = name;
  o.budget.topk_val = topk_val;
  o.budget.block_size = block_size;
  o.budget.layers_skip = std::move(layers_skip);
  auto s = make_sparse_config(o);
  EXPECT_TRUE(s.has_value()) << s.status().to_string();
  return std::move(s).value();
}

/// Prefills `prompt` then greedy-decodes `steps` tokens; returns every step's logits.
std::vector<std::vector<float>> greedy_run(ModelHarness& h, const std::vector<int32_t>& prompt,
                                           int steps, const flow::SparseConfig* sparse) {
  PageTable pt(h.page_size);
  std::vector<std::vector<float>> all = {h.prefill(pt, prompt, 16, sparse)};
  for (int i = 0; i < steps; ++i) all.push_back(h.decode(pt, argmax(all.back()), sparse));
  return all;
}

TEST(SparseForward, BudgetCoveringTheContextIsBitwiseDense) {
  const ModelConfig c = synthetic_config("tiny-llama").value();
  const flow::SparseConfig wide = sparse_config("block_topk", 1000, 4);
  ModelHarness dense(c, 8, 4, DType::kBF16, 64), sparse(c, 8, 4, DType::kBF16, 64, {&wide});
  const auto prompt = random_tokens(41, c.vocab_size, 3);
  const auto a = greedy_run(dense, prompt, 30, nullptr);
  const auto b = greedy_run(sparse, prompt, 30, &wide);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "step " << i;
  EXPECT_GT(sparse.stats.candidate_pages, 0);
  EXPECT_EQ(sparse.stats.selected_pages, sparse.stats.candidate_pages);
}

TEST(SparseForward, DenseFlowAndAllLayersSkippedAreBitwiseDense) {
  const ModelConfig c = synthetic_config("tiny-qwen3").value();
  flow::SparseConfig dense_flow;
  dense_flow.program = flow::load_flow("dense").value();
  const flow::SparseConfig skipped = sparse_config("block_topk", 1, 4, {0, 1});
  ModelHarness dense(c, 2, 4, DType::kF32, 64), via_flow(c, 2, 4, DType::kF32, 64, {&dense_flow}),
      via_skip(c, 2, 4, DType::kF32, 64, {&skipped});
  EXPECT_TRUE(via_skip.cache->config().aux_fields.empty() ||
              via_skip.cache->config().layers_skip.size() == 2u);
  const auto prompt = random_tokens(50, c.vocab_size, 4);
  const auto a = greedy_run(dense, prompt, 20, nullptr);
  const auto b = greedy_run(via_flow, prompt, 20, &dense_flow);
  const auto d = greedy_run(via_skip, prompt, 20, &skipped);
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i], b[i]) << "dense flow, step " << i;
    ASSERT_EQ(a[i], d[i]) << "layers_skip, step " << i;
  }
  EXPECT_EQ(via_flow.stats.candidate_pages, 0);
  EXPECT_EQ(via_skip.stats.candidate_pages, 0);
}

TEST(SparseForward, SmallBudgetAttendsExactlyBudgetPagesPerRow) {
  const ModelConfig c = synthetic_config("tiny-llama").value();              // 2 layers, 2 KV heads
  const flow::SparseConfig narrow = sparse_config("block_topk", 2, 4, {0});  // budget 2 + 1 + 1
  ModelHarness dense(c, 5, 4, DType::kF32, 64), sparse(c, 5, 4, DType::kF32, 64, {&narrow});
  EXPECT_EQ(sparse.cache->config().layers_skip, std::vector<int32_t>{0});
  const auto prompt = random_tokens(61, c.vocab_size, 6);
  PageTable pd(4), ps(4);
  dense.prefill(pd, prompt, 61);
  sparse.prefill(ps, prompt, 61, &narrow);
  EXPECT_EQ(sparse.stats.candidate_pages, 0);  // prefill is dense
  const auto ld = dense.decode(pd, 9), ls = sparse.decode(ps, 9, &narrow);
  // Position 61 -> 62 tokens -> 16 pages; one sparse layer x 2 rows.
  EXPECT_EQ(sparse.stats.candidate_pages, 2 * 16);
  EXPECT_EQ(sparse.stats.selected_pages, 2 * 4);
  for (float x : ls) ASSERT_TRUE(std::isfinite(x));
  EXPECT_GT(rel_l2(ls, ld), 1e-4);  // reading 4 of 16 pages changes the result
}

TEST(SparseForward, SelectionHookSeesTheSelectionAndItsReplacementIsAttended) {
  const ModelConfig c = synthetic_config("tiny-llama").value();              // 2 layers, 2 KV heads
  const flow::SparseConfig narrow = sparse_config("block_topk", 2, 4, {0});  // budget 2 + 1 + 1
  ModelHarness dense(c, 5, 4, DType::kF32, 64), sparse(c, 5, 4, DType::kF32, 64, {&narrow});
  const auto prompt = random_tokens(61, c.vocab_size, 6);
  PageTable pd(4), ps(4);
  dense.prefill(pd, prompt, 61);
  sparse.prefill(ps, prompt, 61, &narrow);
  int calls = 0;
  sparse.model->set_selection_hook([&](SelectionRecord& rec) {
    ++calls;
    EXPECT_EQ(rec.layer, 1);  // layer 0 is dense
    EXPECT_EQ(rec.chunks, std::vector<size_t>{0});
    EXPECT_EQ(rec.q.size(), static_cast<size_t>(c.num_q_heads * c.head_dim));
    ASSERT_EQ(rec.selection.sel_indptr.size(), static_cast<size_t>(c.num_kv_heads + 1));
    // 62 tokens -> 16 pages: bos, two chosen, and the partial last page, per row.
    const auto& pages = ps.pages();
    flow::Selection all;  // every page of the request, in order: what dense attention reads
    all.sel_indptr.assign(1, 0);
    for (int32_t h = 0; h < c.num_kv_heads; ++h) {
      const int32_t b = rec.selection.sel_indptr[static_cast<size_t>(h)];
      const int32_t e = rec.selection.sel_indptr[static_cast<size_t>(h) + 1];
      ASSERT_EQ(e - b, 4);
      EXPECT_EQ(rec.selection.sel_indices[static_cast<size_t>(b)], pages[0]);
      EXPECT_EQ(rec.selection.sel_indices[static_cast<size_t>(e) - 1], pages[15]);
      for (int32_t i = 0; i < 16; ++i) all.sel_indices.push_back(pages[static_cast<size_t>(i)]);
      all.sel_indptr.push_back(static_cast<int32_t>(all.sel_indices.size()));
    }
    rec.selection = std::move(all);
  });
  const auto ld = dense.decode(pd, 9), ls = sparse.decode(ps, 9, &narrow);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(sparse.stats.selected_pages, 2 * 4);  // counted before the hook
  EXPECT_EQ(ls, ld);  // attending every page in order is dense attention, bit for bit
  sparse.model->set_selection_hook(nullptr);
}

TEST(SparseForward, GeneratorGreedyTokensEqualDenseWhenTheBudgetCoversTheContext) {
  auto g = Generator::load("synthetic:tiny-qwen2").value();
  SamplingParams s;
  s.max_tokens = 48;
  const auto prompt = random_tokens(90, 256, 8);
  const flow::SparseConfig dense;
  const auto ref = g->generate_ids(prompt, s, dense).value();
  const auto dense_flow = g->generate_ids(prompt, s, sparse_config("dense", 30, 16)).value();
  const auto wide = g->generate_ids(prompt, s, sparse_config("block_topk", 64, 16)).value();
  EXPECT_EQ(dense_flow.output_ids, ref.output_ids);
  EXPECT_EQ(wide.output_ids, ref.output_ids);
  EXPECT_EQ(wide.selected_fraction(), 1.0);
  EXPECT_GT(wide.candidate_pages, 0);
  const auto narrow = g->generate_ids(prompt, s, sparse_config("block_topk", 2, 16)).value();
  EXPECT_LT(narrow.selected_fraction(), 1.0);
  EXPECT_EQ(narrow.output_ids.size(), 48u);
}

TEST(SparseForward, EveryBuiltinFlowRunsThroughGeneration) {
  auto g = Generator::load("synthetic:tiny-qwen3").value();
  SamplingParams s;
  s.max_tokens = 12;
  const auto prompt = random_tokens(150, 256, 10);
  for (const std::string& name : flow::builtin_flow_names()) {
    auto r = g->generate_ids(prompt, s, sparse_config(name, 2, 16, {0}));
    ASSERT_TRUE(r.has_value()) << name << ": " << r.status().to_string();
    EXPECT_EQ(r->output_ids.size(), 12u) << name;
    if (name == "dense") {
      EXPECT_EQ(r->candidate_pages, 0) << name;
    } else {
      EXPECT_LT(r->selected_fraction(), 1.0) << name;
    }
  }
}

}  // namespace
}  // namespace vortex::testing
