// Status / Expected semantics and the VORTEX_* helper macros.
#include "vortex/core/status.h"

#include <gtest/gtest.h>

#include "vortex/core/check.h"

namespace vortex {
namespace {

Expected<int> parse_positive(int x) {
  if (x <= 0) return invalid_argument("x must be positive, got " + std::to_string(x));
  return x;
}

Expected<int> doubled(int x) {
  VORTEX_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return 2 * v;
}

Status chain(int x) {
  VORTEX_RETURN_IF_ERROR(parse_positive(x).status());
  return Status::ok();
}

TEST(Status, CodesAndMessages) {
  Status s = not_found("model 'x' not found; pass a path to a .gguf");
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.to_string(), "not found: model 'x' not found; pass a path to a .gguf");
  EXPECT_EQ(s.with_context("loading").message(),
            "loading: model 'x' not found; pass a path to a .gguf");
  EXPECT_TRUE(Status::ok().is_ok());
}

TEST(Status, ExpectedPropagates) {
  EXPECT_EQ(*doubled(4), 8);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(chain(3).is_ok());
  EXPECT_FALSE(chain(0).is_ok());
}

TEST(Status, ExpectedFromOkStatusIsAnError) {
  Expected<int> e(Status::ok());
  EXPECT_FALSE(e.has_value());
  EXPECT_EQ(e.status().code(), StatusCode::kInternal);
}

TEST(StatusDeathTest, CheckAborts) {
  EXPECT_DEATH(VORTEX_CHECK_MSG(1 == 2, "because " << 42), "because 42");
  Expected<int> e = invalid_argument("nope");
  EXPECT_DEATH((void)e.value(), "nope");
}

}  // namespace
}  // namespace vortex
