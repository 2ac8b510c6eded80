// The block_topk flow by hand: centroid scores over the planner's worklist (the row's mean query
// in shared memory, 16-byte centroid loads) and the cache flow that writes each completed page's
// centroid (mean key, bf16). Two indexer variants (CentroidScoreVariant): kWholeChunk (default)
// issues the page ids and centroids of a whole 64-page chunk (8 per lane) before it waits for the
// mean query, over a grid of 16 CTAs per SM; kFourInFlight (the earlier kernel) waits for the
// mean query first and streams 4 loads per lane per round over 8 CTAs per SM.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../common/device_utils.cuh"
#include "centroid_score.cuh"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/block_topk_flow.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"

namespace vortex::gpu {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kUnroll = 4;       // kFourInFlight
constexpr int kChunkUnroll = 8;  // kWholeChunk: 4 warps x 2 pages x 8 = 64 pages (D = 128)

struct ScoreParams {
  const void* q = nullptr;                   // [B, H_q, D]
  const __nv_bfloat16* centroids = nullptr;  // [num_pages, H_kv, 1, D]
  PageTableView pt;
  WorkListView work;
  float* scores = nullptr;  // row page space
  int32_t num_q_heads = 0, num_kv_heads = 0;
};

template <int D, typename QT>
__global__ void __launch_bounds__(kThreads) centroid_score_kernel(const ScoreParams p) {
  vortex::gpu::pdl_enter();
  constexpr int kLpt = D / 8, kTs = 32 / kLpt;
  __shared__ __align__(16) float qbar[D];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int chunk = lane % kLpt, tsub = lane / kLpt;
  const int32_t g = p.num_q_heads / p.num_kv_heads;
  const int32_t items = min(*p.work.count, p.work.capacity);
  for (int32_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int2 it = p.work.items[item];
    const int32_t row = it.x, first = it.y;
    const int32_t b = row / p.num_kv_heads, h = row - b * p.num_kv_heads;
    const int32_t pb = p.pt.page_indptr[b], n = p.pt.page_indptr[b + 1] - pb;
    const int32_t cand_end = n - p.work.eos;
    const int32_t last = min(first + p.work.chunk_pages, cand_end);
    __syncthreads();  // the previous item is done with qbar
    const QT* q = static_cast<const QT*>(p.q) +
                  (static_cast<int64_t>(b) * p.num_q_heads + static_cast<int64_t>(h) * g) * D;
    for (int d = threadIdx.x; d < D; d += kThreads) qbar[d] = centroid::mean_query(q, d, g, D);
    __syncthreads();
    float qv[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) qv[e] = qbar[chunk * 8 + e];
    const int32_t* pages = p.pt.page_indices + pb;
    float* out = p.scores + static_cast<int64_t>(pb) * p.num_kv_heads + static_cast<int64_t>(h) * n;
    constexpr int kStride = kWarps * kTs;
    for (int32_t base = first + warp * kTs; base < last; base += kStride * kUnroll) {
      uint4 raw[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int32_t j = base + u * kStride + tsub;
        raw[u] = make_uint4(0u, 0u, 0u, 0u);
        if (j < last) {
          const int64_t page = __ldg(pages + j);
          raw[u] = __ldg(reinterpret_cast<const uint4*>(
              p.centroids + (page * p.num_kv_heads + h) * D + chunk * 8));
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int32_t j = base + u * kStride + tsub;
        const float dot = centroid::dot<kLpt>(qv, raw[u]);
        if (j < last && chunk == 0) out[j] = dot;
      }
    }
  }
}

/// kWholeChunk: per item, the page ids and centroids of the first kChunkUnroll rounds are in
/// flight before the mean query is formed; further rounds (chunks over 64 pages) follow.
template <int D, typename QT>
__global__ void __launch_bounds__(kThreads) centroid_score_chunk_kernel(const ScoreParams p) {
  vortex::gpu::pdl_enter();
  constexpr int kLpt = D / 8, kTs = 32 / kLpt, kU = kChunkUnroll;
  constexpr int kStride = kWarps * kTs;
  __shared__ __align__(16) float qbar[D];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int chunk = lane % kLpt, tsub = lane / kLpt;
  const int32_t g = p.num_q_heads / p.num_kv_heads;
  const int32_t items = min(*p.work.count, p.work.capacity);
  for (int32_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int2 it = p.work.items[item];
    const int32_t row = it.x, first = it.y;
    const int32_t b = row / p.num_kv_heads, h = row - b * p.num_kv_heads;
    const int32_t pb = p.pt.page_indptr[b], n = p.pt.page_indptr[b + 1] - pb;
    const int32_t last = min(first + p.work.chunk_pages, n - p.work.eos);
    const int32_t* pages = p.pt.page_indices + pb;
    const __nv_bfloat16* cent = p.centroids + static_cast<int64_t>(h) * D + chunk * 8;
    float* out = p.scores + static_cast<int64_t>(pb) * p.num_kv_heads + static_cast<int64_t>(h) * n;
    auto load_round = [&](int32_t base, uint4(&raw)[kU]) {
      int64_t page[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int32_t j = base + u * kStride + tsub;
        page[u] = j < last ? __ldg(pages + j) : -1;
      }
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        raw[u] = page[u] >= 0
                     ? __ldg(reinterpret_cast<const uint4*>(cent + page[u] * p.num_kv_heads * D))
                     : make_uint4(0u, 0u, 0u, 0u);
      }
    };
    const int32_t base0 = first + warp * kTs;
    uint4 raw[kU];
    load_round(base0, raw);
    __syncthreads();  // the previous item is done with qbar
    const QT* q = static_cast<const QT*>(p.q) +
                  (static_cast<int64_t>(b) * p.num_q_heads + static_cast<int64_t>(h) * g) * D;
    for (int d = threadIdx.x; d < D; d += kThreads) qbar[d] = centroid::mean_query(q, d, g, D);
    __syncthreads();
    float qv[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) qv[e] = qbar[chunk * 8 + e];
    for (int32_t base = base0;;) {
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int32_t j = base + u * kStride + tsub;
        const float dot = centroid::dot<kLpt>(qv, raw[u]);
        if (j < last && chunk == 0) out[j] = dot;
      }
      base += kStride * kU;
      if (base >= last) break;
      load_round(base, raw);
    }
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    centroid_cache_kernel(const __nv_bfloat16* k, __nv_bfloat16* cent, const int32_t* pages,
                          const int32_t* count_dev, int32_t max_pages, int32_t num_kv_heads,
                          int32_t log2p) {
  vortex::gpu::pdl_enter();
  constexpr int kLpt = D / 8, kTs = 32 / kLpt;
  const int lane = threadIdx.x % 32;
  const int chunk = lane % kLpt, tsub = lane / kLpt;
  const int32_t count = count_dev != nullptr ? min(*count_dev, max_pages) : max_pages;
  const int64_t items = static_cast<int64_t>(count) * num_kv_heads;
  const int32_t tokens = 1 << log2p;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; item < items;
       item += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int64_t page = pages[item / num_kv_heads];
    const int64_t h = item % num_kv_heads;
    const __nv_bfloat16* tile = k + ((page * num_kv_heads + h) << log2p) * D + chunk * 8;
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    for (int32_t t = tsub; t < tokens; t += kTs) {
      float f[8];
      detail::load8(tile + static_cast<int64_t>(t) * D, f);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] += f[e];
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      acc[e] = detail::across_groups_sum<kLpt>(acc[e]) / static_cast<float>(tokens);
    }
    if (tsub == 0) {
      *reinterpret_cast<uint4*>(cent + (page * num_kv_heads + h) * D + chunk * 8) =
          detail::pack_bf16x8(acc);
    }
  }
}

