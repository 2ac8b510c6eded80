// Device side of paged decode attention: the persistent split-KV kernels and the log-sum-exp
// merge. Layout of the work (decode_schedule.h): CTA c owns W pages of the flattened row page
// space and walks the row segments in it. Inside a segment each of the 4 warps streams its own
// stages (stage k of the segment belongs to warp k % 4) through a private cp.async ring in shared
// memory; a lane copies and later reads only its own 16-byte slots, so the pipeline needs no
// barrier. Lane mapping per stage: lane = (tsub, chunk): chunk = 8 dims of D, tsub = which of the
// 32 / (D / 8) tokens of a warp-wide row; q of the G heads stays in registers, pre-scaled by
// scale * log2(e), so the softmax runs in base 2. At a segment's end the warps' (m, l, o) are
// merged through shared memory and written to `out` (whole row) or to the partial slot c + row.
//
// Two schedules share that arithmetic (DecodeSchedule in paged_decode_attention.h):
//  * kSplitMerge (`attention_kernel` + `merge_kernel`): a warp's ring is filled and drained per
//    segment, and a second launch combines the partial slots of split rows.
//  * kStream (`stream_kernel`, one launch): a warp's ring is one stream over all the segments of
//    the CTA's range (the next segment's first stages are in flight while the current one ends),
//    the first search step's loads are issued together with the total, and the last CTA to
//    finish a split row (per-row arrival counter, reset by that CTA) combines its slots itself;
//    rows without pages are zeroed by a strided pass over the rows.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "../common/device_utils.cuh"
#include "vortex/kernels/cuda/decode_schedule.h"
#include "vortex/kernels/cuda/l2_prefetch_device.cuh"
#include "vortex/kernels/cuda/pdl_device.cuh"

namespace vortex::gpu::decode {

using detail::kNegInf;

struct Params {
  RowSpace rows;
  const void* q = nullptr;           // [B, H_q, D] io dtype
  void* out = nullptr;               // [B, H_q, D] io dtype
  const __nv_bfloat16* k = nullptr;  // [num_pages, H_kv, P, D]
  const __nv_bfloat16* v = nullptr;  // [num_pages, H_kv, P, D]
  float* partial_o = nullptr;        // [num_ctas + rows, G, D]
  float* partial_lse = nullptr;      // [num_ctas + rows, G]
  int32_t* arrivals = nullptr;       // [rows] kStream: CTAs done with a split row (0 between runs)
  int32_t num_q_heads = 0;
  int32_t num_rows = 0;  // B * H_kv
  int32_t num_ctas = 0;  // grid size of the attention kernel
  int32_t min_pages = 1;
  float scale_log2 = 0.f;  // softmax scale * log2(e)
  // kStream with programmatic dependent launch: >= 0 when the row space was written before the
  // preceding kernel and only the last `fresh_tokens` tokens of each row may be written by it, so
  // the CTA finds its rows and requests its first K/V stages before waiting for it; -1: wait first.
  int32_t fresh_tokens = -1;
  // kStream work pool (WorkCut): pool_percent of the space in at most pool_units chunks claimed
  // through pool[0]; pool[1] counts CTAs done claiming (both 0 between runs). 0: static cut only.
  int32_t pool_units = 0;
  int32_t pool_percent = 0;
  int32_t* pool = nullptr;
  // Weights of the kernel after this one (the o projection) to prefetch into the L2 as each CTA
  // finishes (its share; null: none): the attention tail leaves DRAM bandwidth unused.
  const void* l2_prefetch = nullptr;
  uint64_t l2_prefetch_bytes = 0;
};

template <int D, int G>
struct Traits {
  static_assert(D == 64 || D == 128, "head_dim 64 or 128");
  static_assert(G >= 1 && G <= 8, "GQA group 1..8");
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kStages = 4;
  static constexpr int kLanesPerToken = D / 8;               // 16-byte chunks per token row
  static constexpr int kTokensPerRow = 32 / kLanesPerToken;  // tokens one warp load covers
  static constexpr int kTokensPerLane = G <= 4 ? 4 : 2;      // per stage (bounds registers)
  static constexpr int kStageTokens = kTokensPerRow * kTokensPerLane;
  static constexpr int kStageBytes = 2 * kTokensPerLane * 32 * 16;  // K and V slots
  static constexpr int kPipeBytes = kWarps * kStages * kStageBytes;
  static constexpr int kMergeFloats = kWarps * G * (D + 2);  // m, l, o of every warp
  static constexpr int kSmemBytes = kPipeBytes + kMergeFloats * 4;
  // Residency the register allocation is sized for (3 x 68 KiB of shared memory fit an SM).
  static constexpr int kMinBlocks = G <= 4 ? 3 : 2;
};

/// Row holding flattened offset `a` (32 probes per step across the warp). `key0` is this lane's
/// probe of the first step, search_key(s, lane * search_step({0, size})) when that index is below
/// size (any value otherwise): the caller loads it before `a` is known.
__device__ __forceinline__ int32_t find_row(const RowSpace& s, int64_t a, int lane, int64_t key0) {
  SearchRange r{0, search_size(s)};
  if (r.hi - r.lo > 1) {
    const int32_t i = lane * search_step(r);
    const unsigned mask = __ballot_sync(0xffffffffu, i < r.hi && key0 <= a);
    r = search_narrow(r, 31 - __clz(mask));
  }
  while (r.hi - r.lo > 1) {
    const int32_t i = r.lo + lane * search_step(r);
    const bool ok = i < r.hi && search_key(s, i) <= a;
    const unsigned mask = __ballot_sync(0xffffffffu, ok);  // bit 0 set: key(lo) <= a
    r = search_narrow(r, 31 - __clz(mask));
  }
  return row_from_search(s, r.lo, a);
}

/// This lane's probe of the first search step (see find_row).
__device__ __forceinline__ int64_t first_probe_key(const RowSpace& s, int lane) {
  const int32_t size = search_size(s);
  const int32_t i = lane * search_step(SearchRange{0, size});
  return i < size ? search_key(s, i) : 0;
}

/// q of the G heads of the row's KV head, 8 dims per lane, in the base-2 softmax scale.
template <int D, int G, typename T>
__device__ __forceinline__ void load_q(const Params& p, const RowInfo& ri, int chunk,
                                       float (&q)[G][8]) {
  const T* qg = static_cast<const T*>(p.q) +
                (static_cast<int64_t>(ri.batch_index) * p.num_q_heads + ri.kv_head * G) * D +
                chunk * 8;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    detail::load8(qg + g * D, q[g]);
#pragma unroll
    for (int e = 0; e < 8; ++e) q[g][e] *= p.scale_log2;
  }
}

