// VORTEX_HD: marks small arithmetic helpers that the host, nvcc device code and NVRTC-generated
// kernels all compile (plain `inline` for the host compiler).
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define VORTEX_HD __host__ __device__ __forceinline__
#else
#define VORTEX_HD inline
#endif
