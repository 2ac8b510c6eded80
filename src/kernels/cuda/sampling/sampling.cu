// cuda::sample_tokens: one 1024-thread block per logits row. Greedy rows take one argmax pass.
// Sampled rows find the top-k and top-p thresholds by radix select over order-preserving 32-bit
// keys of the logits (8-bit digits, shared-memory histograms of counts or fixed-point masses,
// warp-aggregated atomics), then draw in vocabulary order with a block-wide prefix sum: the Philox
// draw scaled to the kept mass by a 64x64 -> high-64 multiply (see sampling.h).
#include <cuda_runtime.h>

#include <climits>
#include <cmath>

#include "vortex/core/check.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"
#include "vortex/kernels/cuda/sampling.h"

namespace vortex::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr float kMassScale = 67108864.0f;  // 2^26: one token's mass fits 27 bits, a warp's 32
constexpr unsigned kFull = 0xffffffffu;

__host__ __device__ inline uint64_t philox(uint64_t seed, uint64_t offset) {
  uint32_t c0 = static_cast<uint32_t>(offset), c1 = static_cast<uint32_t>(offset >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t{0xD2511F53u} * c0;
    const uint64_t p1 = uint64_t{0xCD9E8D57u} * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return (uint64_t{c0} << 32) | c1;
}

/// Monotone map float -> uint32 (larger float, larger key); NaN maps to 0 (never kept first).
__device__ __forceinline__ uint32_t order_key(float v) {
  if (v != v) return 0u;
  const uint32_t u = __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/// Relative weight exp((v - m) / T) in (0, 1]; 0 for NaN or -inf.
__device__ __forceinline__ float weight_of(float v, float m, float inv_t) {
  if (v != v) return 0.0f;
  return expf((v - m) * inv_t);
}

__device__ __forceinline__ uint32_t fixed_mass(float w) {
  return static_cast<uint32_t>(__float2uint_rn(w * kMassScale));
}

struct Scratch {
  uint32_t hist_count[256];
  unsigned long long hist_mass[256];
  float f[kWarps];
  int32_t i[kWarps];
  unsigned long long u[kWarps];
  uint32_t prefix;
  unsigned long long need;
};

/// Block argmax; ties to the lower index. Every thread gets the result.
__device__ void block_argmax(Scratch& s, float& best, int32_t& idx) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int o = 16; o > 0; o >>= 1) {
    const float ob = __shfl_xor_sync(kFull, best, o);
    const int32_t oi = __shfl_xor_sync(kFull, idx, o);
    if (ob > best || (ob == best && oi < idx)) {
      best = ob;
      idx = oi;
    }
  }
  if (lane == 0) {
    s.f[warp] = best;
    s.i[warp] = idx;
  }
  __syncthreads();
  best = s.f[0];
  idx = s.i[0];
  for (int w = 1; w < kWarps; ++w) {
    if (s.f[w] > best || (s.f[w] == best && s.i[w] < idx)) {
      best = s.f[w];
      idx = s.i[w];
    }
  }
  __syncthreads();
}

/// Block sum in a fixed order (deterministic).
__device__ float block_sum(Scratch& s, float v) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  if (lane == 0) s.f[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w) total += s.f[w];
  __syncthreads();
  return total;
}

/// Exclusive prefix sum over threads in index order; `total` gets the block sum.
__device__ unsigned long long block_exclusive_scan(Scratch& s, unsigned long long v,
                                                   unsigned long long& total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  unsigned long long inclusive = v;
  for (int o = 1; o < 32; o <<= 1) {
    const unsigned long long n = __shfl_up_sync(kFull, inclusive, o);
    if (lane >= o) inclusive += n;
  }
  if (lane == 31) s.u[warp] = inclusive;
  __syncthreads();
  unsigned long long before = 0;
  total = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) before += s.u[w];
    total += s.u[w];
  }
  __syncthreads();
  return before + inclusive - v;
}

