// Benchmark harness implementation: event timing, ceilings (read / copy / GEMM / launch), fills.
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "gpu_bench.h"
#include "vortex/core/allocator.h"
#include "vortex/core/cuda_allocator.h"

namespace vortex::bench {
namespace {

__device__ __forceinline__ uint32_t hash32(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return static_cast<uint32_t>(x);
}

__global__ void fill_bf16_kernel(__nv_bfloat16* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float u =
        static_cast<float>(hash32(i * 0x9e3779b97f4a7c15ull + seed) >> 8) * (1.0f / 8388608.0f);
    p[i] = __float2bfloat16_rn(u - 1.0f);
  }
}

__global__ void fill_f32_kernel(float* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float a = static_cast<float>(hash32(2 * i + seed) >> 8) * (1.0f / 16777216.0f);
    const float b = static_cast<float>(hash32(2 * i + 1 + seed) >> 8) * (1.0f / 16777216.0f);
    p[i] = (a + b - 1.0f) * 2.45f;  // mean 0, variance ~1
  }
}

/// Streaming read: 16-byte loads, 4 independent loads in flight per thread, evict-first.
__global__ void __launch_bounds__(512)
    read_kernel(const uint4* __restrict__ p, size_t n, uint32_t* sink) {
  uint32_t acc = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const uint4 a = __ldcs(p + i), b = __ldcs(p + i + stride);
    const uint4 c = __ldcs(p + i + 2 * stride), d = __ldcs(p + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^
           d.w;
  }
  for (; i < n; i += stride) {
    const uint4 a = __ldcs(p + i);
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;  // keeps the loads alive
}

__global__ void empty_kernel() {}

/// Device memory from the project allocator (aborts on failure: a benchmark cannot go on).
Buffer device_buffer(size_t bytes) {
  auto alloc = cuda_allocator(0);
  if (!alloc.has_value()) {
    std::fprintf(stderr, "vortex bench: %s\n", alloc.status().to_string().c_str());
    std::exit(2);
  }
  auto b = Buffer::allocate(**alloc, bytes);
  if (!b.has_value()) {
    std::fprintf(stderr, "vortex bench: %s\n", b.status().to_string().c_str());
    std::exit(2);
  }
  return std::move(*b);
}

int grid_for(size_t n, int threads) {
  return static_cast<int>(std::min<size_t>((n + threads - 1) / threads, 65536));
}

}  // namespace

void cuda_ok(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "vortex bench: %s failed: %s\n", what, cudaGetErrorString(err));
    std::exit(2);
  }
}

