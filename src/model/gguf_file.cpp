// GGUF v2/v3 parsing: header, metadata, tensor infos, data section. Layout (little-endian):
//   "GGUF" u32 version, u64 tensor_count, u64 kv_count,
//   kv_count x { string key, u32 value_type, value },
//   tensor_count x { string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset },
//   padding to general.alignment (default 32), tensor data.
// A string is u64 length + bytes; an array is u32 element type + u64 count + elements.
#include "vortex/model/gguf_file.h"

#include <limits>

#include "vortex/model/dequant.h"
#include "vortex/model/mapped_file_cursor.h"

namespace vortex {
namespace {

constexpr uint32_t kMaxDims = 4;     // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 8;  // arrays of arrays deeper than this are rejected
constexpr uint64_t kMaxAlignment = 1u << 30;

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kF64); }

// Smallest encoding of one value of type t, to bound element counts by the bytes left.
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16:
      return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32:
      return 4;
    case GgufValueType::kString:  // u64 length
    case GgufValueType::kU64:
    case GgufValueType::kI64:
    case GgufValueType::kF64:
      return 8;
    case GgufValueType::kArray:  // u32 type + u64 count
      return 12;
  }
  return 1;
}

Status read_string(MappedFileCursor& c, std::string* out, std::string_view what) {
  const uint64_t at = c.offset();
  uint64_t len = 0;
  VORTEX_RETURN_IF_ERROR(c.read(&len, what));
  if (len > c.remaining()) {
    return c.error_at(at, std::string(what) + " claims " + std::to_string(len) +
                              " bytes but only " + std::to_string(c.remaining()) +
                              " remain in the file");
  }
  return c.read_bytes(len, out, what);
}

// Reads one integer scalar of type t, sign-extending signed types.
Status read_integer(MappedFileCursor& c, GgufValueType t, int64_t* out) {
  switch (t) {
    case GgufValueType::kU8: {
      uint8_t v = 0;
      VORTEX_RETURN_IF_ERROR(c.read(&v, "u8 value"));
      *out = v;
      return Status::ok();
    }
    case GgufValueType::kI8: {
      int8_t v = 0;
      VORTEX_RETURN_IF_ERROR(c.read(&v, "i8 value"));
      *out = v;
      return Status::ok();
    }
    case GgufValueType::kBool: {
      uint8_t v = 0;
      const uint64_t at = c.offset();
      VORTEX_RETURN_IF_ERROR(c.read(&v, "bool value"));
      if (v > 1) return c.error_at(at, "bool value " + std::to_string(v) + " is not 0 or 1");
      *out = v;
      return Status::ok();
    }
    case GgufValueType::kU16: {
      uint16_t v = 0;
      VORTEX_RETURN_IF_ERROR(c.read(&v, "u16 value"));
      *out = v;
      return Status::ok();
    }
    case GgufValueType::kI16: {
      int16_t v = 0;
      VORTEX_RETURN_IF_ERROR(c.read(&v, "i16 value"));
      *out = v;
      return Status::ok();
    }
    case GgufValueType::kU32: {
      uint32_t v = 0;
      VORTEX_RETURN_IF_ERROR(c.read(&v, "u32 value"));
      *out = v;
      return Status::ok();
    }
    case GgufValueType::kI32: {
      int32_t v = 0;
      VORTEX_RETURN_IF_ERROR(c.read(&v, "i32 value"));
      *out = v;
      return Status::ok();
    }
    case GgufValueType::kU64:
    case GgufValueType::kI64: {
      int64_t v = 0;
      VORTEX_RETURN_IF_ERROR(c.read(&v, "64-bit integer value"));
      *out = v;
      return Status::ok();
    }
    default:
      return internal_error("read_integer on a non-integer GGUF type");
  }
}

bool is_integer_type(GgufValueType t) {
  return t != GgufValueType::kF32 && t != GgufValueType::kF64 && t != GgufValueType::kString &&
         t != GgufValueType::kArray;
}

Status read_value(MappedFileCursor& c, GgufValueType t, int depth, GgufValue* v);

