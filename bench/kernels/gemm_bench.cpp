// Decode-shaped GEMMs (issue 6/7: the weight-streaming part of a decode step): the qwen3-1.7b
// projections at n = 1/8/32/64 rows, cuBLASLt (heuristic pick, and the L2-cold autotuned pick)
// against the skinny tensor-core kernel, weights rotated over copies larger than the L2 so every
// call reads them from DRAM. Calls are replayed from a CUDA graph, as in a decode step (eager
// launches would cost more than these kernels run). GB/s counts weights + x + y once.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "kernel_bench.h"
#include "vortex/kernels/cuda/gemm.h"
#include "vortex/kernels/cuda/l2_prefetch.h"
#include "vortex/kernels/cuda/skinny_gemm.h"

namespace vortex::bench {
namespace {

struct GemmShape {
  const char* name;
  int64_t m, k;
};

/// Per-call time of fn(0..calls-1) captured once in a graph and replayed: median over `groups`
/// replays (after two untimed ones).
Stats time_graph(cudaStream_t s, int calls, int groups, const std::function<void(int)>& fn) {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  cuda_ok(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "begin capture");
  for (int i = 0; i < calls; ++i) fn(i);
  cuda_ok(cudaStreamEndCapture(s, &graph), "end capture");
  cuda_ok(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  const Stats st = time_calls(s, 2, groups, 1, [&](int) { (void)cudaGraphLaunch(exec, s); });
  cuda_ok(cudaStreamSynchronize(s), "graph replay");
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  Stats per = st;
  per.median_us /= calls;
  per.min_us /= calls;
  per.max_us /= calls;
  per.calls_per_group = calls;
  return per;
}

}  // namespace

void run_gemm_benches(const Options& o, Report& r) {
  cudaStream_t s;
  cuda_ok(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  auto alloc = cuda_allocator(0);
  if (!alloc.has_value()) {
    std::fprintf(stderr, "gemm bench: %s\n", alloc.status().to_string().c_str());
    return;
  }
  cudaStream_t side;
  cuda_ok(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking), "cudaStreamCreate");
  cudaEvent_t fork, join;
  cuda_ok(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming), "cudaEventCreate");
  cuda_ok(cudaEventCreateWithFlags(&join, cudaEventDisableTiming), "cudaEventCreate");
  const std::vector<GemmShape> shapes = {
      {"qkv", 4096, 2048}, {"o", 2048, 2048}, {"gate_up", 12288, 2048}, {"down", 2048, 6144}};
  const std::vector<int64_t> rows =
      o.quick ? std::vector<int64_t>{32} : std::vector<int64_t>{1, 8, 32, 64};
  for (const GemmShape& sh : shapes) {
    const size_t w_elems = static_cast<size_t>(sh.m * sh.k);
    const int copies = std::max(8, rotation_copies(w_elems * 2, 3 * r.ceilings.l2_bytes, 32));
    DeviceVec<uint16_t> w(w_elems * static_cast<size_t>(copies));
    fill_random_bf16(w.data(), w.size(), 5, s);
    for (int64_t n : rows) {
      DeviceVec<uint16_t> x(static_cast<size_t>(n * sh.k)), y(static_cast<size_t>(n * sh.m));
      fill_random_bf16(x.data(), x.size(), 6, s);
      const auto* xp = reinterpret_cast<const __nv_bfloat16*>(x.data());
      auto wp = [&](int i) {
        return reinterpret_cast<const __nv_bfloat16*>(w.data()) + w_elems * (i % copies);
      };
      const double bytes = 2.0 * (static_cast<double>(w_elems) + n * sh.k + n * sh.m);
      auto record = [&](const char* kernel, const Stats& st) {
        nlohmann::json& rec = r.add("gemm_decode",
                                    {{"shape", sh.name},
                                     {"kernel", kernel},
                                     {"n", n},
                                     {"m", sh.m},
                                     {"k", sh.k},
                                     {"copies", copies}},
                                    st, bytes);
        (void)rec;
      };
      for (auto [label, tune] : {std::pair{"cublaslt", false}, std::pair{"cublaslt_tuned", true}}) {
        auto gemm = cuda::Gemm::create(**alloc, size_t{32} << 20, tune);
        if (!gemm.has_value()) continue;
        (*gemm)->set_skinny_mode(cuda::SkinnyGemmMode::kOff);
        if (!(*gemm)->prepare(xp, wp(0), y.data(), DType::kBF16, n, sh.m, sh.k, s).is_ok())
          continue;
        record(label, time_graph(s, copies, o.quick ? 5 : 15, [&](int i) {
                 (void)(*gemm)->matmul(xp, wp(i), y.data(), DType::kBF16, n, sh.m, sh.k, 0.0f, s);
               }));
        if (!tune) continue;
        // The same pick with its weights in the L2 (one copy, read every call): the floor an L2
        // prefetch could reach.
        record("cublaslt_tuned l2-hot", time_graph(s, copies, o.quick ? 5 : 15, [&](int) {
                 (void)(*gemm)->matmul(xp, wp(0), y.data(), DType::kBF16, n, sh.m, sh.k, 0.0f, s);
               }));
        // Each call's GEMM runs beside a bulk L2 prefetch of the next call's weights on a forked
        // branch of the graph (the model's VORTEX_L2_PREFETCH, here one GEMM ahead).
        for (int ctas : {16, r.ceilings.sms}) {
          const std::string label2 =
              "cublaslt_tuned + prefetch next (" + std::to_string(ctas) + " ctas)";
          record(label2.c_str(), time_graph(s, copies, o.quick ? 5 : 15, [&](int i) {
                   cuda_ok(cudaEventRecord(fork, s), "fork");
                   cuda_ok(cudaStreamWaitEvent(side, fork, 0), "fork wait");
                   cuda_ok(cuda::l2_prefetch(wp(i + 1), w_elems * 2, ctas, side), "prefetch");
                   (void)(*gemm)->matmul(xp, wp(i), y.data(), DType::kBF16, n, sh.m, sh.k, 0.0f, s);
                   if (i + 1 == copies) {
                     cuda_ok(cudaEventRecord(join, side), "join");
                     cuda_ok(cudaStreamWaitEvent(s, join, 0), "join wait");
                   }
                 }));
        }
      }
      // Every cut the autotuner would time; the label names it (cut 0 is the default).
      for (const cuda::SkinnyGemmShape& cut :
           cuda::skinny_gemm_shapes(n, sh.m, sh.k, r.ceilings.sms)) {
        DeviceVec<uint8_t> ws(std::max<size_t>(1, cuda::skinny_gemm_workspace_bytes(cut, n, sh.m)));
        if (!cuda::skinny_gemm_init_workspace(ws.data(), cut, n, sh.m, s).is_ok()) continue;
        const std::string label = "skinny kg" + std::to_string(cut.k_groups) + " s" +
                                  std::to_string(cut.splits) + " t" + std::to_string(cut.tiles) +
                                  (cut.cluster ? " cluster" : "");
        record(label.c_str(), time_graph(s, copies, o.quick ? 5 : 15, [&](int i) {
                 (void)cuda::skinny_gemm(xp, wp(i), y.data(), DType::kBF16, n, sh.m, sh.k, 0.0f,
                                         cut, ws.data(), s);
               }));
      }
    }
  }
  cuda_ok(cudaStreamSynchronize(s), "gemm bench");
  cuda_ok(cudaEventDestroy(fork), "cudaEventDestroy");
  cuda_ok(cudaEventDestroy(join), "cudaEventDestroy");
  cuda_ok(cudaStreamDestroy(side), "cudaStreamDestroy");
  cuda_ok(cudaStreamDestroy(s), "cudaStreamDestroy");
}

}  // namespace vortex::bench
