// cpu::silu_mul: the SwiGLU activation, out = silu(gate) · up elementwise.
#include <cmath>

#include "vortex/core/check.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {

void silu_mul(const float* gate, const float* up, int64_t count, float* out) {
  VORTEX_CHECK(count >= 0);
  for (int64_t i = 0; i < count; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

}  // namespace vortex::cpu
