// GPU tests of CudaModel's sparse decode (block_topk) against CpuModel's on the same bf16-exact
// weights: the same number of selected pages (the budget decides it), logits within bf16
// tolerance over decode steps that complete pages (cache flow inside the step), graph replay equal
// to eager, and a batch mixing dense and sparse requests. Built only with the flow module.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "model_pair.h"
#include "vortex/flow/runtime.h"
#include "vortex/model/cuda_model.h"

namespace vortex::testing {
namespace {

flow::SparseConfig block_topk(int32_t topk_val, std::vector<int32_t> layers_skip) {
  flow::SparseConfig s;
  auto program = flow::load_flow("block_topk");
  EXPECT_TRUE(program.has_value()) << program.status().to_string();
  s.program = *program;
  s.budget.topk_val = topk_val;
  s.budget.bos = 1;
  s.budget.eos = 1;
  s.budget.layers_skip = std::move(layers_skip);
  return s;
}

/// CPU and GPU models whose caches carry the flow's aux fields.
struct SparsePair {
  ModelConfig config;
  std::unique_ptr<CpuModel> cpu;
  std::unique_ptr<CudaModel> gpu;
  Side cpu_side, gpu_side;

  SparsePair(const ModelConfig& c, const flow::SparseConfig* sparse, int32_t pages,
             int32_t requests)
      : config(c) {
    const WeightMap w = bf16_exact(synthetic_weights(c, 17).value());
    cpu = CpuModel::create(c, w).value();
    CudaModelOptions opt;
    opt.max_batch = 8;
    opt.max_tokens = 1024;
    opt.max_context = 2048;
    gpu = CudaModel::create(c, w, opt).value();
    cpu_side.cache.emplace(
        KVCache::create(cpu->kv_cache_config(16, DType::kBF16, {sparse}), pages).value());
    gpu_side.cache.emplace(gpu->create_kv_cache(gpu->kv_cache_config(16, {sparse}), pages).value());
    for (int32_t r = 0; r < requests; ++r) {
      cpu_side.tables.emplace_back(16);
      gpu_side.tables.emplace_back(16);
    }
  }

