// The CUDA runtime of generated flows: NVRTC compilation for sm_90a, the on-disk cubin cache
// (keyed by SHA-256 of source + arch + flags + NVRTC version, so editing a flow can never run stale
// code), module loading through the CUDA driver API, and CudaFlowRunner — what the CUDA model
// calls per layer of a decode step: the cache flow of the pages completed this step, the planner
// rows with the flow's budget policy, the indexer kernels and the top-k that fills the selection.
// Every per-step call only enqueues kernels on preallocated memory (graph-capturable).
//
// Built with the cuda preset (target vortex::flow_cuda); needs no GPU to compile flows.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/compiler/codegen_cuda.h"
#include "vortex/core/status.h"
#include "vortex/flow/runtime.h"
#include "vortex/kernels/cuda/sparse_planner.h"
#include "vortex/kvcache/kv_cache.h"

namespace vortex::gpu {

/// The NVRTC flags generated flows are compiled with (--gpu-architecture=sm_90a, C++17, ...).
std::vector<std::string> flow_compile_flags();
/// The target architecture ("sm_90a").
std::string_view flow_compile_arch();
/// NVRTC's version, "major.minor".
std::string nvrtc_version();
/// Compiles one translation unit with NVRTC; the cubin, or an error carrying the compiler log.
/// `log` (optional) receives the log of a successful compile (warnings).
Expected<std::string> nvrtc_compile(std::string_view source, std::string_view name,
                                    const std::vector<std::string>& flags,
                                    std::string* log = nullptr);

/// On-disk cache of compiled modules: <dir>/<key>.cubin with a header (magic, size, SHA-256 of the
/// image) that is verified on load, written atomically (temp file + rename).
class CubinCache {
 public:
  /// `dir` empty: $VORTEX_CACHE_DIR/kernels, else $HOME/.cache/vortex/kernels; when neither
  /// resolves the cache is off (every load misses, stores do nothing).
  explicit CubinCache(std::string dir = "");
  const std::string& dir() const { return dir_; }
  /// The image stored under `key`, or nullopt when absent, truncated or corrupt.
  std::optional<std::string> load(const std::string& key) const;
  /// Stores `image` under `key` (errors: the directory or file cannot be written).
  Status store(const std::string& key, std::string_view image) const;
  std::string path(const std::string& key) const;

 private:
  std::string dir_;
};

/// A compiled module image and where it came from.
struct CompiledModule {
  std::string key;  ///< compiler::cuda_module_key of the source and flags
  std::string image;
  bool from_cache = false;
};
/// Loads `source`'s module from `cache`, or compiles it with flow_compile_flags() and stores it.
/// A cache that cannot be written is not an error (logged once).
Expected<CompiledModule> compile_cached(std::string_view source, std::string_view name,
                                        const CubinCache& cache);

struct CudaFlowRunnerConfig {
  int32_t num_q_heads = 0;   ///< H_q
  int32_t num_kv_heads = 0;  ///< H_kv
  int32_t head_dim = 0;      ///< D
  int32_t page_size = 0;     ///< P; 0: the flow's BudgetParams::block_size
  DType q_dtype = DType::kBF16;
  DType kv_dtype = DType::kBF16;
  DType aux_dtype = DType::kBF16;
  int32_t max_batch = 0;              ///< most requests per call (sizes scratch buffers)
  int32_t max_pages_per_request = 0;  ///< most pages of one request (sizes scratch buffers)
  /// Most pages of all requests of one call (page_indptr[B]); 0: max_batch * max_pages_per_request.
  /// Sizes the per-page scratch buffers and scores() (row page space).
  int64_t max_total_pages = 0;
  int32_t device = 0;
  std::string cache_dir;  ///< empty: CubinCache's default
  /// Code generation tuning (compiler::CudaCodegenOptions::reduction_lane_elems).
  int32_t reduction_lane_elems = 8;
};

/// One flow (program + budget) compiled for one model shape. create() is the plan step (codegen,
/// NVRTC or the disk cache, module load, buffers); the other calls only launch.
class CudaFlowRunner {
 public:
  /// Errors: a dense flow (nothing to run), shapes the flow does not verify at, dtypes other than
  /// f32 / bf16, NVRTC failures.
  static Expected<std::unique_ptr<CudaFlowRunner>> create(const flow::SparseConfig& sparse,
                                                          const CudaFlowRunnerConfig& config);
  ~CudaFlowRunner();
  CudaFlowRunner(const CudaFlowRunner&) = delete;
  CudaFlowRunner& operator=(const CudaFlowRunner&) = delete;

  const compiler::CudaFlowSource& generated() const;
  const CompiledModule& module() const;
  /// Layers the budget runs dense (BudgetParams::layers_skip): no cache flow, no selection.
  bool layer_is_dense(int32_t layer) const;
  /// The planner's arguments from the flow's BudgetParams.
  BudgetArgs budget_args() const;
  /// approxTopK's tolerance (0: exact).
  float tolerance() const;
  /// True when the budget policy reads `layer`: plan() per sparse layer, not once per step.
  bool budget_depends_on_layer() const;

  /// Cache flow: writes the flow's aux fields of `layer` for the first min(*count, max_pages) ids
  /// of `pages` (device; `count` device or null = max_pages), for every KV head. No-op on dense
  /// layers and layers whose cache keeps no aux fields.
  Status run_cache_flow(const KVCache& cache, int32_t layer, const int32_t* pages,
                        const int32_t* count, int32_t max_pages, cudaStream_t stream);
  /// Planner rows with the flow's budget policy (generated), then SparsePlanner::finish: the
  /// selection CSR offsets and the indexer worklist. `pt` holds device pointers.
  Status plan(SparsePlanner& planner, const PageTableView& pt, int32_t layer, cudaStream_t stream);
  /// Indexer: scores every candidate page of `work` into the row page space `scores` (fp32).
  ///   q  [pt.batch_size, H_q, D] (config q dtype), after RoPE / q-norm
  Status score(const KVCache& cache, int32_t layer, const void* q, const PageTableView& pt,
               const WorkListView& work, float* scores, cudaStream_t stream);
  /// score() into the runner's own buffer, then the (approximate) radix top-k that fills the
  /// planner's sel_indices; returns the selection of the pt.batch_size requests.
  Expected<SelectionView> select(const KVCache& cache, int32_t layer, const void* q,
                                 const PageTableView& pt, SparsePlanner& planner,
                                 cudaStream_t stream);
  /// The runner's score buffer (row page space, max_total_pages * H_kv floats).
  float* scores() const;

 private:
  CudaFlowRunner();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vortex::gpu
