// GgufFile and MappedFile: every metadata type, nested arrays, alignment, tensor infos, and the
// clean errors of truncated / corrupt / hostile files.
#include "vortex/model/gguf_file.h"

#include <gtest/gtest.h>

#include "test_files.h"
#include "vortex/model/mapped_file.h"

namespace vortex {
namespace {

using testing::GgufBuilder;
using testing::TempDir;
using VT = GgufValueType;

Expected<GgufFile> parse_bytes(const TempDir& dir, const std::vector<uint8_t>& bytes,
                               const std::string& name = "m.gguf") {
  testing::write_file(dir.file(name), bytes);
  return GgufFile::open(dir.file(name));
}

// A small file with one key of every type, a nested array and two tensors.
GgufBuilder every_type_builder() {
  GgufBuilder b;
  b.key("u8", VT::kU8);
  b.raw().put<uint8_t>(200);
  b.key("i8", VT::kI8);
  b.raw().put<int8_t>(-100);
  b.key("u16", VT::kU16);
  b.raw().put<uint16_t>(60000);
  b.key("i16", VT::kI16);
  b.raw().put<int16_t>(-30000);
  b.kv_u32("u32", 4000000000u);
  b.kv_i32("i32", -2000000000);
  b.kv_f32("f32", 1.5f);
  b.kv_bool("bool", true);
  b.kv_str("str", "hello");
  b.kv_u64("u64", 0xFFFFFFFFFFFFFFFFull);
  b.key("i64", VT::kI64);
  b.raw().put<int64_t>(-5);
  b.key("f64", VT::kF64);
  b.raw().put<double>(0.25);
  b.kv_str_array("strs", {"a", "", "ccc"});
  b.kv_i32_array("ints", {1, -2, 3});
  b.key("floats", VT::kArray);
  b.raw().put<uint32_t>(static_cast<uint32_t>(VT::kF32));
  b.raw().put<uint64_t>(2);
  b.raw().put<float>(0.5f);
  b.raw().put<float>(-2.0f);
  // [[1, 2], []] as arrays of u16.
  b.key("nested", VT::kArray);
  b.raw().put<uint32_t>(static_cast<uint32_t>(VT::kArray));
  b.raw().put<uint64_t>(2);
  b.raw().put<uint32_t>(static_cast<uint32_t>(VT::kU16));
  b.raw().put<uint64_t>(2);
  b.raw().put<uint16_t>(1);
  b.raw().put<uint16_t>(2);
  b.raw().put<uint32_t>(static_cast<uint32_t>(VT::kU16));
  b.raw().put<uint64_t>(0);
  b.tensor_f32("a.weight", {3, 2}, {1, 2, 3, 4, 5, 6});
  b.tensor_f32("b", {4}, {7, 8, 9, 10});
  return b;
}

TEST(MappedFile, OpensReadsAndChecksBounds) {
  TempDir dir;
  testing::write_file(dir.file("x"), {1, 2, 3, 4});
  auto f = MappedFile::open(dir.file("x"));
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_EQ(f->size(), 4u);
  EXPECT_EQ(f->data()[2], 3);
  EXPECT_TRUE(f->slice(1, 3));
  EXPECT_FALSE(f->slice(2, 3));
  EXPECT_FALSE(f->slice(~0ull, 2));  // overflow-safe
  auto bad = f->slice(5, 0);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("byte offset 5"), std::string::npos);
  MappedFile moved = std::move(*f);
  EXPECT_EQ(moved.size(), 4u);