/// Copies one warp stage (K and V of kStageTokens tokens from token tok0 of `page`, which holds
/// tokens [tok0 & ~page_mask, ...)) into `buf`; tokens at or past tok_end are zero-filled.
/// kbase / vbase already point at the row's KV head and this lane's chunk.
template <int D, int G>
__device__ __forceinline__ void issue_stage(unsigned char* buf, const __nv_bfloat16* kbase,
                                            const __nv_bfloat16* vbase, int64_t page_elems,
                                            int32_t page, int32_t tok0, int32_t tok_end,
                                            int32_t page_mask, int lane, int tsub) {
  using Tr = Traits<D, G>;
  constexpr int kTs = Tr::kTokensPerRow, kTpl = Tr::kTokensPerLane;
  const int64_t off =
      static_cast<int64_t>(page) * page_elems + static_cast<int64_t>(tok0 & page_mask) * D;
#pragma unroll
  for (int j = 0; j < kTpl; ++j) {
    const int tt = j * kTs + tsub;
    const bool valid = tok0 + tt < tok_end;
    const int64_t src = off + (valid ? tt * D : 0);  // invalid: zero-fill, address unused
    detail::cp_async_16(buf + (j * 32 + lane) * 16, kbase + src, valid ? 16 : 0);
    detail::cp_async_16(buf + ((kTpl + j) * 32 + lane) * 16, vbase + src, valid ? 16 : 0);
  }
}

/// Online-softmax update of (m, l, o) with one landed stage (`buf` = the stage + lane slot).
template <int D, int G>
__device__ __forceinline__ void compute_stage(const uint4* buf, int32_t tok0, int32_t tok_end,
                                              int tsub, const float (&q)[G][8], float (&m)[G],
                                              float (&l)[G], float (&o)[G][8]) {
  using Tr = Traits<D, G>;
  constexpr int kLpt = Tr::kLanesPerToken, kTs = Tr::kTokensPerRow, kTpl = Tr::kTokensPerLane;
  float s[kTpl][G];
#pragma unroll
  for (int j = 0; j < kTpl; ++j) {
    float kf[8];
    detail::unpack_bf16x8(buf[j * 32], kf);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float acc = 0.f;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc = fmaf(q[g][e], kf[e], acc);
      s[j][g] = acc;
    }
  }
