// parse_device: `--device` text → DeviceSpec, checked against this build and the visible GPUs.
#include "vortex/engine/device.h"

#include <charconv>

#include "vortex/core/cuda_allocator.h"

namespace vortex::engine {

std::string DeviceSpec::to_string() const {
  return kind == Kind::kCpu ? std::string("cpu") : "cuda:" + std::to_string(ordinal);
}

namespace {

constexpr bool kBuiltWithCuda =
#if defined(VORTEX_WITH_CUDA)
    true;
#else
    false;
#endif

}  // namespace

Expected<DeviceSpec> parse_device(std::string_view text) {
  DeviceSpec d;
  if (text == "cpu") return d;
  if (text == "auto") {
    if (kBuiltWithCuda && cuda_device_count() > 0) d.kind = DeviceSpec::Kind::kCuda;
    return d;
  }
  if (text.substr(0, 4) != "cuda") {
    return invalid_argument("--device must be cpu, cuda, cuda:N or auto, got '" +
                            std::string(text) + "'");
  }
  d.kind = DeviceSpec::Kind::kCuda;
  if (text.size() > 4) {
    const std::string_view idx = text.substr(4);
    int32_t v = -1;
    const char* end = idx.data() + idx.size();
    if (idx.size() < 2 || idx[0] != ':' || std::from_chars(idx.data() + 1, end, v).ptr != end ||
        v < 0) {
      return invalid_argument("--device must be cpu, cuda, cuda:N or auto, got '" +
                              std::string(text) + "'");
    }
    d.ordinal = v;
  }
  if (!kBuiltWithCuda) {
    return unsupported("--device " + std::string(text) +
                       ": this build has no CUDA backend; rebuild with the cuda preset "
                       "(cmake --preset cuda) or use --device cpu");
  }
  const int n = cuda_device_count();
  if (d.ordinal >= n) {
    return not_found("--device " + std::string(text) + ": " + std::to_string(n) +
                     " CUDA device(s) visible; use --device cpu or a lower index");
  }
  return d;
}

}  // namespace vortex::engine
