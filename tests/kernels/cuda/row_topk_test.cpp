// GPU radix top-k against a sort-based reference written here: exact selections (ties to the lower
// page) for k 1..512, rows up to 65,536 pages, up to 8,192 rows, heavy ties, signed zeros, bf16
// scores, dense rows and the reserved bos/eos pages; approxTopK keeps its recall bound.
#include "vortex/kernels/cuda/row_topk.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "vortex/kernels/cuda/budget_policy.h"

namespace vortex::gpu {
namespace {

using gpu_test::DeviceArray;
using gpu_test::HostPageTable;

struct TopKCase {
  HostPageTable t;
  int32_t h_kv = 1;
  int32_t bos = 1, eos = 1;
  std::vector<float> scores;        // row page space
  std::vector<int32_t> sel_indptr;  // [rows + 1]
};

/// Rows of request b select bos + k[b] + eos pages (dense when that reaches n).
TopKCase make_case(const std::vector<int32_t>& pages, const std::vector<int32_t>& ks, int32_t h_kv,
                   int32_t bos, int32_t eos, std::mt19937_64& rng) {
  TopKCase c;
  c.t = gpu_test::random_page_table(pages, 16, rng);
  c.h_kv = h_kv;
  c.bos = bos;
  c.eos = eos;
  c.scores.assign(static_cast<size_t>(c.t.indices.size()) * h_kv, 0.f);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (float& s : c.scores) s = normal(rng);
  c.sel_indptr.assign(1, 0);
  for (int32_t b = 0; b < c.t.batch(); ++b) {
    const int32_t n = c.t.pages(b);
    const int32_t want = bos + ks[b] + effective_eos(eos);
    for (int32_t h = 0; h < h_kv; ++h)
      c.sel_indptr.push_back(c.sel_indptr.back() + std::min(want, n));
  }
  return c;
}

std::vector<int32_t> expected_row(const TopKCase& c, int32_t b, int32_t h) {
  const int32_t n = c.t.pages(b);
  const int32_t* pages = &c.t.indices[c.t.indptr[b]];
  const int32_t r = b * c.h_kv + h;
  const int32_t count = c.sel_indptr[r + 1] - c.sel_indptr[r];
  if (count >= n) return std::vector<int32_t>(pages, pages + n);
  const int32_t eos_e = std::min(effective_eos(c.eos), count);
  const int32_t bos_c = std::min(c.bos, count - eos_e);
  const int32_t k = count - bos_c - eos_e;
  const float* s = &c.scores[gpu_test::row_space_offset(c.t, c.h_kv, b, h)];
  std::vector<int32_t> cand(n - bos_c - eos_e);
  std::iota(cand.begin(), cand.end(), bos_c);
  std::stable_sort(cand.begin(), cand.end(), [&](int32_t x, int32_t y) { return s[x] > s[y]; });
  cand.resize(k);
  std::sort(cand.begin(), cand.end());
  std::vector<int32_t> out(pages, pages + bos_c);
  for (int32_t j : cand) out.push_back(pages[j]);
  for (int32_t j = n - eos_e; j < n; ++j) out.push_back(pages[j]);
  return out;
}

/// Runs the GPU top-k (scores as f32 or rounded to bf16 first) and returns sel_indices.
std::vector<int32_t> run_topk(TopKCase& c, DType dtype, float tolerance) {
  DeviceArray<int32_t> indptr(c.t.indptr), indices(c.t.indices), last(c.t.last);
  DeviceArray<int32_t> sel_indptr(c.sel_indptr);
  DeviceArray<int32_t> sel(std::max<size_t>(1, c.sel_indptr.back()));
  sel.poison();
  DeviceArray<float> s32;
  DeviceArray<uint16_t> s16;
  const void* scores = nullptr;
  if (dtype == DType::kF32) {
    s32.upload(c.scores);
    scores = s32.data();
  } else {
    std::vector<uint16_t> h(c.scores.size());
    for (size_t i = 0; i < h.size(); ++i) {
      h[i] = gpu_test::to_bf16(c.scores[i]);
      c.scores[i] = gpu_test::from_bf16(h[i]);  // the reference sees the rounded scores
    }
    s16.upload(h);
    scores = s16.data();
  }
  PageTableView pt{indptr.data(), indices.data(), last.data(), c.t.batch()};
  VORTEX_CHECK_OK(select_topk(scores, dtype, pt, c.h_kv, sel_indptr.data(), sel.data(),
                              static_cast<int64_t>(sel.size()), c.bos, c.eos, tolerance, 0));
  VORTEX_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<int32_t> out = sel.download();
  out.resize(c.sel_indptr.back());
  return out;
}

void expect_exact(TopKCase& c, DType dtype, const std::string& what) {
  const std::vector<int32_t> got = run_topk(c, dtype, 0.f);
  for (int32_t b = 0; b < c.t.batch(); ++b) {
    for (int32_t h = 0; h < c.h_kv; ++h) {
      const int32_t r = b * c.h_kv + h;
      const std::vector<int32_t> want = expected_row(c, b, h);
      const std::vector<int32_t> row(got.begin() + c.sel_indptr[r],
                                     got.begin() + c.sel_indptr[r + 1]);
      ASSERT_EQ(row, want) << what << ": row " << r << " (n " << c.t.pages(b) << ")";
    }
  }
}

TEST(RowTopK, RejectsBadArguments) {
  PageTableView pt;
  EXPECT_EQ(select_topk(nullptr, DType::kI32, pt, 1, nullptr, nullptr, 0, 1, 1, 0.f, 0).code(),
            StatusCode::kUnsupported);
  EXPECT_EQ(select_topk(nullptr, DType::kF32, pt, 1, nullptr, nullptr, 0, 1, 1, 1.5f, 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(select_topk(nullptr, DType::kF32, pt, 0, nullptr, nullptr, 0, 1, 1, 0.f, 0).code(),
            StatusCode::kInvalidArgument);
}

TEST(RowTopK, TargetShape32x8x1024) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  TopKCase c =
      make_case(std::vector<int32_t>(32, 1024), std::vector<int32_t>(32, 30), 8, 1, 1, rng);
  expect_exact(c, DType::kF32, "32x8x1024 k=30");
}

TEST(RowTopK, KSweepRaggedRows) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  for (int32_t k : {1, 2, 7, 30, 64, 100, 255, 256, 511, 512}) {
    std::vector<int32_t> pages, ks;
    for (int b = 0; b < 6; ++b) {
      pages.push_back(k + 3 + static_cast<int32_t>(rng() % 3000));
      ks.push_back(k);
    }
    pages.push_back(k);  // a dense row (n <= budget)
    ks.push_back(k);
    TopKCase c = make_case(pages, ks, 4, static_cast<int32_t>(rng() % 3),
                           static_cast<int32_t>(rng() % 3), rng);
    expect_exact(c, DType::kF32, "k=" + std::to_string(k));
  }
}

TEST(RowTopK, VeryLongRowsTakeTheUncachedPath) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  TopKCase c = make_case({65536, 40000, 4097}, {512, 1, 100}, 2, 1, 1, rng);
  expect_exact(c, DType::kF32, "n=65536");
}

TEST(RowTopK, EightThousandRows) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(4);
  std::vector<int32_t> pages(1024), ks(1024);
  for (int32_t b = 0; b < 1024; ++b) {
    pages[b] = 1 + static_cast<int32_t>(rng() % 300);
    ks[b] = 1 + static_cast<int32_t>(rng() % 40);
  }
  TopKCase c = make_case(pages, ks, 8, 1, 2, rng);
  ASSERT_EQ(c.sel_indptr.size(), 8193u);
  expect_exact(c, DType::kF32, "8192 rows");
}

