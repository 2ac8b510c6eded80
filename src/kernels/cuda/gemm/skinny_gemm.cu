// Skinny decode GEMM (see skinny_gemm.h). One CTA = 8 warps = 128 output features (16 per warp,
// the mma's M) x one k split; a warp's mma N is 8 rows of x (NT tiles cover n <= 8 NT).
//
// Fragments straight from global memory: lane (g = lane / 4, q = lane % 4) loads 16 bytes (8 k
// values) of weight rows g and g + 8 and of x row g at k offset 8q of every 32-wide k chunk.
// Those 8 values feed two mma k-steps: physical k 8q + {0, 1, 2, 3} are the fragment's logical
// k {2q, 2q + 1, 2q + 8, 2q + 9} of the first step, 8q + {4..7} the same of the second. A and B
// use the same map, so each step sums products of matching k: a permutation of the dot product.
#include <algorithm>

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
constexpr int kTileRows = static_cast<int>(kSkinnyTileRows);
static_assert(kTileRows == kWarps * 16);
constexpr int kMaxSplits = 16;
constexpr int64_t kSmemBytes = 96 * 1024;  // staged x per CTA (two CTAs per SM fit)

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

template <int NT, int U>
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

template <int NT, int U>
__global__ void __launch_bounds__(kThreads)
    skinny_gemm_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                       void* __restrict__ y, bool y_f32, float beta, int n, int m, int k,
                       int k_per_split, int splits, float* __restrict__ partials,
                       int* __restrict__ counters) {
  vortex::gpu::pdl_enter();
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* xs = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [8 NT][x_stride]
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane >> 2, q = lane & 3;
  const int tile = static_cast<int>(blockIdx.x), split = static_cast<int>(blockIdx.y);
  const int row0 = tile * kTileRows + warp * 16;
  // Rows past m are computed from a clamped row and never stored.
  const __nv_bfloat16* w_lo = w + static_cast<size_t>(min(row0 + g, m - 1)) * k + q * 8;
  const __nv_bfloat16* w_hi = w + static_cast<size_t>(min(row0 + g + 8, m - 1)) * k + q * 8;
  const int k_begin = split * k_per_split;
  const int k_end = min(k, k_begin + k_per_split);
  const int stride = x_stride(k_per_split);

  // The first weights are requested before x is staged, so both latencies overlap.
  uint4 a_lo[U], a_hi[U];
  load_group<NT, U>(w_lo, w_hi, k_begin, k_end, a_lo, a_hi);
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
  for (int kc = k_begin; kc < k_end; kc += 32 * U) {
    // Next group in flight while this one is multiplied.
    uint4 n_lo[U], n_hi[U];
    load_group<NT, U>(w_lo, w_hi, kc + 32 * U, k_end, n_lo, n_hi);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (kc + u * 32 < k_end) {
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

  // acc[t] = {(row0 + g, col 2q), (row0 + g, col 2q + 1), (row0 + g + 8, 2q), (row0 + g + 8,
  // 2q + 1)} with col = t * 8 + that: y[col][row].
  if (splits == 1) {
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
#pragma unroll
  for (int t = 0; t < NT; ++t) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int row = row0 + g + (e >= 2 ? 8 : 0), col = t * 8 + 2 * q + (e & 1);
      if (row < m && col < n) part[static_cast<size_t>(col) * m + row] = acc[t][e];
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

SkinnyGemmShape skinny_gemm_shape(int64_t n, int64_t m, int64_t k, int32_t num_sms) {
  SkinnyGemmShape s;
  if (n < 1 || n > kSkinnyMaxRows || m < 1 || k < 32 || k % 32 != 0) return s;
  const int64_t x_rows = staged_rows(n);
  int64_t splits = 1;
  const int64_t tiles = (m + kTileRows - 1) / kTileRows;
  const int64_t target = 2 * static_cast<int64_t>(std::max(num_sms, 1));
  while (tiles * splits < target && k / (splits * 2) >= 128 && splits * 2 <= kMaxSplits) {
    splits *= 2;
  }
  // The staged x slice must fit the shared-memory budget.
  auto per_split = [&](int64_t sp) { return ((k + sp - 1) / sp + 31) / 32 * 32; };
  auto smem = [&](int64_t per) { return x_rows * x_stride(static_cast<int>(per)) * 2; };
  while (smem(per_split(splits)) > kSmemBytes && splits < kMaxSplits) ++splits;
  const int64_t per = per_split(splits);
  if (smem(per) > kSmemBytes) return s;  // k too long for this many rows
  s.tiles = static_cast<int32_t>(tiles);
  s.k_per_split = static_cast<int32_t>(per);
  s.splits = static_cast<int32_t>((k + per - 1) / per);
  return s;
}

size_t skinny_gemm_workspace_bytes(const SkinnyGemmShape& shape, int64_t n, int64_t m) {
  if (shape.splits <= 1) return 0;
  return counter_bytes(shape) + static_cast<size_t>(shape.splits) * static_cast<size_t>(n) *
                                    static_cast<size_t>(m) * sizeof(float);
}

Status skinny_gemm_init_workspace(void* workspace, const SkinnyGemmShape& shape, int64_t n,
                                  int64_t m, cudaStream_t stream) {
  (void)n;
  (void)m;
  if (shape.splits <= 1) return Status::ok();
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
  if (shape.tiles != (m + kTileRows - 1) / kTileRows || shape.splits < 1 ||
      static_cast<int64_t>(shape.splits) * shape.k_per_split < k || shape.k_per_split % 32 != 0 ||
      shape.splits > kMaxSplits || (n + 7) / 8 * 8 * x_stride(shape.k_per_split) * 2 > kSmemBytes) {
    return invalid_argument("skinny_gemm: the shape's cut does not match the product");
  }
  if (shape.splits > 1 && workspace == nullptr)
    return invalid_argument("skinny_gemm: a split shape needs a workspace");
  int* counters = static_cast<int*>(workspace);
  float* partials =
      shape.splits > 1
          ? reinterpret_cast<float*>(static_cast<char*>(workspace) + counter_bytes(shape))
          : nullptr;
  const dim3 grid(static_cast<unsigned>(shape.tiles), static_cast<unsigned>(shape.splits));
  const bool f32 = y_dtype == DType::kF32;
  const int ni = static_cast<int>(n), mi = static_cast<int>(m), ki = static_cast<int>(k);
  auto launch = [&](auto kernel, int nt) -> Status {
    const size_t smem = static_cast<size_t>(8 * nt) * x_stride(shape.k_per_split) * 2;
    if (smem > 48 * 1024) {
      VORTEX_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
          kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmemBytes)));
    }
    VORTEX_CUDA_RETURN_IF_ERROR(
        vortex::gpu::launch_kernel(kernel, grid, kThreads, smem, stream, x, w, y, f32, beta, ni, mi,
                                   ki, shape.k_per_split, shape.splits, partials, counters));
    return Status::ok();
  };
  if (n <= 8) {
    VORTEX_RETURN_IF_ERROR(launch(skinny_gemm_kernel<1, 4>, 1));
  } else if (n <= 16) {
    VORTEX_RETURN_IF_ERROR(launch(skinny_gemm_kernel<2, 4>, 2));
  } else if (n <= 32) {
    VORTEX_RETURN_IF_ERROR(launch(skinny_gemm_kernel<4, 4>, 4));
  } else {
    VORTEX_RETURN_IF_ERROR(launch(skinny_gemm_kernel<8, 2>, 8));
  }
  VORTEX_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::ok();
}

}  // namespace vortex::cuda
