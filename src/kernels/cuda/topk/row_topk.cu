// Radix top-k per row: one CTA per row; four 8-bit passes over order-preserving 32-bit keys find
// the boundary key and how many of its ties to keep (ties -> lower page), then one block scan
// compacts the chosen candidates in ascending page order. Keys of rows up to kCacheKeys
// candidates stay in shared memory after the first pass; longer rows re-read (L2) per pass.
#include <cmath>
#include <cub/block/block_scan.cuh>
#include <string>

#include "../common/device_utils.cuh"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/budget_policy.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"
#include "vortex/kernels/cuda/row_topk.h"

namespace vortex::gpu {
namespace {

constexpr int kThreads = 256;
constexpr int kCacheKeys = 4096;  // 16 KiB of keys
constexpr int kItems = 4;         // consecutive candidates per thread in the compaction

struct TopKParams {
  PageTableView pt;
  int32_t num_kv_heads = 0;
  const int32_t* sel_indptr = nullptr;  // [rows + 1]
  int32_t* sel_indices = nullptr;       // [sel_capacity]
  int64_t sel_capacity = 0;
  int32_t bos = 0;
  int32_t eos = 1;  // effective
  float tolerance = 0.f;
};

template <typename S>
__global__ void __launch_bounds__(kThreads, 1) topk_kernel(const S* scores, const TopKParams p) {
  vortex::gpu::pdl_enter();
  __shared__ uint32_t skeys[kCacheKeys];
  __shared__ int32_t hist[256];
  __shared__ int32_t s_digit, s_above, s_bucket;
  using BlockScan = cub::BlockScan<unsigned long long, kThreads>;
  __shared__ typename BlockScan::TempStorage scan_tmp;

  const int tid = threadIdx.x;
  const int32_t row = blockIdx.x;
  const int32_t b = row / p.num_kv_heads, h = row - b * p.num_kv_heads;
  const int32_t pb = p.pt.page_indptr[b];
  const int32_t n = p.pt.page_indptr[b + 1] - pb;
  const int32_t* pages = p.pt.page_indices + pb;
  const int32_t sel_begin = p.sel_indptr[row];
  const int32_t count = p.sel_indptr[row + 1] - sel_begin;
  if (count <= 0 || static_cast<int64_t>(sel_begin) + count > p.sel_capacity) return;
  int32_t* out = p.sel_indices + sel_begin;
  if (count >= n) {  // dense row: every page in order
    for (int32_t i = tid; i < n; i += kThreads) out[i] = pages[i];
    return;
  }
  const int32_t eos_e = min(p.eos, count);
  const int32_t bos_c = min(p.bos, count - eos_e);
  const int32_t k = count - bos_c - eos_e;
  const int32_t m = n - bos_c - eos_e;  // candidates, > k because n > count
  for (int32_t i = tid; i < bos_c; i += kThreads) out[i] = pages[i];
  for (int32_t i = tid; i < eos_e; i += kThreads) out[bos_c + k + i] = pages[n - eos_e + i];
  if (k <= 0) return;

  const S* sc =
      scores + static_cast<int64_t>(pb) * p.num_kv_heads + static_cast<int64_t>(h) * n + bos_c;
  const bool cached = m <= kCacheKeys;
  const int32_t allowed = static_cast<int32_t>(floorf(p.tolerance * static_cast<float>(k)));
  uint32_t prefix = 0u, mask = 0u;
  int32_t need = k;  // how many keys equal to `prefix` (under `mask`) still to take

  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += kThreads) hist[i] = 0;
    __syncthreads();
    for (int32_t i = tid; i < m; i += kThreads) {
      uint32_t key;
      if (cached) {
        if (shift == 24) {
          key = detail::score_key(detail::load_score(sc + i));
          skeys[i] = key;
        } else {
          key = skeys[i];
        }
      } else {
        key = detail::score_key(detail::load_score(sc + i));
      }
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1);
    }
    __syncthreads();
    if (tid < 32) {
      // Lane L owns bins [8L, 8L + 8); find the digit d with
      // count(digits > d) < need <= count(digits >= d).
      int32_t c[8], local = 0;
#pragma unroll
      for (int t = 0; t < 8; ++t) {
        c[t] = hist[tid * 8 + t];
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
            s_digit = tid * 8 + t;
            s_above = run;
            s_bucket = c[t];
          }
          if (!found) run += c[t];
        }
      }
    }
    __syncthreads();
    const uint32_t digit = static_cast<uint32_t>(s_digit);
    need -= s_above;
    const int32_t bucket = s_bucket;
    prefix |= digit << shift;
    mask |= 255u << shift;
    __syncthreads();  // everyone has read s_* before the next pass rewrites them
    // Exact: stop when the whole boundary bucket is taken. Approximate: taking the first `need`
    // of the bucket by page order errs on at most min(need, bucket - need) pages.
    if (need == bucket || min(need, bucket - need) <= allowed) break;
  }

  // Compaction in page order: chosen = (key & mask) > prefix, or == prefix among the first
  // `need` such keys.
  int32_t carry_gt = 0, carry_eq = 0;
  for (int32_t base = 0; base < m; base += kThreads * kItems) {
    uint8_t flag[kItems];  // 2: above the boundary, 1: on it, 0: below
    int32_t gt = 0, eq = 0;
#pragma unroll
    for (int t = 0; t < kItems; ++t) {
      const int32_t i = base + tid * kItems + t;
      flag[t] = 0;
      if (i < m) {
        const uint32_t key = cached ? skeys[i] : detail::score_key(detail::load_score(sc + i));
        const uint32_t km = key & mask;
        flag[t] = km > prefix ? 2 : (km == prefix ? 1 : 0);
        gt += flag[t] == 2;
        eq += flag[t] == 1;
      }
    }
    const unsigned long long mine =
        (static_cast<unsigned long long>(gt) << 32) | static_cast<unsigned long long>(eq);
    unsigned long long before, total;
    BlockScan(scan_tmp).ExclusiveSum(mine, before, total);
    int32_t gt_before = carry_gt + static_cast<int32_t>(before >> 32);
    int32_t eq_before = carry_eq + static_cast<int32_t>(before & 0xffffffffull);
#pragma unroll
    for (int t = 0; t < kItems; ++t) {
      const int32_t i = base + tid * kItems + t;
      if (flag[t] == 2) {
        out[bos_c + gt_before + min(eq_before, need)] = pages[bos_c + i];
        ++gt_before;
      } else if (flag[t] == 1) {
        if (eq_before < need) out[bos_c + gt_before + eq_before] = pages[bos_c + i];
        ++eq_before;
      }
    }
    carry_gt += static_cast<int32_t>(total >> 32);
    carry_eq += static_cast<int32_t>(total & 0xffffffffull);
    __syncthreads();  // scan_tmp is reused
  }
}

}  // namespace

