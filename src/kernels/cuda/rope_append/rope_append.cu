// cuda::rope_append: one warp per (token, head slot) over the q, k and v heads of the QKV output.
// Lane l holds the V = D/32 contiguous channels [l·V, (l+1)·V) in fp32 registers; the RoPE partner
// of a channel is in the same lane (adjacent pairs, V >= 2), the neighbouring lane (adjacent pairs,
// V == 1) or lane l ^ 16 (half split, since D/2 = 16·V).
#include <cuda_bf16.h>

#include <vector>

#include "vortex/core/check.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cpu/ops.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"
#include "vortex/kernels/cuda/rope_append.h"

namespace vortex::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxHalf = 128;  // D/2 for D = 256

struct InvFreq {
  float v[kMaxHalf];
};

__global__ void rope_table_kernel(InvFreq inv_freq, int32_t half, int32_t max_positions,
                                  float2* __restrict__ table) {
  vortex::gpu::pdl_enter();
  const int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (idx >= int64_t{max_positions} * half) return;
  const int32_t pos = static_cast<int32_t>(idx / half);
  const int32_t i = static_cast<int32_t>(idx % half);
  const float angle = __fmul_rn(static_cast<float>(pos), inv_freq.v[i]);  // fp32, no FMA: as CPU
  const double a = static_cast<double>(angle);
  table[idx] = make_float2(static_cast<float>(cos(a)), static_cast<float>(sin(a)));
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int V>
__device__ __forceinline__ void load_bf16(const __nv_bfloat16* src, float (&x)[V]) {
  if constexpr (V % 2 == 0) {
#pragma unroll
    for (int j = 0; j < V; j += 2) {
      const float2 f = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(src)[j / 2]);
      x[j] = f.x;
      x[j + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) x[j] = __bfloat162float(src[j]);
  }
}

template <int V>
__device__ __forceinline__ void store_bf16(__nv_bfloat16* dst, const float (&x)[V]) {
  if constexpr (V % 2 == 0) {
#pragma unroll
    for (int j = 0; j < V; j += 2) {
      reinterpret_cast<__nv_bfloat162*>(dst)[j / 2] = __floats2bfloat162_rn(x[j], x[j + 1]);
    }
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) dst[j] = __float2bfloat16_rn(x[j]);
  }
}

template <int V>
__global__ void rope_append_kernel(RopeAppendParams p) {
  vortex::gpu::pdl_enter();
  constexpr int D = 32 * V;
  constexpr int kHalf = D / 2;
  const int32_t hq = p.num_q_heads, hkv = p.kv.num_kv_heads;
  const int32_t heads_total = hq + 2 * hkv;
  const int64_t item = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (item >= p.n * heads_total) return;  // whole warps exit together
  const int64_t t = item / heads_total;
  const int32_t head_slot = static_cast<int32_t>(item % heads_total);
  const int e0 = lane * V;  // first channel of this lane

  float x[V];
  load_bf16<V>(p.qkv + t * p.qkv_stride + int64_t{head_slot} * D + e0, x);
  if (p.bias != nullptr) {
#pragma unroll
    for (int j = 0; j < V; ++j) x[j] += p.bias[head_slot * D + e0 + j];
  }

  const bool is_q = head_slot < hq;
  const bool is_k = !is_q && head_slot < hq + hkv;
  if (is_q || is_k) {
    const float* norm = is_q ? p.q_norm : p.k_norm;
    if (norm != nullptr) {
      float sum_sq = 0.0f;
#pragma unroll
      for (int j = 0; j < V; ++j) sum_sq += x[j] * x[j];
      const float inv = rsqrtf(warp_sum(sum_sq) / static_cast<float>(D) + p.norm_eps);
#pragma unroll
      for (int j = 0; j < V; ++j) x[j] = x[j] * inv * norm[e0 + j];
    }
    int32_t pos = p.positions[t];
    pos = pos < 0 ? 0 : (pos >= p.max_positions ? p.max_positions - 1 : pos);
    const float2* cs = p.rope_table + int64_t{pos} * kHalf;  // [D/2]
    float partner[V];
    if (p.style == RopeStyle::kAdjacentPairs) {
      if constexpr (V >= 2) {
#pragma unroll
        for (int j = 0; j < V; ++j) partner[j] = x[j ^ 1];
      } else {
        partner[0] = __shfl_xor_sync(0xffffffffu, x[0], 1);
      }
      float y[V];
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const int e = e0 + j;
        const float2 r = cs[e / 2];
        y[j] = (e % 2 == 0) ? x[j] * r.x - partner[j] * r.y : partner[j] * r.y + x[j] * r.x;
      }
#pragma unroll
      for (int j = 0; j < V; ++j) x[j] = y[j];
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) partner[j] = __shfl_xor_sync(0xffffffffu, x[j], 16);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const int e = e0 + j;
        const float2 r = cs[e % kHalf];
        x[j] = (e < kHalf) ? x[j] * r.x - partner[j] * r.y : partner[j] * r.y + x[j] * r.x;
      }
    }
  }

  if (is_q) {
    store_bf16<V>(p.q_out + (t * hq + head_slot) * D + e0, x);
    return;
  }
  const int32_t slot = p.slots[t];
  if (slot < 0) return;
  const int32_t page_size = p.kv.page_size;
  const int64_t page = slot / page_size, offset = slot % page_size;
  const int32_t h = is_k ? head_slot - hq : head_slot - hq - hkv;
  __nv_bfloat16* pool = static_cast<__nv_bfloat16*>(is_k ? p.kv.k : p.kv.v);
  const int64_t base = page_block_offset(page, h, hkv, int64_t{page_size} * D) + offset * D;
  store_bf16<V>(pool + base + e0, x);
}

}  // namespace