Stats time_calls(cudaStream_t stream, int warmup, int groups, int per_group,
                 const std::function<void(int)>& fn) {
  int call = 0;
  for (int i = 0; i < warmup; ++i) fn(call++);
  cudaEvent_t start, stop;
  cuda_ok(cudaEventCreate(&start), "cudaEventCreate");
  cuda_ok(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<double> per_call;
  for (int g = 0; g < groups; ++g) {
    cuda_ok(cudaEventRecord(start, stream), "cudaEventRecord");
    for (int i = 0; i < per_group; ++i) fn(call++);
    cuda_ok(cudaEventRecord(stop, stream), "cudaEventRecord");
    cuda_ok(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    cuda_ok(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    per_call.push_back(1000.0 * ms / per_group);
  }
  cuda_ok(cudaGetLastError(), "timed launches");
  cuda_ok(cudaEventDestroy(start), "cudaEventDestroy");
  cuda_ok(cudaEventDestroy(stop), "cudaEventDestroy");
  std::sort(per_call.begin(), per_call.end());
  Stats s;
  s.groups = groups;
  s.calls_per_group = per_group;
  s.min_us = per_call.front();
  s.max_us = per_call.back();
  s.median_us = per_call[per_call.size() / 2];
  return s;
}

int rotation_copies(size_t bytes, size_t target, int max_copies) {
  if (bytes == 0) return 1;
  const size_t c = (target + bytes - 1) / bytes;
  return static_cast<int>(std::clamp<size_t>(c, 1, static_cast<size_t>(max_copies)));
}

void fill_random_bf16(void* data, size_t n, uint64_t seed, cudaStream_t stream) {
  fill_bf16_kernel<<<grid_for(n, 256), 256, 0, stream>>>(static_cast<__nv_bfloat16*>(data), n,
                                                         seed);
  cuda_ok(cudaGetLastError(), "fill_bf16_kernel");
}

void fill_random_f32(float* data, size_t n, uint64_t seed, cudaStream_t stream) {
  fill_f32_kernel<<<grid_for(n, 256), 256, 0, stream>>>(data, n, seed);
  cuda_ok(cudaGetLastError(), "fill_f32_kernel");
}

Ceilings measure_ceilings(bool with_gemm, bool quick) {
  Ceilings c;
  int dev = 0;
  cuda_ok(cudaGetDevice(&dev), "cudaGetDevice");
  cudaDeviceProp prop{};
  cuda_ok(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
  c.device = prop.name;
  c.sms = prop.multiProcessorCount;
  c.l2_bytes = static_cast<size_t>(prop.l2CacheSize);
  cudaStream_t s;
  cuda_ok(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  const int groups = quick ? 5 : 11;

  // Streaming read over 4 GiB.
  const size_t read_bytes = size_t{4} << 30;
  Buffer read_buf = device_buffer(read_bytes), sink_buf = device_buffer(4);
  void* buf = read_buf.data();
  auto* sink = static_cast<uint32_t*>(sink_buf.data());
  cuda_ok(cudaMemsetAsync(buf, 1, read_bytes, s), "cudaMemset");
  const int read_grid = prop.multiProcessorCount * 4;
  Stats rs = time_calls(s, 2, groups, 1, [&](int) {
    read_kernel<<<read_grid, 512, 0, s>>>(static_cast<const uint4*>(buf), read_bytes / 16, sink);
  });
  c.read_gbps = read_bytes / (rs.median_us * 1e3);

  // Device-to-device copy of 2 GiB (4 GiB moved).
  const size_t half = read_bytes / 2;
  Stats cs = time_calls(s, 2, groups, 1, [&](int) {
    cuda_ok(cudaMemcpyAsync(static_cast<char*>(buf) + half, buf, half, cudaMemcpyDeviceToDevice, s),
            "cudaMemcpyAsync");
  });
  c.copy_gbps = 2.0 * half / (cs.median_us * 1e3);
  read_buf.reset();

  // cuBLAS bf16 GEMM 8192^3 on random data, fp32 accumulation.
  if (with_gemm) {
    const int n = 8192;
    const size_t elems = static_cast<size_t>(n) * n;
    Buffer ba = device_buffer(elems * 2), bb = device_buffer(elems * 2),
           bd = device_buffer(elems * 2);
    void *a = ba.data(), *b = bb.data(), *d = bd.data();
    fill_random_bf16(a, elems, 1, s);
    fill_random_bf16(b, elems, 2, s);
    cublasHandle_t h;
    if (cublasCreate(&h) == CUBLAS_STATUS_SUCCESS) {
      cublasSetStream(h, s);
      const float alpha = 1.f, beta = 0.f;
      bool ok = true;
      Stats gs = time_calls(s, 3, quick ? 5 : 10, 1, [&](int) {
        ok &= cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b,
                           CUDA_R_16BF, n, &beta, d, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS;
      });
      if (ok) c.gemm_tflops = 2.0 * n * static_cast<double>(n) * n / (gs.median_us * 1e6);
      cublasDestroy(h);
    }
  }

  // Launch latency: launch + sync (host clock), back-to-back eager, and graph nodes.
  {
    std::vector<double> t;
    for (int i = 0; i < 10; ++i) empty_kernel<<<1, 32, 0, s>>>();
    cuda_ok(cudaStreamSynchronize(s), "sync");
    for (int i = 0; i < 500; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      empty_kernel<<<1, 32, 0, s>>>();
      cuda_ok(cudaStreamSynchronize(s), "sync");
      t.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    c.launch_sync_us = t[t.size() / 2];
    Stats es = time_calls(s, 100, groups, 1000, [&](int) { empty_kernel<<<1, 32, 0, s>>>(); });
    c.launch_eager_us = es.median_us;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    const int nodes = 200;
    cuda_ok(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "capture");
    for (int i = 0; i < nodes; ++i) empty_kernel<<<1, 32, 0, s>>>();
    cuda_ok(cudaStreamEndCapture(s, &graph), "end capture");
    cuda_ok(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
    Stats gs =
        time_calls(s, 3, groups, 1, [&](int) { cuda_ok(cudaGraphLaunch(exec, s), "launch"); });
    c.launch_graph_us = gs.median_us / nodes;
    cuda_ok(cudaGraphExecDestroy(exec), "destroy");
    cuda_ok(cudaGraphDestroy(graph), "destroy");
  }
  cuda_ok(cudaStreamDestroy(s), "cudaStreamDestroy");
  return c;
}

}  // namespace vortex::bench
