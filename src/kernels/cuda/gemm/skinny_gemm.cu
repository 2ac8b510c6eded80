// Skinny decode GEMM (see skinny_gemm.h). One CTA = 8 warps = RW = 8 / KW row groups of 16 output
// features (the mma's M) x KW slices of one k split; a warp's mma N is 8 rows of x (NT tiles cover
// n <= 8 NT). The KW slices of a row group are summed through shared memory, in slice order.
//
// Fragments straight from global memory: lane (g = lane / 4, q = lane % 4) loads 16 bytes (8 k
// values) of weight rows g and g + 8 and of x row g at k offset 8q of every 32-wide k chunk.
// Those 8 values feed two mma k-steps: physical k 8q + {0, 1, 2, 3} are the fragment's logical
// k {2q, 2q + 1, 2q + 8, 2q + 9} of the first step, 8q + {4..7} the same of the second. A and B
// use the same map, so each step sums products of matching k: a permutation of the dot product.
//
// Split-K is reduced one of two ways. Global (`cluster` off): each split writes fp32 partials and
// the last CTA of a tile (atomic counter) sums them in split order. Cluster (`cluster` on, 2..8
// splits): the splits of a tile are one thread-block cluster; each CTA leaves its partial tile in
// its own shared memory and, after a cluster barrier, sums a 1/splits share of the tile over the
// CTAs' shared memory (DSMEM) in split order -- no partials round trip through L2, no fence, no
// counter, and the work of the sum is spread over the cluster instead of one CTA.
#include <cooperative_groups.h>

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "../common/device_utils.cuh"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"
#include "vortex/kernels/cuda/skinny_gemm.h"

namespace vortex::cuda {
namespace {

namespace gd = vortex::gpu::detail;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
static_assert(kSkinnyTileRows == kWarps * 16);
constexpr int kMaxSplits = 16;
constexpr int kMaxClusterSplits = 8;       // the portable cluster size
constexpr int64_t kSmemBytes = 96 * 1024;  // staged x + k-group sums per CTA (two CTAs per SM fit)

__host__ __device__ constexpr int tile_rows(int k_groups) { return 16 * (kWarps / k_groups); }

/// Shared-memory bytes of the k-group reduction: the accumulators of the warps of slices 1..KW-1.
__host__ __device__ constexpr int reduce_bytes(int k_groups, int nt) {
  return (k_groups - 1) * (kWarps / k_groups) * 32 * nt * 4 * static_cast<int>(sizeof(float));
}

/// Weights are read once per step: stream them past L1 (x stays cached there for the other warps).
__device__ __forceinline__ uint4 load_weights(const __nv_bfloat16* p) {
  return __ldcs(reinterpret_cast<const uint4*>(p));
}

__device__ __forceinline__ void store_out(void* y, bool y_f32, float beta, size_t idx, float v) {
  if (y_f32) {
    float* p = static_cast<float*>(y) + idx;
    *p = beta == 0.0f ? v : v + beta * *p;
  } else {
    static_cast<__nv_bfloat16*>(y)[idx] = __float2bfloat16_rn(v);
  }
}

/// Shared-memory row stride (elements) of the staged x slice: k_per_split plus padding that puts
/// consecutive rows 64 bytes apart modulo 128, so the 16-byte fragment loads of a quarter warp
/// (rows g, g + 1 x four 16-byte pieces) hit 32 distinct banks.
__host__ __device__ inline int x_stride(int k_per_split) {
  const int rem = (2 * k_per_split) % 128;
  return k_per_split + ((64 - rem + 128) % 128) / 2;
}

/// Rows of x a CTA stages (and multiplies): 8 NT for the instantiation that serves n rows.
inline int64_t staged_rows(int64_t n) { return n <= 8 ? 8 : n <= 16 ? 16 : n <= 32 ? 32 : 64; }

/// Byte offset of the cluster reduction's partial tile ([8 NT columns][tile rows] fp32): after the
/// staged x slice and the k-group sums.
__host__ __device__ inline int partial_offset(int nt, int k_groups, int k_per_split) {
  return 8 * nt * x_stride(k_per_split) * 2 + reduce_bytes(k_groups, nt);
}

template <int U>
__device__ __forceinline__ void load_group(const __nv_bfloat16* w_lo, const __nv_bfloat16* w_hi,
                                           int kc, int k_end, uint4 (&lo)[U], uint4 (&hi)[U]) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    if (kc + u * 32 < k_end) {  // warp-uniform
      lo[u] = load_weights(w_lo + kc + u * 32);
      hi[u] = load_weights(w_hi + kc + u * 32);
    }
  }
}

