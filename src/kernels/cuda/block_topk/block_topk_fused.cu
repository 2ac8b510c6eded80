// The block_topk sparse decode layer in one kernel (block_topk_fused.h): one CTA per row (b, h)
// scores the row's candidate pages, selects its top-k and attends over the selection, so the
// scores never leave shared memory and the indexer, top-k and attention launches become one.
//
//  1. The row's page ids go to shared memory; the mean query q̄ and every candidate's score
//     <q̄, centroid> use the indexer's arithmetic (centroid_score.cuh) and lane mapping, so the
//     scores -- and the selection -- are bitwise those of centroid_scores + select_topk.
//  2. The radix select of select_topk (radix_select.cuh) over the keys in shared memory writes the
//     row's selection (bos pages, chosen pages ascending, eos pages) to sel_indices.
//  3. Attention over the selection: warp w takes entries w, w + 8, ...; a lane holds 8 dims of one
//     token of a warp-wide row (as the split-KV kernel) and keeps a base-2 online softmax per
//     head; the warps' (m, l, o) are merged through shared memory.
// Both streams (centroids, then K/V) are loaded straight into registers: a lane issues kU rounds
// of centroid pieces, or kRows token rows of K and V, before it computes on them. (A per-lane
// cp.async ring in shared memory instead measured slower: 57.1 vs 49.5 us per layer at B=32,
// L=16K on an H200, its attention stage 24.3 vs 18.1 us.)
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "../common/device_utils.cuh"
#include "../topk/radix_select.cuh"
#include "centroid_score.cuh"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/block_topk_fused.h"
#include "vortex/kernels/cuda/budget_policy.h"
#include "vortex/kernels/cuda/l2_prefetch_device.cuh"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"

