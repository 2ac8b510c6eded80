// SafetensorsFile: one parsed .safetensors file over a read-only mapping. Format: u64 LE header
// length N, N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, optional
// "__metadata__": {str: str}}, then the data section. Every entry is checked (known dtype,
// non-negative shape, byte length = numel * element size, inside the data section) so a corrupt
// file yields a Status naming the file and offset, never an out-of-bounds read.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/core/tensor.h"
#include "vortex/model/mapped_file.h"

namespace vortex {

struct SafetensorsTensorInfo {
  std::string name;
  std::string dtype;           ///< "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;  ///< outermost first
  int64_t numel = 0;
  uint64_t begin = 0, end = 0;  ///< byte range within the data section

  Shape to_shape() const { return Shape(shape); }
};

class SafetensorsFile {
 public:
  static Expected<SafetensorsFile> open(const std::string& path);
  static Expected<SafetensorsFile> parse(MappedFile file);

  const std::string& path() const { return file_.path(); }
  /// File offset of the data section (8 + header length).
  uint64_t data_offset() const { return data_offset_; }
  /// Tensors in data order.
  const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }
  const SafetensorsTensorInfo* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  /// The raw bytes of a tensor.
  std::span<const uint8_t> tensor_bytes(const SafetensorsTensorInfo& info) const;
  /// Converts elements [begin, end) of an F32 / F16 / BF16 tensor to fp32 into dst.
  Status read_f32(const SafetensorsTensorInfo& info, int64_t begin, int64_t end, float* dst) const;
  /// The whole tensor as an fp32 Tensor.
  Expected<Tensor> load_f32(const SafetensorsTensorInfo& info) const;

 private:
  MappedFile file_;
  uint64_t data_offset_ = 0;
  std::vector<SafetensorsTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

/// Bytes per element of a safetensors dtype string, or 0 if unknown.
int safetensors_dtype_size(std::string_view dtype);

}  // namespace vortex
