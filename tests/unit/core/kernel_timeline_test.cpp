// KernelTimeline: stage rules on real kernel names, busy/idle by interval union, Chrome trace JSON.
#include "vortex/core/kernel_timeline.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace vortex {
namespace {

constexpr const char* kAttention =
    "_ZN6vortex3gpu6decode13stream_kernelILi128ELi2E13__nv_bfloat16EEvNS1_6ParamsE";

TEST(KernelTimeline, StagesFromKernelNames) {
  EXPECT_EQ(kernel_stage(kAttention), "attention");
  EXPECT_EQ(kernel_stage("nvjet_tst_128x64_64x4_2x1_v_bz_TNT"), "GEMM");
  EXPECT_EQ(kernel_stage("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x64x64"), "GEMM");
  EXPECT_EQ(kernel_stage("_ZN6vortex4cuda12_GLOBAL__N_118skinny_gemm_kernelILi4EEEvv"), "GEMM");
  EXPECT_EQ(kernel_stage("_ZN6vortex3gpu12_GLOBAL__N_123block_topk_fused_kernelILi128ELi2E13__"
                         "nv_bfloat16ELb0EEEvNS1_11FusedParamsE"),
            "sparse fused");
  EXPECT_EQ(kernel_stage("_ZN6vortex3gpu12_GLOBAL__N_121centroid_score_kernelEv"), "indexer");
  EXPECT_EQ(kernel_stage("vx_indexer_g0"), "indexer");
  EXPECT_EQ(kernel_stage("_ZN6vortex3gpu12_GLOBAL__N_111topk_kernelEv"), "top-k");
  EXPECT_EQ(kernel_stage("_ZN6vortex4cuda12_GLOBAL__N_111norm_kernelEPfPK13__nv_bfloat16"), "norm");
  EXPECT_EQ(kernel_stage("_ZN6vortex4cuda12_GLOBAL__N_118rope_append_kernelEv"), "rope+append");
  EXPECT_EQ(kernel_stage("_ZN6vortex4cuda12_GLOBAL__N_112silu_mul_vec8EPK13__nv_bfloat16"),
            "activation");
  EXPECT_EQ(kernel_stage("_ZN6vortex4cuda12_GLOBAL__N_118l2_prefetch_kernelEPKvm"), "L2 prefetch");
  EXPECT_EQ(kernel_stage("something_else"), "other");
}

TEST(KernelTimeline, ShortNamesDropTemplatesAndParameters) {
  EXPECT_EQ(short_kernel_name(kAttention), "vortex::gpu::decode::stream_kernel<>");
  EXPECT_EQ(short_kernel_name("_ZN6vortex4cuda12_GLOBAL__N_111norm_kernelEPfPK13__nv_bfloat16"),
            "vortex::cuda::norm_kernel");
  EXPECT_EQ(short_kernel_name("nvjet_tst_128x64"), "nvjet_tst_128x64");  // not mangled: as is
}

TEST(KernelTimeline, BusyIdleAndGroups) {
  // Main stream: GEMM [0, 10) us, attention [12, 40); a side-stream prefetch [5, 20) overlaps
  // both; norm [45, 47). Busy = [0, 40) + [45, 47) = 42 us of a 47 us span, one 5 us gap.
  const std::vector<KernelSpan> spans = {
      {"nvjet_a", 0, 10'000, 7, 132, 384},
      {kAttention, 12'000, 40'000, 7, 264, 128},
      {"_ZN6vortex4cuda12_GLOBAL__N_118l2_prefetch_kernelEPKvm", 5'000, 20'000, 9, 64, 32},
      {"_ZN6vortex4cuda12_GLOBAL__N_111norm_kernelEv", 45'000, 47'000, 7, 32, 256},
  };
  const KernelTimeline t = summarize_timeline(spans);
  EXPECT_DOUBLE_EQ(t.span_us, 47.0);
  EXPECT_DOUBLE_EQ(t.busy_us, 42.0);
  EXPECT_DOUBLE_EQ(t.idle_us, 5.0);
  EXPECT_EQ(t.kernels, 4);
  EXPECT_EQ(t.gaps, 1);
  EXPECT_DOUBLE_EQ(t.median_gap_us, 5.0);
  ASSERT_EQ(t.stages.size(), 4u);
  EXPECT_EQ(t.stages[0].name, "attention");
  EXPECT_DOUBLE_EQ(t.stages[0].total_us, 28.0);
  EXPECT_EQ(t.stages[1].name, "L2 prefetch");
  EXPECT_DOUBLE_EQ(t.stages[1].total_us, 15.0);
  EXPECT_EQ(t.by_name.front().name, "vortex::gpu::decode::stream_kernel<>");
  EXPECT_EQ(summarize_timeline({}).kernels, 0);
}

TEST(KernelTimeline, ChromeTraceIsValidJsonWithOneEventPerKernel) {
  const std::vector<KernelSpan> spans = {{kAttention, 1'000, 3'500, 7, 264, 128},
                                         {"odd \"name\"\\\n", 4'000, 4'000, 9, 1, 32}};
  const nlohmann::json j = nlohmann::json::parse(chrome_trace_json(spans));
  ASSERT_EQ(j["traceEvents"].size(), 2u);
  EXPECT_EQ(j["traceEvents"][0]["cat"], "attention");
  EXPECT_DOUBLE_EQ(j["traceEvents"][0]["ts"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["traceEvents"][0]["dur"].get<double>(), 2.5);
  EXPECT_EQ(j["traceEvents"][1]["tid"], 9);
  EXPECT_EQ(j["traceEvents"][1]["args"]["kernel"], "odd \"name\"\\\n");
}

}  // namespace
}  // namespace vortex
