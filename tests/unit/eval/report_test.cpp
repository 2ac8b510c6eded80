// Eval aggregation: means, confidence intervals, paired differences, rendering.
#include "vortex/eval/report.h"

#include <gtest/gtest.h>

namespace vortex::eval {
namespace {

TEST(Report, MeanCi) {
  auto [m, ci] = mean_ci95({1.0, 1.0, 1.0});
  EXPECT_DOUBLE_EQ(m, 1.0);
  EXPECT_DOUBLE_EQ(ci, 0.0);
  auto [m2, ci2] = mean_ci95({0.0, 1.0});
  EXPECT_DOUBLE_EQ(m2, 0.5);
  EXPECT_NEAR(ci2, 1.96 * std::sqrt(0.5) / std::sqrt(2.0), 1e-12);
}

TEST(Report, PairedDifferenceAgainstDense) {
  std::vector<SampleResult> rs;
  for (int i = 0; i < 10; ++i) {
    rs.push_back({"dense", "passkey", 1024, 0.5, i, 1.0, 1.0});
    rs.push_back({"block_topk:4", "passkey", 1024, 0.5, i, i < 8 ? 1.0 : 0.0, 0.25});
  }
  auto cells = summarize(rs);
  const CellSummary* sparse = nullptr;
  const CellSummary* dense = nullptr;
  for (const auto& c : cells) {
    if (c.task == "passkey" && c.config == "block_topk:4") sparse = &c;
    if (c.task == "passkey" && c.config == "dense") dense = &c;
  }
  ASSERT_TRUE(sparse && dense);
  EXPECT_DOUBLE_EQ(dense->mean, 100.0);
  EXPECT_FALSE(dense->diff_vs_dense.has_value());
  EXPECT_DOUBLE_EQ(sparse->mean, 80.0);
  ASSERT_TRUE(sparse->diff_vs_dense.has_value());
  EXPECT_DOUBLE_EQ(*sparse->diff_vs_dense, -20.0);
  EXPECT_GT(*sparse->diff_ci95, 0.0);
  EXPECT_DOUBLE_EQ(sparse->selected_fraction, 0.25);
  const std::string md = to_markdown(cells);
  EXPECT_NE(md.find("| passkey | 1024 | block_topk:4 | 10 | 80.0"), std::string::npos) << md;
  EXPECT_EQ(to_json(cells).size(), cells.size());
  const std::string svg = scatter_svg(cells, {{"dense", 100.0}, {"block_topk:4", 400.0}}, "t");
  EXPECT_NE(svg.find("<circle"), std::string::npos);
  EXPECT_NE(svg.find("block_topk:4 @1024"), std::string::npos);
}

}  // namespace
}  // namespace vortex::eval
