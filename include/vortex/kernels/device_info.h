// A one-line description of a CUDA device for reports ("NVIDIA H100 80GB HBM3, 132 SMs, ...").
#pragma once

#include <string>

namespace vortex {

/// "no CUDA device" when built without CUDA or when the device is absent.
std::string cuda_device_summary(int ordinal = 0);

}  // namespace vortex
