// Tensor / TensorView / Shape basics.
#include "vortex/core/tensor.h"

#include <gtest/gtest.h>

namespace vortex {
namespace {

TEST(Tensor, ShapeAndStrides) {
  Shape s{2, 3, 4};
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.to_string(), "[2, 3, 4]");
  EXPECT_EQ(contiguous_strides(s), (Shape{12, 4, 1}));
}

TEST(Tensor, EmptyZerosViewReshape) {
  auto t = Tensor::zeros({2, 3}, DType::kF32);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->nbytes(), 24u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t->data_as<float>()[i], 0.0f);
  TensorView v = t->view();
  EXPECT_TRUE(v.is_contiguous());
  EXPECT_EQ(v.offset({1, 2}), 5);
  auto r = t->reshape({3, 2});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->data(), t->data());  // shares storage
  EXPECT_FALSE(t->reshape({4, 2}).has_value());
  EXPECT_FALSE(Tensor::empty({-1, 2}, DType::kF32).has_value());
}

TEST(Tensor, HugeAllocationFailsCleanly) {
  auto t = Tensor::empty({int64_t{1} << 45}, DType::kF32);
  EXPECT_FALSE(t.has_value());
  EXPECT_EQ(t.status().code(), StatusCode::kOutOfMemory);
}

}  // namespace
}  // namespace vortex
