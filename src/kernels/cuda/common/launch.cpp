// pdl_enabled(): the device's compute capability and the VORTEX_PDL switch, read once.
#include "vortex/kernels/cuda/launch.h"

#include <cstdlib>
#include <cstring>

namespace vortex::gpu {

bool pdl_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("VORTEX_PDL");
    if (v != nullptr &&
        (std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0 || std::strcmp(v, "false") == 0)) {
      return false;
    }
    int device = 0;
    int major = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return major >= 9;
  }();
  return enabled;
}

}  // namespace vortex::gpu
