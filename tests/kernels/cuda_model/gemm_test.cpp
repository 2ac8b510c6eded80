// GPU parity test of the cuBLASLt GEMM wrapper and the skinny decode kernel against cpu::matmul on
// bf16-exact inputs: bf16 and fp32 outputs, accumulation into the output (beta = 1), odd shapes,
// split-K determinism and graph replay, and the plan cache.
#include "vortex/kernels/cuda/gemm.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "gpu_test_util.h"
#include "vortex/kernels/cpu/ops.h"
#include "vortex/kernels/cuda/skinny_gemm.h"

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

// The skinny kernel directly: rows 1..64 (every NT instantiation, partial row tiles), features
// that are not a multiple of the row tile, k from one chunk to 6144, unsplit and split-K, every
// cut the autotuner may pick (k_groups 1/2/4: the k slices of a CTA summed in shared memory;
// split-K summed by the last CTA of a tile or over a thread-block cluster's shared memory).
TEST(CudaSkinnyGemm, MatchesCpuMatmulUnsplitAndSplit) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(7);
  int unsplit = 0, split = 0, cluster = 0;
  std::map<int, int> k_groups_seen;
  for (auto [n, m, k] : {std::tuple{1, 2048, 2048},
                         {5, 100, 32},
                         {8, 960, 576},
                         {13, 4096, 2048},
                         {32, 2048, 6144},
                         {33, 300, 1536},
                         {64, 12288, 2048},
                         {2, 17, 4096}}) {
    const auto x = round_bf16(random_floats(static_cast<size_t>(n * k), rng));
    const auto w = round_bf16(random_floats(static_cast<size_t>(m * k), rng, 0.05f));
    std::vector<float> ref(static_cast<size_t>(n * m));
    cpu::matmul(x.data(), w.data(), nullptr, n, m, k, ref.data());
    auto dx = DeviceArray<uint16_t>::upload(to_bf16(x));
    auto dw = DeviceArray<uint16_t>::upload(to_bf16(w));
    ASSERT_TRUE(cuda::skinny_gemm_supported(dx.data(), dw.data(), DType::kBF16, n, m, k));
    // One SM's worth of CTAs leaves most shapes unsplit; 132 SMs split k.
    std::vector<cuda::SkinnyGemmShape> cuts;
    for (int32_t sms : {1, 132}) {
      const auto more = cuda::skinny_gemm_shapes(n, m, k, sms);
      ASSERT_FALSE(more.empty());
      cuts.insert(cuts.end(), more.begin(), more.end());
    }
    for (const cuda::SkinnyGemmShape& shape : cuts) {
      ASSERT_GT(shape.tiles, 0);
      (shape.splits == 1 ? unsplit : split) += 1;
      cluster += shape.cluster ? 1 : 0;
      k_groups_seen[shape.k_groups] += 1;
      const std::string what = std::to_string(n) + "x" + std::to_string(m) + "x" +
                               std::to_string(k) + " " + cuda::describe(shape);
      DeviceArray<uint8_t> ws(std::max<size_t>(1, cuda::skinny_gemm_workspace_bytes(shape, n, m)));
      ASSERT_TRUE(cuda::skinny_gemm_init_workspace(ws.data(), shape, n, m, nullptr).is_ok());

      DeviceArray<uint16_t> y16(ref.size());
      y16.poison();
      ASSERT_TRUE(cuda::skinny_gemm(as_bf16(dx.data()), as_bf16(dw.data()), y16.data(),
                                    DType::kBF16, n, m, k, 0.0f, shape, ws.data(), nullptr)
                      .is_ok())
          << what;
      const auto first = y16.download();
      EXPECT_LT(rel_l2(from_bf16(first), ref), kBf16Tol) << what;
      // Again on the same workspace: the split counters were reset, the sum order is fixed.
      y16.poison();
      ASSERT_TRUE(cuda::skinny_gemm(as_bf16(dx.data()), as_bf16(dw.data()), y16.data(),
                                    DType::kBF16, n, m, k, 0.0f, shape, ws.data(), nullptr)
                      .is_ok());
      EXPECT_EQ(y16.download(), first) << what << ": not deterministic";

      DeviceArray<float> y32(ref.size());
      y32.poison();
      ASSERT_TRUE(cuda::skinny_gemm(as_bf16(dx.data()), as_bf16(dw.data()), y32.data(), DType::kF32,
                                    n, m, k, 0.0f, shape, ws.data(), nullptr)
                      .is_ok());
      EXPECT_LT(rel_l2(y32.download(), ref), 1e-4) << what;

      const auto base = random_floats(ref.size(), rng);
      auto yacc = DeviceArray<float>::upload(base);
      ASSERT_TRUE(cuda::skinny_gemm(as_bf16(dx.data()), as_bf16(dw.data()), yacc.data(),
                                    DType::kF32, n, m, k, 1.0f, shape, ws.data(), nullptr)
                      .is_ok());
      std::vector<float> acc_ref = ref;
      for (size_t i = 0; i < acc_ref.size(); ++i) acc_ref[i] += base[i];
      EXPECT_LT(rel_l2(yacc.download(), acc_ref), 1e-4) << what;
    }
  }
  EXPECT_GT(unsplit, 0);
  EXPECT_GT(split, 0);
  EXPECT_GT(cluster, 0);  // split-K reduced over a thread-block cluster's shared memory
  EXPECT_GT(k_groups_seen[2], 0);
  EXPECT_GT(k_groups_seen[4], 0);
}

