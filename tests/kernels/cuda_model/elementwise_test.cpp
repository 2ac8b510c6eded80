// GPU parity tests of the elementwise model kernels (embedding, RMSNorm variants, SwiGLU) against
// the CPU reference kernels, on fresh random inputs with poisoned outputs.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "gpu_test_util.h"
#include "vortex/kernels/cpu/ops.h"
#include "vortex/kernels/cuda/activation.h"
#include "vortex/kernels/cuda/embedding.h"
#include "vortex/kernels/cuda/rmsnorm.h"

namespace vortex::testing {
namespace {

TEST(CudaEmbedding, MatchesCpuIncludingPreviousTokenIndirection) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  for (auto [vocab, d, n] : {std::tuple{50, 64, 7}, {1000, 576, 33}, {300, 12, 5}}) {
    const auto table = round_bf16(random_floats(static_cast<size_t>(vocab * d), rng));
    std::uniform_int_distribution<int32_t> tok(0, vocab - 1);
    std::vector<int32_t> ids(static_cast<size_t>(n)), prev(3), prev_index(static_cast<size_t>(n));
    for (auto& x : ids) x = tok(rng);
    for (auto& x : prev) x = tok(rng);
    for (size_t i = 0; i < prev_index.size(); ++i) {
      prev_index[i] = i % 2 == 1 ? static_cast<int32_t>((i / 2) % 3) : -1;
    }
    auto dtable = DeviceArray<uint16_t>::upload(to_bf16(table));
    auto dids = DeviceArray<int32_t>::upload(ids);
    auto dprev = DeviceArray<int32_t>::upload(prev);
    auto dprev_index = DeviceArray<int32_t>::upload(prev_index);
    for (bool indirect : {false, true}) {
      DeviceArray<float> out(static_cast<size_t>(n * d));
      out.poison();
      cuda::embedding_lookup(as_bf16(dtable.data()), vocab, d, dids.data(),
                             indirect ? dprev.data() : nullptr,
                             indirect ? dprev_index.data() : nullptr, n, out.data(), nullptr);
      std::vector<int32_t> eff = ids;
      if (indirect) {
        for (size_t i = 0; i < eff.size(); ++i) {
          if (prev_index[i] >= 0) eff[i] = prev[static_cast<size_t>(prev_index[i])];
        }
      }
      std::vector<float> ref(static_cast<size_t>(n * d));
      cpu::embedding(table.data(), eff.data(), n, d, ref.data());
      EXPECT_EQ(out.download(), ref) << vocab << "x" << d << " indirect " << indirect;
    }
  }
}

TEST(CudaEmbedding, OutOfRangeIdGivesZeroRow) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  const int32_t vocab = 10, d = 16;
  auto dtable = DeviceArray<uint16_t>::upload(to_bf16(random_floats(vocab * d, rng)));
  auto dids = DeviceArray<int32_t>::upload({-1, 10});
  DeviceArray<float> out(2 * d);
  out.poison();
  cuda::embedding_lookup(as_bf16(dtable.data()), vocab, d, dids.data(), nullptr, nullptr, 2,
                         out.data(), nullptr);
  for (float v : out.download()) EXPECT_EQ(v, 0.0f);
}

