// Radix selection of a row's k largest keys by one CTA, shared by select_topk (row_topk.cu) and
// the fused block_topk kernel (block_topk_fused.cu). Keys are order-preserving 32-bit maps of the
// scores (detail::score_key). radix_boundary() runs up to four 8-bit passes (shared-memory
// histogram, one warp finds the digit by a suffix scan) and returns the boundary prefix, its mask
// and how many keys equal to it to take; compact_selected() then hands every chosen candidate's
// position in the selection to `emit`, in candidate order (one block scan per kThreads * kItems
// candidates) -- exactly "ties to the lower candidate index". With `allowed` > 0 (approxTopK)
// the passes stop once taking the first `need` keys of the boundary bucket errs on at most
// `allowed` candidates. Device code only.
#pragma once

#include <stdint.h>

#include <cub/block/block_scan.cuh>

namespace vortex::gpu::radix {

template <int kThreads>
struct SelectShared {
  int32_t hist[256];
  int32_t digit, above, bucket;
  typename cub::BlockScan<unsigned long long, kThreads>::TempStorage scan;
};

/// Keys of candidates 0..m-1 come from `key_at(i)` (called by every thread for its own i's, once
/// per pass). Finds prefix / mask / need such that the selection is every key with
/// (key & mask) > prefix plus the first `need` keys with (key & mask) == prefix. k < m.
template <int kThreads, typename KeyAt>
__device__ __forceinline__ void radix_boundary(KeyAt key_at, int32_t m, int32_t k, int32_t allowed,
                                               SelectShared<kThreads>& sh, uint32_t& prefix,
                                               uint32_t& mask, int32_t& need) {
  const int tid = static_cast<int>(threadIdx.x);
  prefix = 0u;
  mask = 0u;
  need = k;  // how many keys equal to `prefix` (under `mask`) still to take
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += kThreads) sh.hist[i] = 0;
    __syncthreads();
    for (int32_t i = tid; i < m; i += kThreads) {
      const uint32_t key = key_at(i);
      if ((key & mask) == prefix) atomicAdd(&sh.hist[(key >> shift) & 255u], 1);
    }
    __syncthreads();
    if (tid < 32) {
      // Lane L owns bins [8L, 8L + 8); find the digit d with
      // count(digits > d) < need <= count(digits >= d).
      int32_t c[8], local = 0;
#pragma unroll
      for (int t = 0; t < 8; ++t) {
        c[t] = sh.hist[tid * 8 + t];
        local += c[t];
      }
      int32_t suffix = local;  // inclusive suffix sum over lanes >= tid
#pragma unroll
      for (int off = 1; off < 32; off <<= 1) {
        const int32_t v = __shfl_down_sync(0xffffffffu, suffix, off);
        if (tid + off < 32) suffix += v;
      }
      const int32_t above_lane = suffix - local;
      if (suffix >= need && above_lane < need) {
        int32_t run = above_lane;
        bool found = false;
#pragma unroll
        for (int t = 7; t >= 0; --t) {  // unrolled without break: c[] stays in registers
          if (!found && run + c[t] >= need) {
            found = true;
            sh.digit = tid * 8 + t;
            sh.above = run;
            sh.bucket = c[t];
          }
          if (!found) run += c[t];
        }
      }
    }
    __syncthreads();
    const uint32_t digit = static_cast<uint32_t>(sh.digit);
    need -= sh.above;
    const int32_t bucket = sh.bucket;
    prefix |= digit << shift;
    mask |= 255u << shift;
    __syncthreads();  // everyone has read sh.* before the next pass rewrites them
    // Exact: stop when the whole boundary bucket is taken. Approximate: taking the first `need`
    // of the bucket by candidate order errs on at most min(need, bucket - need) candidates.
    if (need == bucket || min(need, bucket - need) <= allowed) break;
  }
}

/// Calls emit(position, i) for every chosen candidate i (position: its index among the chosen,
/// in candidate order).
template <int kThreads, int kItems, typename KeyAt, typename Emit>
__device__ __forceinline__ void compact_selected(KeyAt key_at, int32_t m, uint32_t prefix,
                                                 uint32_t mask, int32_t need,
                                                 SelectShared<kThreads>& sh, Emit emit) {
  using BlockScan = cub::BlockScan<unsigned long long, kThreads>;
  const int tid = static_cast<int>(threadIdx.x);
  int32_t carry_gt = 0, carry_eq = 0;
  for (int32_t base = 0; base < m; base += kThreads * kItems) {
    uint8_t flag[kItems];  // 2: above the boundary, 1: on it, 0: below
    int32_t gt = 0, eq = 0;
#pragma unroll
    for (int t = 0; t < kItems; ++t) {
      const int32_t i = base + tid * kItems + t;
      flag[t] = 0;
      if (i < m) {
        const uint32_t km = key_at(i) & mask;
        flag[t] = km > prefix ? 2 : (km == prefix ? 1 : 0);
        gt += flag[t] == 2;
        eq += flag[t] == 1;
      }
    }
    const unsigned long long mine =
        (static_cast<unsigned long long>(gt) << 32) | static_cast<unsigned long long>(eq);
    unsigned long long before, total;
    BlockScan(sh.scan).ExclusiveSum(mine, before, total);
    int32_t gt_before = carry_gt + static_cast<int32_t>(before >> 32);
    int32_t eq_before = carry_eq + static_cast<int32_t>(before & 0xffffffffull);
#pragma unroll
    for (int t = 0; t < kItems; ++t) {
      const int32_t i = base + tid * kItems + t;
      if (flag[t] == 2) {
        emit(gt_before + min(eq_before, need), i);
        ++gt_before;
      } else if (flag[t] == 1) {
        if (eq_before < need) emit(gt_before + eq_before, i);
        ++eq_before;
      }
    }
    carry_gt += static_cast<int32_t>(total >> 32);
    carry_eq += static_cast<int32_t>(total & 0xffffffffull);
    __syncthreads();  // the scan storage is reused
  }
}

}  // namespace vortex::gpu::radix