  testing::write_file(dir.file("empty"), {});
  auto e = MappedFile::open(dir.file("empty"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->size(), 0u);

  auto missing = MappedFile::open(dir.file("nope"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  EXPECT_FALSE(MappedFile::open(dir.path().string()));  // a directory
}

TEST(GgufFile, ParsesEveryValueTypeAndTensorInfos) {
  TempDir dir;
  for (uint32_t version : {2u, 3u}) {
    auto g = parse_bytes(dir, every_type_builder().build(version));
    ASSERT_TRUE(g) << g.status().to_string();
    EXPECT_EQ(g->version(), version);
    EXPECT_EQ(g->metadata().size(), 16u);
    EXPECT_EQ(g->metadata()[0].first, "u8");  // file order kept
    EXPECT_EQ(*g->find("u8")->as_int(), 200);
    EXPECT_EQ(*g->find("i8")->as_int(), -100);
    EXPECT_EQ(*g->find("u16")->as_int(), 60000);
    EXPECT_EQ(*g->find("i16")->as_int(), -30000);
    EXPECT_EQ(*g->find("u32")->as_int(), 4000000000ll);
    EXPECT_EQ(*g->find("i32")->as_int(), -2000000000);
    EXPECT_EQ(*g->find("f32")->as_float(), 1.5);
    EXPECT_TRUE(*g->find("bool")->as_bool());
    EXPECT_EQ(g->find("str")->str, "hello");
    EXPECT_FALSE(g->find("u64")->as_int());  // above INT64_MAX
    EXPECT_EQ(*g->find("u64")->as_float(), 18446744073709551615.0);
    EXPECT_EQ(*g->find("i64")->as_int(), -5);
    EXPECT_EQ(*g->find("f64")->as_float(), 0.25);
    EXPECT_EQ(g->find("strs")->strings, (std::vector<std::string>{"a", "", "ccc"}));
    EXPECT_EQ(g->find("ints")->ints, (std::vector<int64_t>{1, -2, 3}));
    EXPECT_EQ(g->find("floats")->reals, (std::vector<double>{0.5, -2.0}));
    const GgufValue* n = g->find("nested");
    ASSERT_EQ(n->arrays.size(), 2u);
    EXPECT_EQ(n->elem_type, VT::kArray);
    EXPECT_EQ(n->arrays[0].elem_type, VT::kU16);
    EXPECT_EQ(n->arrays[0].ints, (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(n->arrays[1].array_size(), 0u);
    EXPECT_EQ(g->find("nested")->describe(), "array<array>[2]");

    // Typed getters.
    EXPECT_EQ(*g->get_int("u32"), 4000000000ll);
    EXPECT_EQ(*g->get_string("str"), "hello");
    EXPECT_FALSE(g->get_int("str"));
    EXPECT_FALSE(g->get_string("missing"));
    EXPECT_FALSE(g->find_int("missing")->has_value());
    EXPECT_FALSE(g->find_bool("u8"));  // wrong type is an error, not "absent"

    ASSERT_EQ(g->tensors().size(), 2u);
    const GgufTensorInfo* a = g->find_tensor("a.weight");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->shape(), (Shape{2, 3}));  // GGUF dims reversed: [out, in]
    EXPECT_EQ(g->alignment(), 32u);
    EXPECT_EQ(g->data_offset() % 32, 0u);
    auto t = g->load_f32(*g->find_tensor("b"));
    ASSERT_TRUE(t);
    EXPECT_EQ(t->data_as<float>()[3], 10.0f);
    auto ta = g->load_f32(*a);
    ASSERT_TRUE(ta);
    EXPECT_EQ(ta->data_as<float>()[5], 6.0f);
  }
}

TEST(GgufFile, HonoursGeneralAlignment) {
  TempDir dir;
  GgufBuilder b;
  b.kv_u32("general.alignment", 64);
  b.tensor_f32("x", {3}, {1, 2, 3});
  b.tensor_f32("y", {2}, {4, 5});
  auto g = parse_bytes(dir, b.build(3, 64));
  ASSERT_TRUE(g) << g.status().to_string();
  EXPECT_EQ(g->alignment(), 64u);
  EXPECT_EQ(g->data_offset() % 64, 0u);
  EXPECT_EQ(g->find_tensor("y")->offset, 64u);
  EXPECT_EQ(g->load_f32(*g->find_tensor("y"))->data_as<float>()[1], 5.0f);

  GgufBuilder bad;
  bad.kv_u32("general.alignment", 48);
  auto e = parse_bytes(dir, bad.build());
  ASSERT_FALSE(e);
  EXPECT_NE(e.status().message().find("power of two"), std::string::npos);
}

// Every proper prefix of a valid file fails cleanly and names the file and an offset.
TEST(GgufFile, EveryTruncationIsACleanError) {
  TempDir dir;
  const std::vector<uint8_t> full = every_type_builder().build();
  ASSERT_TRUE(parse_bytes(dir, full));
  for (size_t n = 0; n < full.size(); ++n) {
    // Cuts inside the padding after the last tensor still leave a valid file.
    std::vector<uint8_t> part(full.begin(), full.begin() + static_cast<long>(n));
    auto g = parse_bytes(dir, part, "cut.gguf");
    if (g) continue;
    const std::string m = g.status().message();
    EXPECT_NE(m.find("cut.gguf"), std::string::npos) << m;
    if (n >= 4) {
      EXPECT_NE(m.find("byte offset"), std::string::npos) << m;
    }
  }
  // Cutting into the tensor data must fail: the last tensor's bytes are gone.
  std::vector<uint8_t> cut(full.begin(), full.end() - 40);
  EXPECT_FALSE(parse_bytes(dir, cut));
}

void patch_u64(std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(&b[at], &v, 8); }
void patch_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); }

TEST(GgufFile, RejectsHostileHeaders) {
  TempDir dir;
  const std::vector<uint8_t> good = every_type_builder().build();
  auto expect_error = [&](std::vector<uint8_t> bytes, const std::string& needle) {
    auto g = parse_bytes(dir, bytes);
    ASSERT_FALSE(g) << "expected an error containing '" << needle << "'";
    EXPECT_NE(g.status().message().find(needle), std::string::npos) << g.status().message();
  };
  {
    auto b = good;
    b[0] = 'X';
    expect_error(b, "not a GGUF file");
  }
  {
    auto b = good;
    patch_u32(b, 4, 1);
    expect_error(b, "version 1");
  }
  {
    auto b = good;
    patch_u32(b, 4, 0x03000000);  // a big-endian v3 file read as little-endian
    expect_error(b, "unsupported GGUF version");
  }
  {
    auto b = good;
    patch_u64(b, 8, 1ull << 60);
    expect_error(b, "tensor count");
  }
  {
    auto b = good;
    patch_u64(b, 16, 1ull << 62);
    expect_error(b, "metadata count");
  }
  {
    auto b = good;
    patch_u64(b, 24, 1ull << 40);  // the first key's length
    expect_error(b, "claims");
  }
}

TEST(GgufFile, RejectsHostileValues) {
  TempDir dir;
  auto expect_error = [&](const GgufBuilder& b, const std::string& needle) {
    auto g = parse_bytes(dir, b.build());
    ASSERT_FALSE(g) << "expected an error containing '" << needle << "'";
    EXPECT_NE(g.status().message().find(needle), std::string::npos) << g.status().message();
    EXPECT_NE(g.status().message().find("byte offset"), std::string::npos);
  };
  {
    GgufBuilder b;  // an array count far beyond the file
    b.key("arr", VT::kArray);
    b.raw().put<uint32_t>(static_cast<uint32_t>(VT::kU64));
    b.raw().put<uint64_t>(1ull << 61);
    expect_error(b, "cannot fit");
  }
  {
    GgufBuilder b;  // string array whose count beats the bytes left
    b.key("arr", VT::kArray);
    b.raw().put<uint32_t>(static_cast<uint32_t>(VT::kString));
    b.raw().put<uint64_t>(1000);
    expect_error(b, "cannot fit");
  }
  {
    GgufBuilder b;
    b.key("x", static_cast<VT>(13));
    expect_error(b, "unknown value type 13");
  }
  {
    GgufBuilder b;
    b.key("x", VT::kArray);
    b.raw().put<uint32_t>(77);
    b.raw().put<uint64_t>(0);
    expect_error(b, "unknown array element type");
  }
  {
    GgufBuilder b;
    b.key("x", VT::kBool);
    b.raw().put<uint8_t>(2);
    expect_error(b, "bool");
  }
  {
    GgufBuilder b;  // arrays nested 9 deep
    b.key("deep", VT::kArray);
    for (int i = 0; i < 9; ++i) {
      b.raw().put<uint32_t>(static_cast<uint32_t>(VT::kArray));
      b.raw().put<uint64_t>(1);
    }
    b.raw().put<uint32_t>(static_cast<uint32_t>(VT::kU8));
    b.raw().put<uint64_t>(0);
    expect_error(b, "nested deeper");
  }
  {
    GgufBuilder b;
    b.kv_u32("k", 1);
    b.kv_u32("k", 2);
    expect_error(b, "duplicate metadata key 'k'");
  }
  {
    GgufBuilder b;
    b.tensor("t", {1, 1, 1, 1, 1}, 0, std::vector<uint8_t>(4));
    expect_error(b, "5 dimensions");
  }
  {
    GgufBuilder b;
    b.tensor("q", {31}, 2, std::vector<uint8_t>(18));  // Q4_0 rows must be multiples of 32
    expect_error(b, "block size 32");
  }
  {
    GgufBuilder b;
    b.tensor("big", {1ull << 40, 1ull << 40}, 0, {});
    expect_error(b, "overflows");
  }
  {
    GgufBuilder b;
    b.tensor("big", {1ull << 30}, 0, std::vector<uint8_t>(4));
    expect_error(b, "truncated file: tensor 'big'");
  }
  {
    GgufBuilder b;
    b.tensor_f32("t", {1}, {1});
    b.tensor_f32("t", {1}, {2});
    expect_error(b, "duplicate tensor name 't'");
  }
}

TEST(GgufFile, UnknownTensorTypeIsReportedOnLoad) {
  TempDir dir;
  GgufBuilder b;
  b.tensor("iq", {256}, 23, std::vector<uint8_t>(136));  // IQ4_XS: known size, no decoder
  b.tensor("weird", {4}, 999, std::vector<uint8_t>(4));
  auto g = parse_bytes(dir, b.build());
  ASSERT_TRUE(g) << g.status().to_string();
  auto iq = g->load_f32(*g->find_tensor("iq"));
  ASSERT_FALSE(iq);
  EXPECT_EQ(iq.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(iq.status().message().find("IQ4_XS"), std::string::npos);
  auto w = g->load_f32(*g->find_tensor("weird"));
  ASSERT_FALSE(w);
  EXPECT_NE(w.status().message().find("unknown type 999"), std::string::npos);
}

}  // namespace
}  // namespace vortex
