// GPU paged decode attention against a double-precision brute-force reference written here (and
// against cpu::paged_decode_attention when that reference is built): dense and selection paths,
// head_dim 64/128, G 1..8, page 16/32/64, bf16/f32 q/out, ragged lengths with single tokens,
// partial last pages and empty requests, batch up to 256, very long rows, CUDA-graph replay with
// changed lengths. Unused cache slots hold NaN and outputs are NaN-poisoned before every run.
// Every parity case runs under both schedules (kSplitMerge and kStream), which must also agree
// with each other; extra cases cover short selected rows split over many CTAs, rows finished by
// one CTA, and back-to-back runs of one op (kStream's arrival counters must return to zero).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention_reference.h"
#include "gpu_test_util.h"
#include "vortex/kernels/cuda/decode_schedule.h"
#include "vortex/kernels/cuda/paged_decode_attention.h"
#if defined(VORTEX_HAVE_CPU_PAGED_ATTENTION)
#include "vortex/kernels/cpu/ops.h"
#endif

namespace vortex::gpu {
namespace {

using gpu_test::DeviceArray;

/// A batch of requests in a paged bf16 cache, built on the host.
struct Problem {
  int32_t batch = 0, h_kv = 0, h_q = 0, dim = 0, page = 0, num_pages = 0;
  DType io = DType::kBF16;
  std::vector<int32_t> indptr, indices, last;    // CSR page table
  std::vector<uint16_t> k, v;                    // [num_pages, H_kv, P, D] bf16 bits
  std::vector<float> q;                          // [B, H_q, D] (bf16-exact when io is bf16)
  std::vector<int32_t> sel_indptr, sel_indices;  // optional selection over rows b * H_kv + h