Status read_array(MappedFileCursor& c, int depth, GgufValue* v) {
  const uint64_t at = c.offset();
  if (depth >= kMaxArrayNesting) {
    return c.error_at(at, "arrays nested deeper than " + std::to_string(kMaxArrayNesting));
  }
  uint32_t et = 0;
  VORTEX_RETURN_IF_ERROR(c.read(&et, "array element type"));
  if (!valid_value_type(et)) {
    return c.error_at(at, "unknown array element type " + std::to_string(et));
  }
  const auto elem = static_cast<GgufValueType>(et);
  v->elem_type = elem;
  const uint64_t count_at = c.offset();
  uint64_t count = 0;
  VORTEX_RETURN_IF_ERROR(c.read(&count, "array element count"));
  if (count > c.remaining() / min_value_bytes(elem)) {
    return c.error_at(count_at, "array of " + std::to_string(count) + " " +
                                    std::string(gguf_value_type_name(elem)) +
                                    " elements cannot fit in the " + std::to_string(c.remaining()) +
                                    " bytes left");
  }
  const auto n = static_cast<size_t>(count);
  // Strings and nested arrays grow as they are read (their in-memory size is several times
  // their smallest encoding); scalar arrays are sized up front (at most 8 bytes per file byte).
  if (elem == GgufValueType::kString) {
    for (size_t i = 0; i < n; ++i) {
      std::string s;
      VORTEX_RETURN_IF_ERROR(read_string(c, &s, "array string"));
      v->strings.push_back(std::move(s));
    }
  } else if (elem == GgufValueType::kArray) {
    for (size_t i = 0; i < n; ++i) {
      GgufValue inner;
      inner.type = GgufValueType::kArray;
      VORTEX_RETURN_IF_ERROR(read_array(c, depth + 1, &inner));
      v->arrays.push_back(std::move(inner));
    }
  } else if (elem == GgufValueType::kF32 || elem == GgufValueType::kF64) {
    v->reals.resize(n);
    for (size_t i = 0; i < n; ++i) {
      if (elem == GgufValueType::kF32) {
        float f = 0.0f;
        VORTEX_RETURN_IF_ERROR(c.read(&f, "f32 array element"));
        v->reals[i] = f;
      } else {
        VORTEX_RETURN_IF_ERROR(c.read(&v->reals[i], "f64 array element"));
      }
    }
  } else {
    v->ints.resize(n);
    for (size_t i = 0; i < n; ++i) VORTEX_RETURN_IF_ERROR(read_integer(c, elem, &v->ints[i]));
  }
  return Status::ok();
}

Status read_value(MappedFileCursor& c, GgufValueType t, int depth, GgufValue* v) {
  v->type = t;
  switch (t) {
    case GgufValueType::kString:
      return read_string(c, &v->str, "string value");
    case GgufValueType::kArray:
      return read_array(c, depth, v);
    case GgufValueType::kF32: {
      float f = 0.0f;
      VORTEX_RETURN_IF_ERROR(c.read(&f, "f32 value"));
      v->real = f;
      return Status::ok();
    }
    case GgufValueType::kF64:
      return c.read(&v->real, "f64 value");
    default:
      return read_integer(c, t, &v->integer);
  }
}

// numel of GGUF dims with overflow checks; dims must be non-negative.
bool checked_numel(const std::vector<int64_t>& dims, int64_t* out) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return false;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return false;
    n *= d;
  }
  *out = n;
  return true;
}

}  // namespace

std::string_view gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
      return "u8";
    case GgufValueType::kI8:
      return "i8";
    case GgufValueType::kU16:
      return "u16";
    case GgufValueType::kI16:
      return "i16";
    case GgufValueType::kU32:
      return "u32";
    case GgufValueType::kI32:
      return "i32";
    case GgufValueType::kF32:
      return "f32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kU64:
      return "u64";
    case GgufValueType::kI64:
      return "i64";
    case GgufValueType::kF64:
      return "f64";
  }
  return "?";
}

size_t GgufValue::array_size() const {
  if (!is_array()) return 0;
  return ints.size() + reals.size() + strings.size() + arrays.size();
}

std::optional<int64_t> GgufValue::as_int() const {
  if (!is_integer_type(type)) return std::nullopt;
  if (type == GgufValueType::kU64 && integer < 0) return std::nullopt;  // above INT64_MAX
  return integer;
}

