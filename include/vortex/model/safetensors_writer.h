// Writing .safetensors files from fp32 tensors (stored as F32, F16 or BF16), for tests and for
// exporting synthetic checkpoints as Hugging Face directories.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/core/tensor.h"

namespace vortex {

/// Writes `tensors` (fp32, contiguous, in the given order) to `path`, converted to `dtype`
/// (kF32, kF16 or kBF16, rounding to nearest even). `metadata` becomes "__metadata__". Writes to
/// a temporary file first and renames, so a failed write leaves no partial file.
Status write_safetensors(const std::string& path,
                         const std::vector<std::pair<std::string, Tensor>>& tensors,
                         DType dtype = DType::kF32,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace vortex
