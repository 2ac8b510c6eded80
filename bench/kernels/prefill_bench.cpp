// Prefill (causal, paged) attention: qwen3-1.7b attention shape (H_q 16, H_kv 8, D 128, page 16),
// one 4096-token chunk with no prefix and one 2048-token chunk after a 14336-token prefix, for
// both kernels of cuda::causal_attention (tensor-core and simple). Reports TFLOP/s over the
// visible (query, key) pairs: 4 · D · H_q · Σ_t (keys visible to t) (two products, 2 FLOP each).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernel_bench.h"
#include "vortex/kernels/cuda/causal_attention.h"

namespace vortex::bench {
namespace {

constexpr int32_t kPage = 16, kDim = 128, kHkv = 8, kHq = 16;

void prefill_case(const Options& o, Report& r, cudaStream_t s, const PagedFixture& f, int32_t start,
                  int32_t n, cuda::CausalKernel kernel) {
  const int32_t pages = (start + n + kPage - 1) / kPage;
  const int32_t tile_tokens = cuda::causal_tile_tokens(kHq / kHkv);
  std::vector<int32_t> tile_chunk, tile_first;
  for (int32_t t = 0; t < n; t += tile_tokens) {
    tile_chunk.push_back(0);
    tile_first.push_back(t);
  }
  const DeviceVec<int32_t> q_start(std::vector<int32_t>{0, n});
  const DeviceVec<int32_t> start_pos(std::vector<int32_t>{start});
  const DeviceVec<int32_t> page_indptr(std::vector<int32_t>{0, pages});
  const DeviceVec<int32_t> tc(tile_chunk), tf(tile_first);
  DeviceVec<uint16_t> q(static_cast<size_t>(n) * kHq * kDim), out(q.size());
  fill_random_bf16(q.data(), q.size(), 21, s);
  cuda::CausalAttentionBatch b;
  b.q_start = q_start.data();
  b.start_pos = start_pos.data();
  b.page_indptr = page_indptr.data();
  b.page_indices = f.indices[0].data();  // the fixture's one request: its first `pages` pages
  b.tile_chunk = tc.data();
  b.tile_first = tf.data();
  b.num_tiles = static_cast<int32_t>(tile_chunk.size());
  b.tile_tokens = tile_tokens;
  const KVLayerView kv = f.kv();
  const auto* qp = reinterpret_cast<const __nv_bfloat16*>(q.data());
  auto* op = reinterpret_cast<__nv_bfloat16*>(out.data());
  const float scale = 1.f / std::sqrt(static_cast<float>(kDim));
  const bool mma = cuda::causal_attention_uses_mma(kDim, kernel);
  // The tensor-core kernel takes ~0.3-2 ms here, the simple one tens of ms.
  const int per_group = mma ? 8 : 1;
  const Stats st = time_calls(s, 2, o.quick ? 3 : 8, per_group, [&](int) {
    cuda::causal_attention(qp, kv, b, kHq, scale, op, s, kernel);
  });
  const double pairs = static_cast<double>(n) * start + 0.5 * static_cast<double>(n) * (n + 1);
  const double flops = 4.0 * kDim * kHq * pairs;
  nlohmann::json& rec = r.add("attention_prefill",
                              {{"kernel", mma ? "mma" : "simple"},
                               {"prefix", start},
                               {"chunk", n},
                               {"H_q", kHq},
                               {"H_kv", kHkv},
                               {"D", kDim},
                               {"P", kPage}},
                              st, 0.0);
  rec["flops"] = flops;
  rec["tflops"] = flops / (st.median_us * 1e6);
  std::fprintf(stderr, "    %.1f TFLOP/s\n", rec["tflops"].get<double>());
}

}  // namespace

void run_prefill_benches(const Options& o, Report& r) {
  cudaStream_t s;
  cuda_ok(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  // One request of 16384 tokens (1024 full pages, shuffled over the pool).
  const PagedFixture f(1, 16384 / kPage, kHkv, kDim, kPage, 1, false, 41);
  for (const cuda::CausalKernel k : {cuda::CausalKernel::kMma, cuda::CausalKernel::kSimple}) {
    prefill_case(o, r, s, f, 0, 4096, k);
    prefill_case(o, r, s, f, 14336, 2048, k);
  }
  cuda_ok(cudaStreamSynchronize(s), "prefill bench");
  cuda_ok(cudaStreamDestroy(s), "cudaStreamDestroy");
}

}  // namespace vortex::bench
