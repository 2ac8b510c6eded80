// Internals of the CUDA code generator shared by its files: the per-side analysis (which step
// defines a value, who reads it, where values that cross kernels live) and the kernel body
// emitter (element expressions with broadcasting and index remaps, materialisation phases).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "vortex/compiler/codegen_cuda.h"
#include "vortex/compiler/plan.h"
#include "vortex/core/status.h"

namespace vortex::compiler::cuda_detail {

inline constexpr int kFusedThreads = 128;
inline constexpr int kPageAxisThreads = 256;
inline constexpr int kMaxSubBatch = 32;
inline constexpr int64_t kMaxSmemBytes = 227 * 1024;  // sm_90 opt-in limit per CTA

/// A C++ float literal that round-trips `v` as float ("0.5f", "(-2.0f)").
std::string flt(double v);
/// The storage type of a dtype in generated code ("unsigned short" for bf16, "float").
const char* ctype(DType t);
/// `x` wrapped in parentheses unless it is a plain identifier or number.
std::string par(const std::string& x);

/// Where a value that crosses kernels lives.
struct GlobalStore {
  enum Kind : uint8_t { kNone, kBuffer, kScores } kind = kNone;
  int32_t buffer = -1;
};

/// One side of the plan, analysed.
struct SideInfo {
  const SidePlan* plan = nullptr;
  std::vector<int32_t> step_of;             // [values] index in plan->steps (-1: undefined)
  std::vector<std::vector<int32_t>> users;  // [values] reading steps (one per operand)
  std::vector<GlobalStore> global;          // [values] indexer values read across kernels
  std::set<int32_t> deferred_saves;         // Save steps whose value goes through a buffer
  std::vector<CudaBufferSpec> buffers;      // GlobalStore::buffer indexes these

  const PlanStep& step(int32_t value) const {
    return plan->steps[static_cast<size_t>(step_of[static_cast<size_t>(value)])];
  }
  int32_t group_of(int32_t value) const { return step(value).group; }
  bool is_source(int32_t value) const { return group_of(value) < 0; }
};

SideInfo analyse(const SidePlan& plan);

/// True for ops computed by a reduction loop (always materialised).
bool is_reduction(flow::OpKind op);

/// Emits the body of one kernel: expressions for values, phases that materialise them.
class BodyEmitter {
 public:
  enum class Mode : uint8_t { kFused, kCache, kPageAxis };

  BodyEmitter(const SideInfo& si, const CudaCodegenOptions& opt, Mode mode, int32_t group);

  /// The float expression of element (s, i, j) of `value`; `s` is the page within the sub-batch
  /// (fused, cache) or the logical page of the row (page-axis). Broadcasting is applied here.
  std::string elem(int32_t value, const std::string& s, std::string i, std::string j);

  /// Values of the current group that need a phase, and those kept in shared memory.
  bool needs_phase(int32_t value) const;
  bool in_smem(int32_t value) const { return smem_.count(value) != 0; }
  /// Code computing `value` for every page of the sub-batch (or once, for ROW values), storing it
  /// to shared memory and / or its global destination.
  std::string phase(int32_t value, bool row_prologue);
  /// Code writing Save step `step` into its field (fused kernels).
  std::string save(int32_t step);

  /// Layout, decided from the group before any code is emitted.
  bool per_page(int32_t value) const;
  void set_sub_batch(int sb) { sb_ = sb; }
  int sub_batch() const { return sb_; }
  void set_smem_offset(int32_t value, int64_t bytes) { smem_[value] = bytes; }
  const std::map<int32_t, int64_t>& smem_values() const { return smem_; }
  /// Tiles of sources read in this kernel: plan field id (or kFieldK / kFieldV) -> byte offset.
  std::map<int32_t, int64_t>& tiles() { return tiles_; }
  int64_t tile_elems(int32_t field) const;
  int64_t tile_bytes(int32_t field) const;
  bool uses_q() const { return uses_q_; }
  void need_q() { uses_q_ = true; }
  /// Per-layer Parameter arrays referenced (value -> declared), emitted once per source.
  const std::set<int32_t>& params() const { return params_; }

  const SideInfo& info() const { return si_; }
  Mode mode() const { return mode_; }
  int32_t group() const { return group_; }
  /// The global store statement(s) of `value` = `r` for page `s` / element `e` (no smem).
  std::string global_store(int32_t value, const std::string& s, const std::string& e,
                           const std::string& r) const;
  std::string page_index(const std::string& s) const;  // row page-space index of page s

 private:
  std::string inline_elem(const PlanStep& st, const std::string& s, const std::string& i,
                          const std::string& j);
  std::string source_elem(const PlanStep& st, const std::string& s, const std::string& e);
  std::string reduction_term(const PlanStep& st, const std::string& s, const std::string& i,
                             const std::string& j, int64_t* length, int* lanes);

  const SideInfo& si_;
  CudaCodegenOptions opt_;
  Mode mode_;
  int32_t group_;
  int sb_ = 1;
  bool uses_q_ = false;
  std::map<int32_t, int64_t> smem_;   // value -> byte offset of its [SB?, tile] floats
  std::map<int32_t, int64_t> tiles_;  // field -> byte offset of its [2, SB, r*c] raw tile
  std::set<int32_t> params_;
};

/// Emits the kernels of the indexer's page-axis (boundary) groups, the streaming scores and the
/// Save commit (codegen_cuda_page_axis.cpp).
std::string emit_page_axis_kernel(const SideInfo& si, const CudaCodegenOptions& opt, int32_t group,
                                  CudaKernelSpec* spec);
std::string emit_streaming_kernel(CudaKernelSpec* spec);
std::string emit_commit_kernel(const SideInfo& si, const CudaCodegenOptions& opt, int32_t step,
                               CudaKernelSpec* spec);
std::string emit_plan_rows_kernel(const flow::PolicyExpr* policy);
/// The `__device__ const float vx_param_<side><value>[]` arrays of every Parameter / Conv1d
/// weight of `si` (name prefix "c" for cache, "i" for indexer).
std::string emit_constants(const SideInfo& si, const char* prefix);

/// Emits a fused indexer group or the cache flow kernel (codegen_cuda_fused.cpp).
Expected<std::string> emit_fused_kernel(const SideInfo& si, const CudaCodegenOptions& opt,
                                        int32_t group, const std::vector<int32_t>& extra_outputs,
                                        CudaKernelSpec* spec);

}  // namespace vortex::compiler::cuda_detail
