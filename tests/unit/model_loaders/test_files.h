// Test helpers for the loader tests: a GGUF byte builder (valid files to parse, and raw field
// writers to make invalid ones), temporary directories, file I/O, and the optional .venv python.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "vortex/model/gguf_file.h"

namespace vortex::testing {

/// Appends little-endian fields to a byte vector.
class ByteWriter {
 public:
  template <typename T>
  void put(T v) {
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void put_bytes(const std::vector<uint8_t>& b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }
  void pad_to(size_t alignment) {
    while (bytes_.size() % alignment) bytes_.push_back(0);
  }
  size_t size() const { return bytes_.size(); }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

/// Builds a GGUF file: metadata key/values are appended as raw encoded values, tensors as data.
class GgufBuilder {
 public:
  using VT = GgufValueType;

  void kv_u32(const std::string& k, uint32_t v) { scalar(k, VT::kU32, v); }
  void kv_i32(const std::string& k, int32_t v) { scalar(k, VT::kI32, v); }
  void kv_u64(const std::string& k, uint64_t v) { scalar(k, VT::kU64, v); }
  void kv_f32(const std::string& k, float v) { scalar(k, VT::kF32, v); }
  void kv_bool(const std::string& k, bool v) { scalar(k, VT::kBool, static_cast<uint8_t>(v)); }
  void kv_str(const std::string& k, const std::string& v) {
    key(k, VT::kString);
    kv_.put_string(v);
  }
  void kv_str_array(const std::string& k, const std::vector<std::string>& v) {
    key(k, VT::kArray);
    kv_.put<uint32_t>(static_cast<uint32_t>(VT::kString));
    kv_.put<uint64_t>(v.size());
    for (const auto& s : v) kv_.put_string(s);
  }
  void kv_i32_array(const std::string& k, const std::vector<int32_t>& v) {
    key(k, VT::kArray);
    kv_.put<uint32_t>(static_cast<uint32_t>(VT::kI32));
    kv_.put<uint64_t>(v.size());
    for (int32_t x : v) kv_.put(x);
  }
  /// A raw KV: key + type; the caller appends the encoded value with raw().
  void key(const std::string& k, VT t) {
    kv_.put_string(k);
    kv_.put<uint32_t>(static_cast<uint32_t>(t));
    ++n_kv_;
  }
  ByteWriter& raw() { return kv_; }

  /// A tensor with GGUF dims (innermost first), a GGML type id and its encoded bytes.
  void tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
              std::vector<uint8_t> data) {
    tensors_.push_back({name, std::move(dims), type, std::move(data)});
  }
  /// An F32 tensor from floats.
  void tensor_f32(const std::string& name, std::vector<uint64_t> dims,
                  const std::vector<float>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    tensor(name, std::move(dims), 0, std::move(b));
  }

  std::vector<uint8_t> build(uint32_t version = 3, size_t alignment = 32) const {
    ByteWriter w;
    w.put<uint32_t>(0x46554747u);  // "GGUF"
    w.put<uint32_t>(version);
    w.put<uint64_t>(tensors_.size());
    w.put<uint64_t>(n_kv_);
    w.put_bytes(const_cast<ByteWriter&>(kv_).bytes());
    uint64_t off = 0;
    std::vector<uint64_t> offsets;
    for (const auto& t : tensors_) {
      w.put_string(t.name);
      w.put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) w.put<uint64_t>(d);
      w.put<uint32_t>(t.type);
      w.put<uint64_t>(off);
      offsets.push_back(off);
      off += (t.data.size() + alignment - 1) / alignment * alignment;
    }
    w.pad_to(alignment);
    for (const auto& t : tensors_) {
      w.put_bytes(t.data);
      w.pad_to(alignment);
    }
    return w.bytes();
  }

 private:
  template <typename T>
  void scalar(const std::string& k, VT t, T v) {
    key(k, t);
    kv_.put(v);
  }
  struct T {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
    std::vector<uint8_t> data;
  };
  ByteWriter kv_;
  uint64_t n_kv_ = 0;
  std::vector<T> tensors_;
};

/// A fresh directory under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    // tmpfs when there is one: the fuzzer rewrites files thousands of times, and a disk file
    // system may flush every truncating rewrite.
    std::error_code ec;
    const std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0
            ? std::filesystem::path("/dev/shm")
            : std::filesystem::temp_directory_path();
    path_ =
        base / ("vortex_loaders_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// <source>/.venv/bin/python, or "" when the test-only virtualenv is missing.
inline std::string venv_python() {
  const std::string p = std::string(VORTEX_SOURCE_DIR) + "/.venv/bin/python";
  return std::filesystem::exists(p) ? p : "";
}

/// The SmolLM2 GGUF path, or "" when it is not downloaded.
inline std::string smollm2_path() {
  const char* d = std::getenv("VORTEX_MODEL_DIR");
  const char* home = std::getenv("HOME");
  const std::string dir = d && *d ? d : std::string(home ? home : ".") + "/.cache/vortex/models";
  const std::string p = dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  return std::filesystem::exists(p) ? p : "";
}

}  // namespace vortex::testing
