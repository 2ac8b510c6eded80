// Eval aggregation and rendering (JSON, Markdown, SVG).
#include "vortex/eval/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

namespace vortex::eval {

std::pair<double, double> mean_ci95(const std::vector<double>& xs) {
  if (xs.empty()) return {0.0, 0.0};
  double sum = 0.0;
  for (double x : xs) sum += x;
  const double mean = sum / static_cast<double>(xs.size());
  if (xs.size() < 2) return {mean, 0.0};
  double ss = 0.0;
  for (double x : xs) ss += (x - mean) * (x - mean);
  const double sd = std::sqrt(ss / static_cast<double>(xs.size() - 1));
  return {mean, 1.96 * sd / std::sqrt(static_cast<double>(xs.size()))};
}

std::vector<CellSummary> summarize(const std::vector<SampleResult>& results,
                                   const std::string& baseline) {
  using Key = std::tuple<std::string, std::string, int64_t>;          // config, task, context
  using PairKey = std::tuple<std::string, int64_t, double, int64_t>;  // task, ctx, depth, index
  std::map<Key, std::vector<const SampleResult*>> cells;
  std::map<PairKey, double> base;
  for (const auto& r : results) {
    cells[{r.config, r.task, r.context}].push_back(&r);
    cells[{r.config, "all", r.context}].push_back(&r);
    if (r.config == baseline) base[{r.task, r.context, r.depth, r.index}] = r.score;
  }
  std::vector<CellSummary> out;
  for (const auto& [key, rs] : cells) {
    CellSummary c;
    std::tie(c.config, c.task, c.context) = key;
    std::vector<double> scores, diffs;
    double frac = 0.0;
    for (const SampleResult* r : rs) {
      scores.push_back(100.0 * r->score);
      frac += r->selected_fraction;
      auto it = base.find({r->task, r->context, r->depth, r->index});
      if (it != base.end()) diffs.push_back(100.0 * (r->score - it->second));
    }
    c.n = static_cast<int64_t>(rs.size());
    std::tie(c.mean, c.ci95) = mean_ci95(scores);
    c.selected_fraction = frac / static_cast<double>(rs.size());
    if (c.config != baseline && diffs.size() == rs.size()) {
      auto [d, dci] = mean_ci95(diffs);
      c.diff_vs_dense = d;
      c.diff_ci95 = dci;
    }
    out.push_back(c);
  }
  std::stable_sort(out.begin(), out.end(), [&](const CellSummary& a, const CellSummary& b) {
    // Baseline first within each (task, context); "all" rows last.
    auto rank = [&](const CellSummary& c) {
      return std::make_tuple(c.task == "all", c.task, c.context, c.config != baseline, c.config);
    };
    return rank(a) < rank(b);
  });
  return out;
}

nlohmann::json to_json(const std::vector<CellSummary>& cells) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& c : cells) {
    nlohmann::json j = {{"config", c.config},
                        {"task", c.task},
                        {"context", c.context},
                        {"n", c.n},
                        {"accuracy", c.mean},
                        {"ci95", c.ci95},
                        {"selected_fraction", c.selected_fraction}};
    if (c.diff_vs_dense) {
      j["diff_vs_dense"] = *c.diff_vs_dense;
      j["diff_ci95"] = *c.diff_ci95;
    }
    arr.push_back(j);
  }
  return arr;
}

std::string to_markdown(const std::vector<CellSummary>& cells) {
  std::string md =
      "| task | context | config | n | accuracy (%) | Δ vs dense (points) | selected pages |\n"
      "|---|---|---|---|---|---|---|\n";
  for (const auto& c : cells) {
    const std::string diff =
        c.diff_vs_dense ? fmt::format("{:+.1f} ± {:.1f}", *c.diff_vs_dense, *c.diff_ci95) : "—";
    md += fmt::format("| {} | {} | {} | {} | {:.1f} ± {:.1f} | {} | {:.3f} |\n", c.task, c.context,
                      c.config, c.n, c.mean, c.ci95, diff, c.selected_fraction);
  }
  return md;
}

std::string scatter_svg(const std::vector<CellSummary>& cells,
                        const std::map<std::string, double>& throughput, const std::string& title) {
  struct Point {
    std::string label;
    double x, y;
  };
  std::vector<Point> pts;
  // One point per (config, context) from the "all" rows.
  for (const auto& c : cells) {
    if (c.task != "all") continue;
    auto it = throughput.find(c.config);
    if (it == throughput.end()) continue;
    pts.push_back({fmt::format("{} @{}", c.config, c.context), it->second, c.mean});
  }
  const double W = 640, H = 420, L = 70, R = 20, T = 40, B = 50;
  double xmax = 1.0;
  for (const auto& p : pts) xmax = std::max(xmax, p.x);
  xmax *= 1.1;
  auto sx = [&](double x) { return L + (W - L - R) * x / xmax; };
  auto sy = [&](double y) { return H - B - (H - T - B) * y / 100.0; };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" "
      "font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"22\" font-size=\"14\">{}</text>\n",
      W, H, L, title);
  svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n", L,
                     H - B, W - R);
  svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"black\"/>\n", L,
                     H - B, T);
  for (int i = 0; i <= 5; ++i) {
    const double y = 20.0 * i;
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.0f}</text>\n", L - 6,
                       sy(y) + 4, y);
    const double x = xmax * i / 5.0;
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{:.0f}</text>\n", sx(x),
                       H - B + 16, x);
  }
  svg +=
      fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">throughput (tokens/s)</text>\n",
                  (L + W - R) / 2, H - 12);
  svg += fmt::format(
      "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">"
      "accuracy (%)</text>\n",
      (T + H - B) / 2, (T + H - B) / 2);
  for (const auto& p : pts) {
    svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"#3366cc\"/>\n", sx(p.x),
                       sy(p.y));
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", sx(p.x) + 6, sy(p.y) - 6,
                       p.label);
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace vortex::eval
