// Times the generated flow kernels at the benchmark shape (qwen3-1.7b attention: H_q 16,
// H_kv 8, D 128, P 16; B = 32 requests of L = 16K tokens) against the hand-written block_topk
// kernels: planner (generated policy vs template), indexer (generated vs centroid_scores), top-k,
// cache flow. Not a test (prints, asserts nothing); run on the GPU machine:
//   flow_kernel_timing [flow ...]        (default: block_topk quest gqa_block_topk h2o_pages)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "vortex/core/cuda_allocator.h"
#include "vortex/core/cuda_check.h"
#include "vortex/core/dtype.h"
#include "vortex/flow/runtime.h"
#include "vortex/kernels/cuda/block_topk_flow.h"
#include "vortex/kernels/cuda/flow_runtime.h"
#include "vortex/kernels/cuda/row_topk.h"

namespace {

using namespace vortex;  // NOLINT(google-build-using-namespace): a small driver

constexpr int32_t kB = 32, kHq = 16, kHkv = 8, kD = 128, kP = 16, kPages = 1024;

// Median time in µs of `fn` over `reps` runs of `inner` calls each, after a warm-up.
double time_us(cudaStream_t s, const std::function<void()>& fn, int reps = 30, int inner = 10) {
  for (int i = 0; i < 5; ++i) fn();
  cudaEvent_t a, b;
  VORTEX_CUDA_CHECK(cudaEventCreate(&a));
  VORTEX_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> t;
  for (int r = 0; r < reps; ++r) {
    VORTEX_CUDA_CHECK(cudaEventRecord(a, s));
    for (int i = 0; i < inner; ++i) fn();
    VORTEX_CUDA_CHECK(cudaEventRecord(b, s));
    VORTEX_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    VORTEX_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms * 1000.0f / inner);
  }
  std::sort(t.begin(), t.end());
  VORTEX_CUDA_CHECK(cudaEventDestroy(a));
  VORTEX_CUDA_CHECK(cudaEventDestroy(b));
  return t[t.size() / 2];
}

void check(const Status& s, const char* what) {
  if (!s.is_ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.to_string().c_str());
    std::exit(1);
  }
}

