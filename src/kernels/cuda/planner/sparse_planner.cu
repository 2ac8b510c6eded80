// Host side of the sparse planner: buffers sized once, the CUB multi-block exclusive scan of the
// packed per-row counts, and the finalize kernel (sel_indptr, worklist, totals).
#include <cub/device/device_scan.cuh>
#include <utility>

#include "vortex/core/cuda_allocator.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"
#include "vortex/kernels/cuda/planner_device.cuh"
#include "vortex/kernels/cuda/sparse_planner.h"

namespace vortex::gpu {
namespace {

/// Row r <= rows: sel_indptr[r] = selected pages before r (clamped to the capacity), the row's
/// worklist items; the sentinel thread writes the totals.
__global__ void finalize_kernel(const unsigned long long* offsets, const unsigned long long* packed,
                                int32_t rows, int32_t chunk_pages, int32_t bos,
                                int64_t sel_capacity, int32_t work_capacity, int32_t* sel_indptr,
                                int2* work, int32_t* totals) {
  vortex::gpu::pdl_enter();
  const int32_t r = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (r > rows) return;
  const unsigned long long off = offsets[r];
  const int64_t sel_off = static_cast<int64_t>(off >> 32);
  const int64_t work_off = static_cast<int64_t>(off & 0xffffffffull);
  sel_indptr[r] = static_cast<int32_t>(sel_off < sel_capacity ? sel_off : sel_capacity);
  if (r == rows) {
    totals[0] = static_cast<int32_t>(sel_off < sel_capacity ? sel_off : sel_capacity);
    totals[1] = static_cast<int32_t>(work_off < work_capacity ? work_off : work_capacity);
    totals[3] = (sel_off > sel_capacity || work_off > work_capacity) ? 1 : 0;
    return;
  }
  const int32_t chunks = static_cast<int32_t>(packed[r] & 0xffffffffull);
  for (int32_t c = 0; c < chunks; ++c) {
    const int64_t i = work_off + c;
    if (i < work_capacity) work[i] = make_int2(r, bos + c * chunk_pages);
  }
}

}  // namespace

Expected<SparsePlanner> SparsePlanner::create(const PlannerConfig& c) {
  if (c.max_batch <= 0 || c.num_kv_heads <= 0 || c.max_pages_per_request <= 0 ||
      c.chunk_pages <= 0) {
    return invalid_argument(
        "sparse planner config: max_batch, num_kv_heads, max_pages_per_request and chunk_pages "
        "must be positive");
  }
  const int64_t rows = static_cast<int64_t>(c.max_batch) * c.num_kv_heads;
  const int64_t sel_cap = rows * c.max_pages_per_request;
  const int64_t work_cap =
      rows * ((static_cast<int64_t>(c.max_pages_per_request) + c.chunk_pages - 1) / c.chunk_pages);
  if (sel_cap >= (int64_t{1} << 31) || rows + 1 >= (int64_t{1} << 31)) {
    return invalid_argument("sparse planner config: max_batch * H_kv * max_pages_per_request (" +
                            std::to_string(sel_cap) + ") must stay below 2^31");
  }
  VORTEX_CUDA_RETURN_IF_ERROR(cudaSetDevice(c.device));
  VORTEX_ASSIGN_OR_RETURN(Allocator * alloc, cuda_allocator(c.device));
  SparsePlanner p;
  p.config_ = c;
  p.sel_capacity_ = sel_cap;
  p.work_capacity_ = work_cap;
  const size_t n = static_cast<size_t>(rows + 1);
  VORTEX_ASSIGN_OR_RETURN(p.packed_, Buffer::allocate(*alloc, n * 8));
  VORTEX_ASSIGN_OR_RETURN(p.offsets_, Buffer::allocate(*alloc, n * 8));
  VORTEX_ASSIGN_OR_RETURN(p.sel_indptr_, Buffer::allocate(*alloc, n * 4));
  VORTEX_ASSIGN_OR_RETURN(p.sel_indices_,
                          Buffer::allocate(*alloc, static_cast<size_t>(sel_cap) * 4));
  VORTEX_ASSIGN_OR_RETURN(p.work_,
                          Buffer::allocate(*alloc, static_cast<size_t>(work_cap) * sizeof(int2)));
  VORTEX_ASSIGN_OR_RETURN(p.totals_, Buffer::allocate(*alloc, 4 * sizeof(int32_t)));
  VORTEX_CUDA_RETURN_IF_ERROR(cub::DeviceScan::ExclusiveSum(
      nullptr, p.scan_temp_bytes_, static_cast<unsigned long long*>(nullptr),
      static_cast<unsigned long long*>(nullptr), static_cast<int>(n)));
  VORTEX_ASSIGN_OR_RETURN(p.scan_temp_, Buffer::allocate(*alloc, p.scan_temp_bytes_ + 16));
  VORTEX_CUDA_RETURN_IF_ERROR(cudaMemset(p.totals_.data(), 0, 4 * sizeof(int32_t)));
  return Expected<SparsePlanner>(std::move(p));
}

Status SparsePlanner::plan(const PageTableView& pt, const BudgetArgs& args, int32_t layer,
                           cudaStream_t stream) {
  return plan_with(*this, DefaultBudgetPolicy(), pt, args, layer, stream);
}

Status SparsePlanner::finish(const PageTableView& pt, const BudgetArgs& args, cudaStream_t stream) {
  const int32_t rows = pt.batch_size * config_.num_kv_heads;
  bos_ = args.bos;
  eos_eff_ = effective_eos(args.eos);
  size_t temp_bytes = scan_temp_bytes_;
  VORTEX_CUDA_RETURN_IF_ERROR(cub::DeviceScan::ExclusiveSum(
      scan_temp_.data(), temp_bytes, packed_counts(),
      static_cast<unsigned long long*>(offsets_.data()), rows + 1, stream));
  const int32_t threads = 256;
  (void)vortex::gpu::launch_kernel(
      finalize_kernel, (rows + 1 + threads - 1) / threads, threads, 0, stream,
      static_cast<const unsigned long long*>(offsets_.data()), packed_counts(), rows,
      config_.chunk_pages, args.bos, sel_capacity_, static_cast<int32_t>(work_capacity_),
      static_cast<int32_t*>(sel_indptr_.data()), static_cast<int2*>(work_.data()), totals());
  VORTEX_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::ok();
}

SelectionView SparsePlanner::selection(int32_t batch) const {
  return {sel_indptr(), sel_indices(), batch * config_.num_kv_heads};
}

WorkListView SparsePlanner::worklist() const {
  WorkListView w;
  w.items = static_cast<const int2*>(work_.data());
  w.count = totals() + 1;
  w.capacity = static_cast<int32_t>(work_capacity_);
  w.chunk_pages = config_.chunk_pages;
  w.bos = bos_;
  w.eos = eos_eff_;
  return w;
}

}  // namespace vortex::gpu