template <int NT, int U, int KW>
__global__ void __launch_bounds__(kThreads)
    skinny_gemm_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                       void* __restrict__ y, bool y_f32, float beta, int n, int m, int k,
                       int k_per_split, int splits, bool cluster_reduce,
                       float* __restrict__ partials, int* __restrict__ counters) {
  constexpr int RW = kWarps / KW;
  constexpr int kTileRows = tile_rows(KW);
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* xs = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [8 NT][x_stride]
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane >> 2, q = lane & 3;
  const int rg = warp % RW, kg = warp / RW;  // row group, k slice
  const int tile = static_cast<int>(blockIdx.x), split = static_cast<int>(blockIdx.y);
  const int row0 = tile * kTileRows + rg * 16;
  // Rows past m are computed from a clamped row and never stored.
  const __nv_bfloat16* w_lo = w + static_cast<size_t>(min(row0 + g, m - 1)) * k + q * 8;
  const __nv_bfloat16* w_hi = w + static_cast<size_t>(min(row0 + g + 8, m - 1)) * k + q * 8;
  const int k_begin = split * k_per_split;
  const int k_end = min(k, k_begin + k_per_split);
  const int slice = k_per_split / KW;  // a multiple of 32 (the host's cut)
  const int my_begin = k_begin + kg * slice;
  const int my_end = min(k_end, my_begin + slice);
  const int stride = x_stride(k_per_split);

  // Weights do not depend on the preceding kernel: the first group is requested before waiting
  // for it (with PDL this overlaps the predecessor's tail), then x is staged.
  vortex::gpu::pdl_launch_dependents();
  uint4 a_lo[U], a_hi[U];
  load_group<U>(w_lo, w_hi, my_begin, my_end, a_lo, a_hi);
  vortex::gpu::pdl_wait();
  {
    const int pieces = (k_end - k_begin) / 8;  // 16-byte pieces per row
    for (int i = static_cast<int>(threadIdx.x); i < NT * 8 * pieces; i += kThreads) {
      const int r = i / pieces, c = (i % pieces) * 8;
      const bool ok = r < n;
      gd::cp_async_16(xs + r * stride + c, x + static_cast<size_t>(ok ? r : 0) * k + k_begin + c,
                      ok ? 16 : 0);
    }
    gd::cp_async_commit();
    gd::cp_async_wait<0>();
    __syncthreads();
  }
  const __nv_bfloat16* xw = xs + g * stride + q * 8;

  float acc[NT][4];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.0f;
  for (int kc = my_begin; kc < my_end; kc += 32 * U) {
    // Next group in flight while this one is multiplied.
    uint4 n_lo[U], n_hi[U];
    load_group<U>(w_lo, w_hi, kc + 32 * U, my_end, n_lo, n_hi);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (kc + u * 32 < my_end) {
        const uint32_t s0[4] = {a_lo[u].x, a_hi[u].x, a_lo[u].y, a_hi[u].y};
        const uint32_t s1[4] = {a_lo[u].z, a_hi[u].z, a_lo[u].w, a_hi[u].w};
        const int off = kc - k_begin + u * 32;
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          const uint4 b = *reinterpret_cast<const uint4*>(xw + t * 8 * stride + off);
          gd::mma_bf16(acc[t], s0, b.x, b.y);
          gd::mma_bf16(acc[t], s1, b.z, b.w);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) a_lo[u] = n_lo[u], a_hi[u] = n_hi[u];
  }

  if constexpr (KW > 1) {
    // Slices 1..KW-1 hand their sums to slice 0's warp of the same row group (lane-major, so
    // the stores and loads of a warp are conflict-free), which adds them in slice order.
    float* red = reinterpret_cast<float*>(smem_raw + static_cast<size_t>(8 * NT) * stride * 2);
    if (kg > 0) {
      float* mine = red + static_cast<size_t>((kg - 1) * RW + rg) * (NT * 4 * 32);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
#pragma unroll
        for (int e = 0; e < 4; ++e) mine[(t * 4 + e) * 32 + lane] = acc[t][e];
      }
    }
    __syncthreads();
    if (kg == 0) {
#pragma unroll
      for (int j = 1; j < KW; ++j) {
        const float* theirs = red + static_cast<size_t>((j - 1) * RW + rg) * (NT * 4 * 32);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[t][e] += theirs[(t * 4 + e) * 32 + lane];
        }
      }
    }
  }
  const bool writer = kg == 0;  // the warps that hold the CTA's sums

  if (cluster_reduce) {
    // Every thread of every CTA of the cluster takes part (cluster barriers): no early return.
    float* part = reinterpret_cast<float*>(smem_raw + partial_offset(NT, KW, k_per_split));
    if (writer) {
#pragma unroll
      for (int t = 0; t < NT; ++t) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = rg * 16 + g + (e >= 2 ? 8 : 0), col = t * 8 + 2 * q + (e & 1);
          part[col * kTileRows + r] = acc[t][e];
        }
      }
    }
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();  // every split's partial tile is written and visible to the cluster
    const int m0 = tile * kTileRows;
    const int quads = n * kTileRows / 4;  // kTileRows is a multiple of 4
    const int q_begin = static_cast<int>(static_cast<int64_t>(quads) * split / splits);
    const int q_end = static_cast<int>(static_cast<int64_t>(quads) * (split + 1) / splits);
    const float* remote[kMaxClusterSplits];  // each split's partial tile, mapped once