#pragma unroll
  for (int j = 0; j < kTpl; ++j) {
    const bool valid = tok0 + j * kTs + tsub < tok_end;
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float full = detail::group_sum<kLpt>(s[j][g]);
      s[j][g] = valid ? full : kNegInf;
    }
  }
  float mu[G];  // the (finite) max used as the exponent base for this stage
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float mx = s[0][g];
#pragma unroll
    for (int j = 1; j < kTpl; ++j) mx = fmaxf(mx, s[j][g]);
    mx = detail::across_groups_max<kLpt>(mx);
    const float mn = fmaxf(m[g], mx);
    mu[g] = mn == kNegInf ? 0.f : mn;
    const float alpha = detail::fast_exp2(m[g] - mu[g]);
    m[g] = mn;
    l[g] *= alpha;
#pragma unroll
    for (int e = 0; e < 8; ++e) o[g][e] *= alpha;
  }
#pragma unroll
  for (int j = 0; j < kTpl; ++j) {
    float vf[8];
    detail::unpack_bf16x8(buf[(kTpl + j) * 32], vf);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float pj = detail::fast_exp2(s[j][g] - mu[g]);
      l[g] += pj;
#pragma unroll
      for (int e = 0; e < 8; ++e) o[g][e] = fmaf(pj, vf[e], o[g][e]);
    }
  }
}

/// Sums the warp's token groups, merges the 4 warps through shared memory and writes the
/// segment's result: the normalized output of the G heads to `out` (whole row) or the partial
/// (o, lse) to slot `slot`. Ends with the shared scratch still being read: the caller
/// synchronizes before the scratch is written again.
template <int D, int G, typename T>
__device__ __forceinline__ void combine_warps(const Params& p, const RowInfo& ri, int64_t slot,
                                              bool whole_row, float (&m)[G], float (&l)[G],
                                              float (&o)[G][8], unsigned char* smem) {
  using Tr = Traits<D, G>;
  constexpr int kLpt = Tr::kLanesPerToken, kNw = Tr::kWarps;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int chunk = lane % kLpt, tsub = lane / kLpt;
  // Sum the token groups of the warp (m is already warp-uniform).
#pragma unroll
  for (int g = 0; g < G; ++g) {
    l[g] = detail::across_groups_sum<kLpt>(l[g]);
#pragma unroll
    for (int e = 0; e < 8; ++e) o[g][e] = detail::across_groups_sum<kLpt>(o[g][e]);
  }
  // Merge the warps through shared memory: ms, ls [kNw][G], os [kNw][G][D].
  float* ms = reinterpret_cast<float*>(smem + Tr::kPipeBytes);
  float* ls = ms + kNw * G;
  float* os = ls + kNw * G;
  if (lane == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      ms[warp * G + g] = m[g];
      ls[warp * G + g] = l[g];
    }
  }
  if (tsub == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float4* dst = reinterpret_cast<float4*>(os + (warp * G + g) * D + chunk * 8);
      dst[0] = make_float4(o[g][0], o[g][1], o[g][2], o[g][3]);
      dst[1] = make_float4(o[g][4], o[g][5], o[g][6], o[g][7]);
    }
  }
  __syncthreads();
  const int64_t out_head0 = static_cast<int64_t>(ri.batch_index) * p.num_q_heads + ri.kv_head * G;
  for (int idx = threadIdx.x; idx < G * D; idx += Tr::kThreads) {
    const int g = idx / D, d = idx % D;
    float mx = kNegInf;
#pragma unroll
    for (int w = 0; w < kNw; ++w) mx = fmaxf(mx, ms[w * G + g]);
    float lsum = 0.f, osum = 0.f;
    if (mx != kNegInf) {
#pragma unroll
      for (int w = 0; w < kNw; ++w) {
        const float f = detail::fast_exp2(ms[w * G + g] - mx);
        lsum += ls[w * G + g] * f;
        osum += os[(w * G + g) * D + d] * f;
      }
    }
    const float val = lsum > 0.f ? osum / lsum : 0.f;
    if (whole_row) {
      detail::store_elem(static_cast<T*>(p.out) + (out_head0 + g) * D + d, val);
    } else {
      p.partial_o[(slot * G + g) * D + d] = val;
      if (d == 0) p.partial_lse[slot * G + g] = lsum > 0.f ? mx + __log2f(lsum) : kNegInf;
    }
  }
}

