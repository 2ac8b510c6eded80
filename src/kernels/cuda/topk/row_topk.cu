// Radix top-k per row: one CTA per row; four 8-bit passes over order-preserving 32-bit keys find
// the boundary key and how many of its ties to keep (ties -> lower page), then one block scan
// compacts the chosen candidates in ascending page order (radix_select.cuh). The keys of rows up
// to kCacheKeys candidates are read once into shared memory; longer rows re-read (L2) per pass.
#include <cmath>
#include <string>

#include "../common/device_utils.cuh"
#include "radix_select.cuh"
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
  __shared__ radix::SelectShared<kThreads> sh;

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
  const int32_t allowed = static_cast<int32_t>(floorf(p.tolerance * static_cast<float>(k)));
  uint32_t prefix, mask;
  int32_t need;
  auto emit = [&](int32_t pos, int32_t i) { out[bos_c + pos] = pages[bos_c + i]; };
  if (m <= kCacheKeys) {  // keys read once into shared memory
    for (int32_t i = tid; i < m; i += kThreads) {
      skeys[i] = detail::score_key(detail::load_score(sc + i));
    }
    __syncthreads();
    auto key_at = [&](int32_t i) { return skeys[i]; };
    radix::radix_boundary<kThreads>(key_at, m, k, allowed, sh, prefix, mask, need);
    radix::compact_selected<kThreads, kItems>(key_at, m, prefix, mask, need, sh, emit);
  } else {  // re-read (L2) per pass
    auto key_at = [&](int32_t i) { return detail::score_key(detail::load_score(sc + i)); };
    radix::radix_boundary<kThreads>(key_at, m, k, allowed, sh, prefix, mask, need);
    radix::compact_selected<kThreads, kItems>(key_at, m, prefix, mask, need, sh, emit);
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
