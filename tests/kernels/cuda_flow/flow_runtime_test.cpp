// CudaFlowRunner on the GPU (label gpu; skips without a device): the per-step calls captured in a
// CUDA graph and replayed over new queries, new lengths and new completed pages; the disk cache
// across runners; errors for caches and flows that do not match.
#include <gtest/gtest.h>

#include <filesystem>

#include "flow_parity.h"
#include "vortex/compiler/program.h"

namespace vortex::flow_gpu_test {
namespace {

flow::testing::World make_test_world(const flow::FlowProgram& program,
                                     const std::vector<int64_t>& lengths, uint64_t seed) {
  flow::testing::WorldSpec ws;
  ws.page_size = 16;
  ws.head_dim = 128;
  ws.num_kv_heads = 2;
  ws.group = 4;
  ws.num_layers = 1;
  ws.kv_dtype = DType::kBF16;
  ws.aux_dtype = DType::kBF16;
  ws.lengths = lengths;
  ws.seed = seed;
  return flow::testing::make_world(
      ws, program, [seed](int32_t, int32_t b, int32_t h, int64_t t, int32_t d, bool v) {
        return hash_uniform((((seed * 977 + b) * 31 + h) * 1000003 + t) * 4099 + d * 2 + v);
      });
}

gpu::CudaFlowRunnerConfig runner_config(int32_t batch, int32_t max_pages) {
  gpu::CudaFlowRunnerConfig rc;
  rc.num_q_heads = 8;
  rc.num_kv_heads = 2;
  rc.head_dim = 128;
  rc.max_batch = batch;
  rc.max_pages_per_request = max_pages;
  return rc;
}

std::vector<uint16_t> random_q(size_t n, uint64_t seed, std::vector<float>* as_float) {
  std::vector<uint16_t> q(n);
  as_float->resize(n);
  for (size_t i = 0; i < n; ++i) {
    q[i] = f32_to_bf16(hash_uniform(seed * 1000003 + i) * 2.0f);
    (*as_float)[i] = bf16_to_f32(q[i]);
  }
  return q;
}

// A captured plan + select replayed over new queries and shorter page lists (same batch size,
// same device buffers) selects what the CPU selects for each.
TEST(CudaFlowRuntime, GraphReplayOverNewQueriesAndLengths) {
  VORTEX_REQUIRE_GPU();
  for (const char* name : {"block_topk", "gqa_block_topk", "running_avg"}) {
    auto program = flow::load_flow(name);
    ASSERT_TRUE(program.has_value());
    const std::vector<int64_t> lengths = {16 * 300, 16 * 90 + 3, 16 * 1200, 40};
    flow::testing::World w = make_test_world(**program, lengths, 5);
    flow::BudgetParams budget;
    budget.topk_val = 12;
    ASSERT_TRUE(
        flow::run_cache_flow_cpu(**program, budget, *w.cache, 0, w.completed_pages()).is_ok());
    DeviceCache dev(*w.cache);
    for (int32_t f = 0; f < static_cast<int32_t>(w.cache->config().aux_fields.size()); ++f) {
      dev.upload_field(*w.cache, 0, f);
    }
    const int32_t B = w.batch(), max_pages = 1200;
    auto runner = gpu::CudaFlowRunner::create({*program, budget}, runner_config(B, max_pages));
    ASSERT_TRUE(runner.has_value()) << runner.status().to_string();
    gpu::PlannerConfig pc{B, 2, max_pages, budget.workload_chunk_size, 0};
    auto planner = gpu::SparsePlanner::create(pc);
    ASSERT_TRUE(planner.has_value());
    DeviceArray<int32_t> indptr(static_cast<size_t>(B) + 1), indices(w.page_indices.size()),
        last(static_cast<size_t>(B));
    DeviceArray<uint16_t> q_dev(static_cast<size_t>(B) * 8 * 128);
    const PageTableView pt{indptr.data(), indices.data(), last.data(), B};
    cudaStream_t stream = nullptr;
    VORTEX_CUDA_CHECK(cudaStreamCreate(&stream));
    cudaGraph_t graph = nullptr;
    VORTEX_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    Status s = (*runner)->plan(*planner, pt, 0, stream);
    auto sel = (*runner)->select(*dev.cache, 0, q_dev.data(), pt, *planner, stream);
    VORTEX_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    ASSERT_TRUE(sel.has_value()) << sel.status().to_string();
    cudaGraphExec_t exec = nullptr;
    VORTEX_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    for (int round = 0; round < 3; ++round) {
      // Round r keeps the first n_b >> r pages of each request (full pages: their fields exist).
      std::vector<int32_t> h_indptr{0}, h_indices, h_last;
      for (int32_t b = 0; b < B; ++b) {
        const auto& pages = w.pages[static_cast<size_t>(b)];
        const size_t n = round == 0 ? pages.size() : std::max<size_t>(1, pages.size() >> round);
        h_indices.insert(h_indices.end(), pages.begin(), pages.begin() + static_cast<long>(n));
        h_indptr.push_back(static_cast<int32_t>(h_indices.size()));
        h_last.push_back(round == 0 ? w.last_page_len[static_cast<size_t>(b)] : 16);
      }
      h_indices.resize(w.page_indices.size(), 0);
      indptr.upload(h_indptr);
      indices.upload(h_indices);
      last.upload(h_last);
      std::vector<float> q;
      q_dev.upload(random_q(q_dev.size(), 100 + round, &q));
      VORTEX_CUDA_CHECK(cudaGraphLaunch(exec, stream));
      VORTEX_CUDA_CHECK(cudaStreamSynchronize(stream));
      flow::Selection cpu;
      const PageTableView host_pt{h_indptr.data(), h_indices.data(), h_last.data(), B};
      ASSERT_TRUE(flow::select_pages_cpu(**program, budget, *w.cache, 0, q.data(), 8, host_pt, &cpu)
                      .is_ok());
      std::vector<int32_t> g_indptr(static_cast<size_t>(B) * 2 + 1);
      VORTEX_CUDA_CHECK(cudaMemcpy(g_indptr.data(), planner->sel_indptr(), g_indptr.size() * 4,
                                   cudaMemcpyDeviceToHost));
      ASSERT_EQ(g_indptr, cpu.sel_indptr) << name << " round " << round;
      std::vector<int32_t> g_idx(static_cast<size_t>(g_indptr.back()));
      VORTEX_CUDA_CHECK(cudaMemcpy(g_idx.data(), planner->sel_indices(), g_idx.size() * 4,
                                   cudaMemcpyDeviceToHost));
      EXPECT_EQ(g_idx, cpu.sel_indices) << name << " round " << round;
      if (flow::flow_uses_save(**program)) {  // keep both caches identical for the next round
        for (int32_t f = 0; f < static_cast<int32_t>(w.cache->config().aux_fields.size()); ++f) {
          expect_fields_close(dev.field(0, f), host_field(*w.cache, 0, f), DType::kBF16,
                              std::string(name) + " state");
          dev.upload_field(*w.cache, 0, f);
        }
      }
    }
    VORTEX_CUDA_CHECK(cudaGraphExecDestroy(exec));
    VORTEX_CUDA_CHECK(cudaGraphDestroy(graph));
    VORTEX_CUDA_CHECK(cudaStreamDestroy(stream));
  }
}

// The cache flow captured once with a device-side page count, replayed over new page lists.
TEST(CudaFlowRuntime, CapturedCacheFlowWithDeviceCount) {
  VORTEX_REQUIRE_GPU();
  auto program = flow::load_flow("h2o_pages");
  ASSERT_TRUE(program.has_value());
  flow::testing::World w = make_test_world(**program, {16 * 64, 16 * 33 + 5, 16 * 7}, 9);
  DeviceCache dev(*w.cache);
  flow::BudgetParams budget;
  auto runner = gpu::CudaFlowRunner::create({*program, budget}, runner_config(3, 64));
  ASSERT_TRUE(runner.has_value()) << runner.status().to_string();
  const std::vector<int32_t> all = w.completed_pages();
  DeviceArray<int32_t> pages(all.size()), count(1);
  cudaStream_t stream = nullptr;
  VORTEX_CUDA_CHECK(cudaStreamCreate(&stream));
  cudaGraph_t graph = nullptr;
  VORTEX_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  Status s = (*runner)->run_cache_flow(*dev.cache, 0, pages.data(), count.data(),
                                       static_cast<int32_t>(all.size()), stream);
  VORTEX_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  cudaGraphExec_t exec = nullptr;
  VORTEX_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  // Three replays, each over a different slice of the completed pages.
  const size_t third = all.size() / 3;
  std::vector<int32_t> done;
  for (int r = 0; r < 3; ++r) {
    const size_t lo = r * third, hi = r == 2 ? all.size() : (r + 1) * third;
    std::vector<int32_t> slice(all.begin() + static_cast<long>(lo),
                               all.begin() + static_cast<long>(hi));
    std::vector<int32_t> padded = slice;
    padded.resize(all.size(), -1);  // entries past the count are never read
    pages.upload(padded);
    count.upload({static_cast<int32_t>(slice.size())});
    VORTEX_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    VORTEX_CUDA_CHECK(cudaStreamSynchronize(stream));
    ASSERT_TRUE(flow::run_cache_flow_cpu(**program, budget, *w.cache, 0, slice).is_ok());
    for (int32_t f = 0; f < static_cast<int32_t>(w.cache->config().aux_fields.size()); ++f) {
      expect_fields_close(dev.field(0, f), host_field(*w.cache, 0, f), DType::kBF16,
                          "replay " + std::to_string(r));
    }
  }
  VORTEX_CUDA_CHECK(cudaGraphExecDestroy(exec));
  VORTEX_CUDA_CHECK(cudaGraphDestroy(graph));
  VORTEX_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(CudaFlowRuntime, SecondRunnerLoadsTheCompiledModuleFromDisk) {
  VORTEX_REQUIRE_GPU();
  const std::string dir =
      ::testing::TempDir() + "/vortex_runner_cache_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  auto program = flow::load_flow("quest");
  ASSERT_TRUE(program.has_value());
  gpu::CudaFlowRunnerConfig rc = runner_config(4, 100);
  rc.cache_dir = dir;
  auto first = gpu::CudaFlowRunner::create({*program, {}}, rc);
  ASSERT_TRUE(first.has_value()) << first.status().to_string();
  EXPECT_FALSE((*first)->module().from_cache);
  auto second = gpu::CudaFlowRunner::create({*program, {}}, rc);
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE((*second)->module().from_cache);
  EXPECT_EQ((*first)->module().key, (*second)->module().key);
  rc.aux_dtype = DType::kF32;  // other generated code: another key, compiled afresh
  auto third = gpu::CudaFlowRunner::create({*program, {}}, rc);
  ASSERT_TRUE(third.has_value());
  EXPECT_FALSE((*third)->module().from_cache);
  EXPECT_NE((*third)->module().key, (*first)->module().key);
  std::filesystem::remove_all(dir);
}

TEST(CudaFlowRuntime, MismatchesAreErrors) {
  VORTEX_REQUIRE_GPU();
  auto dense = flow::load_flow("dense");
  ASSERT_TRUE(dense.has_value());
  EXPECT_FALSE(gpu::CudaFlowRunner::create({*dense, {}}, runner_config(2, 10)).has_value());
  auto program = flow::load_flow("block_topk");
  ASSERT_TRUE(program.has_value());
  gpu::CudaFlowRunnerConfig bad = runner_config(2, 10);
  bad.num_q_heads = 7;  // not a multiple of H_kv
  EXPECT_FALSE(gpu::CudaFlowRunner::create({*program, {}}, bad).has_value());
  auto runner = gpu::CudaFlowRunner::create({*program, {}}, runner_config(2, 10));
  ASSERT_TRUE(runner.has_value()) << runner.status().to_string();
  // A cache built for another flow (no centroid field) and one with another head dim.
  auto quest = flow::load_flow("quest");
  ASSERT_TRUE(quest.has_value());
  flow::testing::World w = make_test_world(**quest, {64}, 3);
  DeviceCache dev(*w.cache);
  DeviceArray<int32_t> pages(std::vector<int32_t>{0, 1});
  Status s = (*runner)->run_cache_flow(*dev.cache, 0, pages.data(), nullptr, 2, nullptr);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("no aux field 'block_topk/centroid'"), std::string::npos)
      << s.to_string();
  EXPECT_FALSE((*runner)->run_cache_flow(*dev.cache, 5, pages.data(), nullptr, 2, nullptr).is_ok());
}

TEST(CudaFlowRuntime, KnowsWhetherTheBudgetReadsTheLayer) {
  VORTEX_REQUIRE_GPU();
  auto program = flow::load_flow("block_topk");
  ASSERT_TRUE(program.has_value());
  for (const auto& [text, uses] : std::vector<std::pair<const char*, bool>>{
           {"pages / 4", false}, {"pages / 4 + layer", true}, {"layer > 3 ? 8 : pages", true}}) {
    flow::BudgetParams b;
    b.policy = flow::parse_policy(text).value();
    auto runner = gpu::CudaFlowRunner::create({*program, b}, runner_config(2, 10));
    ASSERT_TRUE(runner.has_value()) << runner.status().to_string();
    EXPECT_EQ((*runner)->budget_depends_on_layer(), uses) << text;
  }
  auto plain = gpu::CudaFlowRunner::create({*program, {}}, runner_config(2, 10));
  ASSERT_TRUE(plain.has_value());
  EXPECT_FALSE((*plain)->budget_depends_on_layer());
}

}  // namespace
}  // namespace vortex::flow_gpu_test