namespace vortex::gpu {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kItems = 4;  // candidates per thread per block scan of the compaction
/// Dynamic shared memory: the row's page ids, score keys and selection (4 bytes per page each).
__host__ __device__ constexpr int64_t fused_smem_bytes(int64_t max_pages) { return 12 * max_pages; }
constexpr float kLog2e = 1.4426950408889634f;
#ifndef VORTEX_FUSED_SCORE_ROUNDS
#define VORTEX_FUSED_SCORE_ROUNDS 8  // centroid loads per lane in flight
#endif

struct FusedParams {
  const void* q = nullptr;                   // [B, H_q, D]
  const __nv_bfloat16* centroids = nullptr;  // [num_pages, H_kv, 1, D]
  const float* scores = nullptr;             // kFromScores: any indexer's scores, row page space
  const __nv_bfloat16* k = nullptr;          // [num_pages, H_kv, P, D]
  const __nv_bfloat16* v = nullptr;
  PageTableView pt;
  const int32_t* sel_indptr = nullptr;
  int32_t* sel_indices = nullptr;
  int64_t sel_capacity = 0;
  void* out = nullptr;  // [B, H_q, D]
  int32_t num_kv_heads = 0, page_size = 0, log2p = 0, max_pages = 0;
  int32_t bos = 0, eos = 1;  // eos effective (>= 1)
  float tolerance = 0.f;
  float scale_log2 = 0.f;  // softmax scale * log2(e)
  int32_t stages = 3;      // 1: scores only, 2: + selection, 3: + attention (bench timings)
  const void* l2_prefetch = nullptr;  // the next GEMM's weights: each CTA its share at its end
  uint64_t l2_prefetch_bytes = 0;
};

/// kFromScores: the candidates' scores come from `p.scores` (any flow's indexer) instead of
/// block_topk's centroid scores; the rest (selection, attention) is the same.
template <int D, int G, typename T, bool kFromScores>
__global__ void __launch_bounds__(kThreads, 2) block_topk_fused_kernel(const FusedParams p) {
  vortex::gpu::pdl_enter();
  constexpr int kLpt = D / 8, kTs = 32 / kLpt;  // lanes per token, tokens per warp-wide row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  int32_t* ids = reinterpret_cast<int32_t*>(smem_raw);  // [max_pages] the row's page ids
  uint32_t* keys = reinterpret_cast<uint32_t*>(ids) + p.max_pages;  // [max_pages] score keys
  int32_t* sel_s = ids + 2 * p.max_pages;                           // [max_pages] the selection
  __shared__ __align__(16) float qbar[D];
  __shared__ radix::SelectShared<kThreads> sh;
  __shared__ float wm[kWarps][G], wl[kWarps][G];
  __shared__ __align__(16) float wo[kWarps][G][D];

  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32, lane = tid % 32;
  const int chunk = lane % kLpt, tsub = lane / kLpt;
  const int32_t row = static_cast<int32_t>(blockIdx.x);
  const int32_t hkv = p.num_kv_heads;
  const int32_t b = row / hkv, h = row - b * hkv;
  const int32_t pb = p.pt.page_indptr[b];
  const int32_t n = p.pt.page_indptr[b + 1] - pb;
  const int32_t sel_begin = p.sel_indptr[row];
  const int32_t count = p.sel_indptr[row + 1] - sel_begin;
  T* out = static_cast<T*>(p.out) + (static_cast<int64_t>(b) * hkv + h) * G * D;
  const bool runnable = count > 0 && n > 0 && n <= p.max_pages &&
                        static_cast<int64_t>(sel_begin) + count <= p.sel_capacity;
  const auto prefetch_share = [&] {
    if (warp == 0) {
      vortex::gpu::l2_prefetch_part(p.l2_prefetch, p.l2_prefetch_bytes, blockIdx.x, gridDim.x,
                                    lane);
    }
  };
  if (!runnable) {  // no pages (or a row the host promised not to send): zero output
    for (int i = tid; i < G * D; i += kThreads) detail::store_elem(out + i, 0.f);
    prefetch_share();
    return;
  }
  const int32_t* pages = p.pt.page_indices + pb;
  int32_t* sel = p.sel_indices + sel_begin;
  for (int32_t i = tid; i < n; i += kThreads) ids[i] = __ldg(pages + i);

  // q of the G heads (this lane's 8 dims), pre-scaled for the base-2 softmax; q̄ as the indexer.
  const T* qrow = static_cast<const T*>(p.q) + (static_cast<int64_t>(b) * hkv + h) * G * D;
  float q[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    detail::load8(qrow + g * D + chunk * 8, q[g]);
#pragma unroll
    for (int e = 0; e < 8; ++e) q[g][e] *= p.scale_log2;
  }
  if constexpr (!kFromScores) {
    for (int d = tid; d < D; d += kThreads) qbar[d] = centroid::mean_query(qrow, d, G, D);
  }
  __syncthreads();  // ids and q̄ are in shared memory

  if (count >= n) {  // dense row: every page in order
    for (int32_t i = tid; i < n; i += kThreads) sel[i] = ids[i];
  } else {
    const int32_t eos_e = min(p.eos, count);
    const int32_t bos_c = min(p.bos, count - eos_e);
    const int32_t k = count - bos_c - eos_e;
    const int32_t m = n - bos_c - eos_e;
    for (int32_t i = tid; i < bos_c; i += kThreads) sel[i] = sel_s[i] = ids[i];
    for (int32_t i = tid; i < eos_e; i += kThreads) {
      sel[bos_c + k + i] = sel_s[bos_c + k + i] = ids[n - eos_e + i];
    }
    if (k > 0) {
      if constexpr (kFromScores) {  // keys of the indexer's scores (fp32, row page space)
        const float* sc =
            p.scores + static_cast<int64_t>(pb) * hkv + static_cast<int64_t>(h) * n + bos_c;
        for (int32_t i = tid; i < m; i += kThreads) keys[i] = detail::score_key(__ldg(sc + i));
      } else {
        // Scores: round r of a warp covers candidates warp * kTs + r * kStride + [0, kTs); kU
        // rounds of centroid loads per lane are in flight before they are scored.
        constexpr int kU = VORTEX_FUSED_SCORE_ROUNDS, kStride = kWarps * kTs;
        float qv[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) qv[e] = qbar[chunk * 8 + e];
        const __nv_bfloat16* cent = p.centroids + static_cast<int64_t>(h) * D + chunk * 8;
        for (int32_t base = warp * kTs; base < m; base += kStride * kU) {
          uint4 raw[kU];
#pragma unroll
          for (int u = 0; u < kU; ++u) {
            const int32_t i = base + u * kStride + tsub;
            raw[u] = i < m ? __ldg(reinterpret_cast<const uint4*>(
                                 cent + static_cast<int64_t>(ids[bos_c + i]) * hkv * D))
                           : make_uint4(0u, 0u, 0u, 0u);
          }
#pragma unroll
          for (int u = 0; u < kU; ++u) {
            const int32_t i = base + u * kStride + tsub;
            const float dot = centroid::dot<kLpt>(qv, raw[u]);
            if (i < m && chunk == 0) keys[i] = detail::score_key(dot);
          }
        }
      }
      __syncthreads();
      if (p.stages < 2) return;  // uniform: stage timing only
      const int32_t allowed = static_cast<int32_t>(floorf(p.tolerance * static_cast<float>(k)));
      uint32_t prefix, mask;
      int32_t need;
      auto key_at = [&](int32_t i) { return keys[i]; };
      radix::radix_boundary<kThreads>(key_at, m, k, allowed, sh, prefix, mask, need);
      radix::compact_selected<kThreads, kItems>(key_at, m, prefix, mask, need, sh,
                                                [&](int32_t pos, int32_t i) {
                                                  const int32_t pg = ids[bos_c + i];
                                                  sel[bos_c + pos] = pg;
                                                  sel_s[bos_c + pos] = pg;
                                                });
    }
  }
  __syncthreads();           // the selection is in shared memory (and written out)
  if (p.stages < 3) return;  // uniform: stage timing only

  // Attention over the row's selected pages (the last one is the row's last page): warp w takes
  // entries w, w + kWarps, ...; kRows token rows of a page's K and V per lane in flight.
  const int32_t* list = count >= n ? ids : sel_s;
  const int32_t last_len = p.pt.last_page_len[b];
  const int64_t tile = static_cast<int64_t>(p.page_size) * D;
  const __nv_bfloat16* kh = p.k + static_cast<int64_t>(h) * tile + chunk * 8;
  const __nv_bfloat16* vh = p.v + static_cast<int64_t>(h) * tile + chunk * 8;
  constexpr int kRows = G <= 2 ? 8 : G <= 4 ? 4 : 2;  // registers: q and o hold 16 G floats
  float mx[G], l[G], o[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    mx[g] = detail::kNegInf;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) o[g][e] = 0.f;
  }
  const int32_t rows_per_page = p.page_size / kTs;
  const int32_t used = min(count, n);
  for (int32_t s = warp; s < used; s += kWarps) {
    const int64_t page = list[s];
    const int32_t filled = s == used - 1 ? last_len : p.page_size;
    const __nv_bfloat16* kp = kh + (page * hkv << p.log2p) * D;
    const __nv_bfloat16* vp = vh + (page * hkv << p.log2p) * D;
    for (int32_t r0 = 0; r0 < rows_per_page; r0 += kRows) {
      uint4 kr[kRows], vr[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int32_t t = (r0 + r) * kTs + tsub;
        const bool ok = r0 + r < rows_per_page && t < filled;
        kr[r] = ok ? __ldg(reinterpret_cast<const uint4*>(kp + static_cast<int64_t>(t) * D))
                   : make_uint4(0u, 0u, 0u, 0u);
        vr[r] = ok ? __ldg(reinterpret_cast<const uint4*>(vp + static_cast<int64_t>(t) * D))
                   : make_uint4(0u, 0u, 0u, 0u);
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int32_t t = (r0 + r) * kTs + tsub;
        const bool ok = r0 + r < rows_per_page && t < filled;
        float kf[8], vf[8];
        detail::unpack_bf16x8(kr[r], kf);
        detail::unpack_bf16x8(vr[r], vf);
#pragma unroll
        for (int g = 0; g < G; ++g) {
          float dot = 0.f;
#pragma unroll
          for (int e = 0; e < 8; ++e) dot = fmaf(q[g][e], kf[e], dot);
          dot = detail::group_sum<kLpt>(dot);
          if (ok) {
            const float m_new = fmaxf(mx[g], dot);
            const float corr = detail::fast_exp2(mx[g] - m_new);
            const float pr = detail::fast_exp2(dot - m_new);
            l[g] = l[g] * corr + pr;
#pragma unroll
            for (int e = 0; e < 8; ++e) o[g][e] = fmaf(pr, vf[e], o[g][e] * corr);
            mx[g] = m_new;
          }
        }
      }
    }
  }
  // The lane groups of a warp (tokens tsub) merge by shuffles, the warps through shared memory.
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const float m_w = detail::across_groups_max<kLpt>(mx[g]);
    const float f = mx[g] == detail::kNegInf ? 0.f : detail::fast_exp2(mx[g] - m_w);
    const float l_w = detail::across_groups_sum<kLpt>(l[g] * f);
#pragma unroll
    for (int e = 0; e < 8; ++e) o[g][e] = detail::across_groups_sum<kLpt>(o[g][e] * f);
    if (lane == 0) {
      wm[warp][g] = m_w;
      wl[warp][g] = l_w;
    }
    if (tsub == 0) {
#pragma unroll
      for (int e = 0; e < 8; ++e) wo[warp][g][chunk * 8 + e] = o[g][e];
    }
  }
  __syncthreads();
  prefetch_share();
  for (int i = tid; i < G * D; i += kThreads) {
    const int g = i / D, d = i % D;
    float m_all = detail::kNegInf;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m_all = fmaxf(m_all, wm[w][g]);
    float l_all = 0.f, o_all = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float f = wm[w][g] == detail::kNegInf ? 0.f : detail::fast_exp2(wm[w][g] - m_all);
      l_all = fmaf(wl[w][g], f, l_all);
      o_all = fmaf(wo[w][g][d], f, o_all);
    }
    detail::store_elem(out + i, l_all > 0.f ? o_all / l_all : 0.f);
  }
}

