// CUDA code generation for lowered flow plans (ARCHITECTURE §5): every fused group of a plan
// becomes one CUDA C++ kernel — the cache flow one kernel computing every aux field of the pages
// completed this step from each page's K/V tile loaded once; each fused indexer group a
// persistent-grid kernel over the planner's worklist (the row's q tile loaded once per chunk,
// per-page field tiles streamed through shared memory two sub-batches deep, fp32 in registers,
// only group outputs stored); each page-axis op (softmax / normalize / reduce / conv over pages)
// a standalone kernel over the row's pages. The budget policy becomes the planner's rows kernel.
// The source is self-contained (a small prelude of bf16 and reduction helpers, no includes), made
// for NVRTC with --gpu-architecture=sm_90a; the runtime is vortex/kernels/cuda/flow_runtime.h.
//
// Plain C++: builds and is tested without CUDA (`vortex flow show NAME --emit=cuda`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/compiler/plan.h"
#include "vortex/core/dtype.h"
#include "vortex/core/status.h"

namespace vortex::flow {
class PolicyExpr;
}

namespace vortex::compiler {

/// Most aux fields / scratch buffers one generated module can address (kernel argument block).
inline constexpr int kCudaMaxFields = 16;
inline constexpr int kCudaMaxBuffers = 16;

/// The argument block every generated kernel takes by value (the generated source declares the
/// same struct as `VxArgs` and static_asserts its size and offsets against this one). Device
/// pointers; layouts as in vortex/kvcache/layout.h.
struct CudaKernelArgs {
  const void* q = nullptr;                // [B, H_q, D] (q dtype)
  const int32_t* page_indptr = nullptr;   // [B + 1]
  const int32_t* page_indices = nullptr;  // [page_indptr[B]]
  const void* work_items = nullptr;       // int2 [work_capacity]: (row, first candidate page)
  const int32_t* work_count = nullptr;    // [1] items in use
  float* scores = nullptr;                // row page space: [page_indptr[B] * H_kv]
  const int32_t* cache_pages = nullptr;   // cache flow: completed page ids [cache_max_pages]
  const int32_t* cache_count = nullptr;   // cache flow: [1] pages in use, or null
  const void* k = nullptr;                // [num_pages, H_kv, P, D] (kv dtype)
  const void* v = nullptr;                // [num_pages, H_kv, P, D]
  void* field[kCudaMaxFields] = {};       // aux field f of this layer [num_pages, H_kv, r, c]
  float* buf[kCudaMaxBuffers] = {};       // scratch: page space [.., tile] or rows [B*H_kv, tile]
  int32_t batch = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t layer = 0;
  int32_t work_capacity = 0;
  int32_t chunk_pages = 0;
  int32_t bos = 0;
  int32_t eos = 1;  ///< effective eos (>= 1)
  int32_t cache_max_pages = 0;
  int32_t reserved = 0;
};

struct CudaCodegenOptions {
  DType q_dtype = DType::kBF16;    ///< f32 or bf16
  DType kv_dtype = DType::kBF16;   ///< f32 or bf16
  DType aux_dtype = DType::kBF16;  ///< f32 or bf16 (every field of the flow)
  /// Budget policy compiled into the planner's rows kernel (null: the default policy).
  const flow::PolicyExpr* policy = nullptr;
  /// Shared memory per CTA for the per-page tiles of a fused kernel (the page sub-batch size is
  /// chosen to fit); a single page may use more, up to the sm_90 limit.
  int32_t tile_smem_budget = 40 * 1024;
  /// A reduction of K terms inside a page runs on pow2 <= K / this lanes per output (1..32; the
  /// rest folds sequentially per lane): the tuning knob between shuffles and per-lane work.
  int32_t reduction_lane_elems = 8;
};

enum class CudaKernelKind : uint8_t {
  kCacheFlow,        ///< grid over (completed page, kv head) items
  kFused,            ///< persistent grid over the worklist
  kPageAxis,         ///< one CTA per sparse row (first chunk of the row in the worklist)
  kStreamingScores,  ///< streaming flows: score = logical page index
  kSaveCommit,       ///< writes deferred Save values into their field
};

/// One generated kernel and how to launch it (the args are one CudaKernelArgs).
struct CudaKernelSpec {
  std::string name;  ///< extern "C" symbol
  CudaKernelKind kind = CudaKernelKind::kFused;
  int32_t group = -1;           ///< plan group it implements (-1: none)
  int32_t threads = 128;        ///< CTA size
  int32_t smem_bytes = 0;       ///< dynamic shared memory
  int32_t pages_per_batch = 0;  ///< page sub-batch of fused / cache kernels
  std::string what;             ///< one line for logs ("fused group 0: %v1 %v3")
};

/// A scratch buffer the runtime allocates: values that cross kernels.
struct CudaBufferSpec {
  bool per_page = true;  ///< row page space [Σ n_b · H_kv, tile]; else rows [B · H_kv, tile]
  int64_t tile = 1;      ///< floats per page (or row)
  int32_t value = -1;    ///< the indexer plan value it holds
};

struct CudaFieldSpec {
  std::string name;  ///< as declared ("centroid"); the cache stores "<flow>/<name>"
  int64_t rows = 0;
  int64_t cols = 0;
};

/// Everything the runtime needs to compile and run a flow's generated code.
struct CudaFlowSource {
  std::string flow;
  flow::FlowMode mode = flow::FlowMode::kSparse;
  flow::ShapeEnv env;
  DType q_dtype = DType::kBF16, kv_dtype = DType::kBF16, aux_dtype = DType::kBF16;
  std::string source;                           ///< the whole NVRTC translation unit
  std::vector<CudaKernelSpec> cache_kernels;    ///< run_cache_flow launches these in order
  std::vector<CudaKernelSpec> indexer_kernels;  ///< scoring launches these in order (no top-k)
  std::string plan_rows_kernel;  ///< the planner's rows kernel with the budget policy
  std::vector<CudaBufferSpec> buffers;
  std::vector<CudaFieldSpec> fields;  ///< every declared field, plan order
  float tolerance = 0.0f;             ///< approxTopK tolerance (0: exact top-k)
  int64_t param_layers = 0;  ///< per-layer Parameter slices available (0: none are per layer)
  bool uses_save = false;
};

/// Generates the CUDA source of `plan` (both sides at plan.env). Errors: a flow whose tiles do not
/// fit the shared memory of an sm_90 CTA, or more fields / scratch buffers than the argument block
/// holds; unsupported dtypes.
Expected<CudaFlowSource> emit_cuda(const Plan& plan, const CudaCodegenOptions& options = {});

/// SHA-256 of `data` as 64 lowercase hex digits (FIPS 180-4).
std::string sha256_hex(std::string_view data);

/// The on-disk cache key of a compiled module: SHA-256 over the source, the target architecture,
/// every compile flag and the compiler's version, so that any change recompiles.
std::string cuda_module_key(std::string_view source, std::string_view arch,
                            const std::vector<std::string>& flags,
                            std::string_view compiler_version);

}  // namespace vortex::compiler
