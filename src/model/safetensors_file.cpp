// Safetensors parsing (header JSON through nlohmann_json, exceptions contained here) and fp32
// conversion of F32 / F16 / BF16 tensors.
#include "vortex/model/safetensors_file.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "vortex/core/dtype.h"
#include "vortex/model/dequant.h"

namespace vortex {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the reference implementation's limit
constexpr int kMaxJsonDepth = 16;

// Rejects JSON nested deeper than kMaxJsonDepth before handing it to the parser.
bool json_depth_ok(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    if (ch == '"') {
      in_string = true;
    } else if (ch == '{' || ch == '[') {
      if (++depth > kMaxJsonDepth) return false;
    } else if (ch == '}' || ch == ']') {
      --depth;
    }
  }
  return true;
}

Status header_error(const std::string& path, uint64_t offset, const std::string& msg) {
  return invalid_argument(path + ": at byte offset " + std::to_string(offset) + ": " + msg);
}

// Reads one tensor entry of the header.
Status parse_entry(const std::string& path, const std::string& name, const json& e,
                   uint64_t data_size, SafetensorsTensorInfo* info) {
  const std::string ctx = "tensor '" + name + "'";
  if (!e.is_object()) return header_error(path, 8, ctx + ": header entry is not an object");
  auto dt = e.find("dtype");
  auto sh = e.find("shape");
  auto off = e.find("data_offsets");
  if (dt == e.end() || !dt->is_string()) {
    return header_error(path, 8, ctx + ": missing or non-string 'dtype'");
  }
  if (sh == e.end() || !sh->is_array()) {
    return header_error(path, 8, ctx + ": missing or non-array 'shape'");
  }
  if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned()) {
    return header_error(path, 8, ctx + ": 'data_offsets' must be two non-negative integers");
  }
  info->name = name;
  info->dtype = dt->get<std::string>();
  const int elt = safetensors_dtype_size(info->dtype);
  if (elt == 0) return header_error(path, 8, ctx + ": unknown dtype '" + info->dtype + "'");
  if (sh->size() > static_cast<size_t>(kMaxRank)) {
    return header_error(path, 8, ctx + ": rank " + std::to_string(sh->size()) + " is above 8");
  }
  int64_t numel = 1;
  for (const json& d : *sh) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 62)) {
      return header_error(path, 8, ctx + ": shape entries must be non-negative integers");
    }
    const auto v = static_cast<int64_t>(d.get<uint64_t>());
    if (v != 0 && numel > std::numeric_limits<int64_t>::max() / 8 / v) {
      return header_error(path, 8, ctx + ": element count overflows");
    }
    numel *= v;
    info->shape.push_back(v);
  }
  info->numel = numel;
  info->begin = (*off)[0].get<uint64_t>();
  info->end = (*off)[1].get<uint64_t>();
  if (info->begin > info->end || info->end > data_size) {
    return header_error(path, 8,
                        ctx + ": data_offsets [" + std::to_string(info->begin) + ", " +
                            std::to_string(info->end) + ") lie outside the " +
                            std::to_string(data_size) + "-byte data section " +
                            "(truncated file?)");
  }
  if (info->end - info->begin != static_cast<uint64_t>(numel) * static_cast<uint64_t>(elt)) {
    return header_error(path, 8,
                        ctx + ": " + std::to_string(info->end - info->begin) +
                            " bytes do not hold " + std::to_string(numel) + " " + info->dtype +
                            " elements");
  }
  return Status::ok();
}

}  // namespace

int safetensors_dtype_size(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" ||
      dtype == "F8_E5M2") {
    return 1;
  }
  return 0;
}

Expected<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  VORTEX_ASSIGN_OR_RETURN(MappedFile f, MappedFile::open(path));
  return parse(std::move(f));
}

Expected<SafetensorsFile> SafetensorsFile::parse(MappedFile file) {
  SafetensorsFile s;
  s.file_ = std::move(file);
  const std::string& path = s.file_.path();
  if (s.file_.size() < 8) {
    return header_error(path, 0,
                        "truncated file: " + std::to_string(s.file_.size()) +
                            " bytes, too short for the 8-byte safetensors header length");
  }
  uint64_t n = 0;
  std::memcpy(&n, s.file_.data(), 8);
  if (n > kMaxHeaderBytes || n > s.file_.size() - 8) {
    return header_error(path, 0,
                        "header length " + std::to_string(n) + " exceeds the " +
                            std::to_string(s.file_.size() - 8) +
                            " bytes that follow (truncated or not a safetensors file)");
  }
  s.data_offset_ = 8 + n;
  const std::string_view text(reinterpret_cast<const char*>(s.file_.data() + 8),
                              static_cast<size_t>(n));
  if (!json_depth_ok(text)) {
    return header_error(
        path, 8, "header JSON is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  json header = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return header_error(path, 8, "header is not a valid JSON object");
  }
  const uint64_t data_size = s.file_.size() - s.data_offset_;
  try {
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        if (!it->is_object()) return header_error(path, 8, "__metadata__ is not an object");
        for (auto m = it->begin(); m != it->end(); ++m) {
          if (m->is_string()) s.metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      SafetensorsTensorInfo info;
      VORTEX_RETURN_IF_ERROR(parse_entry(path, it.key(), *it, data_size, &info));
      s.index_.emplace(info.name, s.tensors_.size());  // JSON object keys are unique
      s.tensors_.push_back(std::move(info));
    }
  } catch (const std::exception& e) {  // a JSON type error the checks above missed
    return header_error(path, 8, std::string("malformed header: ") + e.what());
  }
  std::sort(s.tensors_.begin(), s.tensors_.end(),
            [](const auto& a, const auto& b) { return a.begin < b.begin; });
  s.index_.clear();
  for (size_t i = 0; i < s.tensors_.size(); ++i) s.index_.emplace(s.tensors_[i].name, i);
  return s;
}

const SafetensorsTensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const uint8_t> SafetensorsFile::tensor_bytes(const SafetensorsTensorInfo& info) const {
  return file_.bytes().subspan(static_cast<size_t>(data_offset_ + info.begin),
                               static_cast<size_t>(info.end - info.begin));
}

Status SafetensorsFile::read_f32(const SafetensorsTensorInfo& info, int64_t begin, int64_t end,
                                 float* dst) const {
  VORTEX_CHECK(begin >= 0 && begin <= end && end <= info.numel);
  const uint8_t* src = tensor_bytes(info).data();
  if (info.dtype == "F32") {
    if (end > begin) std::memcpy(dst, src + begin * 4, static_cast<size_t>(end - begin) * 4);
  } else if (info.dtype == "F16" || info.dtype == "BF16") {
    const bool bf = info.dtype == "BF16";
    for (int64_t i = begin; i < end; ++i) {
      uint16_t h;
      std::memcpy(&h, src + i * 2, 2);
      dst[i - begin] = bf ? bf16_to_f32(h) : f16_bits_to_f32(h);
    }
  } else {
    return unsupported(path() + ": tensor '" + info.name + "' has dtype " + info.dtype +
                       "; weights must be F32, F16 or BF16");
  }
  return Status::ok();
}

Expected<Tensor> SafetensorsFile::load_f32(const SafetensorsTensorInfo& info) const {
  VORTEX_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(info.to_shape(), DType::kF32));
  VORTEX_RETURN_IF_ERROR(read_f32(info, 0, info.numel, t.data_as<float>()));
  return t;
}

}  // namespace vortex
