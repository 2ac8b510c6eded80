// The on-disk cache of compiled flow modules: one file per key, a verified header, atomic writes.
//   bytes 0..7    "VXCUBIN1"
//   bytes 8..15   image size, little-endian u64
//   bytes 16..79  SHA-256 of the image, hex
//   bytes 80..    the image
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "vortex/compiler/codegen_cuda.h"
#include "vortex/kernels/cuda/flow_runtime.h"

namespace vortex::gpu {
namespace {

constexpr char kMagic[] = "VXCUBIN1";
constexpr size_t kHeader = 8 + 8 + 64;

std::string default_dir() {
  if (const char* d = std::getenv("VORTEX_CACHE_DIR"); d != nullptr && *d != '\0') {
    return std::string(d) + "/kernels";
  }
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    return std::string(h) + "/.cache/vortex/kernels";
  }
  return "";
}

bool valid_key(const std::string& key) {
  if (key.size() != 64) return false;
  for (char c : key) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

CubinCache::CubinCache(std::string dir) : dir_(dir.empty() ? default_dir() : std::move(dir)) {}

std::string CubinCache::path(const std::string& key) const { return dir_ + "/" + key + ".cubin"; }

std::optional<std::string> CubinCache::load(const std::string& key) const {
  if (dir_.empty() || !valid_key(key)) return std::nullopt;
  std::ifstream in(path(key), std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  if (data.size() < kHeader || data.compare(0, 8, kMagic, 8) != 0) return std::nullopt;
  uint64_t size = 0;
  for (int i = 0; i < 8; ++i)
    size |= static_cast<uint64_t>(static_cast<unsigned char>(data[8 + i])) << (8 * i);
  if (size != data.size() - kHeader) return std::nullopt;
  std::string image = data.substr(kHeader);
  if (compiler::sha256_hex(image) != data.substr(16, 64)) return std::nullopt;
  return image;
}

Status CubinCache::store(const std::string& key, std::string_view image) const {
  if (dir_.empty()) return Status::ok();
  if (!valid_key(key)) return invalid_argument("cubin cache key '" + key + "' is not a SHA-256");
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    return invalid_argument("cannot create the kernel cache directory '" + dir_ + "' (" +
                            ec.message() + "); set VORTEX_CACHE_DIR to a writable directory");
  }
  std::string data(kMagic, 8);
  const uint64_t size = image.size();
  for (int i = 0; i < 8; ++i) data += static_cast<char>((size >> (8 * i)) & 0xff);
  data += compiler::sha256_hex(image);
  data += image;
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      path(key) + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !out.write(data.data(), static_cast<std::streamsize>(data.size())) ||
        !out.flush()) {
      std::filesystem::remove(tmp, ec);
      return invalid_argument("cannot write the kernel cache file '" + tmp +
                              "'; set VORTEX_CACHE_DIR to a writable directory");
    }
  }
  std::filesystem::rename(tmp, path(key), ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return invalid_argument("cannot move '" + tmp + "' into the kernel cache (" + ec.message() +
                            ")");
  }
  return Status::ok();
}

}  // namespace vortex::gpu
