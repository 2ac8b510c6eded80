// Shared by the CPU benchmarks: the median of timed runs and writing the JSON report.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vortex::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Writes `report` to `path` (nothing when empty); false (and a message) when it cannot.
inline bool write_report(const std::string& tool, const std::string& path,
                         const nlohmann::json& report) {
  if (path.empty()) return true;
  std::ofstream f(path);
  if (!f) {
    fmt::print(stderr, "{}: cannot write {}\n", tool, path);
    return false;
  }
  f << report.dump(2) << "\n";
  return true;
}

}  // namespace vortex::bench