/// Log-sum-exp combination of the partial slots c0 + row .. c1 + row of a split row into `out`,
/// by the threads [t0, t0 + nt): one pass with a running max, 8 slots' loads in flight at a time
/// (partials read through L2: other CTAs wrote them in this launch).
template <typename T>
__device__ __forceinline__ void merge_slots(const Params& p, const RowInfo& ri, int32_t row,
                                            int64_t c0, int64_t c1, int G, int D, int t0, int nt) {
  constexpr int kBatch = 8;
  T* out = static_cast<T*>(p.out) +
           (static_cast<int64_t>(ri.batch_index) * p.num_q_heads + ri.kv_head * G) * D;
  for (int idx = t0; idx < G * D; idx += nt) {
    const int g = idx / D, d = idx % D;
    float mx = kNegInf, lsum = 0.f, osum = 0.f;
    for (int64_t cb = c0; cb <= c1; cb += kBatch) {
      float lse[kBatch], ov[kBatch];
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const int64_t slot = cb + u + row;
        const bool ok = cb + u <= c1;
        lse[u] = ok ? __ldcg(p.partial_lse + slot * G + g) : kNegInf;
        ov[u] = ok ? __ldcg(p.partial_o + (slot * G + g) * D + d) : 0.f;
      }
      float bm = lse[0];
#pragma unroll
      for (int u = 1; u < kBatch; ++u) bm = fmaxf(bm, lse[u]);
      const float nm = fmaxf(mx, bm);
      if (nm == kNegInf) continue;
      const float alpha = detail::fast_exp2(mx - nm);  // 0 while mx is -inf
      lsum *= alpha;
      osum *= alpha;
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const float f = detail::fast_exp2(lse[u] - nm);
        lsum += f;
        osum += f * ov[u];
      }
      mx = nm;
    }
    detail::store_elem(out + idx, lsum > 0.f ? osum / lsum : 0.f);
  }
}

// ---------------------------------------------------------------------------------------------
// kSplitMerge: per-segment pipeline + merge kernel.

/// Attention of one row over pages [page_begin, page_end) of its list; all threads of the CTA.
template <int D, int G, typename T>
__device__ __forceinline__ void process_segment(const Params& p, const RowInfo& ri, int32_t row,
                                                int32_t page_begin, int32_t page_end,
                                                bool whole_row, unsigned char* smem) {
  using Tr = Traits<D, G>;
  constexpr int kLpt = Tr::kLanesPerToken, kSt = Tr::kStageTokens, kS = Tr::kStages;
  constexpr int kNw = Tr::kWarps;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int chunk = lane % kLpt, tsub = lane / kLpt;
  const int log2p = p.rows.log2_page;
  const int32_t page_mask = (1 << log2p) - 1;

  const int32_t tok_begin = page_begin << log2p;
  const int32_t tok_end = min(page_end << log2p, ri.num_tokens);
  const int32_t nst = tok_end > tok_begin ? (tok_end - tok_begin + kSt - 1) / kSt : 0;
  const int32_t my_n = nst > warp ? (nst - warp + kNw - 1) / kNw : 0;

  float q[G][8];
  load_q<D, G, T>(p, ri, chunk, q);

  const int64_t head_elems = static_cast<int64_t>(D) << log2p;  // one [P, D] tile
  const int64_t page_elems = head_elems * p.rows.num_kv_heads;
  const __nv_bfloat16* kbase = p.k + ri.kv_head * head_elems + chunk * 8;
  const __nv_bfloat16* vbase = p.v + ri.kv_head * head_elems + chunk * 8;
  unsigned char* wsm = smem + warp * (kS * Tr::kStageBytes);

  auto stage_tok0 = [&](int32_t i) { return tok_begin + (warp + i * kNw) * kSt; };
  auto page_of = [&](int32_t i) { return __ldg(ri.pages + (stage_tok0(i) >> log2p)); };
  auto issue = [&](int32_t i, int32_t page) {
    issue_stage<D, G>(wsm + (i % kS) * Tr::kStageBytes, kbase, vbase, page_elems, page,
                      stage_tok0(i), tok_end, page_mask, lane, tsub);
  };

  float o[G][8];
  float m[G], l[G];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = kNegInf;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) o[g][e] = 0.f;
  }

  // Prologue: kS - 1 stages in flight (empty groups keep the group count uniform).