// N(0, 1) bf16 values: a random block of 2^22 (prime-offset copies beyond it).
void fill_random_bf16(void* dev, size_t n, uint64_t seed) {
  const size_t block = std::min<size_t>(n, size_t{1} << 22);
  std::vector<uint16_t> h(block + 4099);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& x : h) x = f32_to_bf16(nd(rng));
  for (size_t off = 0, k = 0; off < n; off += block, ++k) {
    const size_t len = std::min(block, n - off);
    VORTEX_CUDA_CHECK(cudaMemcpy(static_cast<uint16_t*>(dev) + off, h.data() + (k * 97) % 4099,
                                 len * 2, cudaMemcpyHostToDevice));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda_device_count() == 0) {
    std::printf("no CUDA device\n");
    return 0;
  }
  std::vector<std::string> flows = {"block_topk", "quest", "gqa_block_topk", "h2o_pages"};
  if (argc > 1) flows.assign(argv + 1, argv + argc);
  cudaDeviceProp prop{};
  VORTEX_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device %s, %d SMs; B=%d L=%d pages=%d H_q=%d H_kv=%d D=%d P=%d\n", prop.name,
              prop.multiProcessorCount, kB, kPages * kP, kPages, kHq, kHkv, kD, kP);
  cudaStream_t s = nullptr;
  VORTEX_CUDA_CHECK(cudaStreamCreate(&s));
  // Page table: request b owns pages [b * kPages, (b + 1) * kPages), shuffled.
  std::vector<int32_t> indptr{0}, indices, last(kB, kP);
  std::vector<int32_t> perm(static_cast<size_t>(kB) * kPages);
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int32_t>(i);
  std::shuffle(perm.begin(), perm.end(), std::mt19937_64(7));
  for (int32_t b = 0; b < kB; ++b) {
    indices.insert(indices.end(), perm.begin() + b * kPages, perm.begin() + (b + 1) * kPages);
    indptr.push_back(static_cast<int32_t>(indices.size()));
  }
  auto alloc = cuda_allocator(0);
  check(alloc.status(), "allocator");
  auto upload = [&](const std::vector<int32_t>& v) {
    auto buf = Buffer::allocate(**alloc, v.size() * 4);
    check(buf.status(), "alloc");
    VORTEX_CUDA_CHECK(cudaMemcpy(buf->data(), v.data(), v.size() * 4, cudaMemcpyHostToDevice));
    return std::move(buf).value();
  };
  Buffer d_indptr = upload(indptr), d_indices = upload(indices), d_last = upload(last);
  const PageTableView pt{static_cast<int32_t*>(d_indptr.data()),
                         static_cast<int32_t*>(d_indices.data()),
                         static_cast<int32_t*>(d_last.data()), kB};
  auto qbuf = Buffer::allocate(**alloc, static_cast<size_t>(kB) * kHq * kD * 2);
  check(qbuf.status(), "q");
  fill_random_bf16(qbuf->data(), static_cast<size_t>(kB) * kHq * kD, 3);
  gpu::PlannerConfig pc{kB, kHkv, kPages, 64, 0};
  auto planner = gpu::SparsePlanner::create(pc);
  check(planner.status(), "planner");

  std::printf("%-16s %9s %9s %9s %9s %9s %9s %9s %9s\n", "flow", "plan.gen", "plan.tpl", "idx.le4",
              "idx.le8", "idx.le16", "hand", "topk", "cacheflw");
  for (const std::string& name : flows) {
    auto program = flow::load_flow(name);
    check(program.status(), name.c_str());
    flow::BudgetParams budget;  // topk 30, bos 1, eos 1
    KVCacheConfig kc;
    kc.num_layers = 1;
    kc.num_kv_heads = kHkv;
    kc.head_dim = kD;
    kc.page_size = kP;
    kc.aux_fields = flow::flow_aux_fields(**program, kP, kD);
    auto cache = KVCache::create(kc, kB * kPages, **alloc);
    check(cache.status(), "cache");
    const size_t kv_elems = static_cast<size_t>(kB) * kPages * kHkv * kP * kD;
    fill_random_bf16(cache->layer(0).k, kv_elems, 11);
    VORTEX_CUDA_CHECK(cudaMemset(cache->layer(0).v, 0x3c, kv_elems * 2));
    gpu::CudaFlowRunnerConfig rc;
    rc.num_q_heads = kHq;
    rc.num_kv_heads = kHkv;
    rc.head_dim = kD;
    rc.max_batch = kB;
    rc.max_pages_per_request = kPages;
    auto runner = gpu::CudaFlowRunner::create({*program, budget}, rc);
    check(runner.status(), "runner");
    // Cache flow over every page (fills the fields), timed over 4096 completed pages.
    auto all = upload(perm);
    check((*runner)->run_cache_flow(*cache, 0, static_cast<int32_t*>(all.data()), nullptr,
                                    kB * kPages, s),
          "cache flow");
    const double t_cache = time_us(s, [&] {
      check(
          (*runner)->run_cache_flow(*cache, 0, static_cast<int32_t*>(all.data()), nullptr, 4096, s),
          "cache flow");
    });
    const gpu::BudgetArgs args = (*runner)->budget_args();
    const double t_plan_gen =
        time_us(s, [&] { check((*runner)->plan(*planner, pt, 0, s), "plan"); });
    const double t_plan_tpl = time_us(s, [&] { check(planner->plan(pt, args, 0, s), "plan"); });
    check((*runner)->plan(*planner, pt, 0, s), "plan");
    // The indexer at three reduction_lane_elems settings (codegen tuning).
    double t_index[3] = {0, 0, 0};
    const int lane_elems[3] = {4, 8, 16};
    for (int v = 0; v < 3; ++v) {
      gpu::CudaFlowRunnerConfig rv = rc;
      rv.reduction_lane_elems = lane_elems[v];
      auto variant = gpu::CudaFlowRunner::create({*program, budget}, rv);
      check(variant.status(), "runner variant");
      t_index[v] = time_us(s, [&] {
        check((*variant)->score(*cache, 0, qbuf->data(), pt, planner->worklist(),
                                (*runner)->scores(), s),
              "score");
      });
    }
    double t_hand = 0;
    if (name == "block_topk") {
      const AuxFieldView cent = cache->aux(0, 0);
      t_hand = time_us(s, [&] {
        check(gpu::centroid_scores(qbuf->data(), DType::kBF16, kHq, kHkv, kD, cent, pt,
                                   planner->worklist(), (*runner)->scores(), s),
              "centroid_scores");
      });
    }
    const double t_topk = time_us(s, [&] {
      check(gpu::select_topk((*runner)->scores(), DType::kF32, pt, kHkv, planner->sel_indptr(),
                             planner->sel_indices(), planner->sel_capacity(), args.bos, args.eos,
                             (*runner)->tolerance(), s),
            "topk");
    });
    std::printf("%-16s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", name.c_str(), t_plan_gen,
                t_plan_tpl, t_index[0], t_index[1], t_index[2], t_hand, t_topk, t_cache);
  }
  std::printf(
      "(us, median; indexer at reduction_lane_elems 4 / 8 / 16; cache flow over 4096 "
      "completed pages)\n");
  VORTEX_CUDA_CHECK(cudaStreamDestroy(s));
  return 0;
}
