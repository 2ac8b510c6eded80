// Selection-side benchmarks: radix top-k grid, device planner, block_topk centroid scores and
// cache flow, and the whole per-layer sparse pipeline (scores -> top-k -> attention over the
// selection) at B=32, L=16K, 32 pages per row.
#include <cmath>
#include <vector>

#include "kernel_bench.h"
#include "vortex/kernels/cuda/block_topk_flow.h"
#include "vortex/kernels/cuda/block_topk_fused.h"
#include "vortex/kernels/cuda/paged_decode_attention.h"
#include "vortex/kernels/cuda/row_topk.h"
#include "vortex/kernels/cuda/sparse_planner.h"

namespace vortex::bench {
namespace {

constexpr int32_t kPage = 16, kDim = 128, kHkv = 8, kHq = 16;

void check(const Status& s) {
  if (!s.is_ok()) {
    std::fprintf(stderr, "vortex bench: %s\n", s.to_string().c_str());
    std::exit(2);
  }
}

template <typename T>
T unwrap(Expected<T> e) {
  check(e.status());
  return std::move(*e);
}

void topk_case(const Options& o, Report& r, cudaStream_t s, int32_t batch, int32_t n, int32_t k) {
  const int32_t rows = batch * kHkv, bos = 1, eos = 1;
  std::vector<int32_t> indptr(batch + 1), indices(static_cast<size_t>(batch) * n),
      last(batch, kPage);
  for (int32_t b = 0; b <= batch; ++b) indptr[b] = b * n;
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<int32_t>(i);
  std::vector<int32_t> sel_indptr(rows + 1);
  for (int32_t rr = 0; rr <= rows; ++rr) sel_indptr[rr] = rr * (bos + k + eos);
  DeviceVec<int32_t> d_indptr(indptr), d_indices(indices), d_last(last), d_sel_indptr(sel_indptr);
  DeviceVec<int32_t> d_sel(static_cast<size_t>(sel_indptr.back()));
  DeviceVec<float> scores(static_cast<size_t>(rows) * n);
  fill_random_f32(scores.data(), scores.size(), 3, s);
  const PageTableView pt{d_indptr.data(), d_indices.data(), d_last.data(), batch};
  const Stats st = time_calls(s, 5, o.quick ? 5 : 15, 20, [&](int) {
    check(gpu::select_topk(scores.data(), DType::kF32, pt, kHkv, d_sel_indptr.data(), d_sel.data(),
                           static_cast<int64_t>(d_sel.size()), bos, eos, 0.f, s));
  });
  r.add("topk", {{"rows", rows}, {"pages", n}, {"k", k}}, st, 4.0 * rows * n);
}

void planner_case(const Options& o, Report& r, cudaStream_t s, int32_t batch) {
  const int32_t n = 1024;
  gpu::PlannerConfig pc{batch, kHkv, n, 64, 0};
  gpu::SparsePlanner planner = unwrap(gpu::SparsePlanner::create(pc));
  std::vector<int32_t> indptr(batch + 1), last(batch, kPage);
  for (int32_t b = 0; b <= batch; ++b) indptr[b] = b * n;
  DeviceVec<int32_t> d_indptr(indptr), d_last(last), d_indices(static_cast<size_t>(batch) * n);
  const PageTableView pt{d_indptr.data(), d_indices.data(), d_last.data(), batch};
  const Stats st = time_calls(s, 5, o.quick ? 5 : 15, 20, [&](int) {
    check(planner.plan(pt, gpu::BudgetArgs{30, 0.f, 1, 1}, 1, s));
  });
  r.add("planner", {{"B", batch}, {"rows", batch * kHkv}, {"pages", n}}, st, 0);
}

/// Scores, cache flow and the whole sparse layer at B=32, L=16K.
void pipeline_cases(const Options& o, Report& r, cudaStream_t s) {
  const int32_t batch = 32, pages = 1024, rows = batch * kHkv;
  const double cent_bytes = static_cast<double>(rows) * (pages - 2) * kDim * 2;
  const int copies = rotation_copies(static_cast<size_t>(cent_bytes), 4 * r.ceilings.l2_bytes, 8);
  PagedFixture f(batch, pages, kHkv, kDim, kPage, copies, true, 21);
  gpu::PlannerConfig pc{batch, kHkv, pages, 64, 0};
  gpu::SparsePlanner planner = unwrap(gpu::SparsePlanner::create(pc));
  const gpu::BudgetArgs args{30, 0.f, 1, 1};
  check(planner.plan(f.table(0), args, 1, s));  // counts are the same for every copy
  DeviceVec<float> q(static_cast<size_t>(batch) * kHq * kDim), out(q.size());
  fill_random_f32(q.data(), q.size(), 8, s);
  DeviceVec<float> scores(static_cast<size_t>(rows) * pages);
  const AuxFieldView cent{f.cent.data(), 1, kDim};
  const int groups = o.quick ? 5 : 15;

  // A/B of the indexer kernels (the earlier one, then the default).
  for (gpu::CentroidScoreVariant v :
       {gpu::CentroidScoreVariant::kFourInFlight, gpu::CentroidScoreVariant::kWholeChunk}) {
    const Stats ss = time_calls(s, 3, groups, 4 * copies, [&](int i) {
      check(gpu::centroid_scores(q.data(), DType::kF32, kHq, kHkv, kDim, cent, f.table(i),
                                 planner.worklist(), scores.data(), s, v));
    });
    r.add("centroid_scores",
          {{"B", batch},
           {"pages", pages},
           {"copies", copies},
           {"kernel",
            v == gpu::CentroidScoreVariant::kWholeChunk ? "whole_chunk" : "four_in_flight"}},
          ss, cent_bytes + 4.0 * rows * (pages - 2));
  }

  // Cache flow: one completed page per request per step, and a bulk pass for bandwidth.
  for (int32_t completed : {batch, 8192}) {
    std::vector<int32_t> ids(completed);
    for (int32_t i = 0; i < completed; ++i)
      ids[i] = f.host_indices[static_cast<size_t>(i) * 7 % f.host_indices.size()];
    DeviceVec<int32_t> d_ids(ids);
    const Stats cs = time_calls(s, 3, groups, 20, [&](int) {
      check(gpu::compute_centroids(f.kv(), cent, d_ids.data(), nullptr, completed, s));
    });
    r.add("centroid_cache_flow", {{"pages", completed}, {"H_kv", kHkv}}, cs,
          static_cast<double>(completed) * kHkv * (kPage + 1) * kDim * 2);
  }

  gpu::DecodeAttentionConfig ac{kHq, kHkv, kDim, kPage, DType::kF32, batch, 0};
  const gpu::PagedDecodeAttention attn = unwrap(gpu::PagedDecodeAttention::create(ac));
  const SelectionView sel = planner.selection(batch);
  const double sel_bytes = 2.0 * rows * 32 * kPage * kDim * 2;
  for (bool with_plan : {false, true}) {
    const Stats ps = time_calls(s, 3, groups, 4 * copies, [&](int i) {
      const PageTableView pt = f.table(i);
      if (with_plan) check(planner.plan(pt, args, 1, s));
      check(gpu::centroid_scores(q.data(), DType::kF32, kHq, kHkv, kDim, cent, pt,
                                 planner.worklist(), scores.data(), s));
      check(gpu::select_topk(scores.data(), DType::kF32, pt, kHkv, planner.sel_indptr(),
                             planner.sel_indices(), planner.sel_capacity(), args.bos, args.eos, 0.f,
                             s));
      check(attn.run(q.data(), f.kv(), pt, &sel, 0.088f, out.data(), s));
    });
    r.add(with_plan ? "sparse_layer_with_planner" : "sparse_layer",
          {{"B", batch}, {"L", pages * kPage}, {"selected_pages", 32}, {"copies", copies}}, ps,
          cent_bytes + sel_bytes);
  }
  // The same layer as one fused kernel (block_topk_fused), and its stages (scores; scores and
  // selection; the whole layer) for a breakdown.
  gpu::BlockTopKFusedArgs fa;
  fa.q = q.data();
  fa.io_dtype = DType::kF32;
  fa.num_q_heads = kHq;
  fa.num_kv_heads = kHkv;
  fa.head_dim = kDim;
  fa.centroids = cent;
  fa.kv = f.kv();
  fa.sel_indptr = planner.sel_indptr();
  fa.sel_indices = planner.sel_indices();
  fa.sel_capacity = planner.sel_capacity();
  fa.bos = args.bos;
  fa.eos = args.eos;
  fa.scale = 0.088f;
  fa.max_pages = pages;
  fa.out = out.data();
  for (int32_t stages : {3, 2, 1}) {
    fa.stages = stages;
    const Stats fs = time_calls(s, 3, groups, 4 * copies, [&](int i) {
      fa.pt = f.table(i);
      check(gpu::block_topk_fused(fa, s));
    });
    r.add("sparse_layer_fused",
          {{"B", batch},
           {"L", pages * kPage},
           {"selected_pages", 32},
           {"copies", copies},
           {"stages", stages == 3   ? "all"
                      : stages == 2 ? "scores+select"
                                    : "scores"}},
          fs, cent_bytes + (stages == 3 ? sel_bytes : 0.0));
  }
  // Any flow's path: its indexer (here block_topk's) into the scores buffer, then top-k and
  // attention as one kernel over those scores.
  fa.stages = 3;
  const Stats ts = time_calls(s, 3, groups, 4 * copies, [&](int i) {
    fa.pt = f.table(i);
    check(gpu::centroid_scores(q.data(), DType::kF32, kHq, kHkv, kDim, cent, fa.pt,
                               planner.worklist(), scores.data(), s));
    check(gpu::fused_select_attend(fa, scores.data(), s));
  });
  r.add("sparse_layer_fused_tail",
        {{"B", batch}, {"L", pages * kPage}, {"selected_pages", 32}, {"copies", copies}}, ts,
        cent_bytes + sel_bytes);
}

}  // namespace

void run_select_benches(const Options& o, Report& r) {
  cudaStream_t s;
  cuda_ok(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  topk_case(o, r, s, 32, 1024, 30);
  if (!o.quick) {
    topk_case(o, r, s, 32, 1024, 126);
    topk_case(o, r, s, 32, 4096, 30);
    topk_case(o, r, s, 32, 16384, 30);
    topk_case(o, r, s, 64, 1024, 30);
    topk_case(o, r, s, 256, 1024, 30);
    topk_case(o, r, s, 1024, 256, 30);
  }
  planner_case(o, r, s, 32);
  planner_case(o, r, s, 256);
  pipeline_cases(o, r, s);
  cuda_ok(cudaStreamDestroy(s), "cudaStreamDestroy");
}

}  // namespace vortex::bench