TEST(CudaSkinnyGemm, RejectsWhatItCannotRun) {
  VORTEX_SKIP_WITHOUT_GPU();
  DeviceArray<uint16_t> buf(64 * 64 + 8);
  const auto* p = as_bf16(buf.data());
  EXPECT_FALSE(cuda::skinny_gemm_supported(p, p, DType::kBF16, 65, 64, 64));     // too many rows
  EXPECT_FALSE(cuda::skinny_gemm_supported(p, p, DType::kBF16, 8, 64, 48));      // k % 32
  EXPECT_FALSE(cuda::skinny_gemm_supported(p + 1, p, DType::kBF16, 8, 64, 64));  // alignment
  // 64 rows of x with k = 65536: even 16 splits' slices exceed the shared memory.
  EXPECT_FALSE(cuda::skinny_gemm_supported(p, p, DType::kBF16, 64, 64, 65536));
  EXPECT_EQ(cuda::skinny_gemm_shape(64, 64, 65536, 132).tiles, 0);
  const cuda::SkinnyGemmShape shape = cuda::skinny_gemm_shape(8, 64, 64, 132);
  const Status st =
      cuda::skinny_gemm(p, p, buf.data(), DType::kBF16, 8, 64, 48, 0.0f, shape, nullptr, nullptr);
  EXPECT_FALSE(st.is_ok());
  EXPECT_FALSE(cuda::skinny_gemm(p, p, buf.data(), DType::kBF16, 8, 64, 64, 1.0f, shape, nullptr,
                                 nullptr)
                   .is_ok());  // beta with bf16 output
  // Cuts that do not match the kernel: k_groups 3, a split not cut into whole 32-wide slices.
  EXPECT_EQ(cuda::skinny_gemm_shape(8, 64, 256, 132, /*k_groups=*/3).tiles, 0);
  cuda::SkinnyGemmShape bad = cuda::skinny_gemm_shape(8, 64, 256, 1, /*k_groups=*/4);
  ASSERT_GT(bad.tiles, 0);
  EXPECT_EQ(bad.k_per_split % 128, 0);
  bad.k_groups = 3;
  EXPECT_FALSE(
      cuda::skinny_gemm(p, p, buf.data(), DType::kBF16, 8, 64, 256, 0.0f, bad, nullptr, nullptr)
          .is_ok());
  bad.k_groups = 4;
  bad.k_per_split = 96;
  bad.splits = 3;
  EXPECT_FALSE(
      cuda::skinny_gemm(p, p, buf.data(), DType::kBF16, 8, 64, 256, 0.0f, bad, nullptr, nullptr)
          .is_ok());
}