  int64_t kv_index(int32_t pg, int32_t h, int32_t slot, int32_t d) const {
    return ((static_cast<int64_t>(pg) * h_kv + h) * page + slot) * dim + d;
  }
};

Problem make_problem(const std::vector<int32_t>& lens, int32_t dim, int32_t g, int32_t h_kv,
                     int32_t page, DType io, std::mt19937_64& rng) {
  Problem p;
  p.batch = static_cast<int32_t>(lens.size());
  p.h_kv = h_kv;
  p.h_q = h_kv * g;
  p.dim = dim;
  p.page = page;
  p.io = io;
  int32_t used = 0;
  for (int32_t len : lens) used += (len + page - 1) / page;
  p.num_pages = used + used / 8 + 2;  // spare pages stay NaN
  std::vector<int32_t> perm(p.num_pages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  p.k.assign(static_cast<size_t>(p.num_pages) * h_kv * page * dim, gpu_test::bf16_nan());
  p.v = p.k;
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  std::normal_distribution<float> normal(0.f, 1.f);
  p.indptr.push_back(0);
  int32_t next = 0;
  for (int32_t len : lens) {
    const int32_t n = (len + page - 1) / page;
    for (int32_t j = 0; j < n; ++j) {
      const int32_t pg = perm[next++];
      p.indices.push_back(pg);
      const int32_t filled = j == n - 1 ? len - j * page : page;
      for (int32_t h = 0; h < h_kv; ++h) {
        for (int32_t s = 0; s < filled; ++s) {
          for (int32_t d = 0; d < dim; ++d) {
            p.k[p.kv_index(pg, h, s, d)] = gpu_test::to_bf16(uni(rng));
            p.v[p.kv_index(pg, h, s, d)] = gpu_test::to_bf16(uni(rng));
          }
        }
      }
    }
    p.indptr.push_back(static_cast<int32_t>(p.indices.size()));
    p.last.push_back(n == 0 ? 0 : len - (n - 1) * page);
  }
  p.q.resize(static_cast<size_t>(p.batch) * p.h_q * dim);
  for (float& x : p.q) {
    x = normal(rng);
    if (io == DType::kBF16) x = gpu_test::from_bf16(gpu_test::to_bf16(x));
  }
  return p;
}

/// Random selection per row: each non-last page kept with probability `keep`, the last page
/// always kept (the selection contract), ascending logical order.
void make_selection(Problem& p, double keep, std::mt19937_64& rng) {
  std::bernoulli_distribution coin(keep);
  p.sel_indptr.assign(1, 0);
  p.sel_indices.clear();
  for (int32_t b = 0; b < p.batch; ++b) {
    const int32_t n = p.indptr[b + 1] - p.indptr[b];
    for (int32_t h = 0; h < p.h_kv; ++h) {
      for (int32_t j = 0; j < n; ++j) {
        if (j == n - 1 || coin(rng)) p.sel_indices.push_back(p.indices[p.indptr[b] + j]);
      }
      p.sel_indptr.push_back(static_cast<int32_t>(p.sel_indices.size()));
    }
  }
}

/// Brute-force attention in double over exactly the rounded inputs.
std::vector<double> reference(const Problem& p, bool use_sel, double scale) {
  const int32_t g = p.h_q / p.h_kv;
  std::vector<double> out(static_cast<size_t>(p.batch) * p.h_q * p.dim, 0.0);
  for (int32_t b = 0; b < p.batch; ++b) {
    for (int32_t hq = 0; hq < p.h_q; ++hq) {
      const int32_t h = hq / g;
      std::vector<int32_t> pages;
      if (use_sel) {
        const int32_t r = b * p.h_kv + h;
        pages.assign(p.sel_indices.begin() + p.sel_indptr[r],
                     p.sel_indices.begin() + p.sel_indptr[r + 1]);
        VORTEX_CHECK(pages.empty() || pages.back() == p.indices[p.indptr[b + 1] - 1]);
      } else {
        pages.assign(p.indices.begin() + p.indptr[b], p.indices.begin() + p.indptr[b + 1]);
      }
      const size_t at = (static_cast<size_t>(b) * p.h_q + hq) * p.dim;
      gpu_test::attention_row(p.k, p.v, p.h_kv, p.page, p.dim, pages, p.last[b], h, &p.q[at], scale,
                              &out[at]);
    }
  }
  return out;
}

/// The problem's arrays on the device plus an attention op sized for it.
struct DeviceProblem {
  DeviceArray<int32_t> indptr, indices, last, sel_indptr, sel_indices;
  DeviceArray<uint16_t> k, v;
  DeviceArray<float> q32, out32;
  DeviceArray<uint16_t> q16, out16;
  KVLayerView kv;
  PageTableView pt;
  SelectionView sel;

  explicit DeviceProblem(const Problem& p)
      : indptr(p.indptr), indices(p.indices), last(p.last), k(p.k), v(p.v) {
    if (p.indices.empty()) indices.resize(1);
    if (!p.sel_indptr.empty()) {
      sel_indptr.upload(p.sel_indptr);
      sel_indices.upload(p.sel_indices.empty() ? std::vector<int32_t>{0} : p.sel_indices);
    }
    if (p.io == DType::kF32) {
      q32.upload(p.q);
      out32.resize(p.q.size());
    } else {
      std::vector<uint16_t> qb(p.q.size());
      for (size_t i = 0; i < qb.size(); ++i) qb[i] = gpu_test::to_bf16(p.q[i]);
      q16.upload(qb);
      out16.resize(p.q.size());
    }
    kv = {k.data(), v.data(), p.num_pages, p.h_kv, p.page, p.dim};
    pt = {indptr.data(), indices.data(), last.data(), p.batch};
    sel = {sel_indptr.data(), sel_indices.data(), p.batch * p.h_kv};
  }
  const void* q() const { return q32.size() ? static_cast<const void*>(q32.data()) : q16.data(); }
  void* out() const { return out32.size() ? static_cast<void*>(out32.data()) : out16.data(); }
  void poison_out() {
    out32.poison();
    out16.poison();
  }
  std::vector<double> download_out() const {
    std::vector<double> r;
    if (out32.size()) {
      for (float x : out32.download()) r.push_back(x);
    } else {
      for (uint16_t x : out16.download()) r.push_back(gpu_test::from_bf16(x));
    }
    return r;
  }
};

/// A schedule and grid size (ctas_per_sm 0: as many as fit; 1: a smaller grid, longer ranges).
struct Variant {
  DecodeSchedule sched = DecodeSchedule::kDefault;
  int32_t ctas_per_sm = 0;
  int32_t pool_percent = -1;  ///< kStream work pool (-1: the default)
};
// The last two put a share of the space in the work pool (units claimed at run time: rows merged
// from static ranges and chunks), on the full grid and on one CTA per SM.
constexpr Variant kSchedules[] = {{DecodeSchedule::kSplitMerge, 0, -1},
                                  {DecodeSchedule::kStream, 0, 0},
                                  {DecodeSchedule::kStream, 1, 0},
                                  {DecodeSchedule::kStream, 0, 20},
                                  {DecodeSchedule::kStream, 1, 50}};

std::string variant_name(Variant v) {
  return std::string(decode_schedule_name(v.sched)) + " ctas/SM " + std::to_string(v.ctas_per_sm) +
         " pool " + std::to_string(v.pool_percent);
}

DecodeAttentionConfig config_for(const Problem& p, Variant v = {}) {
  DecodeAttentionConfig c;
  c.schedule = v.sched;
  c.ctas_per_sm = v.ctas_per_sm;
  c.pool_percent = v.pool_percent;
  c.num_q_heads = p.h_q;
  c.num_kv_heads = p.h_kv;
  c.head_dim = p.dim;
  c.page_size = p.page;
  c.io_dtype = p.io;
  c.max_batch = std::max(p.batch, 1);
  return c;
}

/// Runs the GPU kernel once (poisoned output) and returns the output.
std::vector<double> run_gpu(const Problem& p, bool use_sel, float scale, Variant v = {}) {
  auto op = PagedDecodeAttention::create(config_for(p, v));
  VORTEX_CHECK_OK(op.status());
  DeviceProblem dp(p);
  dp.poison_out();
  VORTEX_CHECK_OK(op->run(dp.q(), dp.kv, dp.pt, use_sel ? &dp.sel : nullptr, scale, dp.out(), 0));
  VORTEX_CUDA_CHECK(cudaDeviceSynchronize());
  return dp.download_out();
}

double tolerance(DType io) { return io == DType::kF32 ? 1e-4 : 6e-3; }

std::vector<int32_t> random_lens(std::mt19937_64& rng, int32_t batch, int32_t max_len) {
  std::uniform_int_distribution<int32_t> len(1, max_len);
  std::vector<int32_t> lens(batch);
  for (int32_t& l : lens) l = len(rng);
  lens[0] = 1;  // a single token
  return lens;
}

#if defined(VORTEX_HAVE_CPU_PAGED_ATTENTION)
std::vector<double> cpu_reference(const Problem& p, bool use_sel, float scale) {
  std::vector<float> out(p.q.size(), NAN);
  KVLayerView kv{const_cast<uint16_t*>(p.k.data()),
                 const_cast<uint16_t*>(p.v.data()),
                 p.num_pages,
                 p.h_kv,
                 p.page,
                 p.dim};
  PageTableView pt{p.indptr.data(), p.indices.data(), p.last.data(), p.batch};
  SelectionView sel{p.sel_indptr.data(), p.sel_indices.data(), p.batch * p.h_kv};
  cpu::paged_decode_attention(p.q.data(), kv, DType::kBF16, pt, use_sel ? &sel : nullptr, p.h_q,
                              scale, out.data());
  return std::vector<double>(out.begin(), out.end());
}
#endif

/// Both schedules against the reference, and against each other (same split, same arithmetic
/// order: they differ only in when the data arrives and which kernel merges).
void check_case(const Problem& p, bool use_sel, const std::string& what) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(p.dim));
  const std::vector<double> ref = reference(p, use_sel, scale);
#if defined(VORTEX_HAVE_CPU_PAGED_ATTENTION)
  const std::vector<double> cpu_ref = cpu_reference(p, use_sel, scale);
#endif
  std::vector<double> first;
  for (Variant v : kSchedules) {
    const std::string tag = what + " [" + variant_name(v) + "]";
    const std::vector<double> got = run_gpu(p, use_sel, scale, v);
    EXPECT_LE(gpu_test::rel_l2(got, ref), tolerance(p.io)) << tag;
#if defined(VORTEX_HAVE_CPU_PAGED_ATTENTION)
    EXPECT_LE(gpu_test::rel_l2(got, cpu_ref), tolerance(p.io))
        << tag << " (vs cpu::paged_decode_attention)";
#endif
    if (first.empty()) {
      first = got;
    } else {
      // Same grid: bitwise equal in practice (a contraction choice of the compiler may move one
      // ulp); another grid splits rows elsewhere, so only rounding differs.
      EXPECT_LE(gpu_test::rel_l2(got, first), p.io == DType::kF32 ? 1e-5 : 4e-3)
          << tag << " vs split_merge";
    }
  }
}

TEST(PagedDecodeAttention, RejectsUnsupportedConfigs) {
  DecodeAttentionConfig c;
  c.num_q_heads = 16;
  c.num_kv_heads = 8;
  c.head_dim = 96;
  c.page_size = 16;
  c.max_batch = 4;
  EXPECT_EQ(PagedDecodeAttention::create(c).status().code(), StatusCode::kUnsupported);
  c.head_dim = 128;
  c.page_size = 24;
  EXPECT_EQ(PagedDecodeAttention::create(c).status().code(), StatusCode::kUnsupported);
  c.page_size = 16;
  c.num_q_heads = 12;
  EXPECT_EQ(PagedDecodeAttention::create(c).status().code(), StatusCode::kInvalidArgument);
  c.num_q_heads = 8 * 16;
  EXPECT_EQ(PagedDecodeAttention::create(c).status().code(), StatusCode::kUnsupported);
  c.num_q_heads = 16;
  c.io_dtype = DType::kF16;
  EXPECT_EQ(PagedDecodeAttention::create(c).status().code(), StatusCode::kUnsupported);
}

TEST(PagedDecodeAttention, SweepShapesDenseAndSelected) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(1234);
  for (int32_t dim : {64, 128}) {
    for (int32_t g : {1, 2, 3, 4, 8}) {
      for (int32_t page : {16, 32, 64}) {
        for (DType io : {DType::kBF16, DType::kF32}) {
          const int32_t batch = 1 + static_cast<int32_t>(rng() % 5);
          Problem p = make_problem(random_lens(rng, batch, 1200), dim, g, 2, page, io, rng);
          make_selection(p, 0.4, rng);
          const std::string what = "D=" + std::to_string(dim) + " G=" + std::to_string(g) +
                                   " P=" + std::to_string(page) +
                                   " io=" + std::string(dtype_name(io)) +
                                   " B=" + std::to_string(batch);
          check_case(p, false, what + " dense");
          check_case(p, true, what + " selected");
        }
      }
    }
  }
}