std::optional<double> GgufValue::as_float() const {
  if (type == GgufValueType::kF32 || type == GgufValueType::kF64) return real;
  if (type == GgufValueType::kU64) return static_cast<double>(static_cast<uint64_t>(integer));
  if (is_integer_type(type) && type != GgufValueType::kBool) return static_cast<double>(integer);
  return std::nullopt;
}

std::optional<bool> GgufValue::as_bool() const {
  if (type == GgufValueType::kBool) return integer != 0;
  return std::nullopt;
}

std::string GgufValue::describe() const {
  const std::string tn(gguf_value_type_name(type));
  if (type == GgufValueType::kString) {
    return "string '" + (str.size() > 60 ? str.substr(0, 60) + "..." : str) + "'";
  }
  if (is_array()) {
    return "array<" + std::string(gguf_value_type_name(elem_type)) + ">[" +
           std::to_string(array_size()) + "]";
  }
  if (type == GgufValueType::kF32 || type == GgufValueType::kF64) {
    return tn + " " + std::to_string(real);
  }
  if (type == GgufValueType::kU64) return tn + " " + std::to_string(static_cast<uint64_t>(integer));
  return tn + " " + std::to_string(integer);
}

Shape GgufTensorInfo::shape() const {
  std::vector<int64_t> s(dims.rbegin(), dims.rend());
  return Shape(s);
}

Expected<GgufFile> GgufFile::open(const std::string& path) {
  VORTEX_ASSIGN_OR_RETURN(MappedFile f, MappedFile::open(path));
  return parse(std::move(f));
}

