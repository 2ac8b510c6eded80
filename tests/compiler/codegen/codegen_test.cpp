// CPU tests of the CUDA code generator: the golden source of block_topk, the kernels and buffers
// every built-in gets, random flows from the catalogue (each verifies and generates), the errors
// for flows that cannot fit, and the SHA-256 behind the compiled-module cache key.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "random_flow.h"
#include "test_flows.h"
#include "vortex/compiler/codegen_cuda.h"
#include "vortex/compiler/passes.h"
#include "vortex/flow/builder.h"
#include "vortex/flow/policy.h"
#include "vortex/flow/registry.h"

namespace vortex::compiler {
namespace {

using flow::ShapeEnv;

const std::string kGoldenDir = std::string(VORTEX_SOURCE_DIR) + "/tests/compiler/golden/";

void expect_golden(const std::string& file, const std::string& actual) {
  const std::string path = kGoldenDir + file;
  if (std::getenv("VORTEX_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path, std::ios::binary) << actual;
    return;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in.good()) << "missing golden file " << path << " (run with VORTEX_UPDATE_GOLDEN=1)";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string expected = ss.str();
  if (actual == expected) return;
  // Report the first differing line, not the whole source.
  std::istringstream a(actual), e(expected);
  std::string la, le;
  int line = 1;
  while (std::getline(a, la) && std::getline(e, le) && la == le) ++line;
  ADD_FAILURE() << "golden mismatch for " << file << " at line " << line << ":\n  expected: " << le
                << "\n  actual:   " << la
                << "\n(after an intended change: VORTEX_UPDATE_GOLDEN=1, review the diff)";
}

Expected<CudaFlowSource> generate(const std::string& name, const ShapeEnv& env,
                                  const CudaCodegenOptions& opt = {}) {
  VORTEX_ASSIGN_OR_RETURN(flow::FlowIR ir, flow::registered_flow_ir(name));
  VORTEX_ASSIGN_OR_RETURN(Plan plan, compile_plan(ir, env));
  return emit_cuda(plan, opt);
}

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(CodegenCuda, BlockTopKGolden) {
  auto src = generate("block_topk", ShapeEnv{16, 128, 4});
  ASSERT_TRUE(src.has_value()) << src.status().to_string();
  expect_golden("block_topk.cuda.txt", src->source);
  ASSERT_EQ(src->cache_kernels.size(), 1u);
  ASSERT_EQ(src->indexer_kernels.size(), 1u);  // q_mean and the GeMM fused; topK by the runtime
  EXPECT_EQ(src->indexer_kernels[0].kind, CudaKernelKind::kFused);
  EXPECT_TRUE(src->buffers.empty());  // the score goes straight to the scores buffer
  EXPECT_EQ(src->plan_rows_kernel, "vx_plan_rows");
  EXPECT_EQ(src->tolerance, 0.0f);
  // Only the score is stored (no intermediate reaches global memory); no host headers.
  EXPECT_EQ(count(src->source, "a.buf["), 0);
  EXPECT_EQ(count(src->source, "#include"), 0);
}

TEST(CodegenCuda, EveryBuiltinAtSeveralShapesAndDtypes) {
  const ShapeEnv envs[] = {{16, 128, 4}, {32, 64, 2}, {16, 128, 1}, {64, 128, 8}};
  for (const std::string& name : flow::builtin_names()) {
    for (const ShapeEnv& env : envs) {
      for (DType aux : {DType::kBF16, DType::kF32}) {
        CudaCodegenOptions opt;
        opt.aux_dtype = aux;
        opt.q_dtype = aux == DType::kF32 ? DType::kF32 : DType::kBF16;
        auto src = generate(name, env, opt);
        ASSERT_TRUE(src.has_value())
            << name << " " << env.to_string() << ": " << src.status().to_string();
        if (name == "dense") {
          EXPECT_TRUE(src->indexer_kernels.empty() && src->cache_kernels.empty());
          EXPECT_TRUE(src->plan_rows_kernel.empty());
          continue;
        }
        EXPECT_EQ(src->plan_rows_kernel, "vx_plan_rows") << name;
        if (name == "streaming") {
          ASSERT_EQ(src->indexer_kernels.size(), 1u);
          EXPECT_EQ(src->indexer_kernels[0].kind, CudaKernelKind::kStreamingScores);
          continue;
        }
        EXPECT_EQ(src->cache_kernels.size(), 1u) << name;
        for (const auto& k : src->indexer_kernels) {
          EXPECT_NE(src->source.find(" " + k.name + "(const VxArgs a)"), std::string::npos)
              << name << " lacks " << k.name;
          EXPECT_LE(k.smem_bytes, 227 * 1024) << name;
        }
      }
    }
  }
}

TEST(CodegenCuda, PageAxisGroupsPassValuesThroughBuffers) {
  auto src = generate("gqa_block_topk", ShapeEnv{16, 128, 4});
  ASSERT_TRUE(src.has_value()) << src.status().to_string();
  // GeMM -> [softmax over pages] -> Max(dim=2): fused, page-axis, fused.
  ASSERT_EQ(src->indexer_kernels.size(), 3u);
  EXPECT_EQ(src->indexer_kernels[0].kind, CudaKernelKind::kFused);
  EXPECT_EQ(src->indexer_kernels[1].kind, CudaKernelKind::kPageAxis);
  EXPECT_EQ(src->indexer_kernels[2].kind, CudaKernelKind::kFused);
  ASSERT_EQ(src->buffers.size(), 2u);
  for (const auto& b : src->buffers) {
    EXPECT_TRUE(b.per_page);
    EXPECT_EQ(b.tile, 4);  // [S, 1, G]
  }
}

TEST(CodegenCuda, SaveInTheSameKernelWritesTheFieldDirectly) {
  auto src = generate("running_avg", ShapeEnv{16, 128, 4});
  ASSERT_TRUE(src.has_value()) << src.status().to_string();
  EXPECT_TRUE(src->uses_save);
  ASSERT_EQ(src->indexer_kernels.size(), 1u);  // Load, Add, Save fused with the score
  EXPECT_NE(src->source.find("// Save %v6 -> field 1 'running'"), std::string::npos);
  EXPECT_EQ(count(src->source, "vx_commit_"), 0);
}

TEST(CodegenCuda, StateReadAfterABoundaryIsCommittedLast) {
  testing::DeferredStateFlow f;
  auto ir = flow::build_flow(f);
  ASSERT_TRUE(ir.has_value()) << ir.status().to_string();
  auto plan = compile_plan(*ir, ShapeEnv{16, 128, 4});
  ASSERT_TRUE(plan.has_value()) << plan.status().to_string();
  auto src = emit_cuda(*plan);
  ASSERT_TRUE(src.has_value()) << src.status().to_string();
  ASSERT_FALSE(src->indexer_kernels.empty());
  EXPECT_EQ(src->indexer_kernels.back().kind, CudaKernelKind::kSaveCommit);
  EXPECT_EQ(count(src->source, "// Save %v"), 0);  // no direct field write in the fused kernel
}

TEST(CodegenCuda, TopKOverAFieldCopiesIt) {
  testing::FieldScoreFlow f;
  auto ir = flow::build_flow(f);
  ASSERT_TRUE(ir.has_value()) << ir.status().to_string();
  auto plan = compile_plan(*ir, ShapeEnv{16, 128, 4});
  ASSERT_TRUE(plan.has_value()) << plan.status().to_string();
  auto src = emit_cuda(*plan);
  ASSERT_TRUE(src.has_value()) << src.status().to_string();
  ASSERT_EQ(src->indexer_kernels.size(), 1u);
  EXPECT_EQ(src->indexer_kernels[0].name, "vx_indexer_score");
}

TEST(CodegenCuda, PolicyIsCompiledIntoThePlannerKernel) {
  auto ir = flow::registered_flow_ir("quest");
  ASSERT_TRUE(ir.has_value());
  auto plan = compile_plan(*ir, ShapeEnv{16, 128, 4});
  ASSERT_TRUE(plan.has_value());
  auto policy = flow::PolicyExpr::parse("min(64, max(8, pages / 8)) + (layer > 2 ? 4 : 0)");
  ASSERT_TRUE(policy.has_value());
  CudaCodegenOptions opt;
  opt.policy = &*policy;
  auto src = emit_cuda(*plan, opt);
  ASSERT_TRUE(src.has_value());
  EXPECT_NE(src->source.find("// budget policy: min(64, max(8, pages / 8))"), std::string::npos);
  EXPECT_NE(src->source.find(policy->emit_cuda()), std::string::npos);
}

TEST(CodegenCuda, RandomFlowsVerifyAndGenerate) {
  int kernels = 0, page_axis = 0, saves = 0, params = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    const ShapeEnv env = seed % 3 == 0 ? ShapeEnv{32, 64, 2} : ShapeEnv{16, 128, 4};
    testing::RandomFlowGen gen(seed, env);
    const flow::FlowIR ir = gen.build("random_" + std::to_string(seed));
    auto plan = compile_plan(ir, env);
    ASSERT_TRUE(plan.has_value()) << "seed " << seed << ": " << plan.status().to_string();
    CudaCodegenOptions opt;
    opt.aux_dtype = seed % 2 ? DType::kBF16 : DType::kF32;
    auto src = emit_cuda(*plan, opt);
    ASSERT_TRUE(src.has_value()) << "seed " << seed << ": " << src.status().to_string();
    kernels += static_cast<int>(src->indexer_kernels.size());
    for (const auto& k : src->indexer_kernels) page_axis += k.kind == CudaKernelKind::kPageAxis;
    saves += src->uses_save ? 1 : 0;
    params += src->source.find("Parameter value") != std::string::npos ? 1 : 0;
  }
  // The generator covers the catalogue's kinds of kernels.
  EXPECT_GT(page_axis, 50);
  EXPECT_GT(saves, 30);
  EXPECT_GT(params, 30);
  EXPECT_GT(kernels, 400);
}

// A flow whose indexer reads whole K tiles at a huge head dim cannot fit shared memory.
struct HugeTiles : flow::lang::Flow {
  std::string name() const override { return "huge_tiles"; }
  flow::lang::Tensor forward_indexer(flow::lang::Tensor q, flow::lang::CacheView& cache) override {
    using namespace flow::lang;               // NOLINT(google-build-using-namespace)
    auto s = GeMM()(Mean(1)(q), cache["k"]);  // [S, P, 1]
    return topK()(Max(1)(s));
  }
};

TEST(CodegenCuda, TooLargeTilesAndBadDtypesAreErrors) {
  HugeTiles f;
  auto ir = flow::build_flow(f);
  ASSERT_TRUE(ir.has_value()) << ir.status().to_string();
  auto plan = compile_plan(*ir, ShapeEnv{64, 4096, 1});
  ASSERT_TRUE(plan.has_value()) << plan.status().to_string();
  auto src = emit_cuda(*plan);
  ASSERT_FALSE(src.has_value());
  EXPECT_NE(src.status().message().find("shared memory"), std::string::npos)
      << src.status().to_string();
  auto small = compile_plan(*ir, ShapeEnv{16, 128, 4});
  ASSERT_TRUE(small.has_value());
  EXPECT_TRUE(emit_cuda(*small).has_value());
  CudaCodegenOptions opt;
  opt.q_dtype = DType::kF16;
  auto bad = emit_cuda(*small, opt);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.status().message().find("f32 or bf16"), std::string::npos);
}

TEST(Sha256, KnownAnswers) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // Padding boundaries: 55 bytes fit one block with the length, 56 need two.
  EXPECT_EQ(sha256_hex(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha256_hex(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(sha256_hex(std::string(63, 'a')),
            "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
  EXPECT_EQ(sha256_hex(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
  EXPECT_EQ(sha256_hex(std::string(119, 'a')),
            "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  std::string bytes;
  for (int r = 0; r < 3; ++r) {
    for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  }
  EXPECT_EQ(sha256_hex(bytes), "f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484c1dfe363");
}

TEST(Sha256, ModuleKeyCoversSourceArchFlagsAndCompiler) {
  const std::vector<std::string> flags = {"--gpu-architecture=sm_90a", "-std=c++17"};
  const std::string base = cuda_module_key("src", "sm_90a", flags, "13.0");
  EXPECT_EQ(base.size(), 64u);
  EXPECT_EQ(base, cuda_module_key("src", "sm_90a", flags, "13.0"));
  EXPECT_NE(base, cuda_module_key("src ", "sm_90a", flags, "13.0"));
  EXPECT_NE(base, cuda_module_key("src", "sm_90", flags, "13.0"));
  EXPECT_NE(base, cuda_module_key("src", "sm_90a", {"--gpu-architecture=sm_90a"}, "13.0"));
  EXPECT_NE(base, cuda_module_key("src", "sm_90a", flags, "13.1"));
  // Field boundaries are unambiguous: moving a character between fields changes the key.
  EXPECT_NE(cuda_module_key("ab", "c", {}, "v"), cuda_module_key("a", "bc", {}, "v"));
}

}  // namespace
}  // namespace vortex::compiler