TEST(PagedDecodeAttention, OddGroupsAndPeakedScores) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(77);
  for (int32_t g : {5, 6, 7}) {
    Problem p = make_problem(random_lens(rng, 3, 900), 128, g, 1, 16, DType::kF32, rng);
    check_case(p, false, "G=" + std::to_string(g));
  }
  // Large logits: the running max must keep the softmax finite and exact.
  Problem p = make_problem(random_lens(rng, 4, 700), 64, 2, 2, 16, DType::kF32, rng);
  for (float& x : p.q) x *= 40.f;
  check_case(p, false, "peaked");
}

TEST(PagedDecodeAttention, LargeBatchShortRows) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  Problem p = make_problem(random_lens(rng, 256, 200), 128, 2, 2, 16, DType::kBF16, rng);
  make_selection(p, 0.5, rng);
  check_case(p, false, "B=256 dense");
  check_case(p, true, "B=256 selected");
}

TEST(PagedDecodeAttention, VeryLongRowNextToTinyOnes) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(9);
  Problem p = make_problem({3, 100000, 17, 1}, 128, 4, 2, 16, DType::kF32, rng);
  make_selection(p, 0.3, rng);
  check_case(p, false, "long dense");
  check_case(p, true, "long selected");
}

TEST(PagedDecodeAttention, EmptyRequestsGiveZeros) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(11);
  Problem p = make_problem({40, 0, 300, 0}, 64, 2, 2, 32, DType::kF32, rng);
  for (Variant v : kSchedules) {
    const std::vector<double> got = run_gpu(p, false, 0.125f, v);
    EXPECT_LE(gpu_test::rel_l2(got, reference(p, false, 0.125)), 1e-4) << variant_name(v);
    for (int32_t b : {1, 3}) {
      for (int32_t i = 0; i < p.h_q * p.dim; ++i) {
        ASSERT_EQ(got[static_cast<size_t>(b) * p.h_q * p.dim + i], 0.0)
            << "request " << b << " " << variant_name(v);
      }
    }
  }
}