Expected<GgufFile> GgufFile::parse(MappedFile file) {
  GgufFile g;
  g.file_ = std::move(file);
  MappedFileCursor c(g.file_.bytes(), g.file_.path());

  // Header.
  std::string magic;
  VORTEX_RETURN_IF_ERROR(c.read_bytes(4, &magic, "the GGUF magic"));
  if (magic != "GGUF") return c.error_at(0, "not a GGUF file (the magic bytes are not 'GGUF')");
  VORTEX_RETURN_IF_ERROR(c.read(&g.version_, "the GGUF version"));
  if (g.version_ == 1) {
    return c.error_at(4,
                      "GGUF version 1 is not supported; re-convert the model with a current "
                      "llama.cpp (versions 2 and 3 are read)");
  }
  if (g.version_ != 2 && g.version_ != 3) {
    return c.error_at(4, "unsupported GGUF version " + std::to_string(g.version_) +
                             " (versions 2 and 3 are read; big-endian files are not)");
  }
  uint64_t n_tensors = 0, n_kv = 0;
  VORTEX_RETURN_IF_ERROR(c.read(&n_tensors, "the tensor count"));
  VORTEX_RETURN_IF_ERROR(c.read(&n_kv, "the metadata count"));
  // Each KV needs at least a key length, a type and a 1-byte value; each tensor info at least a
  // name length, n_dims, type and offset.
  if (n_kv > c.remaining() / 13) {
    return c.error_at(16, "metadata count " + std::to_string(n_kv) + " cannot fit in a file of " +
                              std::to_string(g.file_.size()) + " bytes");
  }
  if (n_tensors > c.remaining() / 24) {
    return c.error_at(8, "tensor count " + std::to_string(n_tensors) + " cannot fit in a file of " +
                             std::to_string(g.file_.size()) + " bytes");
  }

  // Metadata.
  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t at = c.offset();
    std::string key;
    VORTEX_RETURN_IF_ERROR(read_string(c, &key, "a metadata key"));
    uint32_t t = 0;
    const uint64_t type_at = c.offset();
    VORTEX_RETURN_IF_ERROR(c.read(&t, "a metadata value type"));
    if (!valid_value_type(t)) {
      return c.error_at(type_at,
                        "metadata key '" + key + "' has unknown value type " + std::to_string(t));
    }
    GgufValue v;
    Status s = read_value(c, static_cast<GgufValueType>(t), 0, &v);
    if (!s.is_ok()) return s.with_context("metadata key '" + key + "'");
    if (g.kv_index_.count(key)) return c.error_at(at, "duplicate metadata key '" + key + "'");
    g.kv_index_.emplace(key, g.kvs_.size());
    g.kvs_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = g.find("general.alignment")) {
    auto av = a->as_int();
    if (!av || *av <= 0 || static_cast<uint64_t>(*av) > kMaxAlignment || (*av & (*av - 1)) != 0) {
      return c.error("general.alignment is " + a->describe() +
                     "; it must be a power of two no larger than 2^30");
    }
    g.alignment_ = static_cast<uint64_t>(*av);
  }

  // Tensor infos.
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo info;
    info.info_offset = c.offset();
    VORTEX_RETURN_IF_ERROR(read_string(c, &info.name, "a tensor name"));
    const std::string ctx = "tensor '" + info.name + "'";
    uint32_t n_dims = 0;
    const uint64_t dims_at = c.offset();
    VORTEX_RETURN_IF_ERROR(c.read(&n_dims, "a tensor's dimension count"));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return c.error_at(dims_at,
                        ctx + " has " + std::to_string(n_dims) + " dimensions; 1 to 4 are allowed");
    }
    for (uint32_t d = 0; d < n_dims; ++d) {
      int64_t e = 0;
      const uint64_t e_at = c.offset();
      VORTEX_RETURN_IF_ERROR(c.read(&e, "a tensor dimension"));
      if (e < 0) return c.error_at(e_at, ctx + " has a dimension above 2^63");
      info.dims.push_back(e);
    }
    if (!checked_numel(info.dims, &info.numel)) {
      return c.error_at(dims_at, ctx + " has an element count that overflows 64 bits");
    }
    const uint64_t type_at = c.offset();
    VORTEX_RETURN_IF_ERROR(c.read(&info.type, "a tensor type"));
    if (auto tr = ggml_type_traits(info.type)) {
      if (info.dims[0] % tr->block_size != 0) {
        return c.error_at(type_at, ctx + " of type " + tr->name + " has a row of " +
                                       std::to_string(info.dims[0]) +
                                       " elements, not a multiple of the block size " +
                                       std::to_string(tr->block_size));
      }
      const uint64_t blocks = static_cast<uint64_t>(info.numel / tr->block_size);
      if (blocks > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(tr->type_size)) {
        return c.error_at(dims_at, ctx + " is too large");
      }
      info.nbytes = blocks * static_cast<uint64_t>(tr->type_size);
    }
    const uint64_t off_at = c.offset();
    VORTEX_RETURN_IF_ERROR(c.read(&info.offset, "a tensor data offset"));
    if (info.offset % g.alignment_ != 0) {
      return c.error_at(off_at, ctx + " has data offset " + std::to_string(info.offset) +
                                    ", not a multiple of the alignment " +
                                    std::to_string(g.alignment_));
    }
    if (g.tensor_index_.count(info.name)) {
      return c.error_at(info.info_offset, "duplicate tensor name '" + info.name + "'");
    }
    g.tensor_index_.emplace(info.name, g.tensors_.size());
    g.tensors_.push_back(std::move(info));
  }

  // Data section: aligned after the infos; every tensor of a known type must lie inside the file.
  const uint64_t end_of_infos = c.offset();
  g.data_offset_ = (end_of_infos + g.alignment_ - 1) / g.alignment_ * g.alignment_;
  if (!g.tensors_.empty() && g.data_offset_ > g.file_.size()) {
    return c.error_at(end_of_infos, "truncated file: the tensor data section starts at byte " +
                                        std::to_string(g.data_offset_) + " but the file has " +
                                        std::to_string(g.file_.size()) + " bytes");
  }
  for (const GgufTensorInfo& t : g.tensors_) {
    if (!t.nbytes) continue;  // unknown type: reported if the tensor is ever loaded
    const uint64_t avail = g.file_.size() - g.data_offset_;
    if (t.offset > avail || *t.nbytes > avail - t.offset) {
      return c.error_at(g.data_offset_ + std::min(t.offset, avail),
                        "truncated file: tensor '" + t.name + "' needs bytes [" +
                            std::to_string(t.offset) + ", " + std::to_string(t.offset) + " + " +
                            std::to_string(*t.nbytes) + ") of the data section, which has " +
                            std::to_string(avail) + " bytes");
    }
  }
  return g;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].second;
}

