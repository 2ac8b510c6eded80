// Where memory lives and kernels run: the CPU or one CUDA device (by ordinal).
#pragma once

#include <string>

namespace vortex {

enum class DeviceKind : uint8_t { kCPU, kCUDA };

struct Device {
  DeviceKind kind = DeviceKind::kCPU;
  int ordinal = 0;

  static Device cpu() { return {DeviceKind::kCPU, 0}; }
  static Device cuda(int ordinal = 0) { return {DeviceKind::kCUDA, ordinal}; }
  bool is_cpu() const { return kind == DeviceKind::kCPU; }
  bool is_cuda() const { return kind == DeviceKind::kCUDA; }
  bool operator==(const Device&) const = default;
  /// "cpu" or "cuda:0".
  std::string to_string() const {
    return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(ordinal);
  }
};

}  // namespace vortex
