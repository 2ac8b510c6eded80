// The CPU backend: CpuModel over a KVCache whose pool the engine admits against, plus one seeded
// Sampler per request. The pool is sized from a fraction of physical RAM (or an explicit page
// count) with KVCacheConfig::bytes_per_page, which includes every loaded flow's aux fields.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vortex/core/dtype.h"
#include "vortex/core/status.h"
#include "vortex/engine/backend.h"
#include "vortex/flow/runtime.h"
#include "vortex/model/cpu_model.h"

namespace vortex::engine {

struct CpuBackendOptions {
  int32_t page_size = 16;
  DType kv_dtype = DType::kF32;
  int64_t kv_pages = 0;                          ///< > 0: exactly this many pages
  double kv_memory_fraction = 0.2;               ///< else this fraction of physical RAM
  std::vector<const flow::SparseConfig*> flows;  ///< every loaded sparse flow (aux fields)
  std::string model_name;  ///< reported by /v1/models; default: the config's name
};

/// Physical RAM in bytes (0 if unknown).
int64_t physical_memory_bytes();

/// Builds the CPU backend; errors name the option to change (e.g. a pool too small for one page).
Expected<std::unique_ptr<Backend>> make_cpu_backend(std::unique_ptr<CpuModel> model,
                                                    const CpuBackendOptions& options);

}  // namespace vortex::engine
