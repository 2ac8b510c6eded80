// The CUDA backend: CudaModel over a bf16 paged KV cache in device memory, with sampling on the
// device (only token ids come back) and decode steps replayed from CUDA graphs per batch-size
// bucket. The pool is sized from a fraction of the device memory left free after the weights (or
// an explicit page count) with KVCacheConfig::bytes_per_page, which includes every loaded flow's
// aux fields. Logprobs, when a request asks for them, are computed on the host from the step's
// logits (the raw model distribution, as on the CPU backend).
//
// Without the CUDA backend in the build, make_cuda_backend returns an error that says to use
// --device cpu.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/engine/backend.h"
#include "vortex/flow/runtime.h"

namespace vortex {
struct Checkpoint;
}  // namespace vortex

namespace vortex::engine {

struct CudaBackendOptions {
  int32_t device = 0;
  int32_t page_size = 16;
  int64_t kv_pages = 0;             ///< > 0: exactly this many pages
  double kv_memory_fraction = 0.9;  ///< else this fraction of the device memory free after load
  int32_t max_batch = 256;          ///< most sequences per step (the largest graph bucket)
  int32_t max_tokens = 8192;        ///< most tokens per step (the prefill chunk budget)
  bool use_graphs = true;           ///< capture and replay decode steps
  /// Time cuBLASLt's candidates per GEMM shape (fastest; off: the heuristic's first pick, the
  /// same bits in every model instance — for tests comparing two backends).
  bool gemm_autotune = true;
  std::vector<const flow::SparseConfig*> flows;  ///< every loaded sparse flow (aux fields)
  std::string model_name;  ///< reported by /v1/models; default: the config's name
};

/// Loads `model` on the GPU and builds the CUDA backend over it. `synthetic:<preset>[@<seed>]`
/// generates its weights on the device (no host copy); anything else goes through load_checkpoint,
/// or uses `checkpoint` when given (its weights are uploaded as bf16). Errors name the option to
/// change.
Expected<std::unique_ptr<Backend>> make_cuda_backend(const std::string& model,
                                                     const CudaBackendOptions& options,
                                                     const Checkpoint* checkpoint = nullptr);

}  // namespace vortex::engine
