// Small device helpers shared by the CUDA kernels: cp.async with zero fill, bf16 unpacking,
// fast exp2, warp reductions, order-preserving float keys. Device code only (nvcc).
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

namespace vortex::gpu::detail {

constexpr float kNegInf = -__builtin_huge_valf();

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// 16-byte global -> shared copy that bypasses L1 (.cg). `src_bytes` is 16 or 0; with 0 the 16
/// destination bytes are zero-filled and `src` is not read (it must still be a valid address).
__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src, int src_bytes) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
/// Waits until at most N of this thread's most recent cp.async groups are still pending.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/// 2^x with the hardware approximation (ex2.approx, ~2 ulp); exp2(-inf) = +0.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

/// Eight bf16 values packed in 16 bytes -> eight floats (exact).
__device__ __forceinline__ void unpack_bf16x8(const uint4& v, float (&f)[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

/// Eight floats -> eight bf16 (round to nearest even) packed in 16 bytes.
__device__ __forceinline__ uint4 pack_bf16x8(const float (&f)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    w[i] = *reinterpret_cast<const uint32_t*>(&h);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

/// Loads 8 consecutive elements (16-byte aligned for bf16, 32-byte for float) as floats.
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&f)[8]) {
  unpack_bf16x8(*reinterpret_cast<const uint4*>(p), f);
}
__device__ __forceinline__ void load8(const float* p, float (&f)[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0];
  const float4 b = reinterpret_cast<const float4*>(p)[1];
  f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}

__device__ __forceinline__ void store_elem(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_elem(__nv_bfloat16* p, float v) {
  *p = __float2bfloat16_rn(v);
}

/// Sum over the lanes of aligned groups of `kWidth` lanes (every lane gets its group's sum).
template <int kWidth>
__device__ __forceinline__ float group_sum(float x) {
#pragma unroll
  for (int off = kWidth / 2; off >= 1; off /= 2) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

/// Sum across groups: lanes l, l ^ kFrom, l ^ 2kFrom, ... < 32 (every lane gets the total).
template <int kFrom>
__device__ __forceinline__ float across_groups_sum(float x) {
#pragma unroll
  for (int off = kFrom; off < 32; off *= 2) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}
template <int kFrom>
__device__ __forceinline__ float across_groups_max(float x) {
#pragma unroll
  for (int off = kFrom; off < 32; off *= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
  return x;
}

/// Order-preserving map of a float score to an unsigned key: larger score -> larger key. -0.0
/// maps like +0.0 (equal scores tie on the page index); NaN maps to 0, below every number.
__device__ __forceinline__ uint32_t score_key(float s) {
  if (s != s) return 0u;
  if (s == 0.0f) s = 0.0f;
  const uint32_t u = __float_as_uint(s);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float load_score(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load_score(const __nv_bfloat16* p) { return __bfloat162float(*p); }

/// c += a · b on tensor cores: mma.sync m16n8k16, bf16 in, fp32 accumulate (PTX fragment layouts:
/// a {row g, k 2q..} {row g+8, k 2q..} {row g, k 2q+8..} {row g+8, k 2q+8..}; b {k 2q.., col g}
/// {k 2q+8.., col g}; c {row g, col 2q, 2q+1} {row g+8, col 2q, 2q+1}; g = lane / 4, q = lane % 4).
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

}  // namespace vortex::gpu::detail
