// Benchmark harness for GPU kernels: CUDA-event timing (warm-up, groups of calls between two
// events, median over groups), input rotation sizing against the L2, measured ceilings (streaming
// read, device copy, cuBLAS bf16 GEMM, launch latency) and device-side random fills.
// Benchmarks time; they never assert (STYLE habit 7).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace vortex::bench {

/// Per-call times of one benchmark, in microseconds.
struct Stats {
  double median_us = 0;
  double min_us = 0;
  double max_us = 0;
  int groups = 0;
  int calls_per_group = 0;
};

/// Enqueues `fn(i)` (call number i, for rotating inputs) on `stream`: `warmup` calls, then
/// `groups` groups of `per_group` calls timed by two events each. Per-call = group time /
/// per_group.
Stats time_calls(cudaStream_t stream, int warmup, int groups, int per_group,
                 const std::function<void(int)>& fn);

/// How many copies of an input of `bytes` make the rotation exceed `target` bytes (L2 defeat).
int rotation_copies(size_t bytes, size_t target, int max_copies);

/// The ceilings every report is compared with, measured in the same run.
struct Ceilings {
  double read_gbps = 0;        ///< streaming read, 16-byte loads, 4 GiB
  double copy_gbps = 0;        ///< cudaMemcpy device to device, read + write counted
  double gemm_tflops = 0;      ///< cuBLAS bf16 GEMM 8192^3 (0 when skipped)
  double launch_sync_us = 0;   ///< eager launch + stream sync, host wall clock
  double launch_eager_us = 0;  ///< back-to-back eager launches, GPU time per launch
  double launch_graph_us = 0;  ///< a kernel node inside a replayed CUDA graph
  size_t l2_bytes = 0;
  int sms = 0;
  std::string device;
};

/// Measures the ceilings on the current device (allocates ~4.5 GiB for a moment).
Ceilings measure_ceilings(bool with_gemm, bool quick);

/// Fills `n` bf16 values with a deterministic hash of (index, seed), uniform in [-1, 1).
void fill_random_bf16(void* data, size_t n, uint64_t seed, cudaStream_t stream);
/// Fills `n` floats likewise (normal-ish: sum of two uniforms).
void fill_random_f32(float* data, size_t n, uint64_t seed, cudaStream_t stream);

/// Aborts with a message on a CUDA error (benchmarks have no caller to return to).
void cuda_ok(cudaError_t err, const char* what);

}  // namespace vortex::bench
