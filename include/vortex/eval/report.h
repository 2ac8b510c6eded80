// Aggregation of eval results: per (config, task, context) accuracy with a 95% confidence
// interval, the paired difference to dense on the same prompts, JSON / Markdown output, and an
// accuracy-vs-throughput SVG scatter plot.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace vortex::eval {

/// One scored generation.
struct SampleResult {
  std::string config;  ///< "dense", "block_topk:30", ...
  std::string task;
  int64_t context = 0;
  double depth = 0.0;
  int64_t index = 0;   ///< sample number within (task, context, depth): pairs configs
  double score = 0.0;  ///< 0..1
  double selected_fraction = 1.0;
};

/// One cell of the table.
struct CellSummary {
  std::string config, task;
  int64_t context = 0;
  int64_t n = 0;
  double mean = 0.0, ci95 = 0.0;  ///< accuracy (0..100) ± half-width
  double selected_fraction = 1.0;
  std::optional<double> diff_vs_dense, diff_ci95;  ///< paired, in points
};

/// Mean and 95% half-width (normal approximation, sample std / sqrt(n)).
std::pair<double, double> mean_ci95(const std::vector<double>& xs);

/// Cells for every (config, task, context), plus "all" rows per (config, context). `baseline`
/// names the dense config the differences are taken against (paired by task/context/depth/index).
std::vector<CellSummary> summarize(const std::vector<SampleResult>& results,
                                   const std::string& baseline = "dense");

nlohmann::json to_json(const std::vector<CellSummary>& cells);
std::string to_markdown(const std::vector<CellSummary>& cells);

/// Scatter plot: x = throughput (tokens/s) per config, y = mean accuracy; `throughput` maps a
/// config label to tokens/s (from a bench JSON). Configs without a throughput are left out.
std::string scatter_svg(const std::vector<CellSummary>& cells,
                        const std::map<std::string, double>& throughput, const std::string& title);

}  // namespace vortex::eval
