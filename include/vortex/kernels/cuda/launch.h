// Kernel launches with programmatic dependent launch (PDL, sm_90+). A kernel launched through
// launch_kernel() may be scheduled while the kernel before it on the stream is still draining;
// its threads first execute pdl_enter() (pdl_device.cuh), which waits until every grid it depends
// on has completed and its writes are visible, then lets the next kernel start launching.
// Ordering is therefore exactly stream order; what can overlap is the launch and CTA
// rasterisation of kernel N+1 with the tail of kernel N. Inside a stream capture the launches
// become programmatic edges of the CUDA graph.
//
// Contract: every kernel launched here calls pdl_enter() before it touches global memory.
// PDL is off unless VORTEX_PDL=1 (on/true): at the issue-7 decode shape on an H200 it measured
// neutral (graph-captured steps already launch back to back; the waits sit at the kernels' tops,
// so nothing but the launch overlaps). The kernels stay PDL-ready for prologue overlap (work
// that does not depend on the previous kernel, e.g. weight prefetch, placed before the wait).
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace vortex::gpu {

/// Whether launch_kernel() uses PDL: VORTEX_PDL is 1/on/true and the current device is sm_90 or
/// newer. Evaluated once per process.
bool pdl_enabled();

/// A launch configuration with PDL when enabled; `attr` (one element) must outlive the launch.
inline cudaLaunchConfig_t launch_config(dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                        cudaLaunchAttribute* attr) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = attr;
  if (pdl_enabled()) {
    attr->id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr->val.programmaticStreamSerializationAllowed = 1;
    config.numAttrs = 1;
  }
  return config;
}

/// `kernel<<<grid, block, smem, stream>>>(args...)` with PDL when enabled.
template <typename... Params, typename... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                          cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t config = launch_config(grid, block, smem, stream, &attr);
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

/// The untyped form (argument pointer array, as cudaLaunchKernel takes).
inline cudaError_t launch_kernel_c(const void* kernel, dim3 grid, dim3 block, void** args,
                                   size_t smem, cudaStream_t stream) {
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t config = launch_config(grid, block, smem, stream, &attr);
  return cudaLaunchKernelExC(&config, kernel, args);
}

}  // namespace vortex::gpu
