// cpu::matmul: y = x · wᵀ (+ bias) through OpenBLAS (multi-threaded by the library).
#include <cblas.h>

#include <cstring>

#include "vortex/core/check.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {

void matmul(const float* x, const float* w, const float* bias, int64_t n, int64_t m, int64_t k,
            float* y) {
  VORTEX_CHECK(n >= 0 && m >= 0 && k >= 0);
  if (n == 0 || m == 0) return;
  float beta = 0.0f;
  if (bias != nullptr) {
    for (int64_t r = 0; r < n; ++r) std::memcpy(y + r * m, bias, sizeof(float) * m);
    beta = 1.0f;
  }
  if (k == 0) {
    if (bias == nullptr) std::memset(y, 0, sizeof(float) * n * m);
    return;
  }
  const auto N = static_cast<blasint>(n);
  const auto M = static_cast<blasint>(m);
  const auto K = static_cast<blasint>(k);
  if (n == 1) {
    // y[m] = w[m, k] · x[k]: a matrix-vector product reads w once.
    cblas_sgemv(CblasRowMajor, CblasNoTrans, M, K, 1.0f, w, K, x, 1, beta, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, M, K, 1.0f, x, K, w, K, beta, y, M);
}

}  // namespace vortex::cpu