TEST(PagedDecodeAttention, FullSelectionIsBitwiseDense) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(21);
  Problem p = make_problem(random_lens(rng, 7, 5000), 128, 2, 8, 16, DType::kF32, rng);
  make_selection(p, 1.0, rng);
  for (Variant v : kSchedules) {
    // Runs over a selection may use a smaller grid (kStream: 2 CTAs per SM); on the grid the
    // selection run uses, selecting every page gives the dense result bit for bit.
    auto op = PagedDecodeAttention::create(config_for(p, v));
    ASSERT_TRUE(op.has_value()) << op.status().to_string();
    const Variant same_grid{v.sched, op->launch().selection_ctas_per_sm, v.pool_percent};
    const std::vector<double> dense = run_gpu(p, false, 0.088f, same_grid);
    const std::vector<double> sparse = run_gpu(p, true, 0.088f, v);
    ASSERT_EQ(dense.size(), sparse.size());
    for (size_t i = 0; i < dense.size(); ++i) {
      ASSERT_EQ(dense[i], sparse[i]) << "element " << i << " " << variant_name(v);
    }
    // On the dense grid, the two differ only by rounding.
    EXPECT_LE(gpu_test::rel_l2(run_gpu(p, false, 0.088f, v), sparse), 1e-5) << variant_name(v);
  }
}