Status select_topk(const void* scores, DType score_dtype, const PageTableView& pt,
                   int32_t num_kv_heads, const int32_t* sel_indptr, int32_t* sel_indices,
                   int64_t sel_capacity, int32_t bos, int32_t eos, float tolerance,
                   cudaStream_t stream) {
  if (score_dtype != DType::kF32 && score_dtype != DType::kBF16) {
    return unsupported("top-k: scores of dtype " + std::string(dtype_name(score_dtype)) +
                       " (use f32 or bf16)");
  }
  if (num_kv_heads <= 0 || bos < 0 || eos < 0) {
    return invalid_argument("top-k: num_kv_heads must be positive, bos and eos >= 0");
  }
  if (!(tolerance >= 0.f && tolerance < 1.f)) {
    return invalid_argument("top-k: approxTopK tolerance " + std::to_string(tolerance) +
                            " outside [0, 1)");
  }
  const int64_t rows = static_cast<int64_t>(pt.batch_size) * num_kv_heads;
  if (rows == 0) return Status::ok();
  if (rows >= (int64_t{1} << 31)) return invalid_argument("top-k: too many rows");
  TopKParams p;
  p.pt = pt;
  p.num_kv_heads = num_kv_heads;
  p.sel_indptr = sel_indptr;
  p.sel_indices = sel_indices;
  p.sel_capacity = sel_capacity;
  p.bos = bos;
  p.eos = effective_eos(eos);
  p.tolerance = tolerance;
  if (score_dtype == DType::kF32) {
    (void)vortex::gpu::launch_kernel(topk_kernel<float>, static_cast<unsigned>(rows), kThreads, 0,
                                     stream, static_cast<const float*>(scores), p);
  } else {
    (void)vortex::gpu::launch_kernel(topk_kernel<__nv_bfloat16>, static_cast<unsigned>(rows),
                                     kThreads, 0, stream, static_cast<const __nv_bfloat16*>(scores),
                                     p);
  }
  VORTEX_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::ok();
}

}  // namespace vortex::gpu
