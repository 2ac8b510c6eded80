// Paged decode attention benchmarks: the dense grid (qwen3-1.7b attention shape, page 16,
// B x L), GQA variants at B=32 L=16K, and attention over a 32-page selection per row. The grid
// runs the default schedule; the headline dense points and the selection case run both
// schedules (split_merge = two launches, stream = one) on the same inputs, for an A/B in one run.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernel_bench.h"
#include "vortex/kernels/cuda/paged_decode_attention.h"

namespace vortex::bench {
namespace {

constexpr int32_t kPage = 16, kDim = 128, kHkv = 8;

using gpu::DecodeSchedule;

/// A schedule and grid size to time (ctas_per_sm 0: as many as fit).
struct Variant {
  DecodeSchedule sched = DecodeSchedule::kDefault;
  int32_t ctas_per_sm = 0;
  int32_t pool_percent = -1;  ///< kStream work pool share (-1: the default)
  int32_t pool_chunks = -1;   ///< chunks per CTA (-1: the default)
};

gpu::PagedDecodeAttention make_op(int32_t h_q, int32_t batch, Variant v) {
  gpu::DecodeAttentionConfig c{h_q, kHkv, kDim, kPage, DType::kBF16, batch, 0};
  c.schedule = v.sched;
  c.ctas_per_sm = v.ctas_per_sm;
  c.pool_percent = v.pool_percent;
  c.pool_chunks_per_cta = v.pool_chunks;
  auto op = gpu::PagedDecodeAttention::create(c);
  if (!op.has_value()) {
    std::fprintf(stderr, "vortex bench: %s\n", op.status().to_string().c_str());
    std::exit(2);
  }
  return std::move(*op);
}

/// Calls per timed group so that a group lasts about 2 ms at `gbps` (and covers all copies).
int calls_per_group(double bytes, int copies, double gbps) {
  const double est_us = bytes / (gbps * 1e3);
  const int n = static_cast<int>(std::ceil(2000.0 / std::max(est_us, 1.0)));
  return std::clamp(std::max(n, copies), 1, 400);
}

/// One dense point, timed for each schedule of `scheds` on the same fixture.
void dense_case(const Options& o, Report& r, cudaStream_t s, int32_t h_q, int32_t batch,
                int32_t len, const std::vector<Variant>& variants) {
  const int32_t pages = len / kPage;
  const double one = 2.0 * batch * pages * kHkv * static_cast<double>(kPage) * kDim * 2;
  const int copies = rotation_copies(static_cast<size_t>(one), 4 * r.ceilings.l2_bytes, 64);
  PagedFixture f(batch, pages, kHkv, kDim, kPage, copies, false, 11 + batch + len);
  DeviceVec<uint16_t> q(static_cast<size_t>(batch) * h_q * kDim), out(q.size());
  fill_random_bf16(q.data(), q.size(), 5, s);
  const float scale = 1.f / std::sqrt(static_cast<float>(kDim));
  for (const Variant& v : variants) {
    const gpu::PagedDecodeAttention op = make_op(h_q, batch, v);
    const Stats st = time_calls(
        s, 3, o.quick ? 5 : 15, calls_per_group(one, copies, r.ceilings.read_gbps), [&](int i) {
          const Status e = op.run(q.data(), f.kv(), f.table(i), nullptr, scale, out.data(), s);
          if (!e.is_ok()) std::fprintf(stderr, "%s\n", e.to_string().c_str());
        });
    const double bytes = one + 2.0 * q.size() * 2;
    nlohmann::json& rec = r.add("attention_dense",
                                {{"B", batch},
                                 {"L", len},
                                 {"H_q", h_q},
                                 {"H_kv", kHkv},
                                 {"D", kDim},
                                 {"P", kPage},
                                 {"copies", copies},
                                 {"ctas", op.launch().num_ctas},
                                 {"ctas_per_sm", op.launch().ctas_per_sm},
                                 {"grid", v.ctas_per_sm == 0 ? "auto" : "pinned"},
                                 {"sched", gpu::decode_schedule_name(op.launch().schedule)},
                                 {"pool", op.launch().pool_percent},
                                 {"pool_chunks", op.launch().pool_chunks_per_cta}},
                                st, bytes);
    rec["launches"] = op.launch().launches;
    // The configuration the engine runs (default schedule, grid and pool): the headline number.
    rec["default"] = v.sched == DecodeSchedule::kDefault && v.ctas_per_sm == 0 &&
                     v.pool_percent == -1 && v.pool_chunks == -1;
  }
}

void sparse_case(const Options& o, Report& r, cudaStream_t s,
                 const std::vector<Variant>& variants) {
  const int32_t batch = 32, len = 16384, pages = len / kPage, h_q = 16, selected = 32;
  PagedFixture f(batch, pages, kHkv, kDim, kPage, 1, false, 99);
  const int32_t rows = batch * kHkv;
  // 8 different random selections (bos page, 30 middle pages, last page) rotate through the pool.
  const int sets = 8;
  std::mt19937_64 rng(7);
  std::vector<DeviceVec<int32_t>> sel_indices;
  std::vector<int32_t> indptr(rows + 1);
  for (int32_t rr = 0; rr <= rows; ++rr) indptr[rr] = rr * selected;
  DeviceVec<int32_t> sel_indptr(indptr);
  for (int st = 0; st < sets; ++st) {
    std::vector<int32_t> idx;
    for (int32_t b = 0; b < batch; ++b) {
      const int32_t* list = &f.host_indices[static_cast<size_t>(b) * pages];
      for (int32_t h = 0; h < kHkv; ++h) {
        std::vector<int32_t> mid(pages - 2);
        for (int32_t j = 0; j < pages - 2; ++j) mid[j] = j + 1;
        std::shuffle(mid.begin(), mid.end(), rng);
        mid.resize(selected - 2);
        std::sort(mid.begin(), mid.end());
        idx.push_back(list[0]);
        for (int32_t j : mid) idx.push_back(list[j]);
        idx.push_back(list[pages - 1]);
      }
    }
    sel_indices.emplace_back(idx);
  }
  DeviceVec<uint16_t> q(static_cast<size_t>(batch) * h_q * kDim), out(q.size());
  fill_random_bf16(q.data(), q.size(), 6, s);
  const double bytes = 2.0 * rows * selected * static_cast<double>(kPage) * kDim * 2;
  for (const Variant& v : variants) {
    const gpu::PagedDecodeAttention op = make_op(h_q, batch, v);
    const Stats stt = time_calls(s, 3, o.quick ? 5 : 15, 64, [&](int i) {
      const SelectionView sel{sel_indptr.data(), sel_indices[i % sets].data(), rows};
      const Status e = op.run(q.data(), f.kv(), f.table(0), &sel, 0.088f, out.data(), s);
      if (!e.is_ok()) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    });
    nlohmann::json& rec = r.add("attention_sparse",
                                {{"B", batch},
                                 {"L", len},
                                 {"H_q", h_q},
                                 {"H_kv", kHkv},
                                 {"D", kDim},
                                 {"P", kPage},
                                 {"selected_pages", selected},
                                 {"selection_sets", sets},
                                 {"ctas_per_sm", op.launch().selection_ctas_per_sm},
                                 {"grid", v.ctas_per_sm == 0 ? "auto" : "pinned"},
                                 {"sched", gpu::decode_schedule_name(op.launch().schedule)}},
                                stt, bytes);
    rec["ctas"] = op.launch().selection_ctas;
    rec["launches"] = op.launch().launches;
  }
}

}  // namespace

void run_attention_benches(const Options& o, Report& r) {
  cudaStream_t s;
  cuda_ok(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  const std::vector<int32_t> batches =
      o.quick ? std::vector<int32_t>{1, 32} : std::vector<int32_t>{1, 8, 32, 64};
  const std::vector<int32_t> lens =
      o.quick ? std::vector<int32_t>{1024, 16384} : std::vector<int32_t>{1024, 4096, 16384, 32768};
  // A/B: the earlier schedule, the stream schedule as configured by default (3 CTAs per SM,
  // 2 for short problems), and the stream schedule pinned at 3 and at 2 CTAs per SM.
  const std::vector<Variant> both = {{DecodeSchedule::kSplitMerge, 0},
                                     {DecodeSchedule::kDefault, 0},
                                     {DecodeSchedule::kStream, 3},
                                     {DecodeSchedule::kStream, 2}};
  const std::vector<Variant> dflt = {Variant{}};
  // The work pool's share at the long dense points (0 = the static cut).
  // The work pool (off by default) at the long dense points: share (percent) x chunks per CTA.
  const std::vector<Variant> pools = {{DecodeSchedule::kStream, 0, 10, 2},
                                      {DecodeSchedule::kStream, 0, 20, 4}};
  // The short-row cases first (the A/B that matters most, in case a run is cut short).
  sparse_case(o, r, s, both);
  for (int32_t b : batches) {
    for (int32_t l : lens) {
      // Both schedules at the headline point, at short rows and at the smallest batch.
      const bool ab = (b == 32 && (l == 16384 || l == 1024)) || (b == 1 && l == 16384);
      dense_case(o, r, s, 16, b, l, ab ? both : dflt);
      if (l == 16384 && b >= 32) dense_case(o, r, s, 16, b, l, pools);
    }
  }
  // GQA group 4 (qwen3-8b, llama-3.1-8b) and 8 at the headline point.
  dense_case(o, r, s, 32, 32, 16384, both);
  if (!o.quick) dense_case(o, r, s, 64, 32, 16384, both);
  cuda_ok(cudaStreamDestroy(s), "cudaStreamDestroy");
}

}  // namespace vortex::bench