/// Adds `value` to bin `bin` for every active lane, one atomic per distinct bin of the warp.
template <bool kMass>
__device__ __forceinline__ void histogram_add(Scratch& s, bool active, uint32_t bin,
                                              uint32_t value) {
  const int lane = threadIdx.x % 32;
  unsigned pending = __ballot_sync(kFull, active);
  while (pending != 0u) {
    const int leader = __ffs(pending) - 1;
    const uint32_t leader_bin = __shfl_sync(kFull, bin, leader);
    const bool mine = active && bin == leader_bin;
    const unsigned group = __ballot_sync(kFull, mine);
    if constexpr (kMass) {
      const uint32_t sum = __reduce_add_sync(kFull, mine ? value : 0u);
      if (lane == leader) atomicAdd(&s.hist_mass[leader_bin], static_cast<unsigned long long>(sum));
    } else {
      if (lane == leader)
        atomicAdd(&s.hist_count[leader_bin], static_cast<uint32_t>(__popc(group)));
    }
    pending &= ~group;
  }
}

/// The largest key t with stat(key >= t) >= want, stat = count (kMass false) or fixed mass.
template <bool kMass>
__device__ uint32_t radix_select(Scratch& s, const float* row, int32_t vocab, float m, float inv_t,
                                 unsigned long long want) {
  uint32_t prefix = 0, mask = 0;
  unsigned long long need = want;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += kThreads) {
      s.hist_count[b] = 0;
      s.hist_mass[b] = 0;
    }
    __syncthreads();
    for (int32_t i0 = 0; i0 < vocab; i0 += kThreads) {  // uniform trip count: warp ops stay legal
      const int32_t i = i0 + static_cast<int32_t>(threadIdx.x);
      uint32_t key = 0, value = 1;
      bool active = false;
      if (i < vocab) {
        const float v = row[i];
        key = order_key(v);
        active = (key & mask) == prefix;
        if constexpr (kMass) value = fixed_mass(weight_of(v, m, inv_t));
      }
      histogram_add<kMass>(s, active, (key >> shift) & 255u, value);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned long long above = 0;
      uint32_t chosen = 0;
      for (int b = 255; b >= 0; --b) {
        const unsigned long long stat = kMass ? s.hist_mass[b] : s.hist_count[b];
        if (above + stat >= need) {
          chosen = static_cast<uint32_t>(b);
          break;
        }
        above += stat;
      }
      s.prefix = prefix | (chosen << shift);
      s.need = need > above ? need - above : 1;
    }
    __syncthreads();
    prefix = s.prefix;
    need = s.need;
    mask |= 255u << shift;
  }
  __syncthreads();
  return prefix;
}

