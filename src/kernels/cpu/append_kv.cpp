// cpu::append_kv: writes new tokens' K and V into their slots of the paged cache.
#include "kv_access.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {

void append_kv(KVLayerView kv, DType kv_dtype, const float* k, const float* v, const int32_t* slots,
               int64_t n) {
  VORTEX_CHECK(n >= 0 && kv.page_size > 0 && kv.head_dim > 0);
  const int64_t row = static_cast<int64_t>(kv.num_kv_heads) * kv.head_dim;  // H_kv * D
  for (int64_t t = 0; t < n; ++t) {
    const int64_t page = slots[t] / kv.page_size;
    const int64_t slot = slots[t] % kv.page_size;
    VORTEX_CHECK_MSG(slots[t] >= 0 && page < kv.num_pages,
                     "append_kv slot " << slots[t] << " outside the pool");
    for (int32_t h = 0; h < kv.num_kv_heads; ++h) {
      const int64_t dst = detail::kv_row_offset(kv, page, h, slot);
      const int64_t src = t * row + static_cast<int64_t>(h) * kv.head_dim;
      detail::store_kv_rows(kv.k, kv_dtype, dst, kv.head_dim, k + src);
      detail::store_kv_rows(kv.v, kv_dtype, dst, kv.head_dim, v + src);
    }
  }
}

}  // namespace vortex::cpu
