// cpu::rms_norm: out = x / sqrt(mean(x²) + eps) · weight, per row, accumulated in double.
#include <cmath>

#include "vortex/core/check.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {

void rms_norm(const float* x, const float* weight, int64_t n, int64_t d, float eps, float* out) {
  VORTEX_CHECK(n >= 0 && d > 0);
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * d;  // [d]
    float* o = out + r * d;       // [d]
    double sum_sq = 0.0;
    for (int64_t i = 0; i < d; ++i) sum_sq += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(d) + eps));
    for (int64_t i = 0; i < d; ++i) o[i] = xr[i] * inv * weight[i];
  }
}

}  // namespace vortex::cpu
