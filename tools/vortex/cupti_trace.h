// Kernel timestamps of what the GPU ran, from CUPTI's activity API (the mechanism Nsight Systems
// uses; kernels inside replayed CUDA graphs included). CUPTI is loaded at run time (dlopen of
// libcupti.so.13 / libcupti.so), so the binary runs without it unless a trace is asked for.
#pragma once

#if defined(VORTEX_WITH_CUDA)

#include <memory>
#include <vector>

#include "vortex/core/kernel_timeline.h"
#include "vortex/core/status.h"

namespace vortex::tools {

class KernelTracer {
 public:
  /// Loads CUPTI and registers its buffers; an error names the library it looked for.
  static Expected<std::unique_ptr<KernelTracer>> create();
  ~KernelTracer();
  KernelTracer(const KernelTracer&) = delete;
  KernelTracer& operator=(const KernelTracer&) = delete;

  /// Starts recording kernel executions (every stream, every context).
  Status begin();
  /// Stops recording and returns the kernels that ran since begin(), by start time. The caller
  /// synchronises the device first (records of unfinished kernels are not flushed).
  Expected<std::vector<KernelSpan>> end();

 private:
  KernelTracer() = default;
  struct Api;
  std::unique_ptr<Api> api_;
  bool active_ = false;
};

}  // namespace vortex::tools

#endif  // VORTEX_WITH_CUDA