/// The sparse step's shape: every row selects `per_row` pages (bos page, random middle pages,
/// last page) of its request.
void select_fixed(Problem& p, int32_t per_row, std::mt19937_64& rng) {
  p.sel_indptr.assign(1, 0);
  p.sel_indices.clear();
  for (int32_t b = 0; b < p.batch; ++b) {
    const int32_t n = p.indptr[b + 1] - p.indptr[b];
    for (int32_t h = 0; h < p.h_kv; ++h) {
      std::vector<int32_t> mid;
      for (int32_t j = 1; j + 1 < n; ++j) mid.push_back(j);
      std::shuffle(mid.begin(), mid.end(), rng);
      mid.resize(std::min<size_t>(mid.size(), static_cast<size_t>(std::max(per_row - 2, 0))));
      std::sort(mid.begin(), mid.end());
      if (n > 1) p.sel_indices.push_back(p.indices[p.indptr[b]]);
      for (int32_t j : mid) p.sel_indices.push_back(p.indices[p.indptr[b] + j]);
      if (n > 0) p.sel_indices.push_back(p.indices[p.indptr[b + 1] - 1]);
      p.sel_indptr.push_back(static_cast<int32_t>(p.sel_indices.size()));
    }
  }
}

TEST(PagedDecodeAttention, ShortSelectedRowsSplitOverCtas) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(41);
  // 32 requests x 8 KV heads x 32 selected pages: 8192 pages over the grid, so rows are cut at
  // arbitrary pages and most are merged from 2-3 CTAs (the block_topk step's attention).
  Problem p = make_problem(std::vector<int32_t>(32, 1500), 128, 2, 8, 16, DType::kBF16, rng);
  select_fixed(p, 32, rng);
  check_case(p, true, "32x8 rows of 32 selected pages");
  // Ragged: some rows select fewer pages than the budget, one request has a single page.
  std::vector<int32_t> lens = random_lens(rng, 24, 900);
  Problem r = make_problem(lens, 128, 4, 8, 16, DType::kF32, rng);
  select_fixed(r, 12, rng);
  check_case(r, true, "ragged selected rows");
}

