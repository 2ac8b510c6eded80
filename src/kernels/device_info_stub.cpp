// Without the CUDA backend there is no device to describe.
#include "vortex/kernels/device_info.h"

namespace vortex {

std::string cuda_device_summary(int /*ordinal*/) { return "no CUDA device (built without CUDA)"; }

}  // namespace vortex