#pragma unroll
  for (int s = 0; s < kS - 1; ++s) {
    if (s < my_n) issue(s, page_of(s));
    detail::cp_async_commit();
  }
  int32_t next_page = (kS - 1 < my_n) ? page_of(kS - 1) : 0;

  for (int32_t i = 0; i < my_n; ++i) {
    const int32_t page = next_page;
    if (i + kS < my_n) next_page = page_of(i + kS);  // prefetch the id one stage ahead
    if (i + kS - 1 < my_n) issue(i + kS - 1, page);
    detail::cp_async_commit();
    detail::cp_async_wait<kS - 1>();  // stage i has landed (this lane's own slots)
    const uint4* buf = reinterpret_cast<const uint4*>(wsm + (i % kS) * Tr::kStageBytes) + lane;
    compute_stage<D, G>(buf, stage_tok0(i), tok_end, tsub, q, m, l, o);
  }

  combine_warps<D, G, T>(p, ri, static_cast<int64_t>(blockIdx.x) + row, whole_row, m, l, o, smem);
  __syncthreads();  // the merge scratch is reused by the next segment
}

template <int D, int G, typename T>
__global__ void __launch_bounds__(Traits<D, G>::kThreads, Traits<D, G>::kMinBlocks)
    attention_kernel(const __grid_constant__ Params p) {
  vortex::gpu::pdl_enter();
  extern __shared__ __align__(16) unsigned char smem[];
  const int64_t total = row_space_total(p.rows);
  const int64_t per_cta = pages_per_cta(total, p.num_ctas, p.min_pages);
  const int64_t a = static_cast<int64_t>(blockIdx.x) * per_cta;
  if (a >= total) return;
  const int64_t e = a + per_cta < total ? a + per_cta : total;
  const int lane = threadIdx.x % 32;
  int32_t row = find_row(p.rows, a, lane, first_probe_key(p.rows, lane));
  for (;;) {
    const RowInfo ri = row_info(p.rows, row);
    const int64_t rb = ri.flat_begin, re = rb + ri.num_pages;
    if (ri.num_pages > 0) {
      const int64_t sb = a > rb ? a : rb, se = e < re ? e : re;
      process_segment<D, G, T>(p, ri, row, static_cast<int32_t>(sb - rb),
                               static_cast<int32_t>(se - rb), sb == rb && se == re, smem);
    }
    if (re >= e || row + 1 >= p.num_rows) break;
    ++row;
  }
}

/// One CTA per row: combines the row's partial slots (rows split over several CTAs), writes zeros
/// for rows without pages, and leaves rows finished by one CTA alone.
template <typename T>
__global__ void __launch_bounds__(128)
    merge_kernel(const __grid_constant__ Params p, int G, int D) {
  vortex::gpu::pdl_enter();
  const int32_t row = blockIdx.x;
  const RowInfo ri = row_info(p.rows, row);
  if (ri.num_pages == 0) {
    T* out = static_cast<T*>(p.out) +
             (static_cast<int64_t>(ri.batch_index) * p.num_q_heads + ri.kv_head * G) * D;
    for (int idx = threadIdx.x; idx < G * D; idx += blockDim.x) detail::store_elem(out + idx, 0.f);
    return;
  }
  const int64_t per_cta = pages_per_cta(row_space_total(p.rows), p.num_ctas, p.min_pages);
  const int64_t c0 = first_cta(ri, per_cta), c1 = last_cta(ri, per_cta);
  if (c0 == c1) return;
  merge_slots<T>(p, ri, row, c0, c1, G, D, threadIdx.x, blockDim.x);
}

// ---------------------------------------------------------------------------------------------
// kStream: one launch, a continuous per-warp stream over the CTA's segments, fused merge.

/// One warp's view of a segment: a row's pages inside the CTA's range [a, e).
struct Segment {
  RowInfo ri;
  int32_t row = 0;
  int32_t tok_begin = 0;
  int32_t tok_end = 0;
  int32_t n = 0;  ///< this warp's stages in the segment
  bool whole = false;
  bool live = false;  ///< false once the walk has left the CTA's range
};

