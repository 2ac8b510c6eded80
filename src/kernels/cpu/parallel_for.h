// Internal to the CPU kernels: the one threading model of the CPU backend. Loops run on OpenMP's
// persistent team (libgomp: workers spin briefly after a loop, then sleep; OMP_NUM_THREADS and
// OMP_WAIT_POLICY apply). OpenBLAS runs single-threaded inside those loops (blas_in_caller_thread)
// so no second pool of threads spins beside this one.
#pragma once

#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace vortex::cpu::detail {

/// Work (multiply-adds) below which a loop runs on the calling thread.
inline constexpr int64_t kMinParallelWork = int64_t{1} << 16;

/// Threads a parallel loop may use: 1 without OpenMP or inside a parallel region.
inline int max_threads() {
#if defined(_OPENMP)
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

/// Calls fn(i) for i in [0, n), spread over the team (dynamic schedule, one item at a time) when
/// `total_work` reaches kMinParallelWork. fn must be safe to call concurrently for distinct i; the
/// result never depends on the number of threads when each fn(i) writes only item i's output.
template <typename Fn>
void parallel_for(int64_t n, int64_t total_work, const Fn& fn) {
#if defined(_OPENMP)
  if (n > 1 && total_work >= kMinParallelWork && max_threads() > 1) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) fn(i);
}

/// Makes OpenBLAS run every call on the calling thread (once per process); the CPU kernels split
/// GEMMs over the OpenMP team themselves.
void blas_in_caller_thread();

}  // namespace vortex::cpu::detail
