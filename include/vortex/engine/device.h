// Which device a model runs on: the `--device cpu|cuda|cuda:N|auto` option of serve, generate,
// eval and bench serve. `auto` picks the first CUDA GPU when this build has the CUDA backend and a
// GPU is visible, else the CPU.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vortex/core/status.h"

namespace vortex::engine {

struct DeviceSpec {
  enum class Kind { kCpu, kCuda };
  Kind kind = Kind::kCpu;
  int32_t ordinal = 0;  ///< CUDA device index

  bool is_cuda() const { return kind == Kind::kCuda; }
  /// "cpu" or "cuda:N".
  std::string to_string() const;
};

/// Parses "cpu", "cuda", "cuda:N" or "auto" (resolved here). An unknown name, a CUDA device in a
/// build without the CUDA backend, or an index past the visible GPUs is an error that says what to
/// pass instead.
Expected<DeviceSpec> parse_device(std::string_view text);

}  // namespace vortex::engine