int sm_count() {
  static const int count = [] {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      return 132;
    }
    return n;
  }();
  return count;
}

int log2_exact(int32_t x) {
  int l = 0;
  while ((1 << l) < x) ++l;
  return l;
}

}  // namespace

CentroidScoreVariant default_centroid_score_variant() {
  static const CentroidScoreVariant v = [] {
    const char* env = std::getenv("VORTEX_INDEXER");
    if (env != nullptr && std::strcmp(env, "old") == 0) return CentroidScoreVariant::kFourInFlight;
    return CentroidScoreVariant::kWholeChunk;
  }();
  return v;
}

Status centroid_scores(const void* q, DType q_dtype, int32_t num_q_heads, int32_t num_kv_heads,
                       int32_t head_dim, const AuxFieldView& centroids, const PageTableView& pt,
                       const WorkListView& work, float* scores, cudaStream_t stream,
                       CentroidScoreVariant variant) {
  if (head_dim != 64 && head_dim != 128) {
    return unsupported("centroid scores: head_dim " + std::to_string(head_dim) + " (64 or 128)");
  }
  if (num_kv_heads <= 0 || num_q_heads % num_kv_heads != 0) {
    return invalid_argument("centroid scores: num_q_heads must be a multiple of num_kv_heads");
  }
  if (centroids.rows != 1 || centroids.cols != head_dim) {
    return invalid_argument("centroid scores: centroid field must be (1, head_dim)");
  }
  if (q_dtype != DType::kF32 && q_dtype != DType::kBF16) {
    return unsupported("centroid scores: q dtype must be f32 or bf16");
  }
  if (work.capacity <= 0 || pt.batch_size == 0) return Status::ok();
  ScoreParams p;
  p.q = q;
  p.centroids = static_cast<const __nv_bfloat16*>(centroids.data);
  p.pt = pt;
  p.work = work;
  p.scores = scores;
  p.num_q_heads = num_q_heads;
  p.num_kv_heads = num_kv_heads;
  const bool f32 = q_dtype == DType::kF32;
  if (variant == CentroidScoreVariant::kDefault) variant = default_centroid_score_variant();
  if (variant == CentroidScoreVariant::kWholeChunk) {
    const int grid = std::min(work.capacity, sm_count() * 16);
    if (head_dim == 128) {
      if (f32) {
        (void)vortex::gpu::launch_kernel(centroid_score_chunk_kernel<128, float>, grid, kThreads, 0,
                                         stream, p);
      } else {
        (void)vortex::gpu::launch_kernel(centroid_score_chunk_kernel<128, __nv_bfloat16>, grid,
                                         kThreads, 0, stream, p);
      }
    } else {
      if (f32) {
        (void)vortex::gpu::launch_kernel(centroid_score_chunk_kernel<64, float>, grid, kThreads, 0,
                                         stream, p);
      } else {
        (void)vortex::gpu::launch_kernel(centroid_score_chunk_kernel<64, __nv_bfloat16>, grid,
                                         kThreads, 0, stream, p);
      }
    }
    VORTEX_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return Status::ok();
  }
  const int grid = std::min(work.capacity, sm_count() * 8);
  if (head_dim == 128) {
    if (f32) {
      (void)vortex::gpu::launch_kernel(centroid_score_kernel<128, float>, grid, kThreads, 0, stream,
                                       p);
    } else {
      (void)vortex::gpu::launch_kernel(centroid_score_kernel<128, __nv_bfloat16>, grid, kThreads, 0,
                                       stream, p);
    }
  } else {
    if (f32) {
      (void)vortex::gpu::launch_kernel(centroid_score_kernel<64, float>, grid, kThreads, 0, stream,
                                       p);
    } else {
      (void)vortex::gpu::launch_kernel(centroid_score_kernel<64, __nv_bfloat16>, grid, kThreads, 0,
                                       stream, p);
    }
  }
  VORTEX_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::ok();
}