#pragma unroll
    for (int sp = 0; sp < kMaxClusterSplits; ++sp) {
      remote[sp] = sp < splits ? cluster.map_shared_rank(part, static_cast<unsigned>(sp)) : part;
    }
    for (int f = q_begin + static_cast<int>(threadIdx.x); f < q_end; f += kThreads) {
      float4 v[kMaxClusterSplits];
#pragma unroll
      for (int sp = 0; sp < kMaxClusterSplits; ++sp) {
        if (sp < splits) v[sp] = *reinterpret_cast<const float4*>(remote[sp] + f * 4);
      }
      float4 sum = v[0];
#pragma unroll
      for (int sp = 1; sp < kMaxClusterSplits; ++sp) {
        if (sp < splits) sum.x += v[sp].x, sum.y += v[sp].y, sum.z += v[sp].z, sum.w += v[sp].w;
      }
      const int col = (f * 4) / kTileRows, r = (f * 4) % kTileRows;
      const float out[4] = {sum.x, sum.y, sum.z, sum.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (m0 + r + i < m) {
          store_out(y, y_f32, beta, static_cast<size_t>(col) * m + m0 + r + i, out[i]);
        }
      }
    }
    cluster.sync();  // no CTA leaves while another still reads its shared memory
    return;
  }

  // acc[t] = {(row0 + g, col 2q), (row0 + g, col 2q + 1), (row0 + g + 8, 2q), (row0 + g + 8,
  // 2q + 1)} with col = t * 8 + that: y[col][row].
  if (splits == 1) {
    if (!writer) return;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = row0 + g + (e >= 2 ? 8 : 0), col = t * 8 + 2 * q + (e & 1);
        if (row < m && col < n)
          store_out(y, y_f32, beta, static_cast<size_t>(col) * m + row, acc[t][e]);
      }
    }
    return;
  }
  float* part = partials + static_cast<size_t>(split) * n * m;
  if (writer) {
#pragma unroll
    for (int t = 0; t < NT; ++t) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = row0 + g + (e >= 2 ? 8 : 0), col = t * 8 + 2 * q + (e & 1);
        if (row < m && col < n) part[static_cast<size_t>(col) * m + row] = acc[t][e];
      }
    }
  }
  // The last CTA of this tile to finish sums every split's partials, in split order.
  __threadfence();
  __syncthreads();
  __shared__ int is_last;
  if (threadIdx.x == 0) is_last = atomicAdd(&counters[tile], 1) == splits - 1;
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  const int m0 = tile * kTileRows;
  const int rows = min(kTileRows, m - m0);
  // Every split's value of an output is loaded before any is added (independent loads in flight),
  // then summed in split order. Four outputs per thread when rows of y are 16-byte aligned.
  if ((m & 3) == 0) {
    const int quads = rows / 4;
    for (int idx = static_cast<int>(threadIdx.x); idx < n * quads; idx += kThreads) {
      const int col = idx / quads, r = (idx % quads) * 4;
      const size_t off = static_cast<size_t>(col) * m + m0 + r;
      float4 v[kMaxSplits];
#pragma unroll
      for (int sp = 0; sp < kMaxSplits; ++sp) {
        if (sp < splits) {
          v[sp] = __ldcg(
              reinterpret_cast<const float4*>(partials + static_cast<size_t>(sp) * n * m + off));
        }
      }
      float4 sum = v[0];
#pragma unroll
      for (int sp = 1; sp < kMaxSplits; ++sp) {
        if (sp < splits) {
          sum.x += v[sp].x, sum.y += v[sp].y, sum.z += v[sp].z, sum.w += v[sp].w;
        }
      }
      store_out(y, y_f32, beta, off, sum.x);
      store_out(y, y_f32, beta, off + 1, sum.y);
      store_out(y, y_f32, beta, off + 2, sum.z);
      store_out(y, y_f32, beta, off + 3, sum.w);
    }
  } else {
    for (int idx = static_cast<int>(threadIdx.x); idx < n * kTileRows; idx += kThreads) {
      const int col = idx / kTileRows, r = idx % kTileRows;
      if (r >= rows) continue;
      const size_t off = static_cast<size_t>(col) * m + m0 + r;
      float v[kMaxSplits];
#pragma unroll
      for (int sp = 0; sp < kMaxSplits; ++sp) {
        if (sp < splits) v[sp] = __ldcg(partials + static_cast<size_t>(sp) * n * m + off);
      }
      float sum = v[0];
#pragma unroll
      for (int sp = 1; sp < kMaxSplits; ++sp) {
        if (sp < splits) sum += v[sp];
      }
      store_out(y, y_f32, beta, off, sum);
    }
  }
  if (threadIdx.x == 0) counters[tile] = 0;  // ready for the next product (and graph replay)
}