TEST(CudaRmsNorm, PlainFusedAndGatheredMatchCpu) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  for (auto [n, d] : {std::pair{1, 64}, {7, 576}, {33, 2048}, {3, 4096}, {2, 12}}) {
    const auto x = random_floats(static_cast<size_t>(n * d), rng, 2.0f);
    const auto add = round_bf16(random_floats(static_cast<size_t>(n * d), rng));
    const auto w = random_floats(static_cast<size_t>(d), rng, 0.1f, 1.0f);
    const float eps = 1e-6f;
    auto dw = DeviceArray<float>::upload(w);
    auto dadd = DeviceArray<uint16_t>::upload(to_bf16(add));
    DeviceArray<uint16_t> out(static_cast<size_t>(n * d));

    // rms_norm
    auto dx = DeviceArray<float>::upload(x);
    out.poison();
    cuda::rms_norm(dx.data(), dw.data(), n, d, eps, as_bf16(out.data()), nullptr);
    std::vector<float> ref(x.size());
    cpu::rms_norm(x.data(), w.data(), n, d, eps, ref.data());
    EXPECT_LT(rel_l2(from_bf16(out.download()), ref), kBf16Tol) << n << "x" << d;

    // add_rms_norm: the residual is updated in place too
    auto dres = DeviceArray<float>::upload(x);
    out.poison();
    cuda::add_rms_norm(dres.data(), as_bf16(dadd.data()), dw.data(), n, d, eps, as_bf16(out.data()),
                       nullptr);
    std::vector<float> res = x;
    cpu::add_rms_norm(res.data(), add.data(), w.data(), n, d, eps, ref.data());
    EXPECT_LT(rel_l2(from_bf16(out.download()), ref), kBf16Tol) << n << "x" << d;
    EXPECT_LT(rel_l2(dres.download(), res), 1e-6) << n << "x" << d;

    // rms_norm_rows: reversed row order
    std::vector<int32_t> rows(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = n - 1 - i;
    auto drows = DeviceArray<int32_t>::upload(rows);
    out.poison();
    cuda::rms_norm_rows(dx.data(), drows.data(), dw.data(), n, d, eps, as_bf16(out.data()),
                        nullptr);
    cpu::rms_norm(x.data(), w.data(), n, d, eps, ref.data());
    std::vector<float> gathered(ref.size());
    for (int32_t i = 0; i < n; ++i) {
      std::copy_n(ref.begin() + rows[static_cast<size_t>(i)] * d, d, gathered.begin() + i * d);
    }
    EXPECT_LT(rel_l2(from_bf16(out.download()), gathered), kBf16Tol) << n << "x" << d;
  }
}

TEST(CudaHeadRmsNorm, MatchesCpuPerHeadNormInsideStridedRows) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(8);
  for (auto [n, heads, dim] : {std::tuple{5, 4, 64}, {3, 16, 128}, {2, 2, 256}, {4, 3, 32}}) {
    const int64_t stride = int64_t{heads} * dim + 24;  // rows carry other heads after these
    auto x = round_bf16(random_floats(static_cast<size_t>(n * stride), rng, 3.0f));
    const auto w = random_floats(static_cast<size_t>(dim), rng, 0.1f, 1.0f);
    auto dx = DeviceArray<uint16_t>::upload(to_bf16(x));
    auto dw = DeviceArray<float>::upload(w);
    cuda::head_rms_norm(as_bf16(dx.data()), stride, n, heads, dim, dw.data(), 1e-6f, nullptr);
    const auto got = from_bf16(dx.download());
    std::vector<float> ref = x;
    for (int32_t t = 0; t < n; ++t) {
      cpu::rms_norm(x.data() + t * stride, w.data(), heads, dim, 1e-6f, ref.data() + t * stride);
    }
    EXPECT_LT(rel_l2(got, ref), kBf16Tol);
    for (int32_t t = 0; t < n; ++t) {  // the tail of each row is untouched
      for (int64_t i = int64_t{heads} * dim; i < stride; ++i) {
        EXPECT_EQ(got[static_cast<size_t>(t * stride + i)], x[static_cast<size_t>(t * stride + i)]);
      }
    }
  }
}

TEST(CudaSiluMul, MatchesCpuVectorisedAndScalar) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(9);
  for (auto [n, ffn] : {std::pair{1, 1536}, {9, 6144}, {4, 20}, {3, 7}}) {
    const auto gu = round_bf16(random_floats(static_cast<size_t>(n * 2 * ffn), rng, 3.0f));
    auto dgu = DeviceArray<uint16_t>::upload(to_bf16(gu));
    DeviceArray<uint16_t> out(static_cast<size_t>(n * ffn));
    out.poison();
    cuda::silu_mul(as_bf16(dgu.data()), n, ffn, as_bf16(out.data()), nullptr);
    std::vector<float> gate(static_cast<size_t>(n * ffn)), up(gate.size()), ref(gate.size());
    for (int32_t t = 0; t < n; ++t) {
      for (int32_t i = 0; i < ffn; ++i) {
        gate[static_cast<size_t>(t * ffn + i)] = gu[static_cast<size_t>(t * 2 * ffn + i)];
        up[static_cast<size_t>(t * ffn + i)] = gu[static_cast<size_t>(t * 2 * ffn + ffn + i)];
      }
    }
    cpu::silu_mul(gate.data(), up.data(), n * ffn, ref.data());
    EXPECT_LT(rel_l2(from_bf16(out.download()), ref), kBf16Tol) << n << "x" << ffn;
  }
}

}  // namespace
}  // namespace vortex::testing
