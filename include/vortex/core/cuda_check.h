// Checked CUDA runtime calls (only when built with CUDA). A failing call aborts with the file,
// line, expression and CUDA's error string; use cuda_status() where the caller can recover.
#pragma once

#if defined(VORTEX_WITH_CUDA)
#include <cuda_runtime_api.h>

#include <string>

#include "vortex/core/status.h"

namespace vortex {

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::ok();
  const StatusCode code =
      err == cudaErrorMemoryAllocation ? StatusCode::kOutOfMemory : StatusCode::kInternal;
  return Status(code, std::string(what) + ": " + cudaGetErrorName(err) + " (" +
                          cudaGetErrorString(err) + ")");
}

}  // namespace vortex

#define VORTEX_CUDA_CHECK(expr)                                                                \
  do {                                                                                         \
    cudaError_t vortex_cuda_err_ = (expr);                                                     \
    if (vortex_cuda_err_ != cudaSuccess)                                                       \
      ::vortex::check_failed(__FILE__, __LINE__, #expr, cudaGetErrorString(vortex_cuda_err_)); \
  } while (0)

#define VORTEX_CUDA_RETURN_IF_ERROR(expr) \
  VORTEX_RETURN_IF_ERROR(::vortex::cuda_status((expr), #expr))
#endif
