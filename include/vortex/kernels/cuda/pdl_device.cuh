// Device half of programmatic dependent launch (see launch.h): the first statement of every
// kernel that launch_kernel() may launch. nvcc and NVRTC compile it; a no-op below sm_90 and
// when the kernel was launched without PDL.
#pragma once

namespace vortex::gpu {

__device__ __forceinline__ void pdl_enter() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

}  // namespace vortex::gpu