Status build_rope_table(const RopeConfig& rope, int32_t head_dim, int32_t max_positions,
                        float2* table, cudaStream_t stream) {
  if (head_dim <= 0 || head_dim % 2 != 0 || head_dim / 2 > kMaxHalf) {
    return invalid_argument("RoPE table: head_dim " + std::to_string(head_dim) +
                            " must be even and at most " + std::to_string(2 * kMaxHalf));
  }
  if (max_positions <= 0) {
    return invalid_argument("RoPE table: max_positions must be positive, got " +
                            std::to_string(max_positions));
  }
  InvFreq inv{};
  std::vector<float> host(static_cast<size_t>(head_dim / 2));
  cpu::rope_inv_freq(rope, head_dim, host.data());
  for (size_t i = 0; i < host.size(); ++i) inv.v[i] = host[i];
  const int64_t total = int64_t{max_positions} * (head_dim / 2);
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  (void)vortex::gpu::launch_kernel(rope_table_kernel, static_cast<unsigned>(blocks), kThreads, 0,
                                   stream, inv, head_dim / 2, max_positions, table);
  return cuda_status(cudaGetLastError(), "rope table kernel launch");
}

void rope_append(const RopeAppendParams& p, cudaStream_t stream) {
  const int32_t d = p.kv.head_dim;
  VORTEX_CHECK(p.n >= 0 && p.num_q_heads > 0 && p.kv.num_kv_heads > 0 && p.max_positions > 0);
  VORTEX_CHECK(p.qkv_stride >= int64_t{p.num_q_heads + 2 * p.kv.num_kv_heads} * d);
  if (p.n == 0) return;
  const int64_t warps = p.n * (p.num_q_heads + 2 * p.kv.num_kv_heads);
  const unsigned blocks = static_cast<unsigned>((warps * 32 + kThreads - 1) / kThreads);
  switch (d) {
    case 32:
      (void)vortex::gpu::launch_kernel(rope_append_kernel<1>, blocks, kThreads, 0, stream, p);
      break;
    case 64:
      (void)vortex::gpu::launch_kernel(rope_append_kernel<2>, blocks, kThreads, 0, stream, p);
      break;
    case 128:
      (void)vortex::gpu::launch_kernel(rope_append_kernel<4>, blocks, kThreads, 0, stream, p);
      break;
    case 256:
      (void)vortex::gpu::launch_kernel(rope_append_kernel<8>, blocks, kThreads, 0, stream, p);
      break;
    default:
      VORTEX_CHECK_MSG(false, "rope_append supports head_dim 32/64/128/256, got " << d);
  }
  VORTEX_CUDA_CHECK(cudaGetLastError());
}

}  // namespace vortex::cuda