template <int kSt, int kNw>
__device__ __forceinline__ void load_segment(const Params& p, int32_t row, int64_t a, int64_t e,
                                             int warp, Segment& s) {
  s.row = row;
  s.ri = row_info(p.rows, row);
  const int64_t rb = s.ri.flat_begin, re = rb + s.ri.num_pages;
  const int64_t sb = a > rb ? a : rb, se = e < re ? e : re;
  const int log2p = p.rows.log2_page;
  s.tok_begin = static_cast<int32_t>(sb - rb) << log2p;
  s.tok_end = min(static_cast<int32_t>(se > sb ? se - rb : sb - rb) << log2p, s.ri.num_tokens);
  const int32_t nst = s.tok_end > s.tok_begin ? (s.tok_end - s.tok_begin + kSt - 1) / kSt : 0;
  s.n = nst > warp ? (nst - warp + kNw - 1) / kNw : 0;
  s.whole = sb == rb && se == re;
  s.live = true;
}

/// Arrival on a per-row counter with release semantics at GPU scope; returns the old count.
__device__ __forceinline__ int32_t arrive_release(int32_t* counter) {
  int32_t old;
  asm volatile("atom.release.gpu.global.add.s32 %0, [%1], 1;"
               : "=r"(old)
               : "l"(counter)
               : "memory");
  return old;
}
__device__ __forceinline__ void acquire_fence() { asm volatile("fence.acq_rel.gpu;" ::: "memory"); }

/// Moves `s` to the next row with pages inside [a, e) (the walk of attention_kernel, skipping
/// rows without pages); returns false (and s.live = false) when the range is done.
template <int kSt, int kNw>
__device__ __forceinline__ bool next_segment(const Params& p, int64_t a, int64_t e, int warp,
                                             Segment& s) {
  for (;;) {
    if (s.ri.flat_begin + s.ri.num_pages >= e || s.row + 1 >= p.num_rows) {
      s.live = false;
      return false;
    }
    load_segment<kSt, kNw>(p, s.row + 1, a, e, warp, s);
    if (s.ri.num_pages > 0) return true;
  }
}

/// Pages of row r (the row's n, without the rest of row_info).
__device__ __forceinline__ int32_t row_pages(const RowSpace& s, int32_t r) {
  if (s.sel_indptr != nullptr) return s.sel_indptr[r + 1] - s.sel_indptr[r];
  const int32_t b = r / s.num_kv_heads;
  return s.page_indptr[b + 1] - s.page_indptr[b];
}

/// Zeros the output of the rows without pages among row0 + k * stride (one warp; `pages0` is the
/// page count of row0, loaded by the caller ahead of time).
template <int D, int G, typename T>
__device__ __forceinline__ void zero_empty_rows(const Params& p, int32_t row0, int32_t pages0,
                                                int32_t stride, int lane) {
  for (int32_t row = row0; row < p.num_rows; row += stride) {
    if ((row == row0 ? pages0 : row_pages(p.rows, row)) != 0) continue;
    const int32_t b = row / p.rows.num_kv_heads, h = row - b * p.rows.num_kv_heads;
    T* out = static_cast<T*>(p.out) + (static_cast<int64_t>(b) * p.num_q_heads + h * G) * D;
    for (int idx = lane; idx < G * D; idx += 32) detail::store_elem(out + idx, 0.f);
  }
}

