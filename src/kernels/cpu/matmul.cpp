// cpu::matmul: y = x · wᵀ (+ bias), split over the OpenMP team by output features.
//   n ≤ kStreamRows (decode): a streaming kernel reads each weight row from memory once and dots
//     it with the x rows, eight at a time (later groups find the block in cache) -- the step is
//     bound by reading the weights, so nothing is packed.
//   larger n (prefill): each thread runs a single-threaded OpenBLAS sgemm over its slice.
// 24 is where OpenBLAS's packed kernel caught up on the 2-core EPYC this was measured on
// (bench/cpu/cpu_gemm_bench.cpp).
// Every y element is computed by one thread in one fixed order, so results do not depend on the
// number of threads.
#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "parallel_for.h"
#include "simd.h"
#include "vec8.h"
#include "vortex/core/check.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {

namespace detail {

void blas_in_caller_thread() {
  static const bool once = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

}  // namespace detail

namespace {

using detail::load8;
using detail::V8;

constexpr int64_t kStreamRows = 24;  // x rows up to which w is streamed instead of packed
constexpr int64_t kBlock = 32;       // output features per work item of the streaming kernel

/// out[r][j] = x[r, :] · w[j, :] for R x rows and J consecutive weight rows (row length k): J
/// weight vectors are loaded once per 8 columns and reused by every x row, R·J accumulators
/// hide the FMA latency. Lanes are summed in a fixed order, then the k % 8 tail.
template <int R, int J>
[[gnu::always_inline]] inline void dot_tile(const float* x, const float* w, int64_t k,
                                            float (&out)[R][J]) {
  V8 acc[R][J] = {};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    V8 wv[J];
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j) wv[j] = load8(w + j * k + i);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const V8 xv = load8(x + r * k + i);
#pragma GCC unroll 4
      for (int j = 0; j < J; ++j) acc[r][j] += xv * wv[j];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < J; ++j) {
      float s = detail::hsum8(acc[r][j]);
      for (int64_t t = i; t < k; ++t) s += x[r * k + t] * w[j * k + t];
      out[r][j] = s;
    }
  }
}

/// y[:, j0:j1] for R x rows, J weight rows at a time, then one at a time for the remainder.
template <int R, int J>
[[gnu::always_inline]] inline void stream_rows(const float* x, const float* w, const float* bias,
                                               int64_t m, int64_t k, int64_t j0, int64_t j1,
                                               float* y) {
  int64_t j = j0;
  for (; j + J <= j1; j += J) {
    float out[R][J];
    dot_tile<R, J>(x, w + j * k, k, out);
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < J; ++c) y[r * m + j + c] = out[r][c] + (bias ? bias[j + c] : 0.0f);
    }
  }
  for (; j < j1; ++j) {
    float out[R][1];
    dot_tile<R, 1>(x, w + j * k, k, out);
    for (int r = 0; r < R; ++r) y[r * m + j] = out[r][0] + (bias ? bias[j] : 0.0f);
  }
}

/// y[:, j0:j1] for all n rows, eight at a time: the first group reads the block's weight rows from
/// memory, later groups find them in cache. Up to R·J = 8 accumulators (R rows × J weight rows):
/// with J weight vectors and one x vector they fit the 16 AVX2 registers.
VORTEX_CPU_CLONES void stream_block(const float* x, const float* w, const float* bias, int64_t n,
                                    int64_t m, int64_t k, int64_t j0, int64_t j1, float* y) {
  for (int64_t r0 = 0; r0 < n; r0 += 8) {
    const float* xr = x + r0 * k;
    float* yr = y + r0 * m;
    switch (std::min<int64_t>(8, n - r0)) {
      case 1:
        stream_rows<1, 4>(xr, w, bias, m, k, j0, j1, yr);
        break;
      case 2:
        stream_rows<2, 2>(xr, w, bias, m, k, j0, j1, yr);
        break;
      case 3:
        stream_rows<3, 1>(xr, w, bias, m, k, j0, j1, yr);
        break;
      case 4:
        stream_rows<4, 1>(xr, w, bias, m, k, j0, j1, yr);
        break;
      case 5:
        stream_rows<5, 1>(xr, w, bias, m, k, j0, j1, yr);
        break;
      case 6:
        stream_rows<6, 1>(xr, w, bias, m, k, j0, j1, yr);
        break;
      case 7:
        stream_rows<7, 1>(xr, w, bias, m, k, j0, j1, yr);
        break;
      default:
        stream_rows<8, 1>(xr, w, bias, m, k, j0, j1, yr);
        break;
    }
  }
}

/// y[n, j0:j1] through OpenBLAS on the calling thread.
void sgemm_slice(const float* x, const float* w, const float* bias, int64_t n, int64_t m, int64_t k,
                 int64_t j0, int64_t j1, float* y) {
  float beta = 0.0f;
  if (bias != nullptr) {
    for (int64_t r = 0; r < n; ++r)
      std::memcpy(y + r * m + j0, bias + j0, sizeof(float) * (j1 - j0));
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(n),
              static_cast<blasint>(j1 - j0), static_cast<blasint>(k), 1.0f, x,
              static_cast<blasint>(k), w + j0 * k, static_cast<blasint>(k), beta, y + j0,
              static_cast<blasint>(m));
}

}  // namespace

void matmul(const float* x, const float* w, const float* bias, int64_t n, int64_t m, int64_t k,
            float* y) {
  VORTEX_CHECK(n >= 0 && m >= 0 && k >= 0);
  if (n == 0 || m == 0) return;
  if (k == 0) {
    for (int64_t r = 0; r < n; ++r) {
      if (bias != nullptr) {
        std::memcpy(y + r * m, bias, sizeof(float) * m);
      } else {
        std::memset(y + r * m, 0, sizeof(float) * m);
      }
    }
    return;
  }
  const int64_t work = n * m * k;
  if (n <= kStreamRows) {
    const int64_t blocks = (m + kBlock - 1) / kBlock;
    detail::parallel_for(blocks, work, [&](int64_t b) {
      stream_block(x, w, bias, n, m, k, b * kBlock, std::min(m, (b + 1) * kBlock), y);
    });
    return;
  }
  detail::blas_in_caller_thread();
  // One slice of output features per thread (a multiple of 16, so slices stay aligned).
  const int64_t threads = std::max<int64_t>(1, detail::max_threads());
  const int64_t slice = std::max<int64_t>(16, ((m + threads - 1) / threads + 15) / 16 * 16);
  const int64_t slices = (m + slice - 1) / slice;
  detail::parallel_for(slices, work, [&](int64_t s) {
    sgemm_slice(x, w, bias, n, m, k, s * slice, std::min(m, (s + 1) * slice), y);
  });
}

}  // namespace vortex::cpu
