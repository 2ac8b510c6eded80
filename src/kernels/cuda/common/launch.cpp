// pdl_enabled(): the device's compute capability and the VORTEX_PDL switch, read once.
#include "vortex/kernels/cuda/launch.h"

#include <cstdlib>
#include <cstring>

namespace vortex::gpu {

bool pdl_enabled() {
  static const bool enabled = [] {
    // Off unless asked for: on the H200 it measured neutral (B=32, L=16K decode step, dense
    // +0.3 %, block_topk and quest +-0.1 %; bench/results/2026-12-04-h200-pdl-ab.json).
    const char* v = std::getenv("VORTEX_PDL");
    if (v == nullptr ||
        !(std::strcmp(v, "1") == 0 || std::strcmp(v, "on") == 0 || std::strcmp(v, "true") == 0)) {
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