/// Attention over [a, e), the range of work unit `unit` (partial slot unit + row; the last unit
/// to finish a split row merges it): a per-warp stream over the range's segments. `waited`:
/// whether the PDL wait has happened; when not (the CTA's first range with p.fresh_tokens >= 0),
/// the range's first K/V stages are requested before waiting if they hold no fresh token.
template <int D, int G, typename T>
__device__ __forceinline__ void stream_range(const Params& p, const WorkCut& cut, int64_t unit,
                                             int64_t a, int64_t e, bool& waited,
                                             unsigned char* smem) {
  using Tr = Traits<D, G>;
  constexpr int kLpt = Tr::kLanesPerToken, kSt = Tr::kStageTokens, kS = Tr::kStages;
  constexpr int kNw = Tr::kWarps;
  // Set by thread 0 once every thread is done reading the merge scratch, where it lives.
  volatile int* last_arrival = reinterpret_cast<int*>(smem + Tr::kPipeBytes);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int chunk = lane % kLpt, tsub = lane / kLpt;
  const int log2p = p.rows.log2_page;
  const int32_t page_mask = (1 << log2p) - 1;
  const int64_t head_elems = static_cast<int64_t>(D) << log2p;  // one [P, D] tile
  const int64_t page_elems = head_elems * p.rows.num_kv_heads;
  unsigned char* wsm = smem + warp * (kS * Tr::kStageBytes);

  // Two walks over the same segments: `cs` computes, `is` issues up to kS - 1 stages ahead of it
  // (across segment ends); stage number k of this warp lives in ring slot k % kS. The issue side
  // keeps its segment's pointers and next token in registers (entered once per segment).
  Segment cs;
  load_segment<kSt, kNw>(p, find_row(p.rows, a, lane, first_probe_key(p.rows, lane)), a, e, warp,
                         cs);
  auto stage_tok0 = [&](const Segment& s, int32_t i) {
    return s.tok_begin + (warp + i * kNw) * kSt;
  };
  // Page ids of this warp's first kS - 1 stages of the first segment, loaded together (the
  // stream below loads each id one stage ahead; a chain of dependent loads at the start would
  // leave this CTA idle while the others' data already loads the memory system).
  int32_t first_pages[kS - 1];
#pragma unroll
  for (int s = 0; s < kS - 1; ++s) {
    first_pages[s] = s < cs.n ? __ldg(cs.ri.pages + (stage_tok0(cs, s) >> log2p)) : 0;
  }
  Segment is = cs;
  const int32_t* i_pages = nullptr;
  const __nv_bfloat16* i_k = nullptr;
  const __nv_bfloat16* i_v = nullptr;
  int32_t i_tok = 0, i_left = 0;  // next stage's first token, this warp's stages left
  auto enter = [&]() {
    const int64_t head_off = is.ri.kv_head * head_elems + chunk * 8;
    i_pages = is.ri.pages;
    i_k = p.k + head_off;
    i_v = p.v + head_off;
    i_tok = is.tok_begin + warp * kSt;
    i_left = is.n;
  };
  auto settle = [&]() {
    while (is.live && i_left == 0) {
      if (next_segment<kSt, kNw>(p, a, e, warp, is)) enter();
    }
  };
  enter();
  settle();
  int32_t next_page = 0;
  uint32_t issued = 0;
  // Issues the stage at the cursor with page id `page`, then moves the cursor on.
  auto issue_at = [&](int32_t page) {
    issue_stage<D, G>(wsm + (issued % kS) * Tr::kStageBytes, i_k, i_v, page_elems, page, i_tok,
                      is.tok_end, page_mask, lane, tsub);
    ++issued;
    i_tok += kNw * kSt;
    --i_left;
    settle();
  };
  auto issue_next = [&]() {
    if (is.live) {
      issue_at(next_page);
      if (is.live) next_page = __ldg(i_pages + (i_tok >> log2p));
    }
    detail::cp_async_commit();  // empty groups keep the group count uniform
  };
  // Prologue: kS - 1 stages; while the cursor is in the first segment its ids are at hand.
  auto prologue = [&]() {
#pragma unroll
    for (int s = 0; s < kS - 1; ++s) {
      if (is.live) issue_at(s < cs.n ? first_pages[s] : __ldg(i_pages + (i_tok >> log2p)));
      detail::cp_async_commit();
    }
  };
  // Before the wait only when the stages lie in the first segment and hold no fresh token.
  const bool pre = !waited && cs.n >= kS - 1 &&
                   stage_tok0(cs, kS - 2) + kSt <= cs.ri.num_tokens - p.fresh_tokens;
  if (pre) prologue();
  if (!waited) {
    vortex::gpu::pdl_wait();
    waited = true;
  }
  if (!pre) prologue();
  if (is.live) next_page = __ldg(i_pages + (i_tok >> log2p));

  uint32_t consumed = 0;
  for (;;) {
    float q[G][8];
    load_q<D, G, T>(p, cs.ri, chunk, q);
    float o[G][8];
    float m[G], l[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      m[g] = kNegInf;
      l[g] = 0.f;
#pragma unroll
      for (int e2 = 0; e2 < 8; ++e2) o[g][e2] = 0.f;
    }
    for (int32_t i = 0; i < cs.n; ++i) {
      issue_next();
      detail::cp_async_wait<kS - 1>();  // stage `consumed` has landed (this lane's own slots)
      const uint4* buf =
          reinterpret_cast<const uint4*>(wsm + (consumed % kS) * Tr::kStageBytes) + lane;
      compute_stage<D, G>(buf, stage_tok0(cs, i), cs.tok_end, tsub, q, m, l, o);
      ++consumed;
    }

    const int64_t slot = unit + cs.row;
    combine_warps<D, G, T>(p, cs.ri, slot, cs.whole, m, l, o, smem);
    if (!cs.whole) {
      // The last unit to finish this row combines its slots: the CTA's partial stores are ordered
      // before thread 0's release arrival by the barrier; the merging CTA acquires after seeing
      // the count, then its threads (ordered by the barrier) read the slots through L2.
      __syncthreads();
      const int64_t c0 = first_unit(cut, cs.ri), c1 = last_unit(cut, cs.ri);
      if (threadIdx.x == 0) {
        const int32_t prev = arrive_release(p.arrivals + cs.row);
        const bool last = prev == static_cast<int32_t>(c1 - c0);
        if (last) {
          acquire_fence();
          p.arrivals[cs.row] = 0;  // ready for the next launch (stream-ordered)
        }
        *last_arrival = last ? 1 : 0;
      }
      __syncthreads();
      if (*last_arrival != 0)
        merge_slots<T>(p, cs.ri, cs.row, c0, c1, G, D, threadIdx.x, Tr::kThreads);
    }
    __syncthreads();  // the merge scratch (and the flag in it) is reused by the next segment
    if (!next_segment<kSt, kNw>(p, a, e, warp, cs)) break;
  }
}

