// cpu::add_rms_norm: the fused pre-norm of a block — residual += x, then out = rms_norm(residual).
#include "vortex/core/check.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {

void add_rms_norm(float* residual, const float* x, const float* weight, int64_t n, int64_t d,
                  float eps, float* out) {
  VORTEX_CHECK(n >= 0 && d > 0);
  const int64_t total = n * d;
  for (int64_t i = 0; i < total; ++i) residual[i] += x[i];  // [n, d]
  rms_norm(residual, weight, n, d, eps, out);
}

}  // namespace vortex::cpu
