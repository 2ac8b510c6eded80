// --device parsing and the CUDA backend's error in a build (or on a machine) without it.
#include "vortex/engine/device.h"

#include <gtest/gtest.h>

#include "vortex/core/cuda_allocator.h"
#include "vortex/engine/cuda_backend.h"

namespace vortex::engine {
namespace {

TEST(Device, ParsesCpuAndRejectsUnknownNames) {
  auto cpu = parse_device("cpu");
  ASSERT_TRUE(cpu.has_value());
  EXPECT_FALSE(cpu->is_cuda());
  EXPECT_EQ(cpu->to_string(), "cpu");
  for (const char* bad : {"gpu", "", "cuda:", "cuda:x", "cuda:-1", "cuda0", "CPU", "cuda:1x"}) {
    auto d = parse_device(bad);
    EXPECT_FALSE(d.has_value()) << bad;
    if (!d.has_value()) {
      EXPECT_NE(d.status().message().find("--device"), std::string::npos) << bad;
    }
  }
}

TEST(Device, AutoPicksTheGpuOnlyWhenOneIsUsable) {
  auto d = parse_device("auto");
  ASSERT_TRUE(d.has_value());
#if defined(VORTEX_WITH_CUDA)
  EXPECT_EQ(d->is_cuda(), cuda_device_count() > 0);
#else
  EXPECT_FALSE(d->is_cuda());
#endif
}

TEST(Device, CudaNeedsTheBackendAndAVisibleGpu) {
  auto d = parse_device("cuda:0");
#if defined(VORTEX_WITH_CUDA)
  EXPECT_EQ(d.has_value(), cuda_device_count() > 0);
  auto far = parse_device("cuda:999");
  ASSERT_FALSE(far.has_value());
  EXPECT_NE(far.status().message().find("visible"), std::string::npos);
#else
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(d.status().message().find("--device cpu"), std::string::npos);
  auto b = make_cuda_backend("synthetic:tiny-llama", CudaBackendOptions{});
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.status().code(), StatusCode::kUnsupported);
#endif
}

}  // namespace
}  // namespace vortex::engine