size_t counter_bytes(const SkinnyGemmShape& shape) {
  return (static_cast<size_t>(shape.tiles) * sizeof(int) + 255) / 256 * 256;
}

}  // namespace

bool skinny_gemm_supported(const void* x, const void* w, DType y_dtype, int64_t n, int64_t m,
                           int64_t k) {
  return n >= 1 && n <= kSkinnyMaxRows && m >= 1 && m <= (int64_t{1} << 30) && k >= 32 &&
         k % 32 == 0 && k <= (int64_t{1} << 30) && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 16 == 0 &&
         (y_dtype == DType::kBF16 || y_dtype == DType::kF32) &&
         skinny_gemm_shape(n, m, k, 1).tiles > 0;
}

/// Shared memory of a CTA of the cut: the staged x slice plus the k-group reduction (plus the
/// partial tile the cluster reduction reads).
int64_t cta_smem_bytes(int64_t n, int32_t k_groups, int64_t k_per_split, bool cluster = false) {
  const int64_t x_rows = staged_rows(n);
  return partial_offset(static_cast<int>(x_rows / 8), k_groups, static_cast<int>(k_per_split)) +
         (cluster ? x_rows * tile_rows(k_groups) * static_cast<int64_t>(sizeof(float)) : 0);
}

SkinnyGemmShape skinny_gemm_shape(int64_t n, int64_t m, int64_t k, int32_t num_sms,
                                  int32_t k_groups, int32_t ctas_per_sm) {
  SkinnyGemmShape s;
  if (n < 1 || n > kSkinnyMaxRows || m < 1 || k < 32 || k % 32 != 0) return s;
  if (k_groups != 1 && k_groups != 2 && k_groups != 4) return s;
  const int64_t granule = 32 * int64_t{k_groups};  // a split is cut into k_groups 32-wide slices
  if (k < granule) return s;
  int64_t splits = 1;
  const int64_t tiles = (m + tile_rows(k_groups) - 1) / tile_rows(k_groups);
  const int64_t target = std::max<int64_t>(ctas_per_sm, 1) * std::max<int32_t>(num_sms, 1);
  const int64_t min_width = std::max<int64_t>(128, 2 * granule);
  while (tiles * splits < target && k / (splits * 2) >= min_width && splits * 2 <= kMaxSplits) {
    splits *= 2;
  }
  // The staged x slice (and the k-group sums) must fit the shared-memory budget.
  auto per_split = [&](int64_t sp) {
    return ((k + sp - 1) / sp + granule - 1) / granule * granule;
  };
  while (cta_smem_bytes(n, k_groups, per_split(splits)) > kSmemBytes && splits < kMaxSplits) {
    ++splits;
  }
  const int64_t per = per_split(splits);
  if (cta_smem_bytes(n, k_groups, per) > kSmemBytes) return s;  // k too long for this many rows
  s.tiles = static_cast<int32_t>(tiles);
  s.k_per_split = static_cast<int32_t>(per);
  s.splits = static_cast<int32_t>((k + per - 1) / per);
  s.k_groups = k_groups;
  return s;
}