TEST(RowTopK, HeavyTiesBreakTowardsLowerPages) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  for (int32_t levels : {1, 2, 4}) {
    TopKCase c = make_case({5000, 700, 9000, 64}, {100, 30, 512, 5}, 3, 2, 1, rng);
    for (float& s : c.scores) s = static_cast<float>(rng() % levels);
    expect_exact(c, DType::kF32, "ties levels=" + std::to_string(levels));
  }
  // Signed zeros are equal scores.
  TopKCase z = make_case({300}, {40}, 1, 0, 1, rng);
  for (size_t i = 0; i < z.scores.size(); ++i)
    z.scores[i] = (i % 3 == 0) ? -0.0f : (i % 3 == 1 ? 0.0f : -1.0f);
  expect_exact(z, DType::kF32, "signed zeros");
}

TEST(RowTopK, Bf16Scores) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(6);
  TopKCase c = make_case({2000, 1024, 5000, 33}, {30, 62, 126, 30}, 8, 1, 1, rng);
  expect_exact(c, DType::kBF16, "bf16");
}

TEST(RowTopK, ApproximateKeepsRecallBound) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(7);
  for (float tol : {0.05f, 0.1f, 0.3f}) {
    TopKCase c = make_case({4000, 1024, 20000, 700}, {100, 30, 400, 60}, 4, 1, 1, rng);
    // Coarse scores make early stops likely.
    for (float& s : c.scores) s = std::round(s * 8.f) / 8.f;
    const std::vector<int32_t> got = run_topk(c, DType::kF32, tol);
    for (int32_t b = 0; b < c.t.batch(); ++b) {
      for (int32_t h = 0; h < c.h_kv; ++h) {
        const int32_t r = b * c.h_kv + h;
        const std::vector<int32_t> want = expected_row(c, b, h);
        const std::vector<int32_t> row(got.begin() + c.sel_indptr[r],
                                       got.begin() + c.sel_indptr[r + 1]);
        ASSERT_EQ(row.size(), want.size());
        const std::set<int32_t> ws(want.begin(), want.end()), rs(row.begin(), row.end());
        ASSERT_EQ(rs.size(), row.size()) << "duplicates in row " << r;
        size_t hit = 0;
        for (int32_t x : row) hit += ws.count(x);
        const int32_t k = static_cast<int32_t>(want.size()) - 1 - effective_eos(c.eos);
        const size_t misses = row.size() - hit;
        EXPECT_LE(misses, static_cast<size_t>(std::floor(tol * k)))
            << "tol " << tol << " row " << r;
        // Reserved pages stay in place.
        EXPECT_EQ(row.front(), want.front());
        EXPECT_EQ(row.back(), want.back());
      }
    }
  }
}

}  // namespace
}  // namespace vortex::gpu
