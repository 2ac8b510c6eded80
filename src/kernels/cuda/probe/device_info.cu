// Device properties for reports (name, SMs, memory) — also proves the CUDA toolchain links.
#include <cuda_runtime.h>

#include <string>

#include "vortex/kernels/device_info.h"

namespace vortex {

std::string cuda_device_summary(int ordinal) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, ordinal) != cudaSuccess) {
    (void)cudaGetLastError();
    return "no CUDA device";
  }
  return std::string(prop.name) + ", " + std::to_string(prop.multiProcessorCount) + " SMs, " +
         std::to_string(prop.totalGlobalMem >> 20) + " MiB, sm_" + std::to_string(prop.major) +
         std::to_string(prop.minor);
}

}  // namespace vortex