Status compute_centroids(const KVLayerView& kv, const AuxFieldView& centroids, const int32_t* pages,
                         const int32_t* num_pages_dev, int32_t max_pages, cudaStream_t stream) {
  if (kv.head_dim != 64 && kv.head_dim != 128) {
    return unsupported("centroid cache flow: head_dim " + std::to_string(kv.head_dim));
  }
  if (centroids.rows != 1 || centroids.cols != kv.head_dim) {
    return invalid_argument("centroid cache flow: centroid field must be (1, head_dim)");
  }
  if (kv.page_size <= 0 || (kv.page_size & (kv.page_size - 1)) != 0) {
    return invalid_argument("centroid cache flow: page size must be a power of two");
  }
  if (max_pages <= 0) return Status::ok();
  const int64_t items = static_cast<int64_t>(max_pages) * kv.num_kv_heads;
  const int grid =
      static_cast<int>(std::min<int64_t>((items + kWarps - 1) / kWarps, sm_count() * 16));
  const auto* k = static_cast<const __nv_bfloat16*>(kv.k);
  auto* cent = static_cast<__nv_bfloat16*>(centroids.data);
  const int log2p = log2_exact(kv.page_size);
  if (kv.head_dim == 128) {
    (void)vortex::gpu::launch_kernel(centroid_cache_kernel<128>, grid, kThreads, 0, stream, k, cent,
                                     pages, num_pages_dev, max_pages, kv.num_kv_heads, log2p);
  } else {
    (void)vortex::gpu::launch_kernel(centroid_cache_kernel<64>, grid, kThreads, 0, stream, k, cent,
                                     pages, num_pages_dev, max_pages, kv.num_kv_heads, log2p);
  }
  VORTEX_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::ok();
}

}  // namespace vortex::gpu
