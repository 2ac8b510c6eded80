// The device planner of a sparse decode step (ARCHITECTURE §6.1, FLOW_SPEC "Selection"): per row
// n pages, the budget from a policy (budget_policy.h), the dense / sparse decision, the selection
// CSR offsets by a multi-block device scan (any number of rows), and the indexer worklist. All on
// the device with preallocated buffers, no host sync: graph-safe.
#pragma once

#include <cuda_runtime_api.h>
#include <vector_types.h>

#include <cstdint>

#include "vortex/core/allocator.h"
#include "vortex/core/status.h"
#include "vortex/kernels/cuda/budget_policy.h"
#include "vortex/kvcache/layout.h"

namespace vortex::gpu {

/// The planner's indexer worklist: item i = (row, first candidate page of the chunk); a chunk is
/// `chunk_pages` logical pages of the row's candidates [bos, n - eos_eff). Device pointers.
struct WorkListView {
  const int2* items = nullptr;     // [capacity]
  const int32_t* count = nullptr;  // [1] items in use (device)
  int32_t capacity = 0;
  int32_t chunk_pages = 0;
  int32_t bos = 0;
  int32_t eos = 0;  ///< effective eos (>= 1: the partial last page is always selected)
};

struct PlannerConfig {
  int32_t max_batch = 0;              ///< largest B
  int32_t num_kv_heads = 0;           ///< H_kv
  int32_t max_pages_per_request = 0;  ///< sizes sel_indices and the worklist
  int32_t chunk_pages = 64;           ///< workload_chunk_size
  int32_t device = 0;
};

/// Device planner. plan() launches: rows kernel (budget per row) -> device exclusive scan (CUB,
/// multi-block, any number of rows) -> finalize (sel_indptr, worklist, totals). No host sync.
class SparsePlanner {
 public:
  static Expected<SparsePlanner> create(const PlannerConfig& config);

  /// Plans a decode batch with the default budget policy (or a custom one: plan_with in
  /// planner_device.cuh). `pt` holds device pointers, pt.batch_size <= max_batch.
  Status plan(const PageTableView& pt, const BudgetArgs& args, int32_t layer, cudaStream_t stream);
  /// After a rows kernel wrote packed_counts() (and zeroed/counted totals()[2]): scan + finalize.
  Status finish(const PageTableView& pt, const BudgetArgs& args, cudaStream_t stream);

  /// The selection CSR (rows b * H_kv + h); sel_indices is filled by select_topk().
  SelectionView selection(int32_t batch) const;
  int32_t* sel_indices() const { return static_cast<int32_t*>(sel_indices_.data()); }
  const int32_t* sel_indptr() const { return static_cast<const int32_t*>(sel_indptr_.data()); }
  WorkListView worklist() const;
  /// [0] selected pages, [1] worklist items, [2] sparse rows, [3] 1 if a capacity overflowed.
  int32_t* totals() const { return static_cast<int32_t*>(totals_.data()); }
  /// [B * H_kv + 1] (count << 32 | chunks) per row, written by the rows kernel.
  unsigned long long* packed_counts() const {
    return static_cast<unsigned long long*>(packed_.data());
  }
  const PlannerConfig& config() const { return config_; }
  int32_t eos_effective() const { return eos_eff_; }
  int32_t bos() const { return bos_; }
  int64_t sel_capacity() const { return sel_capacity_; }

 private:
  SparsePlanner() = default;
  PlannerConfig config_;
  int32_t bos_ = 0, eos_eff_ = 1;
  int64_t sel_capacity_ = 0, work_capacity_ = 0;
  Buffer packed_;       // [max_rows + 1] u64
  Buffer offsets_;      // [max_rows + 1] u64 (exclusive scan)
  Buffer sel_indptr_;   // [max_rows + 1] i32
  Buffer sel_indices_;  // [sel_capacity] i32
  Buffer work_;         // [work_capacity] int2
  Buffer totals_;       // [4] i32
  Buffer scan_temp_;    // CUB temporary storage
  size_t scan_temp_bytes_ = 0;
};

}  // namespace vortex::gpu
