// Device half of programmatic dependent launch (see launch.h): the first statement of every
// kernel that launch_kernel() may launch. nvcc and NVRTC compile it; a no-op below sm_90 and
// when the kernel was launched without PDL.
#pragma once

namespace vortex::gpu {

/// Waits until the preceding grid has completed and its writes are visible (no-op without PDL).
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/// Lets the next grid of the stream launch (it still waits for this one before reading).
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/// The default first statement: wait, then let the next grid launch. A kernel with loads that do
/// not depend on any earlier kernel of the step (weights) calls pdl_launch_dependents(), issues
/// those loads, then pdl_wait() before it touches anything else.
__device__ __forceinline__ void pdl_enter() {
  pdl_wait();
  pdl_launch_dependents();
}

}  // namespace vortex::gpu
