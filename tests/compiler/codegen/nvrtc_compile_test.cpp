// NVRTC compiles the generated CUDA of every built-in flow (several shapes and dtypes, custom
// budget policies) and of random flows from the catalogue for sm_90a, exactly as the runtime does
// (gpu::nvrtc_compile with gpu::flow_compile_flags). NVRTC needs no GPU: this runs in CI under the
// cuda preset. Each cubin must define every kernel the runtime will look up.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include "random_flow.h"
#include "test_flows.h"
#include "vortex/compiler/codegen_cuda.h"
#include "vortex/compiler/passes.h"
#include "vortex/flow/builder.h"
#include "vortex/flow/policy.h"
#include "vortex/flow/registry.h"
#include "vortex/kernels/cuda/flow_runtime.h"

namespace vortex::compiler {
namespace {

using flow::ShapeEnv;

void expect_compiles(const CudaFlowSource& src, const std::string& what) {
  std::string log;
  auto image = gpu::nvrtc_compile(src.source, what, gpu::flow_compile_flags(), &log);
  ASSERT_TRUE(image.has_value()) << what << ": " << image.status().to_string();
  EXPECT_EQ(log.find("warning"), std::string::npos) << what << ": NVRTC warns:\n" << log;
  for (const auto* list : {&src.cache_kernels, &src.indexer_kernels}) {
    for (const CudaKernelSpec& k : *list) {
      EXPECT_NE(image->find(k.name), std::string::npos) << what << ": no symbol " << k.name;
    }
  }
  if (!src.plan_rows_kernel.empty()) {
    EXPECT_NE(image->find(src.plan_rows_kernel), std::string::npos) << what;
  }
}

TEST(NvrtcCompile, VersionAndFlags) {
  EXPECT_NE(gpu::nvrtc_version(), "unknown");
  const auto flags = gpu::flow_compile_flags();
  ASSERT_FALSE(flags.empty());
  EXPECT_EQ(flags[0], "--gpu-architecture=sm_90a");
  // A compile error is an error value carrying the log.
  auto bad = gpu::nvrtc_compile("__global__ void k() { undefined_thing(); }", "bad", flags);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.status().message().find("undefined_thing"), std::string::npos);
}

TEST(NvrtcCompile, EveryBuiltin) {
  struct Config {
    ShapeEnv env;
    DType q, aux;
  };
  const Config configs[] = {{{16, 128, 4}, DType::kBF16, DType::kBF16},
                            {{32, 64, 2}, DType::kF32, DType::kF32}};
  for (const std::string& name : flow::builtin_names()) {
    if (name == "dense") continue;
    for (const Config& c : configs) {
      auto ir = flow::registered_flow_ir(name);
      ASSERT_TRUE(ir.has_value());
      auto plan = compile_plan(*ir, c.env);
      ASSERT_TRUE(plan.has_value()) << plan.status().to_string();
      CudaCodegenOptions opt;
      opt.q_dtype = c.q;
      opt.aux_dtype = c.aux;
      auto src = emit_cuda(*plan, opt);
      ASSERT_TRUE(src.has_value()) << src.status().to_string();
      expect_compiles(*src, name + "_" + std::to_string(c.env.block_size));
    }
  }
}

TEST(NvrtcCompile, CustomPolicies) {
  auto ir = flow::registered_flow_ir("block_topk");
  ASSERT_TRUE(ir.has_value());
  auto plan = compile_plan(*ir, ShapeEnv{16, 128, 4});
  ASSERT_TRUE(plan.has_value());
  for (const char* text : {"clamp(pages / 16, 4, 64) + layer", "sqrt(pages) * 2 + log2(pages + 1)",
                           "layer < 2 ? pages : ceil(pages * topk_ratio) + bos + eos"}) {
    auto policy = flow::PolicyExpr::parse(text);
    ASSERT_TRUE(policy.has_value()) << text;
    CudaCodegenOptions opt;
    opt.policy = &*policy;
    auto src = emit_cuda(*plan, opt);
    ASSERT_TRUE(src.has_value());
    expect_compiles(*src, "policy");
  }
}

TEST(NvrtcCompile, HandWrittenEdgeFlows) {
  testing::DeferredStateFlow deferred;
  testing::FieldScoreFlow field_score;
  for (flow::lang::Flow* f : std::initializer_list<flow::lang::Flow*>{&deferred, &field_score}) {
    auto ir = flow::build_flow(*f);
    ASSERT_TRUE(ir.has_value()) << ir.status().to_string();
    auto plan = compile_plan(*ir, ShapeEnv{16, 128, 4});
    ASSERT_TRUE(plan.has_value()) << plan.status().to_string();
    auto src = emit_cuda(*plan);
    ASSERT_TRUE(src.has_value()) << src.status().to_string();
    expect_compiles(*src, f->name());
  }
}

// The disk cache: a miss compiles and stores, a hit returns the same image, a corrupt or
// truncated file is a miss (recompiled and rewritten), another source is another key.
TEST(NvrtcCompile, CubinCacheRoundTrip) {
  const std::string dir =
      ::testing::TempDir() + "/vortex_cubin_cache_test_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  const gpu::CubinCache cache(dir);
  EXPECT_EQ(cache.dir(), dir);
  const std::string src = "extern \"C\" __global__ void vx_probe(float* p) { p[0] = 1.0f; }";
  auto first = gpu::compile_cached(src, "probe", cache);
  ASSERT_TRUE(first.has_value()) << first.status().to_string();
  EXPECT_FALSE(first->from_cache);
  EXPECT_TRUE(std::filesystem::exists(cache.path(first->key)));
  auto second = gpu::compile_cached(src, "probe", cache);
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(second->from_cache);
  EXPECT_EQ(second->image, first->image);
  EXPECT_EQ(second->key, first->key);
  // Truncate the file: the header no longer matches, so it is recompiled and rewritten.
  std::filesystem::resize_file(cache.path(first->key), 100);
  EXPECT_FALSE(cache.load(first->key).has_value());
  auto third = gpu::compile_cached(src, "probe", cache);
  ASSERT_TRUE(third.has_value());
  EXPECT_FALSE(third->from_cache);
  EXPECT_TRUE(cache.load(first->key).has_value());
  // Flip one byte of the image: the SHA-256 in the header catches it.
  {
    std::fstream f(cache.path(first->key), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x5a');
  }
  EXPECT_FALSE(cache.load(first->key).has_value());
  auto other = gpu::compile_cached(src + "\n", "probe", cache);
  ASSERT_TRUE(other.has_value());
  EXPECT_NE(other->key, first->key);
  // No directory (no HOME, no VORTEX_CACHE_DIR) would disable the cache; an unwritable one is
  // not an error: the module still compiles.
  const gpu::CubinCache unwritable("/proc/vortex_no_such_dir");
  auto still = gpu::compile_cached(src, "probe", unwritable);
  ASSERT_TRUE(still.has_value());
  EXPECT_FALSE(still->from_cache);
  std::filesystem::remove_all(dir);
}

TEST(NvrtcCompile, RandomFlows) {
  for (uint64_t seed = 1000; seed < 1024; ++seed) {
    const ShapeEnv env = seed % 2 ? ShapeEnv{16, 128, 4} : ShapeEnv{32, 64, 8};
    testing::RandomFlowGen gen(seed, env);
    const flow::FlowIR ir = gen.build("random_" + std::to_string(seed));
    auto plan = compile_plan(ir, env);
    ASSERT_TRUE(plan.has_value()) << "seed " << seed << ": " << plan.status().to_string();
    CudaCodegenOptions opt;
    opt.aux_dtype = seed % 3 ? DType::kBF16 : DType::kF32;
    auto src = emit_cuda(*plan, opt);
    ASSERT_TRUE(src.has_value()) << "seed " << seed << ": " << src.status().to_string();
    expect_compiles(*src, "random_" + std::to_string(seed));
  }
}

}  // namespace
}  // namespace vortex::compiler
