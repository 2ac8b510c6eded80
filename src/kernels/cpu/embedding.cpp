// cpu::embedding: gathers rows of the token embedding table.
#include <cstring>

#include "vortex/core/check.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {

void embedding(const float* table, const int32_t* ids, int64_t n, int64_t d, float* out) {
  VORTEX_CHECK(n >= 0 && d > 0);
  for (int64_t t = 0; t < n; ++t) {
    VORTEX_CHECK_MSG(ids[t] >= 0, "negative token id " << ids[t]);
    std::memcpy(out + t * d, table + static_cast<int64_t>(ids[t]) * d, sizeof(float) * d);
  }
}

}  // namespace vortex::cpu
