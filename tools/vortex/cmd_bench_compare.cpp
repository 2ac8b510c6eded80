// `vortex bench compare A.json B.json [...]`: results of `vortex bench serve` / `bench decode` runs
// side by side. Every numeric field present in all files (nested objects flattened to dotted
// paths; arrays of results by index) gets one row: the value in each file and its ratio to the
// first file. Fields that differ in meaning per run (git SHA, command) head the table instead.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "command_registry.h"

namespace {

struct Run {
  std::string path;
  nlohmann::json json;
  std::map<std::string, double> numbers;  // dotted path -> value
  std::vector<std::string> order;         // paths in document order
};

// Flattens numeric leaves; long arrays (per-point sweeps, per-sample lists) are skipped.
void flatten(const nlohmann::json& j, const std::string& prefix, Run* run) {
  if (j.is_number()) {
    if (run->numbers.emplace(prefix, j.get<double>()).second) run->order.push_back(prefix);
    return;
  }
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) flatten(v, prefix.empty() ? k : prefix + "." + k, run);
    return;
  }
  if (j.is_array() && j.size() <= 8) {
    for (size_t i = 0; i < j.size(); ++i) flatten(j[i], fmt::format("{}[{}]", prefix, i), run);
  }
}

std::string label(const nlohmann::json& j) {
  for (const char* path : {"/results/0/config", "/config/flow", "/mode"}) {
    const auto p = nlohmann::json::json_pointer(path);
    if (j.contains(p) && j.at(p).is_string()) return j.at(p).get<std::string>();
  }
  return "";
}

std::string text(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

std::string letter(size_t i) { return std::string(1, static_cast<char>('A' + i % 26)); }

std::string number(double v) {
  const double a = v < 0 ? -v : v;
  if (a < 1e12 && v == static_cast<double>(static_cast<long long>(v))) {
    return fmt::format("{}", static_cast<long long>(v));
  }
  if (a != 0 && (a >= 1e7 || a < 1e-3)) return fmt::format("{:.4g}", v);
  if (a >= 1000) return fmt::format("{:.1f}", v);
  return fmt::format("{:.4g}", v);
}

int run_compare(const std::vector<std::string>& paths) {
  if (paths.size() < 2) {
    fmt::print(stderr, "vortex bench compare: give at least two JSON files\n");
    return 2;
  }
  std::vector<Run> runs;
  for (const std::string& path : paths) {
    Run r;
    r.path = path;
    std::ifstream in(path);
    if (!in) {
      fmt::print(stderr, "vortex bench compare: cannot open {}\n", path);
      return 1;
    }
    r.json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (r.json.is_discarded() || !r.json.is_object()) {
      fmt::print(stderr, "vortex bench compare: {} is not a JSON object (a bench --json file)\n",
                 path);
      return 1;
    }
    flatten(r.json, "", &r);
    runs.push_back(std::move(r));
  }
  // Header: A, B, C, ... with each run's config label; every run after A also has a ratio column.
  fmt::print("| field | A {} |", label(runs[0].json));
  for (size_t i = 1; i < runs.size(); ++i) {
    fmt::print(" {} {} | {}/A |", letter(i), label(runs[i].json), letter(i));
  }
  fmt::print("\n|---|---|");
  for (size_t i = 1; i < runs.size(); ++i) fmt::print("---|---|");
  fmt::print("\n");
  for (const char* key : {"device", "git_sha", "model"}) {
    fmt::print("| {} | {} |", key, text(runs[0].json, key));
    for (size_t i = 1; i < runs.size(); ++i) fmt::print(" {} | |", text(runs[i].json, key));
    fmt::print("\n");
  }
  size_t rows = 0;
  for (const std::string& key : runs[0].order) {
    bool everywhere = true;
    for (const Run& r : runs) everywhere = everywhere && r.numbers.count(key) > 0;
    if (!everywhere) continue;
    const double base = runs[0].numbers.at(key);
    fmt::print("| {} | {} |", key, number(base));
    for (size_t i = 1; i < runs.size(); ++i) {
      const double v = runs[i].numbers.at(key);
      fmt::print(" {} | {} |", number(v), base != 0 ? fmt::format("{:.3f}x", v / base) : "-");
    }
    fmt::print("\n");
    ++rows;
  }
  if (rows == 0) {
    fmt::print(stderr, "vortex bench compare: the files share no numeric field\n");
    return 1;
  }
  fmt::print("\nA = {}", runs[0].path);
  for (size_t i = 1; i < runs.size(); ++i) fmt::print(", {} = {}", letter(i), runs[i].path);
  fmt::print("; ratio = value / A's value\n");
  return 0;
}

}  // namespace

VORTEX_REGISTER_COMMAND(bench_compare, 62, [](CLI::App& app, int* exit_code) {
  CLI::App* bench = app.get_subcommand("bench");  // registered by cmd_bench.cpp (order 60)
  auto paths = std::make_shared<std::vector<std::string>>();
  auto* cmd = bench->add_subcommand(
      "compare", "side-by-side table (Markdown) of bench --json results, with ratios to the first");
  cmd->add_option("files", *paths, "two or more JSON files written by bench serve / bench decode")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->callback([paths, exit_code] { *exit_code = run_compare(*paths); });

  // The same as a flag of `bench` itself: `vortex bench --compare a.json b.json`.
  auto flag_paths = std::make_shared<std::vector<std::string>>();
  bench
      ->add_option("--compare", *flag_paths,
                   "side-by-side table of two or more bench --json files (= bench compare)")
      ->expected(2, -1)
      ->check(CLI::ExistingFile);
  bench->require_subcommand(0, 1);
  bench->callback([bench, flag_paths, exit_code] {
    if (!bench->get_subcommands().empty()) {
      if (!flag_paths->empty()) {
        std::fprintf(stderr, "vortex bench: --compare takes no subcommand\n");
        *exit_code = 2;
      }
      return;
    }
    if (flag_paths->empty()) {
      std::fprintf(stderr,
                   "vortex bench: name a benchmark (decode, serve, compare) or pass --compare "
                   "A.json B.json; see vortex bench --help\n");
      *exit_code = 2;
      return;
    }
    *exit_code = run_compare(*flag_paths);
  });
});
