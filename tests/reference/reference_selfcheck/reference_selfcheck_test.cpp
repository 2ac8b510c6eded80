// reference_forward.py on a tiny llama-style GGUF (Q/K rows permuted for adjacent-pair RoPE)
// and on the HF directory save_safetensors exports from the loaded checkpoint (rows permuted back,
// half-split RoPE): both must give the same logits. This ties the exporter's permutation to the
// reference's, so the reference can judge both RoPE conventions of the CPU forward.
#include <gtest/gtest.h>

#include <cmath>

#include "test_files.h"
#include "tiny_gguf.h"
#include "vortex/model/gguf_checkpoint.h"
#include "vortex/model/hf_checkpoint.h"

namespace vortex {
namespace {

std::vector<float> read_f32(const std::string& path) {
  auto b = testing::read_file(path);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

TEST(ReferenceForward, GgufAndItsHfExportAgree) {
  const std::string py = testing::venv_python();
  if (py.empty()) GTEST_SKIP() << "no .venv (scripts/setup.sh creates it); skipping";
  testing::TempDir dir;
  testing::Values values;
  testing::write_file(dir.file("tiny.gguf"),
                      testing::tiny_gguf(testing::TinySpec{}, &values).build());
  auto ck = load_gguf_checkpoint(dir.file("tiny.gguf"));
  ASSERT_TRUE(ck) << ck.status().to_string();
  ASSERT_EQ(ck->config.rope.style, RopeStyle::kAdjacentPairs);
  ASSERT_TRUE(save_safetensors(dir.file("hf"), ck->weights, ck->config).is_ok());

  const std::string script =
      std::string(VORTEX_SOURCE_DIR) + "/tests/reference/reference_forward.py";
  const std::string tokens = "1,3,4,5,6,7,3,2,0,4,4,6";  // 12 positions: RoPE matters
  for (const char* which : {"tiny.gguf", "hf"}) {
    const std::string cmd = py + " " + script + " --model " + dir.file(which) + " --tokens " +
                            tokens + " --all-positions --out " + dir.file(which) + ".f32";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  const auto a = read_f32(dir.file("tiny.gguf.f32"));
  const auto b = read_f32(dir.file("hf.f32"));
  ASSERT_EQ(a.size(), 12u * 8u);
  ASSERT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * double(a[i] - b[i]);
    den += double(a[i]) * a[i];
  }
  EXPECT_GT(den, 0.0);
  EXPECT_LT(std::sqrt(num / den), 1e-6) << "GGUF and HF-export logits differ";
}

}  // namespace
}  // namespace vortex
