// The hand-written block_topk flow on the GPU: page centroids (cache flow) and centroid scores
// (indexer, both kernels) against host computations, untouched entries left alone, and the whole
// sparse layer (planner -> scores -> top-k -> attention over the selection) against references
// here; the fused layer kernel (scores + top-k + attention in one launch) against that pipeline.
#include "vortex/kernels/cuda/block_topk_flow.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "attention_reference.h"
#include "gpu_test_util.h"
#include "vortex/kernels/cuda/block_topk_fused.h"
#include "vortex/kernels/cuda/paged_decode_attention.h"
#include "vortex/kernels/cuda/row_topk.h"
#include "vortex/kernels/cuda/sparse_planner.h"

namespace vortex::gpu {
namespace {

using gpu_test::DeviceArray;

std::vector<uint16_t> random_bf16(size_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  std::vector<uint16_t> v(n);
  for (uint16_t& x : v) x = gpu_test::to_bf16(uni(rng));
  return v;
}

TEST(BlockTopKFlow, RejectsBadFields) {
  KVLayerView kv{nullptr, nullptr, 4, 2, 16, 128};
  AuxFieldView f{nullptr, 2, 128};
  EXPECT_EQ(compute_centroids(kv, f, nullptr, nullptr, 4, 0).code(), StatusCode::kInvalidArgument);
  kv.head_dim = 80;
  EXPECT_EQ(compute_centroids(kv, f, nullptr, nullptr, 4, 0).code(), StatusCode::kUnsupported);
}

TEST(BlockTopKFlow, CentroidsAreMeanKeys) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  for (int32_t dim : {64, 128}) {
    for (int32_t page : {16, 64}) {
      const int32_t num_pages = 300, h_kv = 3;
      const std::vector<uint16_t> k =
          random_bf16(static_cast<size_t>(num_pages) * h_kv * page * dim, rng);
      std::vector<int32_t> ids(num_pages);
      std::iota(ids.begin(), ids.end(), 0);
      std::shuffle(ids.begin(), ids.end(), rng);
      ids.resize(120);  // completed this step; only the first 100 are counted on the device
      DeviceArray<uint16_t> dk(k), cent(static_cast<size_t>(num_pages) * h_kv * dim);
      DeviceArray<int32_t> dids(ids), count(std::vector<int32_t>{100});
      cent.poison();
      KVLayerView kv{dk.data(), dk.data(), num_pages, h_kv, page, dim};
      AuxFieldView f{cent.data(), 1, dim};
      ASSERT_TRUE(compute_centroids(kv, f, dids.data(), count.data(), 120, 0).is_ok());
      VORTEX_CUDA_CHECK(cudaDeviceSynchronize());
      const std::vector<uint16_t> got = cent.download();
      std::vector<bool> done(num_pages, false);
      for (int i = 0; i < 100; ++i) done[ids[i]] = true;
      for (int32_t pg = 0; pg < num_pages; ++pg) {
        for (int32_t h = 0; h < h_kv; ++h) {
          for (int32_t d = 0; d < dim; ++d) {
            const float g =
                gpu_test::from_bf16(got[(static_cast<size_t>(pg) * h_kv + h) * dim + d]);
            if (!done[pg]) {
              ASSERT_TRUE(std::isnan(g)) << "page " << pg << " was not listed";
              continue;
            }
            double mean = 0;
            for (int32_t t = 0; t < page; ++t) {
              mean += gpu_test::from_bf16(
                  k[((static_cast<size_t>(pg) * h_kv + h) * page + t) * dim + d]);
            }
            mean /= page;
            ASSERT_NEAR(g, mean, std::abs(mean) / 128 + 1e-6) << "page " << pg << " d " << d;
          }
        }
      }
    }
  }
}

/// A sparse decode layer on the host: page tables, K/V, centroids, q.
struct Layer {
  gpu_test::HostPageTable t;
  int32_t h_kv = 2, g = 2, dim = 128, page = 16;
  std::vector<uint16_t> k, v, cent;  // [num_pages, H_kv, P, D], [num_pages, H_kv, 1, D]
  std::vector<float> q;              // [B, H_q, D]
};

Layer make_layer(const std::vector<int32_t>& pages, std::mt19937_64& rng, int32_t g = 2,
                 int32_t dim = 128, int32_t page = 16) {
  Layer l;
  l.g = g;
  l.dim = dim;
  l.page = page;
  l.t = gpu_test::random_page_table(pages, l.page, rng);
  const size_t tiles = static_cast<size_t>(l.t.num_pages) * l.h_kv;
  l.k = random_bf16(tiles * l.page * l.dim, rng);
  l.v = random_bf16(tiles * l.page * l.dim, rng);
  l.cent = random_bf16(tiles * l.dim, rng);
  std::normal_distribution<float> normal(0.f, 1.f);
  l.q.resize(static_cast<size_t>(l.t.batch()) * l.h_kv * l.g * l.dim);
  for (float& x : l.q) x = normal(rng);
  return l;
}

/// The planner of a Layer's batch: up to 2000 pages per request, 64-page worklist chunks.
Expected<SparsePlanner> layer_planner(const Layer& l) {
  PlannerConfig pc;
  pc.max_batch = l.t.batch();
  pc.num_kv_heads = l.h_kv;
  pc.max_pages_per_request = 2000;
  pc.chunk_pages = 64;
  return SparsePlanner::create(pc);
}

double host_score(const Layer& l, int32_t b, int32_t h, int32_t j) {
  const int32_t pg = l.t.indices[l.t.indptr[b] + j];
  double acc = 0;
  for (int32_t d = 0; d < l.dim; ++d) {
    double qbar = 0;
    for (int32_t x = 0; x < l.g; ++x) {
      qbar += l.q[((static_cast<size_t>(b) * l.h_kv + h) * l.g + x) * l.dim + d];
    }
    acc += qbar / l.g *
           gpu_test::from_bf16(l.cent[(static_cast<size_t>(pg) * l.h_kv + h) * l.dim + d]);
  }
  return acc;
}

TEST(BlockTopKFlow, SparseLayerMatchesReferences) {
  VORTEX_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  std::vector<int32_t> pages = {1, 20, 33, 700, 64, 2000, 31, 1500};  // dense and sparse rows
  Layer l = make_layer(pages, rng);
  const int32_t batch = l.t.batch(), rows = batch * l.h_kv, h_q = l.h_kv * l.g;

  auto planner = layer_planner(l);
  ASSERT_TRUE(planner.has_value()) << planner.status().to_string();
  DeviceArray<int32_t> indptr(l.t.indptr), indices(l.t.indices), last(l.t.last);
  DeviceArray<uint16_t> dk(l.k), dv(l.v), dc(l.cent);
  DeviceArray<float> dq(l.q), out(l.q.size());
  DeviceArray<float> scores(l.t.indices.size() * l.h_kv);
  scores.poison();
  out.poison();
  const PageTableView pt{indptr.data(), indices.data(), last.data(), batch};
  const BudgetArgs args{30, 0.f, 1, 1};
  ASSERT_TRUE(planner->plan(pt, args, 1, 0).is_ok());
  ASSERT_TRUE(centroid_scores(dq.data(), DType::kF32, h_q, l.h_kv, l.dim,
                              AuxFieldView{dc.data(), 1, l.dim}, pt, planner->worklist(),
                              scores.data(), 0)
                  .is_ok());
  ASSERT_TRUE(select_topk(scores.data(), DType::kF32, pt, l.h_kv, planner->sel_indptr(),
                          planner->sel_indices(), planner->sel_capacity(), args.bos, args.eos, 0.f,
                          0)
                  .is_ok());
  DecodeAttentionConfig ac{h_q, l.h_kv, l.dim, l.page, DType::kF32, batch, 0};
  auto attn = PagedDecodeAttention::create(ac);
  ASSERT_TRUE(attn.has_value()) << attn.status().to_string();
  const SelectionView sel = planner->selection(batch);
  const KVLayerView kv{dk.data(), dv.data(), l.t.num_pages, l.h_kv, l.page, l.dim};
  const float scale = 1.f / std::sqrt(static_cast<float>(l.dim));
  ASSERT_TRUE(attn->run(dq.data(), kv, pt, &sel, scale, out.data(), 0).is_ok());
  VORTEX_CUDA_CHECK(cudaDeviceSynchronize());

  // Scores: candidates of sparse rows written and right; everything else untouched (NaN).
  const std::vector<float> sc = scores.download();
  // The earlier indexer kernel writes the same entries with the same arithmetic.
  {
    DeviceArray<float> scores_old(l.t.indices.size() * l.h_kv);
    scores_old.poison();
    ASSERT_TRUE(centroid_scores(dq.data(), DType::kF32, h_q, l.h_kv, l.dim,
                                AuxFieldView{dc.data(), 1, l.dim}, pt, planner->worklist(),
                                scores_old.data(), 0, CentroidScoreVariant::kFourInFlight)
                    .is_ok());
    const std::vector<float> so = scores_old.download();
    for (size_t i = 0; i < sc.size(); ++i) {
      if (std::isnan(sc[i])) {
        ASSERT_TRUE(std::isnan(so[i])) << "entry " << i;
      } else {
        ASSERT_NEAR(so[i], sc[i], 1e-5) << "entry " << i;
      }
    }
  }
  std::vector<int32_t> sel_indptr(rows + 1);
  VORTEX_CUDA_CHECK(cudaMemcpy(sel_indptr.data(), planner->sel_indptr(), sel_indptr.size() * 4,
                               cudaMemcpyDeviceToHost));
  std::vector<int32_t> sel_indices(sel_indptr.back());
  VORTEX_CUDA_CHECK(cudaMemcpy(sel_indices.data(), planner->sel_indices(), sel_indices.size() * 4,
                               cudaMemcpyDeviceToHost));
  const std::vector<float> got = out.download();
  for (int32_t b = 0; b < batch; ++b) {
    const int32_t n = l.t.pages(b);
    const bool sparse = n > 32;
    for (int32_t h = 0; h < l.h_kv; ++h) {
      const int32_t r = b * l.h_kv + h;
      const float* s = &sc[gpu_test::row_space_offset(l.t, l.h_kv, b, h)];
      for (int32_t j = 0; j < n; ++j) {
        if (sparse && j >= 1 && j < n - 1) {
          ASSERT_NEAR(s[j], host_score(l, b, h, j), 1e-4) << "row " << r << " page " << j;
        } else {
          ASSERT_TRUE(std::isnan(s[j])) << "row " << r << " page " << j << " written";
        }
      }
      // Selection: the exact top-30 of the GPU's own scores, ties to the lower page.
      std::vector<int32_t> want;
      const int32_t* pg = &l.t.indices[l.t.indptr[b]];
      if (!sparse) {
        want.assign(pg, pg + n);
      } else {
        std::vector<int32_t> cand(n - 2);
        std::iota(cand.begin(), cand.end(), 1);
        std::stable_sort(cand.begin(), cand.end(),
                         [&](int32_t x, int32_t y) { return s[x] > s[y]; });
        cand.resize(30);
        std::sort(cand.begin(), cand.end());
        want.push_back(pg[0]);
        for (int32_t j : cand) want.push_back(pg[j]);
        want.push_back(pg[n - 1]);
      }
      const std::vector<int32_t> row(sel_indices.begin() + sel_indptr[r],
                                     sel_indices.begin() + sel_indptr[r + 1]);
      ASSERT_EQ(row, want) << "row " << r;
      // Attention over the selection.
      std::vector<double> ref(l.dim), mine(l.dim);
      for (int32_t x = 0; x < l.g; ++x) {
        const size_t at = ((static_cast<size_t>(b) * l.h_kv + h) * l.g + x) * l.dim;
        gpu_test::attention_row(l.k, l.v, l.h_kv, l.page, l.dim, want, l.t.last[b], h, &l.q[at],
                                scale, ref.data());
        for (int32_t d = 0; d < l.dim; ++d) mine[d] = got[at + d];
        EXPECT_LE(gpu_test::rel_l2(mine, ref), 1e-4) << "row " << r << " head " << x;
      }
    }
  }
}

// The fused kernel selects bitwise what centroid_scores + select_topk select (same arithmetic, same
// radix select), for several groups, head dims, page sizes and bos/eos, with dense, sparse and
// empty rows; its attention equals the host reference over that selection. The same for
// fused_select_attend over the indexer's scores (the path of every other flow).
TEST(BlockTopKFlow, FusedLayerSelectsLikeThePipelineAndAttends) {
  VORTEX_REQUIRE_GPU();
  struct Case {
    int32_t g, dim, page, topk, bos, eos;
  };
  int checked_sparse = 0;
  for (const Case c : {Case{2, 128, 16, 30, 1, 1}, Case{3, 64, 32, 8, 0, 2},
                       Case{8, 128, 16, 30, 2, 1}, Case{1, 64, 16, 5, 1, 1}}) {
    std::mt19937_64 rng(11 + c.g * 7 + c.dim);
    const std::vector<int32_t> pages = {1, 20, 0, 700, 64, 2000, 31, 1500, 37};
    Layer l = make_layer(pages, rng, c.g, c.dim, c.page);
    const int32_t batch = l.t.batch(), rows = batch * l.h_kv, h_q = l.h_kv * l.g;
    ASSERT_TRUE(block_topk_fused_supported(h_q, l.h_kv, l.dim, l.page, DType::kF32, 2000));
    auto planner = layer_planner(l);
    ASSERT_TRUE(planner.has_value()) << planner.status().to_string();
    DeviceArray<int32_t> indptr(l.t.indptr), indices(l.t.indices), last(l.t.last);
    DeviceArray<uint16_t> dk(l.k), dv(l.v), dc(l.cent);
    DeviceArray<float> dq(l.q), out(l.q.size());
    DeviceArray<float> scores(l.t.indices.size() * l.h_kv);
    const PageTableView pt{indptr.data(), indices.data(), last.data(), batch};
    const BudgetArgs args{c.topk, 0.f, c.bos, c.eos};
    const AuxFieldView cent{dc.data(), 1, l.dim};
    ASSERT_TRUE(planner->plan(pt, args, 1, 0).is_ok());
    ASSERT_TRUE(centroid_scores(dq.data(), DType::kF32, h_q, l.h_kv, l.dim, cent, pt,
                                planner->worklist(), scores.data(), 0)
                    .is_ok());
    ASSERT_TRUE(select_topk(scores.data(), DType::kF32, pt, l.h_kv, planner->sel_indptr(),
                            planner->sel_indices(), planner->sel_capacity(), args.bos, args.eos,
                            0.f, 0)
                    .is_ok());
    VORTEX_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<int32_t> sel_indptr(rows + 1);
    VORTEX_CUDA_CHECK(cudaMemcpy(sel_indptr.data(), planner->sel_indptr(), sel_indptr.size() * 4,
                                 cudaMemcpyDeviceToHost));
    std::vector<int32_t> want(sel_indptr.back()), got_sel(sel_indptr.back());
    VORTEX_CUDA_CHECK(
        cudaMemcpy(want.data(), planner->sel_indices(), want.size() * 4, cudaMemcpyDeviceToHost));
    VORTEX_CUDA_CHECK(cudaMemset(planner->sel_indices(), 0xff, want.size() * 4));

    BlockTopKFusedArgs a;
    a.q = dq.data();
    a.io_dtype = DType::kF32;
    a.num_q_heads = h_q;
    a.num_kv_heads = l.h_kv;
    a.head_dim = l.dim;
    a.centroids = cent;
    a.kv = KVLayerView{dk.data(), dv.data(), l.t.num_pages, l.h_kv, l.page, l.dim};
    a.pt = pt;
    a.sel_indptr = planner->sel_indptr();
    a.sel_indices = planner->sel_indices();
    a.sel_capacity = planner->sel_capacity();
    a.bos = c.bos;
    a.eos = c.eos;
    a.scale = 1.f / std::sqrt(static_cast<float>(l.dim));
    a.max_pages = 2000;
    a.out = out.data();
    // Both entry points: block_topk's own centroid scores, and the indexer's scores (any flow).
    for (bool from_scores : {false, true}) {
      VORTEX_CUDA_CHECK(cudaMemset(planner->sel_indices(), 0xff, want.size() * 4));
      out.poison();
      ASSERT_TRUE((from_scores ? fused_select_attend(a, scores.data(), 0) : block_topk_fused(a, 0))
                      .is_ok());
      VORTEX_CUDA_CHECK(cudaDeviceSynchronize());
      VORTEX_CUDA_CHECK(cudaMemcpy(got_sel.data(), planner->sel_indices(), got_sel.size() * 4,
                                   cudaMemcpyDeviceToHost));
      const std::string what = "g " + std::to_string(c.g) + " dim " + std::to_string(c.dim) +
                               " page " + std::to_string(c.page) +
                               (from_scores ? " (from scores)" : "");
      ASSERT_EQ(got_sel, want) << what;
      const std::vector<float> got = out.download();
      for (int32_t b = 0; b < batch; ++b) {
        checked_sparse += !from_scores && l.t.pages(b) > c.topk + c.bos + c.eos ? 1 : 0;
        for (int32_t h = 0; h < l.h_kv; ++h) {
          const int32_t r = b * l.h_kv + h;
          const std::vector<int32_t> sel(want.begin() + sel_indptr[r],
                                         want.begin() + sel_indptr[r + 1]);
          std::vector<double> ref(l.dim), mine(l.dim);
          for (int32_t x = 0; x < l.g; ++x) {
            const size_t at = ((static_cast<size_t>(b) * l.h_kv + h) * l.g + x) * l.dim;
            gpu_test::attention_row(l.k, l.v, l.h_kv, l.page, l.dim, sel, l.t.last[b], h, &l.q[at],
                                    a.scale, ref.data());
            for (int32_t d = 0; d < l.dim; ++d) mine[d] = got[at + d];
            EXPECT_LE(gpu_test::rel_l2(mine, ref), 1e-4) << what << " row " << r << " head " << x;
          }
        }
      }
    }
  }
  EXPECT_GT(checked_sparse, 8);
}

}  // namespace
}  // namespace vortex::gpu
