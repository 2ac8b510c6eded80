// GPU parity test of the paged causal attention kernel (prefill chunks and one-token decode chunks)
// against cpu::paged_prefill_attention, across head dims, group sizes, page sizes and chunk shapes
// (single token, partial last pages, long prefixes), with poisoned outputs. Every case runs both
// kernels: the tensor-core one (head_dim 64/128; other dims fall back to the simple one) and the
// simple one.
#include "vortex/kernels/cuda/causal_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <random>
#include <vector>

#include "gpu_test_util.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::testing {
namespace {

struct Chunk {
  int32_t start, n;
};

void run_case(int32_t dim, int32_t hq, int32_t hkv, int32_t page_size,
              const std::vector<Chunk>& chunks, std::mt19937& rng) {
  // Pages: each chunk's request gets its own shuffled pages.
  std::vector<int32_t> page_indptr{0};
  for (const Chunk& c : chunks) {
    page_indptr.push_back(page_indptr.back() + (c.start + c.n + page_size - 1) / page_size);
  }
  const int32_t num_pages = page_indptr.back() + 2;
  std::vector<int32_t> perm(static_cast<size_t>(num_pages));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> page_indices(perm.begin(), perm.begin() + page_indptr.back());

  const size_t pool = static_cast<size_t>(num_pages) * hkv * page_size * dim;
  const auto k_pool = to_bf16(random_floats(pool, rng));
  const auto v_pool = to_bf16(random_floats(pool, rng));
  std::vector<int32_t> q_start{0}, start_pos;
  for (const Chunk& c : chunks) {
    q_start.push_back(q_start.back() + c.n);
    start_pos.push_back(c.start);
  }
  const int32_t T = q_start.back();
  const auto q = round_bf16(random_floats(static_cast<size_t>(T) * hq * dim, rng));
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));

  // CPU reference, chunk by chunk.
  std::vector<uint16_t> k_host = k_pool, v_host = v_pool;
  KVLayerView cpu_kv{k_host.data(), v_host.data(), num_pages, hkv, page_size, dim};
  std::vector<float> ref(q.size());
  for (size_t c = 0; c < chunks.size(); ++c) {
    const size_t row = static_cast<size_t>(q_start[c]) * hq * dim;
    cpu::paged_prefill_attention(q.data() + row, cpu_kv, DType::kBF16,
                                 page_indices.data() + page_indptr[c], chunks[c].start, chunks[c].n,
                                 hq, scale, ref.data() + row);
  }

  // Tiles.
  const int32_t tile_tokens = cuda::causal_tile_tokens(hq / hkv);
  std::vector<int32_t> tile_chunk, tile_first;
  for (size_t c = 0; c < chunks.size(); ++c) {
    for (int32_t f = 0; f < chunks[c].n; f += tile_tokens) {
      tile_chunk.push_back(static_cast<int32_t>(c));
      tile_first.push_back(f);
    }
  }
  auto dk = DeviceArray<uint16_t>::upload(k_pool);
  auto dv = DeviceArray<uint16_t>::upload(v_pool);
  auto dq = DeviceArray<uint16_t>::upload(to_bf16(q));
  auto dqs = DeviceArray<int32_t>::upload(q_start);
  auto dsp = DeviceArray<int32_t>::upload(start_pos);
  auto dpi = DeviceArray<int32_t>::upload(page_indptr);
  auto dpx = DeviceArray<int32_t>::upload(page_indices);
  auto dtc = DeviceArray<int32_t>::upload(tile_chunk);
  auto dtf = DeviceArray<int32_t>::upload(tile_first);
  cuda::CausalAttentionBatch b;
  b.q_start = dqs.data();
  b.start_pos = dsp.data();
  b.page_indptr = dpi.data();
  b.page_indices = dpx.data();
  b.tile_chunk = dtc.data();
  b.tile_first = dtf.data();
  b.num_tiles = static_cast<int32_t>(tile_chunk.size());
  b.tile_tokens = tile_tokens;
  KVLayerView gpu_kv{dk.data(), dv.data(), num_pages, hkv, page_size, dim};
  for (const cuda::CausalKernel kernel : {cuda::CausalKernel::kMma, cuda::CausalKernel::kSimple}) {
    DeviceArray<uint16_t> out(q.size());
    out.poison();
    cuda::causal_attention(as_bf16(dq.data()), gpu_kv, b, hq, scale, as_bf16(out.data()), nullptr,
                           kernel);
    const std::vector<float> got = from_bf16(out.download());
    const char* name = cuda::causal_attention_uses_mma(dim, kernel) ? "mma" : "simple";
    EXPECT_LT(rel_l2(got, ref), kBf16Tol)
        << "D=" << dim << " Hq=" << hq << " Hkv=" << hkv << " P=" << page_size << " " << name;
    // Chunk by chunk too: a wrong one-token chunk must not hide in the average of long ones.
    for (size_t c = 0; c < chunks.size(); ++c) {
      const auto lo = static_cast<ptrdiff_t>(static_cast<size_t>(q_start[c]) * hq * dim);
      const auto hi = static_cast<ptrdiff_t>(static_cast<size_t>(q_start[c + 1]) * hq * dim);
      EXPECT_LT(rel_l2(std::vector<float>(got.begin() + lo, got.begin() + hi),
                       std::vector<float>(ref.begin() + lo, ref.begin() + hi)),
                kBf16Tol)
          << "D=" << dim << " Hq=" << hq << " Hkv=" << hkv << " P=" << page_size << " " << name
          << " chunk " << c << " (start " << chunks[c].start << ", " << chunks[c].n << " tokens)";
    }
  }
}

