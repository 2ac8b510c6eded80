// A one-line progress bar with ETA on stderr (only when stderr is a terminal or forced); shared by
// `vortex eval` and `vortex bench`.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace vortex::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, bool enabled)
      : label_(std::move(label)), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

  void update(int64_t done, int64_t total) {
    if (!enabled_ || total <= 0) return;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double frac = static_cast<double>(done) / static_cast<double>(total);
    const double eta = done > 0 ? elapsed * (1.0 - frac) / frac : 0.0;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    std::fprintf(stderr, "\r%s [%.*s%*s] %lld/%lld  %.0fs elapsed, ETA %.0fs ", label_.c_str(),
                 filled, "##############################", kWidth - filled, "",
                 static_cast<long long>(done), static_cast<long long>(total), elapsed, eta);
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

  /// Enabled unless --quiet; only draws on a terminal so logs stay clean.
  static bool default_enabled(bool quiet) { return !quiet && isatty(STDERR_FILENO); }

 private:
  std::string label_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace vortex::cli