  /// One step on both; `sparse[i]` is chunk i's config. Returns logits and stats of each side.
  void step(const std::vector<ChunkSpec>& chunks, const std::vector<const flow::SparseConfig*>& sp,
            std::vector<float>* cpu_logits, std::vector<float>* gpu_logits, ForwardStats* cs,
            ForwardStats* gs) {
    size_t want = 0;
    for (const ChunkSpec& s : chunks) want += s.want ? 1 : 0;
    cpu_logits->assign(want * static_cast<size_t>(config.vocab_size), 0.0f);
    gpu_logits->assign(cpu_logits->size(), 0.0f);
    ForwardBatch a = ModelPair::batch_for(cpu_side, chunks);
    ForwardBatch b = ModelPair::batch_for(gpu_side, chunks);
    for (size_t i = 0; i < chunks.size(); ++i) {
      a.seqs[i].sparse = sp[i];
      b.seqs[i].sparse = sp[i];
    }
    const Status s1 = cpu->forward(a, *cpu_side.cache, cpu_logits->data(), cs);
    ASSERT_TRUE(s1.is_ok()) << s1.to_string();
    const Status s2 = gpu->forward(b, *gpu_side.cache, gpu_logits->data(), gs);
    ASSERT_TRUE(s2.is_ok()) << s2.to_string();
  }
};

TEST(CudaModelSparse, BlockTopKDecodeMatchesCpu) {
  VORTEX_SKIP_WITHOUT_GPU();
  const ModelConfig c =
      small_config("gpu-qwen3-sparse", Arch::kQwen3, 3, 256, 4, 2, 128, 768, 2048);
  const flow::SparseConfig sparse = block_topk(4, {0});
  SparsePair p(c, &sparse, 256, 3);
  const auto V = c.vocab_size;
  // Long prompts (prefill is dense), then sparse decode steps crossing page boundaries.
  const std::vector<int32_t> lens = {300, 517, 45};
  std::vector<float> cl, gl;
  ForwardStats cs, gs;
  std::vector<int32_t> next(3);
  for (size_t r = 0; r < 3; ++r) {
    p.step(
        {{r, random_tokens(static_cast<size_t>(lens[r]), V, 50u + static_cast<uint32_t>(r)), true}},
        {&sparse}, &cl, &gl, &cs, &gs);
    EXPECT_LT(rel_l2(gl, cl), 2e-2);
    next[r] = argmax(cl.data(), V);
  }
  for (int step = 0; step < 20; ++step) {
    ForwardStats c1, g1;
    p.step({{0, {next[0]}, true}, {1, {next[1]}, true}, {2, {next[2]}, true}},
           {&sparse, &sparse, &sparse}, &cl, &gl, &c1, &g1);
    EXPECT_LT(rel_l2(gl, cl), 3e-2) << "step " << step;
    EXPECT_EQ(g1.selected_pages, c1.selected_pages) << "step " << step;
    EXPECT_EQ(g1.candidate_pages, c1.candidate_pages) << "step " << step;
    EXPECT_GT(c1.candidate_pages, c1.selected_pages) << "the budget must make some rows sparse";
    for (size_t r = 0; r < 3; ++r) next[r] = argmax(cl.data() + r * V, V);  // teacher forcing
  }
}

// Flows without hand-written kernels run through the flow compiler's CUDA backend (generated
// kernels, NVRTC): CudaModel's sparse decode matches CpuModel's, including a custom budget policy
// that reads the layer (planned per layer) and a flow keeping per-page state (Save).
TEST(CudaModelSparse, GeneratedFlowsDecodeMatchCpu) {
  VORTEX_SKIP_WITHOUT_GPU();
  const ModelConfig c =
      small_config("gpu-qwen3-sparse", Arch::kQwen3, 3, 256, 4, 2, 128, 768, 2048);
  std::vector<flow::SparseConfig> configs;
  for (const char* name : {"quest", "gqa_block_topk", "running_avg", "lserve_centroid"}) {
    flow::SparseConfig s = block_topk(4, {0});
    s.program = flow::load_flow(name).value();
    configs.push_back(s);
  }
  flow::SparseConfig custom = block_topk(4, {0});  // block_topk with a policy: generated too
  custom.budget.policy = flow::parse_policy("max(6, pages / 6) + layer").value();
  configs.push_back(custom);
  for (const flow::SparseConfig& sparse : configs) {
    const std::string name = flow::flow_name(*sparse.program);
    SparsePair p(c, &sparse, 256, 2);
    const auto V = c.vocab_size;
    const std::vector<int32_t> lens = {420, 333};
    std::vector<float> cl, gl;
    ForwardStats cs, gs;
    std::vector<int32_t> next(2);
    for (size_t r = 0; r < 2; ++r) {
      p.step({{r, random_tokens(static_cast<size_t>(lens[r]), V, 60u + static_cast<uint32_t>(r)),
               true}},
             {&sparse}, &cl, &gl, &cs, &gs);
      next[r] = argmax(cl.data(), V);
    }
    for (int step = 0; step < 18; ++step) {
      ForwardStats c1, g1;
      p.step({{0, {next[0]}, true}, {1, {next[1]}, true}}, {&sparse, &sparse}, &cl, &gl, &c1, &g1);
      // CpuModel scores pages with its fp32 q, the GPU with bf16 q: near-tie pages may differ, so
      // logits are compared loosely (BlockTopKDecodeMatchesCpu's 3e-2 fails on the H100 for the
      // hand-written kernels too, bench/results/2026-11-23-h100-check2); the budgets are exact.
      EXPECT_LT(rel_l2(gl, cl), 0.2) << name << " step " << step;
      EXPECT_EQ(g1.selected_pages, c1.selected_pages) << name << " step " << step;
      EXPECT_GT(c1.candidate_pages, c1.selected_pages) << name;
      for (size_t r = 0; r < 2; ++r) next[r] = argmax(cl.data() + r * V, V);
    }
  }
}

TEST(CudaModelSparse, MixedDenseAndSparseRequestsInOneStep) {
  VORTEX_SKIP_WITHOUT_GPU();
  const ModelConfig c = small_config("gpu-llama-sparse", Arch::kLlama, 2, 256, 4, 2, 64, 512, 1000);
  const flow::SparseConfig sparse = block_topk(3, {});
  SparsePair p(c, &sparse, 256, 3);
  const auto V = c.vocab_size;
  std::vector<float> cl, gl;
  ForwardStats cs, gs;
  std::vector<int32_t> next(3);
  for (size_t r = 0; r < 3; ++r) {
    // The sparse requests' prefill runs their cache flow (page summaries); request 1 stays dense.
    p.step({{r, random_tokens(400, V, 70u + static_cast<uint32_t>(r)), true}},
           {r == 1 ? nullptr : &sparse}, &cl, &gl, &cs, &gs);
    next[r] = argmax(cl.data(), V);
  }
  for (int step = 0; step < 6; ++step) {  // request 1 dense, 0 and 2 sparse
    ForwardStats c1, g1;
    p.step({{0, {next[0]}, true}, {1, {next[1]}, true}, {2, {next[2]}, true}},
           {&sparse, nullptr, &sparse}, &cl, &gl, &c1, &g1);
    EXPECT_LT(rel_l2(gl, cl), 3e-2) << "step " << step;
    EXPECT_EQ(g1.selected_pages, c1.selected_pages);
    for (size_t r = 0; r < 3; ++r) next[r] = argmax(cl.data() + r * V, V);
  }
}

TEST(CudaModelSparse, GraphReplayEqualsEagerForSparseDecode) {
  VORTEX_SKIP_WITHOUT_GPU();
  const ModelConfig c =
      small_config("gpu-qwen3-sparse", Arch::kQwen3, 2, 256, 4, 2, 128, 768, 2048);
  const flow::SparseConfig sparse = block_topk(4, {0});
  CudaModelOptions opt;
  opt.max_batch = 8;
  opt.max_tokens = 1024;
  opt.max_context = 2048;
  auto model = CudaModel::create_random(c, 2, opt).value();
  std::vector<KVCache> caches;
  std::vector<std::vector<PageTable>> tables(2);
  std::vector<int32_t> first;
  for (int k = 0; k < 2; ++k) {
    caches.push_back(model->create_kv_cache(model->kv_cache_config(16, {&sparse}), 256).value());
    std::vector<float> logits(static_cast<size_t>(c.vocab_size));
    for (int r = 0; r < 4; ++r) {
      tables[k].emplace_back(16);
      const auto prompt = random_tokens(200 + 37 * static_cast<size_t>(r), c.vocab_size, 90u + r);
      ASSERT_TRUE(
          tables[k][r].reserve(static_cast<int64_t>(prompt.size()), caches[k].pool()).is_ok());
      ForwardBatch b{{SequenceChunk{prompt.data(), static_cast<int32_t>(prompt.size()), 0,
                                    &tables[k][r], &sparse, true}}};
      ASSERT_TRUE(model->forward(b, caches[k], logits.data(), nullptr).is_ok());
      if (k == 0) first.push_back(argmax(logits.data(), c.vocab_size));
    }
  }
  std::vector<int32_t> tg = first, te = first;
  for (int step = 0; step < 20; ++step) {
    for (int k = 0; k < 2; ++k) {
      model->set_use_graphs(k == 0);
      std::vector<int32_t>& t = k == 0 ? tg : te;
      ForwardBatch b;
      for (int r = 0; r < 4; ++r) {
        PageTable& pt = tables[k][r];
        ASSERT_TRUE(pt.reserve(1, caches[k].pool()).is_ok());
        b.seqs.push_back(
            SequenceChunk{&t[static_cast<size_t>(r)], 1, pt.num_tokens(), &pt, &sparse, true});
      }
      const std::vector<CudaSampleSpec> specs(4);
      ASSERT_TRUE(model->plan(b, specs).is_ok());
      ASSERT_TRUE(model->launch(caches[k]).is_ok());
      CudaStepResult res;
      ASSERT_TRUE(model->wait(&res).is_ok());
      EXPECT_EQ(res.graph_replayed, k == 0 && step > 0);
      EXPECT_GT(res.stats.candidate_pages, res.stats.selected_pages);
      t = res.tokens;
    }
    ASSERT_EQ(tg, te) << "step " << step;
  }
}

}  // namespace
}  // namespace vortex::testing