__global__ void __launch_bounds__(kThreads)
    sample_kernel(float* __restrict__ logits, int32_t vocab, const SamplingRow* __restrict__ params,
                  PenaltyView pen, int32_t* __restrict__ out, float* __restrict__ out_logprobs) {
  vortex::gpu::pdl_enter();
  __shared__ Scratch s;
  const int32_t r = blockIdx.x;
  float* row = logits + int64_t{r} * vocab;  // [vocab]
  const SamplingRow p = params[r];

  if (pen.indptr != nullptr) {
    for (int32_t e = pen.indptr[r] + threadIdx.x; e < pen.indptr[r + 1]; e += kThreads) {
      const int32_t tok = pen.tokens[e];
      if (tok < 0 || tok >= vocab) continue;
      const int32_t count = pen.counts[e];
      float v = row[tok];
      if (p.repetition_penalty != 1.0f) {
        v = v > 0.0f ? v / p.repetition_penalty : v * p.repetition_penalty;
      }
      v -=
          p.frequency_penalty * static_cast<float>(count) + (count > 0 ? p.presence_penalty : 0.0f);
      row[tok] = v;
    }
    __syncthreads();  // the block's global writes are visible to the block after this
  }

  float m = -INFINITY;
  int32_t arg = INT_MAX;
  for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
    const float v = row[i];
    if (v > m) {  // strided ascending: the first maximum of this thread is its lowest index
      m = v;
      arg = i;
    }
  }
  block_argmax(s, m, arg);
  if (arg == INT_MAX) {  // every logit NaN or -inf: nothing to sample from
    if (threadIdx.x == 0) {
      out[r] = 0;
      if (out_logprobs != nullptr) out_logprobs[r] = -INFINITY;
    }
    return;
  }
  const bool greedy = !(p.temperature > 0.0f) || p.top_k == 1;
  const float inv_t = greedy ? 1.0f : 1.0f / p.temperature;
  float log_z = 0.0f;
  if (out_logprobs != nullptr) {
    float part = 0.0f;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) part += weight_of(row[i], m, inv_t);
    log_z = logf(block_sum(s, part));
  }
  if (greedy) {
    if (threadIdx.x == 0) {
      out[r] = arg;
      if (out_logprobs != nullptr) out_logprobs[r] = -log_z;
    }
    return;
  }

  uint32_t threshold = 0;  // keep keys >= threshold
  if (p.top_k > 0 && p.top_k < vocab) {
    threshold =
        radix_select<false>(s, row, vocab, m, inv_t, static_cast<unsigned long long>(p.top_k));
  }
  if (p.top_p < 1.0f) {
    unsigned long long part = 0;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
      const float v = row[i];
      if (order_key(v) >= threshold) part += fixed_mass(weight_of(v, m, inv_t));
    }
    unsigned long long kept_mass = 0;
    (void)block_exclusive_scan(s, part, kept_mass);
    const double target = ceil(static_cast<double>(p.top_p) * static_cast<double>(kept_mass));
    const unsigned long long want = target < 1.0 ? 1ull : static_cast<unsigned long long>(target);
    const uint32_t t = radix_select<true>(s, row, vocab, m, inv_t, want);
    threshold = t > threshold ? t : threshold;
  }

  // Draw: each thread owns a contiguous slice of the vocabulary, so the block scan is in
  // vocabulary order.
  const int32_t chunk = (vocab + kThreads - 1) / kThreads;
  const int32_t begin = static_cast<int32_t>(threadIdx.x) * chunk;
  const int32_t end = begin + chunk < vocab ? begin + chunk : vocab;
  unsigned long long own = 0;
  for (int32_t i = begin; i < end; ++i) {
    const float v = row[i];
    const float w = weight_of(v, m, inv_t);
    if (order_key(v) >= threshold && w >= p.min_p) own += fixed_mass(w);
  }
  unsigned long long total = 0;
  const unsigned long long before = block_exclusive_scan(s, own, total);
  if (total == 0) {  // cannot happen (the max has mass 2^26), kept for safety
    if (threadIdx.x == 0) {
      out[r] = arg;
      if (out_logprobs != nullptr) out_logprobs[r] = -log_z;
    }
    return;
  }
  // r = floor(u * total) with u = draw / 2^64: a kept mass that differs by a few units (expf
  // rounding) moves r by at most as many, so only draws that land that close to a boundary change.
  // (draw % total would map the same draw to an unrelated r whenever the total differs at all.)
  const unsigned long long target = __umul64hi(philox(p.seed, p.offset), total);
  if (own > 0 && target >= before && target < before + own) {
    unsigned long long acc = before;
    for (int32_t i = begin; i < end; ++i) {
      const float v = row[i];
      const float w = weight_of(v, m, inv_t);
      if (order_key(v) >= threshold && w >= p.min_p) acc += fixed_mass(w);
      if (acc > target) {
        out[r] = i;
        if (out_logprobs != nullptr) out_logprobs[r] = (v - m) * inv_t - log_z;
        break;
      }
    }
  }
}

}  // namespace

uint64_t philox_draw(uint64_t seed, uint64_t offset) { return philox(seed, offset); }

void sample_tokens(float* logits, int32_t rows, int32_t vocab, const SamplingRow* params,
                   PenaltyView penalties, int32_t* out_tokens, float* out_logprobs,
                   cudaStream_t stream) {
  VORTEX_CHECK(rows >= 0 && vocab > 0);
  if (rows == 0) return;
  (void)vortex::gpu::launch_kernel(sample_kernel, static_cast<unsigned>(rows), kThreads, 0, stream,
                                   logits, vocab, params, penalties, out_tokens, out_logprobs);
  VORTEX_CUDA_CHECK(cudaGetLastError());
}

}  // namespace vortex::cuda