std::vector<SkinnyGemmShape> skinny_gemm_shapes(int64_t n, int64_t m, int64_t k, int32_t num_sms) {
  std::vector<SkinnyGemmShape> out;
  for (int32_t ctas_per_sm : {2, 1}) {
    for (int32_t k_groups : {1, 2, 4}) {
      const SkinnyGemmShape s = skinny_gemm_shape(n, m, k, num_sms, k_groups, ctas_per_sm);
      if (s.tiles == 0) continue;
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    }
  }
  if (out.empty()) return out;  // the kernel cannot run the product
  // Cluster-reduced cuts: every split count 2..8 per k_groups whose CTAs fill between half of the
  // SMs and two waves of two CTAs per SM (fewer starve the memory system, more queue behind a
  // wave); the timing picks among them.
  const int64_t sms = std::max<int32_t>(num_sms, 1);
  for (int32_t k_groups : {1, 2, 4}) {
    const int64_t granule = 32 * int64_t{k_groups};
    if (k < 2 * granule) continue;
    const int64_t tiles = (m + tile_rows(k_groups) - 1) / tile_rows(k_groups);
    for (int64_t want = 2; want <= kMaxClusterSplits; ++want) {
      const int64_t per = ((k + want - 1) / want + granule - 1) / granule * granule;
      const int64_t splits = (k + per - 1) / per;
      const int64_t ctas = tiles * splits;
      if (splits < 2 || ctas * 2 < sms || ctas > 4 * sms ||
          cta_smem_bytes(n, k_groups, per, true) > kSmemBytes) {
        continue;
      }
      SkinnyGemmShape s;
      s.tiles = static_cast<int32_t>(tiles);
      s.splits = static_cast<int32_t>(splits);
      s.k_per_split = static_cast<int32_t>(per);
      s.k_groups = k_groups;
      s.cluster = true;
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    }
  }
  return out;
}

std::string describe(const SkinnyGemmShape& shape) {
  return "k_groups=" + std::to_string(shape.k_groups) + " splits=" + std::to_string(shape.splits) +
         " tiles=" + std::to_string(shape.tiles) +
         " k_per_split=" + std::to_string(shape.k_per_split) + (shape.cluster ? " cluster" : "");
}

size_t skinny_gemm_workspace_bytes(const SkinnyGemmShape& shape, int64_t n, int64_t m) {
  if (shape.splits <= 1 || shape.cluster) return 0;
  return counter_bytes(shape) + static_cast<size_t>(shape.splits) * static_cast<size_t>(n) *
                                    static_cast<size_t>(m) * sizeof(float);
}

Status skinny_gemm_init_workspace(void* workspace, const SkinnyGemmShape& shape, int64_t n,
                                  int64_t m, cudaStream_t stream) {
  (void)n;
  (void)m;
  if (shape.splits <= 1 || shape.cluster) return Status::ok();
  if (workspace == nullptr) return invalid_argument("skinny_gemm: a split shape needs a workspace");
  VORTEX_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(workspace, 0, counter_bytes(shape), stream));
  return Status::ok();
}

