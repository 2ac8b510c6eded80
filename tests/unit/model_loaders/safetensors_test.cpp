// Safetensors writer and parser: round trips in F32 / F16 / BF16, metadata, and clean errors for
// corrupt headers.
#include <gtest/gtest.h>

#include <random>

#include "test_files.h"
#include "vortex/core/dtype.h"
#include "vortex/model/safetensors_file.h"
#include "vortex/model/safetensors_writer.h"

namespace vortex {
namespace {

using testing::TempDir;

Tensor make_tensor(const Shape& s, std::mt19937& rng) {
  Tensor t = Tensor::empty(s, DType::kF32).value();
  std::normal_distribution<float> n(0.0f, 2.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = n(rng);
  return t;
}

TEST(Safetensors, RoundTripsEveryStoredDtype) {
  TempDir dir;
  std::mt19937 rng(3);
  std::vector<std::pair<std::string, Tensor>> ts = {{"a", make_tensor(Shape{3, 5}, rng)},
                                                    {"b.c", make_tensor(Shape{7}, rng)},
                                                    {"scalar", make_tensor(Shape{}, rng)},
                                                    {"empty", make_tensor(Shape{0, 4}, rng)}};
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    const std::string path = dir.file("x.safetensors");
    ASSERT_TRUE(write_safetensors(path, ts, dt, {{"format", "pt"}}).is_ok());
    auto bytes = testing::read_file(path);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    EXPECT_EQ(n % 8, 0u);  // header padded like the reference writer
    auto f = SafetensorsFile::open(path);
    ASSERT_TRUE(f) << f.status().to_string();
    EXPECT_EQ(f->metadata().at("format"), "pt");
    ASSERT_EQ(f->tensors().size(), 4u);
    for (const auto& [name, t] : ts) {
      const SafetensorsTensorInfo* info = f->find(name);
      ASSERT_NE(info, nullptr) << name;
      EXPECT_EQ(info->dtype, dt == DType::kF32 ? "F32" : dt == DType::kF16 ? "F16" : "BF16");
      EXPECT_EQ(info->to_shape(), t.shape());
      auto back = f->load_f32(*info);
      ASSERT_TRUE(back) << back.status().to_string();
      for (int64_t i = 0; i < t.numel(); ++i) {
        const float want = dt == DType::kF32   ? t.data_as<float>()[i]
                           : dt == DType::kF16 ? f16_to_f32(f32_to_f16(t.data_as<float>()[i]))
                                               : bf16_to_f32(f32_to_bf16(t.data_as<float>()[i]));
        ASSERT_EQ(back->data_as<float>()[i], want) << name << "[" << i << "]";
      }
    }
  }
  EXPECT_FALSE(write_safetensors(dir.file("y.safetensors"), ts, DType::kI32).is_ok());
}

std::vector<uint8_t> with_header(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  const uint64_t n = header.size();
  std::memcpy(b.data(), &n, 8);
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

TEST(Safetensors, CorruptHeadersAreCleanErrors) {
  TempDir dir;
  auto expect_error = [&](const std::vector<uint8_t>& bytes, const std::string& needle) {
    testing::write_file(dir.file("bad.safetensors"), bytes);
    auto f = SafetensorsFile::open(dir.file("bad.safetensors"));
    ASSERT_FALSE(f) << "expected an error containing '" << needle << "'";
    const std::string m = f.status().message();
    EXPECT_NE(m.find(needle), std::string::npos) << m;
    EXPECT_NE(m.find("bad.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("byte offset"), std::string::npos) << m;
  };
  expect_error({1, 2, 3}, "too short");
  {
    auto b = with_header("{}", 0);
    const uint64_t huge = 1ull << 40;
    std::memcpy(b.data(), &huge, 8);
    expect_error(b, "header length");
  }
  expect_error(with_header("{not json", 0), "not a valid JSON");
  expect_error(with_header("[1, 2]", 0), "not a valid JSON object");
  expect_error(with_header(R"({"t": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}})", 4),
               "unknown dtype");
  expect_error(with_header(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4),
               "outside");
  expect_error(with_header(R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8),
               "do not hold");
  expect_error(with_header(R"({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
               "non-negative");
  expect_error(with_header(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4),
               "outside");
  expect_error(with_header(R"({"t": {"dtype": 3, "shape": [1], "data_offsets": [0, 4]}})", 4),
               "dtype");
  expect_error(with_header(R"({"t": 5})", 0), "not an object");
  expect_error(with_header(R"({"t": {"dtype": "F32", "shape": [1,1,1,1,1,1,1,1,1], )"
                           R"("data_offsets": [0, 4]}})",
                           4),
               "rank");
  expect_error(with_header(std::string(40, '[') + std::string(40, ']'), 0), "nested deeper");
  expect_error(with_header(R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296], )"
                           R"("data_offsets": [0, 4]}})",
                           4),
               "overflow");
}

TEST(Safetensors, NonFloatDtypesParseButDoNotLoadAsWeights) {
  TempDir dir;
  testing::write_file(
      dir.file("i.safetensors"),
      with_header(R"({"ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}})", 16));
  auto f = SafetensorsFile::open(dir.file("i.safetensors"));
  ASSERT_TRUE(f) << f.status().to_string();
  auto t = f->load_f32(*f->find("ids"));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace vortex
