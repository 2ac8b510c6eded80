// Device half of l2_prefetch.h: a CTA's share of an L2 prefetch of a byte range, issued by the
// 32 lanes of one warp as bulk prefetches (cp.async.bulk.prefetch.L2, sm_90; line prefetches
// below). Fire and forget: nothing waits for the lines, nothing is written.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vortex::gpu {

/// Part `part` of `parts` equal, 16-byte aligned parts of [p, p + bytes), prefetched into the L2
/// in 16 KiB requests dealt to the warp's lanes. Call with the whole warp (any lane count works).
__device__ __forceinline__ void l2_prefetch_part(const void* p, uint64_t bytes, uint32_t part,
                                                 uint32_t parts, uint32_t lane) {
  if (p == nullptr || parts == 0) return;
  constexpr uint64_t kChunk = 16u << 10;
  const uint64_t per = ((bytes + parts - 1) / parts + 15) & ~uint64_t{15};
  const uint64_t begin = per * part;
  const uint64_t end = begin + per < bytes ? begin + per : bytes;
  const char* base = static_cast<const char*>(p);
  for (uint64_t off = begin + lane * kChunk; off < end; off += 32 * kChunk) {
    const uint32_t size =
        static_cast<uint32_t>(end - off < kChunk ? end - off : kChunk) & ~uint32_t{15};
    if (size == 0) continue;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(base + off), "r"(size)
                 : "memory");
#else
    for (uint32_t b = 0; b < size; b += 128)
      asm volatile("prefetch.global.L2 [%0];" ::"l"(base + off + b));
#endif
  }
}

}  // namespace vortex::gpu
