// Internal to the CPU kernels: a fork-join loop over independent items on short-lived std::threads,
// used only when the work is large enough to pay for starting them (no idle spinning between
// calls, so it never competes with the BLAS threads that run the GEMMs in between).
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace vortex::cpu::detail {

/// Work (multiply-adds) below which a loop runs on the calling thread.
inline constexpr int64_t kMinParallelWork = int64_t{1} << 18;

/// Calls fn(i) for i in [0, n), split over up to hardware_concurrency() threads in contiguous
/// blocks when `total_work` reaches kMinParallelWork. fn must be safe to call concurrently for
/// distinct i.
template <typename Fn>
void parallel_for(int64_t n, int64_t total_work, const Fn& fn) {
  const int64_t hw = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t threads = total_work < kMinParallelWork ? 1 : std::min(hw, n);
  if (threads <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  auto run_block = [&](int64_t t) {
    const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
    for (int64_t i = begin; i < end; ++i) fn(i);
  };
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(threads - 1));
  for (int64_t t = 1; t < threads; ++t) workers.emplace_back(run_block, t);
  run_block(0);
  for (auto& w : workers) w.join();
}

}  // namespace vortex::cpu::detail
