// Device half of the sparse planner, as templates over the budget policy so that a generated
// policy (any functor with `VORTEX_HD int64_t operator()(const BudgetInputs&) const`) can be
// substituted: plan_with(planner, policy, ...) from any .cu file. CUDA source only.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/budget_policy.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"
#include "vortex/kernels/cuda/sparse_planner.h"

namespace vortex::gpu {

/// One thread per row r = b * H_kv + h (and one for the sentinel r = rows): packed[r] =
/// (count << 32) | chunks; totals[2] counts sparse rows (zeroed by the caller).
template <class Policy>
__global__ void plan_rows_kernel(PageTableView pt, int32_t num_kv_heads, BudgetArgs args,
                                 int32_t layer, int32_t chunk_pages, Policy policy,
                                 unsigned long long* packed, int32_t* totals) {
  vortex::gpu::pdl_enter();
  const int32_t rows = pt.batch_size * num_kv_heads;
  const int32_t r = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (r > rows) return;
  if (r == rows) {
    packed[r] = 0ull;
    return;
  }
  const int32_t b = r / num_kv_heads;
  const int32_t n = pt.page_indptr[b + 1] - pt.page_indptr[b];
  const RowPlan rp = plan_row(policy, n, args, layer, chunk_pages);
  packed[r] = (static_cast<unsigned long long>(rp.count) << 32) |
              static_cast<unsigned long long>(static_cast<uint32_t>(rp.chunks));
  if (!rp.dense) atomicAdd(&totals[2], 1);
}

/// Plans with `policy`: zero the totals, rows kernel, then SparsePlanner::finish (scan, finalize).
template <class Policy>
Status plan_with(SparsePlanner& planner, const Policy& policy, const PageTableView& pt,
                 const BudgetArgs& args, int32_t layer, cudaStream_t stream) {
  const PlannerConfig& c = planner.config();
  if (pt.batch_size < 0 || pt.batch_size > c.max_batch) {
    return invalid_argument("sparse planner: batch " + std::to_string(pt.batch_size) +
                            " outside [0, max_batch " + std::to_string(c.max_batch) + "]");
  }
  if (args.bos < 0 || args.eos < 0 || args.topk_val < 0) {
    return invalid_argument("sparse planner: bos, eos and topk_val must be >= 0");
  }
  VORTEX_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(planner.totals(), 0, 4 * sizeof(int32_t), stream));
  const int32_t rows = pt.batch_size * c.num_kv_heads;
  const int32_t threads = 256;
  const int32_t blocks = (rows + 1 + threads - 1) / threads;
  (void)vortex::gpu::launch_kernel(plan_rows_kernel<Policy>, blocks, threads, 0, stream, pt,
                                   c.num_kv_heads, args, layer, c.chunk_pages, policy,
                                   planner.packed_counts(), planner.totals());
  VORTEX_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return planner.finish(pt, args, stream);
}

}  // namespace vortex::gpu
