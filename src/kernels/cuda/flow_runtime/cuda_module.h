// The CUDA driver API as the flow runtime uses it: module load / unload, kernel lookup, dynamic
// shared memory opt-in, occupancy and launches. The entry points are resolved through the runtime
// (cudaGetDriverEntryPointByVersion), so binaries do not link libcuda and load on machines
// without a driver (where the first use reports an error instead).
#pragma once

#include <cuda.h>
#include <cuda_runtime_api.h>

#include <string>

#include "vortex/core/status.h"

namespace vortex::gpu::detail {

/// Owns one loaded module (CUmodule) of the current context; move-only.
class CudaModule {
 public:
  CudaModule() = default;
  /// Loads a cubin into the current context (the device's primary context).
  static Expected<CudaModule> load(const std::string& image);
  ~CudaModule();
  CudaModule(CudaModule&& o) noexcept : module_(o.module_) { o.module_ = nullptr; }
  CudaModule& operator=(CudaModule&& o) noexcept;
  CudaModule(const CudaModule&) = delete;
  CudaModule& operator=(const CudaModule&) = delete;

  /// The kernel named `name` (extern "C").
  Expected<CUfunction> function(const std::string& name) const;

 private:
  CUmodule module_ = nullptr;
};

/// Lets `f` use `bytes` of dynamic shared memory (needed above 48 KiB).
Status set_dynamic_smem(CUfunction f, int bytes);
/// CTAs of `f` resident per SM at `threads` and `smem` bytes.
Expected<int> resident_ctas_per_sm(CUfunction f, int threads, int smem);
/// Launches `f` on `stream` with a 1-D grid and the given parameter pointers.
Status launch(CUfunction f, int grid, int threads, int smem, cudaStream_t stream, void** params,
              const char* what);

}  // namespace vortex::gpu::detail
