// Internal to the CPU kernels: eight fp32 lanes as a GCC vector type (one AVX2 register in the
// x86-64-v3 clones of VORTEX_CPU_CLONES functions, two SSE registers in the baseline), with the
// loads, reductions and exp the hot loops need. Every helper is always inlined into its caller,
// so it is compiled for the caller's clone and no call crosses the baseline ABI (the kernels build
// with -Wno-psabi for GCC's note about vector arguments, which therefore does not apply).
#pragma once

#include <cstdint>
#include <cstring>

namespace vortex::cpu::detail {

using V8 = float __attribute__((vector_size(32)));
using I8 = int32_t __attribute__((vector_size(32)));
using U8 = uint32_t __attribute__((vector_size(32)));
using U16x8 = uint16_t __attribute__((vector_size(16)));

#define VORTEX_V8_INLINE [[gnu::always_inline]] inline

VORTEX_V8_INLINE V8 load8(const float* p) {
  V8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// Eight bf16 values widened to fp32 (exact: bf16 is the top half of an fp32).
VORTEX_V8_INLINE V8 load8(const uint16_t* p) {
  U16x8 h;
  std::memcpy(&h, p, sizeof h);
  const U8 bits = __builtin_convertvector(h, U8) << 16;
  V8 v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

VORTEX_V8_INLINE void store8(float* p, V8 v) { std::memcpy(p, &v, sizeof v); }

VORTEX_V8_INLINE V8 splat8(float x) { return V8{x, x, x, x, x, x, x, x}; }

/// Lane sum in a fixed order (results do not depend on how the caller was scheduled).
VORTEX_V8_INLINE float hsum8(V8 v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

VORTEX_V8_INLINE float hmax8(V8 v) {
  float m = v[0];
  for (int i = 1; i < 8; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

/// e^x per lane, within 2 ulp of e^x over [-87, 88] (0.92 ulp worst in its test): x = n·ln2 + r
/// with |r| ≤ ln2/2 (ln2 split in two for an exact n·ln2), e^r by a degree-6 minimax polynomial,
/// 2^n built in the exponent bits. Below -87 the result flushes to 0 (and -inf gives 0); above 88
/// it saturates at 2^127·e^r.
VORTEX_V8_INLINE V8 exp8(V8 x) {
  const V8 lo = splat8(-87.0f), hi = splat8(88.0f);
  const I8 underflow = x < lo;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const V8 fx = x * 1.44269504088896341f;
  const I8 n = __builtin_convertvector(fx + (fx < 0.0f ? splat8(-0.5f) : splat8(0.5f)), I8);
  const V8 nf = __builtin_convertvector(n, V8);
  V8 r = x - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  V8 p = splat8(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const I8 bits = (n + 127) << 23;
  V8 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const V8 y = p * scale;
  return underflow ? splat8(0.0f) : y;
}

#undef VORTEX_V8_INLINE

}  // namespace vortex::cpu::detail