TEST(PagedDecodeAttention, SingleSplitAndManySplitRows) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(43);
  // Few short rows: the minimum of pages per CTA leaves most rows whole in one CTA.
  Problem few = make_problem({40, 33, 64, 17}, 128, 2, 2, 16, DType::kBF16, rng);
  check_case(few, false, "rows finished by one CTA");
  // One KV head, one long request: a single row cut over every CTA of the grid.
  Problem one = make_problem({60000}, 64, 8, 1, 16, DType::kF32, rng);
  check_case(one, false, "one row over the whole grid");
  // Rows of exactly min_pages pages and rows of one page next to each other.
  Problem mix = make_problem({64, 1, 64, 16, 65, 128, 2, 48}, 128, 1, 4, 16, DType::kF32, rng);
  make_selection(mix, 0.6, rng);
  check_case(mix, false, "mixed tiny rows dense");
  check_case(mix, true, "mixed tiny rows selected");
}

TEST(PagedDecodeAttention, BackToBackRunsOfOneOp) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(45);
  Problem p = make_problem(std::vector<int32_t>(16, 2000), 128, 2, 8, 16, DType::kF32, rng);
  auto op = PagedDecodeAttention::create(config_for(p, {DecodeSchedule::kStream, 2}));
  ASSERT_TRUE(op.has_value()) << op.status().to_string();
  EXPECT_EQ(op->launch().launches, 1);
  for (int run = 0; run < 4; ++run) {
    // A new selection each run (run 3: dense), on the same op and stream, no sync in between
    // the two launches of a pair.
    Problem q = p;
    select_fixed(q, 8 + 8 * run, rng);
    DeviceProblem dp(q);
    dp.poison_out();
    const bool use_sel = run != 3;
    ASSERT_TRUE(
        op->run(dp.q(), dp.kv, dp.pt, use_sel ? &dp.sel : nullptr, 0.088f, dp.out(), 0).is_ok());
    ASSERT_TRUE(
        op->run(dp.q(), dp.kv, dp.pt, use_sel ? &dp.sel : nullptr, 0.088f, dp.out(), 0).is_ok());
    VORTEX_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_LE(gpu_test::rel_l2(dp.download_out(), reference(q, use_sel, 0.088)), 1e-4)
        << "run " << run;
  }
}

// run(..., fresh_tokens) (the decode step's promise that only each row's last token is new) only
// moves the row search and the first K/V requests ahead of the PDL wait: the result is bit for bit
// the plain run's, for rows whose first stages hold the fresh token and rows whose do not. With
// VORTEX_PDL=1 (check.sh runs the GPU tests both ways) the early reads really run first.
TEST(PagedDecodeAttention, EarlyReadsAreBitwiseThePlainRun) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(47);
  std::vector<int32_t> lens = random_lens(rng, 20, 3000);
  lens.push_back(1);
  lens.push_back(17);
  lens.push_back(40000);
  Problem p = make_problem(lens, 128, 2, 8, 16, DType::kBF16, rng);
  auto op = PagedDecodeAttention::create(config_for(p, {DecodeSchedule::kStream, 3}));
  ASSERT_TRUE(op.has_value()) << op.status().to_string();
  DeviceProblem dp(p);
  std::vector<double> plain;
  for (int32_t fresh : {-1, 1, 0, 64}) {
    dp.poison_out();
    ASSERT_TRUE(op->run(dp.q(), dp.kv, dp.pt, nullptr, 0.088f, dp.out(), 0, fresh).is_ok());
    VORTEX_CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<double> out = dp.download_out();
    if (fresh == -1) {
      plain = out;
      EXPECT_LE(gpu_test::rel_l2(out, reference(p, false, 0.088)), tolerance(p.io));
      continue;
    }
    ASSERT_EQ(out.size(), plain.size());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], plain[i]) << "fresh " << fresh;
  }
}