using KernelFn = void (*)(const FusedParams);

template <int D, typename T, bool kFromScores>
KernelFn kernel_for_g(int32_t g) {
  switch (g) {
    case 1:
      return block_topk_fused_kernel<D, 1, T, kFromScores>;
    case 2:
      return block_topk_fused_kernel<D, 2, T, kFromScores>;
    case 3:
      return block_topk_fused_kernel<D, 3, T, kFromScores>;
    case 4:
      return block_topk_fused_kernel<D, 4, T, kFromScores>;
    case 8:
      return block_topk_fused_kernel<D, 8, T, kFromScores>;
    default:
      return nullptr;
  }
}

template <bool kFromScores>
KernelFn kernel_for(int32_t d, int32_t g, DType io) {
  const bool bf16 = io == DType::kBF16;
  if (d == 64) {
    return bf16 ? kernel_for_g<64, __nv_bfloat16, kFromScores>(g)
                : kernel_for_g<64, float, kFromScores>(g);
  }
  if (d == 128) {
    return bf16 ? kernel_for_g<128, __nv_bfloat16, kFromScores>(g)
                : kernel_for_g<128, float, kFromScores>(g);
  }
  return nullptr;
}

}  // namespace

bool block_topk_fused_supported(int32_t num_q_heads, int32_t num_kv_heads, int32_t head_dim,
                                int32_t page_size, DType io_dtype, int32_t max_pages) {
  if (num_kv_heads <= 0 || num_q_heads <= 0 || num_q_heads % num_kv_heads != 0) return false;
  if (io_dtype != DType::kBF16 && io_dtype != DType::kF32) return false;
  const int32_t tokens_per_row = 32 / (head_dim / 8);
  return kernel_for<false>(head_dim, num_q_heads / num_kv_heads, io_dtype) != nullptr &&
         page_size >= tokens_per_row && page_size <= 256 && (page_size & (page_size - 1)) == 0 &&
         max_pages >= 1 && max_pages <= kBlockTopKFusedMaxPages;
}