Status skinny_gemm(const __nv_bfloat16* x, const __nv_bfloat16* w, void* y, DType y_dtype,
                   int64_t n, int64_t m, int64_t k, float beta, const SkinnyGemmShape& shape,
                   void* workspace, cudaStream_t stream) {
  if (!skinny_gemm_supported(x, w, y_dtype, n, m, k)) {
    return invalid_argument("skinny_gemm: unsupported shape n=" + std::to_string(n) +
                            " m=" + std::to_string(m) + " k=" + std::to_string(k) +
                            " (n <= 64, k % 32 == 0, 16-byte aligned operands)");
  }
  if (y_dtype == DType::kBF16 && beta != 0.0f)
    return invalid_argument("skinny_gemm: beta must be 0 for bf16 output");
  const int kw = shape.k_groups;
  if ((kw != 1 && kw != 2 && kw != 4) || shape.tiles != (m + tile_rows(kw) - 1) / tile_rows(kw) ||
      shape.splits < 1 || static_cast<int64_t>(shape.splits) * shape.k_per_split < k ||
      shape.k_per_split <= 0 || shape.k_per_split % (32 * kw) != 0 || shape.splits > kMaxSplits ||
      (shape.cluster && (shape.splits < 2 || shape.splits > kMaxClusterSplits)) ||
      cta_smem_bytes(n, kw, shape.k_per_split, shape.cluster) > kSmemBytes) {
    return invalid_argument("skinny_gemm: the shape's cut does not match the product");
  }
  const bool cluster = shape.cluster;
  if (shape.splits > 1 && !cluster && workspace == nullptr)
    return invalid_argument("skinny_gemm: a split shape needs a workspace");
  int* counters = static_cast<int*>(workspace);
  float* partials =
      shape.splits > 1 && !cluster
          ? reinterpret_cast<float*>(static_cast<char*>(workspace) + counter_bytes(shape))
          : nullptr;
  const dim3 grid(static_cast<unsigned>(shape.tiles), static_cast<unsigned>(shape.splits));
  const bool f32 = y_dtype == DType::kF32;
  const int ni = static_cast<int>(n), mi = static_cast<int>(m), ki = static_cast<int>(k);
  const size_t smem = static_cast<size_t>(cta_smem_bytes(n, kw, shape.k_per_split, cluster));
  auto launch = [&](auto kernel) -> Status {
    if (smem > 48 * 1024) {
      VORTEX_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
          kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmemBytes)));
    }
    // PDL (when enabled) plus, for a cluster-reduced cut, one cluster per tile's splits.
    cudaLaunchAttribute attrs[2];
    cudaLaunchConfig_t config =
        vortex::gpu::launch_config(grid, dim3(kThreads), smem, stream, &attrs[0]);
    if (cluster) {
      cudaLaunchAttribute& c = attrs[config.numAttrs];
      c.id = cudaLaunchAttributeClusterDimension;
      c.val.clusterDim.x = 1;
      c.val.clusterDim.y = static_cast<unsigned>(shape.splits);
      c.val.clusterDim.z = 1;
      config.attrs = attrs;
      ++config.numAttrs;
    }
    VORTEX_CUDA_RETURN_IF_ERROR(cudaLaunchKernelEx(&config, kernel, x, w, y, f32, beta, ni, mi, ki,
                                                   shape.k_per_split, shape.splits, cluster,
                                                   partials, counters));
    return Status::ok();
  };
  // NT x 8 rows of x per instantiation, U 32-wide k chunks per load group, KW k slices.
  auto by_rows = [&](auto kw_tag) -> Status {
    constexpr int KW = decltype(kw_tag)::value;
    if (n <= 8) return launch(skinny_gemm_kernel<1, 4, KW>);
    if (n <= 16) return launch(skinny_gemm_kernel<2, 4, KW>);
    if (n <= 32) return launch(skinny_gemm_kernel<4, 4, KW>);
    return launch(skinny_gemm_kernel<8, 2, KW>);
  };
  if (kw == 1) {
    VORTEX_RETURN_IF_ERROR(by_rows(std::integral_constant<int, 1>{}));
  } else if (kw == 2) {
    VORTEX_RETURN_IF_ERROR(by_rows(std::integral_constant<int, 2>{}));
  } else {
    VORTEX_RETURN_IF_ERROR(by_rows(std::integral_constant<int, 4>{}));
  }
  VORTEX_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::ok();
}

}  // namespace vortex::cuda
