// GgufFile: a parsed GGUF v2/v3 file — header, metadata key/values (every value type, arrays and
// nested arrays), tensor infos, alignment and the data section — over a read-only mapping.
// Parsing checks every read and every count against the file size, so a truncated, corrupt or
// hostile file yields a Status naming the file and the byte offset, never a crash, an
// out-of-bounds read or an allocation out of proportion to the file.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/core/tensor.h"
#include "vortex/model/mapped_file.h"

namespace vortex {

/// GGUF metadata value types (on-disk ids).
enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

/// "u32", "string", "array", ...
std::string_view gguf_value_type_name(GgufValueType t);

/// One metadata value. Scalars use `integer` (integers and bools, sign-extended for signed types;
/// u64 values above INT64_MAX keep their bits) or `real`; strings use `str`. Arrays set
/// `elem_type` and fill exactly one of `ints`, `reals`, `strings` or `arrays` (nested arrays).
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  GgufValueType elem_type = GgufValueType::kU8;  ///< arrays only
  int64_t integer = 0;
  double real = 0.0;
  std::string str;
  std::vector<int64_t> ints;
  std::vector<double> reals;
  std::vector<std::string> strings;
  std::vector<GgufValue> arrays;

  bool is_array() const { return type == GgufValueType::kArray; }
  /// Number of elements of an array (0 for scalars).
  size_t array_size() const;
  /// Any integer or bool scalar that fits in int64.
  std::optional<int64_t> as_int() const;
  /// Any float or integer scalar.
  std::optional<double> as_float() const;
  std::optional<bool> as_bool() const;
  /// "u32 100", "string 'llama'", "array<string>[49152]" — for messages and dumps.
  std::string describe() const;
};

/// One tensor info entry. `dims` are GGUF order (dims[0] is the innermost, contiguous extent).
struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;
  uint32_t type = 0;    ///< GgmlType id (may be a type this build cannot dequantize)
  uint64_t offset = 0;  ///< relative to the data section
  int64_t numel = 0;
  std::optional<uint64_t> nbytes;  ///< known when the type is known
  uint64_t info_offset = 0;        ///< file offset of this entry (for messages)

  /// Row-major shape, outermost first (the reverse of dims): [out, in] for a matrix.
  Shape shape() const;
};

class GgufFile {
 public:
  /// Maps and parses `path`.
  static Expected<GgufFile> open(const std::string& path);
  /// Parses an already mapped file (takes ownership).
  static Expected<GgufFile> parse(MappedFile file);

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  size_t file_size() const { return file_.size(); }

  /// Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kvs_; }
  const GgufValue* find(std::string_view key) const;
  /// Typed getters: an error naming the file and key when absent or of the wrong type.
  Expected<int64_t> get_int(std::string_view key) const;
  Expected<double> get_float(std::string_view key) const;
  Expected<std::string> get_string(std::string_view key) const;
  /// Optional variants: nullopt when absent; an error when present with the wrong type.
  Expected<std::optional<int64_t>> find_int(std::string_view key) const;
  Expected<std::optional<double>> find_float(std::string_view key) const;
  Expected<std::optional<std::string>> find_string(std::string_view key) const;
  Expected<std::optional<bool>> find_bool(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  /// The raw bytes of a tensor (checked against the file at parse time).
  Expected<std::span<const uint8_t>> tensor_bytes(const GgufTensorInfo& info) const;
  /// Dequantizes rows [row_begin, row_end) of a tensor (rows = numel / dims[0]) into `dst`
  /// ((row_end - row_begin) * dims[0] floats).
  Status dequantize_rows(const GgufTensorInfo& info, int64_t row_begin, int64_t row_end,
                         float* dst) const;
  /// The whole tensor as fp32, shape outermost first.
  Expected<Tensor> load_f32(const GgufTensorInfo& info) const;

 private:
  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kvs_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace vortex