template <int D, int G, typename T>
__global__ void __launch_bounds__(Traits<D, G>::kThreads, Traits<D, G>::kMinBlocks)
    stream_kernel(const __grid_constant__ Params p) {
  // Early reads (p.fresh_tokens >= 0): everything up to the first K/V stages only reads what the
  // preceding kernel does not write; q, the outputs, the partials and the counters wait for it.
  const bool early = p.fresh_tokens >= 0;
  if (!early) vortex::gpu::pdl_wait();
  vortex::gpu::pdl_launch_dependents();
  using Tr = Traits<D, G>;
  constexpr int kNw = Tr::kWarps;
  extern __shared__ __align__(16) unsigned char smem[];
  // A pool claim is broadcast through the merge scratch (its second int; stream_range ends with a
  // barrier after its last read of the scratch).
  volatile int* claimed = reinterpret_cast<int*>(smem + Tr::kPipeBytes) + 1;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  // Independent loads first: the total and the page count of the first row this warp checks for
  // the empty-row pass (done at the end, off the critical path).
  const int64_t total = row_space_total(p.rows);
  const int32_t zrow = blockIdx.x + warp * gridDim.x, zstride = kNw * gridDim.x;
  const int32_t zpages = zrow < p.num_rows ? row_pages(p.rows, zrow) : 1;
  const WorkCut cut = work_cut(total, p.num_ctas, p.min_pages, p.pool_units, p.pool_percent);
  bool waited = !early;
  // The CTA's own range, then chunks of the pool until it is empty (one call site of
  // stream_range keeps the kernel's registers at the single-range kernel's); the last CTA to
  // find the pool empty resets the claim counters for the next launch (every CTA has made its
  // last claim by then).
  int64_t unit = blockIdx.x;
  for (;;) {
    const int64_t a = unit_begin(cut, unit), e = unit_end(cut, unit);
    if (a < e) stream_range<D, G, T>(p, cut, unit, a, e, waited, smem);
    if (cut.num_chunks == 0) break;
    if (!waited) {
      vortex::gpu::pdl_wait();
      waited = true;
    }
    if (threadIdx.x == 0) *claimed = atomicAdd(p.pool, 1);
    __syncthreads();
    const int c = *claimed;
    __syncthreads();  // everyone has read `claimed` before thread 0 writes it again
    if (c >= cut.num_chunks) {
      if (threadIdx.x == 0 && atomicAdd(p.pool + 1, 1) == static_cast<int>(gridDim.x) - 1) {
        p.pool[0] = 0;
        p.pool[1] = 0;
      }
      break;
    }
    unit = static_cast<int64_t>(cut.num_ctas) + c;
  }
  if (!waited) vortex::gpu::pdl_wait();
  zero_empty_rows<D, G, T>(p, zrow, zpages, zstride, lane);
  if (warp == 0) {
    vortex::gpu::l2_prefetch_part(p.l2_prefetch, p.l2_prefetch_bytes, blockIdx.x, gridDim.x, lane);
  }
}

}  // namespace vortex::gpu::decode
