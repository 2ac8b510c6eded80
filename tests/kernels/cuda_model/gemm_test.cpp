// GPU parity test of the cuBLASLt GEMM wrapper against cpu::matmul on bf16-exact inputs: bf16 and
// fp32 outputs, accumulation into the output (beta = 1), odd shapes, and the plan cache.
#include "vortex/kernels/cuda/gemm.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "gpu_test_util.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::testing {
namespace {

TEST(CudaGemm, MatchesCpuMatmulForBf16AndF32Outputs) {
  VORTEX_SKIP_WITHOUT_GPU();
  auto alloc = cuda_allocator(0);
  ASSERT_TRUE(alloc.has_value());
  auto gemm = cuda::Gemm::create(**alloc);
  ASSERT_TRUE(gemm.has_value()) << gemm.status().to_string();
  std::mt19937 rng(4);
  for (auto [n, m, k] : {std::tuple{1, 2048, 2048},
                         {32, 6144, 2048},
                         {5, 7, 13},
                         {17, 33, 129},
                         {3, 49152, 576},
                         {64, 1, 64},
                         {200, 576, 1536}}) {
    const auto x = round_bf16(random_floats(static_cast<size_t>(n * k), rng));
    const auto w = round_bf16(random_floats(static_cast<size_t>(m * k), rng, 0.05f));
    std::vector<float> ref(static_cast<size_t>(n * m));
    cpu::matmul(x.data(), w.data(), nullptr, n, m, k, ref.data());
    auto dx = DeviceArray<uint16_t>::upload(to_bf16(x));
    auto dw = DeviceArray<uint16_t>::upload(to_bf16(w));
    const std::string shape = std::to_string(n) + "x" + std::to_string(m) + "x" + std::to_string(k);

    DeviceArray<uint16_t> y16(ref.size());
    y16.poison();
    ASSERT_TRUE((*gemm)
                    ->matmul(as_bf16(dx.data()), as_bf16(dw.data()), y16.data(), DType::kBF16, n, m,
                             k, 0.0f, nullptr)
                    .is_ok())
        << shape;
    EXPECT_LT(rel_l2(from_bf16(y16.download()), ref), kBf16Tol) << shape;

    DeviceArray<float> y32(ref.size());
    y32.poison();
    ASSERT_TRUE((*gemm)
                    ->matmul(as_bf16(dx.data()), as_bf16(dw.data()), y32.data(), DType::kF32, n, m,
                             k, 0.0f, nullptr)
                    .is_ok())
        << shape;
    EXPECT_LT(rel_l2(y32.download(), ref), 1e-4) << shape;

    // beta = 1 accumulates into an existing fp32 output.
    const auto base = random_floats(ref.size(), rng);
    auto yacc = DeviceArray<float>::upload(base);
    ASSERT_TRUE((*gemm)
                    ->matmul(as_bf16(dx.data()), as_bf16(dw.data()), yacc.data(), DType::kF32, n, m,
                             k, 1.0f, nullptr)
                    .is_ok())
        << shape;
    std::vector<float> acc_ref = ref;
    for (size_t i = 0; i < acc_ref.size(); ++i) acc_ref[i] += base[i];
    EXPECT_LT(rel_l2(yacc.download(), acc_ref), 1e-4) << shape;
  }
}

TEST(CudaGemm, PlansAreCachedPerShape) {
  VORTEX_SKIP_WITHOUT_GPU();
  auto alloc = cuda_allocator(0);
  ASSERT_TRUE(alloc.has_value());
  auto gemm = cuda::Gemm::create(**alloc);
  ASSERT_TRUE(gemm.has_value());
  std::mt19937 rng(1);
  auto dx = DeviceArray<uint16_t>::upload(to_bf16(random_floats(16 * 128, rng)));
  auto dw = DeviceArray<uint16_t>::upload(to_bf16(random_floats(256 * 128, rng)));
  DeviceArray<uint16_t> y(16 * 256);
  ASSERT_TRUE(
      (*gemm)->prepare(dx.data(), dw.data(), y.data(), DType::kBF16, 8, 256, 128, nullptr).is_ok());
  ASSERT_TRUE(
      (*gemm)->prepare(dx.data(), dw.data(), y.data(), DType::kBF16, 8, 256, 128, nullptr).is_ok());
  EXPECT_EQ((*gemm)->cached_plans(), 1u);
  ASSERT_TRUE((*gemm)
                  ->prepare(dx.data(), dw.data(), y.data(), DType::kBF16, 16, 256, 128, nullptr)
                  .is_ok());
  EXPECT_EQ((*gemm)->cached_plans(), 2u);
  // A run of a prepared shape on the same buffers reuses the plan.
  ASSERT_TRUE((*gemm)
                  ->matmul(as_bf16(dx.data()), as_bf16(dw.data()), y.data(), DType::kBF16, 8, 256,
                           128, 0.0f, nullptr)
                  .is_ok());
  EXPECT_EQ((*gemm)->cached_plans(), 2u);
}

}  // namespace
}  // namespace vortex::testing
