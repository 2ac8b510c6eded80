// write_safetensors: header JSON (8-byte aligned with trailing spaces, as the reference writer
// does), then the tensors back to back.
#include "vortex/model/safetensors_writer.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "vortex/core/dtype.h"

namespace vortex {

Status write_safetensors(const std::string& path,
                         const std::vector<std::pair<std::string, Tensor>>& tensors, DType dtype,
                         const std::map<std::string, std::string>& metadata) {
  const char* dtype_str = dtype == DType::kF32    ? "F32"
                          : dtype == DType::kF16  ? "F16"
                          : dtype == DType::kBF16 ? "BF16"
                                                  : nullptr;
  if (dtype_str == nullptr) {
    return invalid_argument("write_safetensors: dtype " + std::string(dtype_name(dtype)) +
                            " is not supported; use f32, f16 or bf16");
  }
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  const uint64_t elt = dtype_size(dtype);
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") return invalid_argument("write_safetensors: reserved tensor name");
    if (t.dtype() != DType::kF32 || (!t.defined() && t.numel() != 0)) {
      return invalid_argument("write_safetensors: tensor '" + name +
                              "' must be a defined fp32 "
                              "tensor");
    }
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * elt;
    header[name] = {{"dtype", dtype_str},
                    {"shape", t.shape().to_vector()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return invalid_argument("cannot write '" + tmp + "'; check the directory exists");
    const uint64_t n = text.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    std::vector<uint8_t> buf;
    for (const auto& [name, t] : tensors) {
      const auto* src = t.data_as<const float>();
      const size_t count = static_cast<size_t>(t.numel());
      buf.resize(count * elt);
      for (size_t i = 0; i < count; ++i) store_from_f32(buf.data(), dtype, i, src[i]);
      out.write(reinterpret_cast<const char*>(buf.data()),
                static_cast<std::streamsize>(buf.size()));
    }
    if (!out.flush()) return invalid_argument("writing '" + tmp + "' failed (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return invalid_argument("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  return Status::ok();
}

}  // namespace vortex