namespace {

Status launch_fused(const BlockTopKFusedArgs& a, const float* scores, cudaStream_t stream) {
  if (!block_topk_fused_supported(a.num_q_heads, a.num_kv_heads, a.head_dim, a.kv.page_size,
                                  a.io_dtype, a.max_pages)) {
    return unsupported(
        "block_topk_fused: unsupported shape (head_dim " + std::to_string(a.head_dim) + ", group " +
        std::to_string(a.num_kv_heads > 0 ? a.num_q_heads / a.num_kv_heads : 0) + ", page " +
        std::to_string(a.kv.page_size) + ", max pages " + std::to_string(a.max_pages) + ")");
  }
  if (a.kv.num_kv_heads != a.num_kv_heads || a.kv.head_dim != a.head_dim) {
    return invalid_argument("block_topk_fused: the KV layer does not match the model shape");
  }
  if (scores == nullptr &&
      (a.centroids.data == nullptr || a.centroids.rows != 1 || a.centroids.cols != a.head_dim)) {
    return invalid_argument("block_topk_fused: the centroid field does not match");
  }
  if (a.bos < 0 || a.eos < 0 || !(a.tolerance >= 0.f && a.tolerance < 1.f)) {
    return invalid_argument("block_topk_fused: bos, eos >= 0 and tolerance in [0, 1)");
  }
  const int64_t rows = static_cast<int64_t>(a.pt.batch_size) * a.num_kv_heads;
  if (rows == 0) return Status::ok();
  if (rows >= (int64_t{1} << 31)) return invalid_argument("block_topk_fused: too many rows");
  FusedParams p;
  p.q = a.q;
  p.centroids = static_cast<const __nv_bfloat16*>(a.centroids.data);
  p.scores = scores;
  p.k = static_cast<const __nv_bfloat16*>(a.kv.k);
  p.v = static_cast<const __nv_bfloat16*>(a.kv.v);
  p.pt = a.pt;
  p.sel_indptr = a.sel_indptr;
  p.sel_indices = a.sel_indices;
  p.sel_capacity = a.sel_capacity;
  p.out = a.out;
  p.num_kv_heads = a.num_kv_heads;
  p.page_size = a.kv.page_size;
  while ((1 << p.log2p) < p.page_size) ++p.log2p;
  p.max_pages = a.max_pages;
  p.bos = a.bos;
  p.eos = effective_eos(a.eos);
  p.tolerance = a.tolerance;
  p.scale_log2 = a.scale * kLog2e;
  p.stages = a.stages;
  p.l2_prefetch = a.l2_prefetch.p;
  p.l2_prefetch_bytes = a.l2_prefetch.bytes;
  const int32_t g = a.num_q_heads / a.num_kv_heads;
  const KernelFn kernel = scores != nullptr ? kernel_for<true>(a.head_dim, g, a.io_dtype)
                                            : kernel_for<false>(a.head_dim, g, a.io_dtype);
  const size_t smem = static_cast<size_t>(fused_smem_bytes(a.max_pages));
  // Static (merge buffers: up to 34 KiB at G = 8) plus dynamic shared memory exceed the 48 KiB
  // default: opt in.
  VORTEX_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  VORTEX_CUDA_RETURN_IF_ERROR(
      vortex::gpu::launch_kernel(kernel, static_cast<unsigned>(rows), kThreads, smem, stream, p));
  return Status::ok();
}

}  // namespace

Status block_topk_fused(const BlockTopKFusedArgs& args, cudaStream_t stream) {
  return launch_fused(args, nullptr, stream);
}

Status fused_select_attend(const BlockTopKFusedArgs& args, const float* scores,
                           cudaStream_t stream) {
  if (scores == nullptr) return invalid_argument("fused_select_attend: no scores");
  return launch_fused(args, scores, stream);
}

}  // namespace vortex::gpu