// A split skinny product captured in a CUDA graph and replayed: every replay equals the eager run.
TEST(CudaSkinnyGemm, GraphReplayOfASplitProductIsExact) {
  VORTEX_SKIP_WITHOUT_GPU();
  const int64_t n = 32, m = 2048, k = 6144;
  std::mt19937 rng(11);
  auto dx = DeviceArray<uint16_t>::upload(to_bf16(random_floats(static_cast<size_t>(n * k), rng)));
  auto dw =
      DeviceArray<uint16_t>::upload(to_bf16(random_floats(static_cast<size_t>(m * k), rng, 0.05f)));
  for (int32_t k_groups : {1, 4}) {
    const cuda::SkinnyGemmShape shape = cuda::skinny_gemm_shape(n, m, k, 132, k_groups);
    ASSERT_GT(shape.splits, 1);
    DeviceArray<uint8_t> ws(cuda::skinny_gemm_workspace_bytes(shape, n, m));
    ASSERT_TRUE(cuda::skinny_gemm_init_workspace(ws.data(), shape, n, m, nullptr).is_ok());
    DeviceArray<uint16_t> y(static_cast<size_t>(n * m));
    ASSERT_TRUE(cuda::skinny_gemm(as_bf16(dx.data()), as_bf16(dw.data()), y.data(), DType::kBF16, n,
                                  m, k, 0.0f, shape, ws.data(), nullptr)
                    .is_ok());
    const auto eager = y.download();
    cudaStream_t s = nullptr;
    ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    ASSERT_TRUE(cuda::skinny_gemm(as_bf16(dx.data()), as_bf16(dw.data()), y.data(), DType::kBF16, n,
                                  m, k, 0.0f, shape, ws.data(), s)
                    .is_ok());
    ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    for (int r = 0; r < 3; ++r) {
      y.poison();
      ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
      EXPECT_EQ(y.download(), eager) << "replay " << r << " " << cuda::describe(shape);
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(s);
  }
}

// Gemm's modes: kOn plans the skinny kernel for decode shapes (and cuBLASLt beyond 64 rows), kOff
// never; kAuto with autotuning keeps whichever timed faster — either way the product is right.
TEST(CudaGemm, SkinnyModesPlanTheRightKernel) {
  VORTEX_SKIP_WITHOUT_GPU();
  auto alloc = cuda_allocator(0);
  ASSERT_TRUE(alloc.has_value());
  std::mt19937 rng(3);
  const int64_t m = 4096, k = 2048;
  auto dw = DeviceArray<uint16_t>::upload(to_bf16(round_bf16(random_floats(m * k, rng, 0.05f))));
  const auto w = from_bf16(dw.download());
  for (auto mode :
       {cuda::SkinnyGemmMode::kOn, cuda::SkinnyGemmMode::kOff, cuda::SkinnyGemmMode::kAuto}) {
    auto gemm = cuda::Gemm::create(**alloc, size_t{32} << 20, /*autotune=*/true);
    ASSERT_TRUE(gemm.has_value());
    (*gemm)->set_skinny_mode(mode);
    for (int64_t n : {int64_t{32}, int64_t{96}}) {
      const auto x = round_bf16(random_floats(static_cast<size_t>(n * k), rng));
      std::vector<float> ref(static_cast<size_t>(n * m));
      cpu::matmul(x.data(), w.data(), nullptr, n, m, k, ref.data());
      auto dx = DeviceArray<uint16_t>::upload(to_bf16(x));
      DeviceArray<uint16_t> y(ref.size());
      ASSERT_TRUE(
          (*gemm)->prepare(dx.data(), dw.data(), y.data(), DType::kBF16, n, m, k, nullptr).is_ok());
      y.poison();
      ASSERT_TRUE((*gemm)
                      ->matmul(as_bf16(dx.data()), as_bf16(dw.data()), y.data(), DType::kBF16, n, m,
                               k, 0.0f, nullptr)
                      .is_ok());
      EXPECT_LT(rel_l2(from_bf16(y.download()), ref), kBf16Tol) << "n " << n;
    }
    if (mode == cuda::SkinnyGemmMode::kOn) {
      EXPECT_EQ((*gemm)->skinny_plans(), 1);
    }
    if (mode == cuda::SkinnyGemmMode::kOff) {
      EXPECT_EQ((*gemm)->skinny_plans(), 0);
    }
    if (mode == cuda::SkinnyGemmMode::kAuto) {
      std::printf("  auto mode picked the skinny kernel for %d of 1 decode shape\n",
                  (*gemm)->skinny_plans());
    }
  }
}

}  // namespace
}  // namespace vortex::testing