// The work pool on problems large enough to use it (the small cases above fall back to the static
// cut): against the reference, and bit for bit the same on every run although which CTA claims
// which chunk changes (each chunk's arithmetic and the merge order by slot are fixed).
TEST(PagedDecodeAttention, WorkPoolIsExactAndDeterministic) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(49);
  std::vector<int32_t> lens = random_lens(rng, 15, 6000);
  lens.push_back(40000);
  Problem p = make_problem(lens, 128, 2, 8, 16, DType::kBF16, rng);
  Problem s = make_problem(std::vector<int32_t>(32, 2000), 128, 2, 8, 16, DType::kBF16, rng);
  select_fixed(s, 64, rng);
  for (auto [prob, use_sel] : {std::pair<const Problem*, bool>{&p, false}, {&s, true}}) {
    for (int32_t pct : {10, 30}) {
      const Variant v{DecodeSchedule::kStream, 0, pct};
      auto op = PagedDecodeAttention::create(config_for(*prob, v));
      ASSERT_TRUE(op.has_value()) << op.status().to_string();
      const int32_t ctas = use_sel ? op->launch().selection_ctas : op->launch().num_ctas;
      const int64_t total = use_sel ? static_cast<int64_t>(prob->sel_indices.size())
                                    : static_cast<int64_t>(prob->indices.size()) * prob->h_kv;
      ASSERT_GT(work_cut(total, ctas, op->launch().min_pages_per_cta,
                         op->launch().pool_chunks_per_cta * ctas, pct)
                    .num_chunks,
                0)
          << "the problem is too small to use the pool";
      const std::string tag =
          std::string(use_sel ? "selection" : "dense") + " pool " + std::to_string(pct);
      const std::vector<double> first = run_gpu(*prob, use_sel, 0.088f, v);
      EXPECT_LE(gpu_test::rel_l2(first, reference(*prob, use_sel, 0.088)), tolerance(prob->io))
          << tag;
      for (int r = 0; r < 3; ++r) {
        ASSERT_EQ(run_gpu(*prob, use_sel, 0.088f, v), first) << tag << " run " << r;
      }
    }
  }
}

TEST(PagedDecodeAttention, GraphReplayFollowsNewLengths) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(31);
  // The cache holds requests of 3000 tokens; the captured batch first sees short prefixes, then
  // longer ones: only the device-side page table changes between replays.
  Problem full = make_problem({3000, 3000, 3000}, 128, 2, 2, 16, DType::kBF16, rng);
  for (Variant v : kSchedules) {
    DeviceProblem dp(full);
    auto op = PagedDecodeAttention::create(config_for(full, v));
    ASSERT_TRUE(op.has_value()) << op.status().to_string();
    cudaStream_t stream;
    VORTEX_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    VORTEX_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    ASSERT_TRUE(op->run(dp.q(), dp.kv, dp.pt, nullptr, 0.09f, dp.out(), stream).is_ok());
    VORTEX_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    VORTEX_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    for (const std::vector<int32_t>& lens :
         {std::vector<int32_t>{1, 17, 33}, std::vector<int32_t>{2999, 1500, 640},
          std::vector<int32_t>{16, 3000, 1}}) {
      // Same physical pages, shorter token counts: rebuild the CSR over prefixes of each request.
      Problem p = full;
      p.indices.clear();
      p.indptr.assign(1, 0);
      p.last.clear();
      for (int32_t b = 0; b < p.batch; ++b) {
        const int32_t n = (lens[b] + p.page - 1) / p.page;
        for (int32_t j = 0; j < n; ++j) p.indices.push_back(full.indices[full.indptr[b] + j]);
        p.indptr.push_back(static_cast<int32_t>(p.indices.size()));
        p.last.push_back(lens[b] - (n - 1) * p.page);
      }
      std::vector<int32_t> padded = p.indices;
      padded.resize(full.indices.size(), 0);
      dp.indptr.upload(p.indptr);
      dp.indices.upload(padded);
      dp.last.upload(p.last);
      dp.poison_out();
      VORTEX_CUDA_CHECK(cudaGraphLaunch(exec, stream));
      VORTEX_CUDA_CHECK(cudaStreamSynchronize(stream));
      EXPECT_LE(gpu_test::rel_l2(dp.download_out(), reference(p, false, 0.09)), 6e-3)
          << "lengths " << lens[0] << "," << lens[1] << "," << lens[2] << " " << variant_name(v);
    }
    VORTEX_CUDA_CHECK(cudaGraphExecDestroy(exec));
    VORTEX_CUDA_CHECK(cudaGraphDestroy(graph));
    VORTEX_CUDA_CHECK(cudaStreamDestroy(stream));
  }
}

}  // namespace
}  // namespace vortex::gpu