TEST(CudaCausalAttention, MatchesCpuPrefillAcrossShapes) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(31);
  const std::vector<Chunk> mixed = {{0, 1}, {0, 100}, {37, 20}, {500, 1}, {15, 1}, {16, 33}};
  run_case(128, 16, 8, 16, mixed, rng);                         // qwen3 shape, G = 2
  run_case(64, 9, 3, 16, mixed, rng);                           // smollm2 shape, G = 3
  run_case(128, 32, 8, 32, mixed, rng);                         // G = 4
  run_case(64, 8, 8, 64, mixed, rng);                           // G = 1
  run_case(128, 64, 8, 16, {{0, 40}, {1000, 1}, {3, 9}}, rng);  // G = 8
  run_case(256, 4, 2, 16, {{0, 17}, {64, 1}}, rng);
}

TEST(CudaCausalAttention, HeadDims64And128AcrossGroupSizesAndPrefixes) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(33);
  // Fresh chunks (one token, several tiles), chunks after prefixes that end mid-page and
  // mid-key-block, a long (2K+) prefix, a one-token chunk after a 4K prefix.
  const std::vector<Chunk> chunks = {{0, 1},    {0, 130}, {2100, 150}, {61, 3},
                                     {4000, 1}, {16, 48}, {190, 67}};
  for (int32_t dim : {64, 128}) {
    for (int32_t g : {1, 2, 4, 8}) {
      run_case(dim, 2 * g, 2, 16, chunks, rng);
    }
    run_case(dim, 6, 2, 32, {{5, 70}, {999, 2}, {0, 64}}, rng);  // G = 3, partial pages of 32
  }
}

TEST(CudaCausalAttention, DecodeChunksMatchCpuDecodeAttention) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(32);
  // Decode rows are chunks of one token; long and ragged contexts, including one-token requests.
  std::vector<Chunk> decode;
  for (int32_t len : {1, 2, 16, 17, 300, 4095, 4096, 4097}) decode.push_back({len - 1, 1});
  run_case(128, 16, 8, 16, decode, rng);
  run_case(64, 9, 3, 32, decode, rng);
}

}  // namespace
}  // namespace vortex::testing