Expected<std::optional<int64_t>> GgufFile::find_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<int64_t>();
  auto i = v->as_int();
  if (!i) {
    return invalid_argument(path() + ": metadata key '" + std::string(key) + "' is " +
                            v->describe() + ", expected an integer");
  }
  return std::optional<int64_t>(*i);
}

Expected<std::optional<double>> GgufFile::find_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<double>();
  auto f = v->as_float();
  if (!f) {
    return invalid_argument(path() + ": metadata key '" + std::string(key) + "' is " +
                            v->describe() + ", expected a number");
  }
  return std::optional<double>(*f);
}

Expected<std::optional<std::string>> GgufFile::find_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<std::string>();
  if (v->type != GgufValueType::kString) {
    return invalid_argument(path() + ": metadata key '" + std::string(key) + "' is " +
                            v->describe() + ", expected a string");
  }
  return std::optional<std::string>(v->str);
}

Expected<std::optional<bool>> GgufFile::find_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<bool>();
  auto b = v->as_bool();
  if (!b) {
    return invalid_argument(path() + ": metadata key '" + std::string(key) + "' is " +
                            v->describe() + ", expected a bool");
  }
  return std::optional<bool>(*b);
}

namespace {
Status missing_key(const std::string& path, std::string_view key) {
  return invalid_argument(path + ": required metadata key '" + std::string(key) +
                          "' is missing; is this a complete model GGUF?");
}
}  // namespace

Expected<int64_t> GgufFile::get_int(std::string_view key) const {
  VORTEX_ASSIGN_OR_RETURN(auto v, find_int(key));
  if (!v) return missing_key(path(), key);
  return *v;
}

Expected<double> GgufFile::get_float(std::string_view key) const {
  VORTEX_ASSIGN_OR_RETURN(auto v, find_float(key));
  if (!v) return missing_key(path(), key);
  return *v;
}

Expected<std::string> GgufFile::get_string(std::string_view key) const {
  VORTEX_ASSIGN_OR_RETURN(auto v, find_string(key));
  if (!v) return missing_key(path(), key);
  return *v;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Expected<std::span<const uint8_t>> GgufFile::tensor_bytes(const GgufTensorInfo& info) const {
  if (!info.nbytes) {
    return unsupported(
        path() + ": tensor '" + info.name + "' has " + ggml_type_name(info.type) +
        ", which this build cannot read; supported types: " + ggml_supported_types());
  }
  return file_.slice(data_offset_ + info.offset, *info.nbytes);
}

Status GgufFile::dequantize_rows(const GgufTensorInfo& info, int64_t row_begin, int64_t row_end,
                                 float* dst) const {
  VORTEX_ASSIGN_OR_RETURN(std::span<const uint8_t> all, tensor_bytes(info));
  const int64_t row_len = info.dims[0];
  const int64_t rows = row_len == 0 ? 0 : info.numel / row_len;
  VORTEX_CHECK(row_begin >= 0 && row_begin <= row_end && row_end <= rows);
  const uint64_t row_bytes = rows == 0 ? 0 : all.size() / static_cast<uint64_t>(rows);
  auto src = all.subspan(static_cast<size_t>(row_begin) * row_bytes,
                         static_cast<size_t>(row_end - row_begin) * row_bytes);
  Status s = dequantize(
      info.type, src, std::span<float>(dst, static_cast<size_t>((row_end - row_begin) * row_len)));
  return s.with_context(path() + ": tensor '" + info.name + "'");
}

Expected<Tensor> GgufFile::load_f32(const GgufTensorInfo& info) const {
  VORTEX_RETURN_IF_ERROR(tensor_bytes(info).status());  // type known, data inside the file
  VORTEX_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(info.shape(), DType::kF32));
  const int64_t rows = info.dims[0] == 0 ? 0 : info.numel / info.dims[0];
  VORTEX_RETURN_IF_ERROR(dequantize_rows(info, 0, rows, t.data_as<float>()));
  return t;
}

}  // namespace vortex
