// Internal to the CPU kernels: the vectorisation switches shared by the hot loops.
//   VORTEX_SIMD                      `#pragma omp simd` where OpenMP is on (the CPU kernels build
//                                    with it; GCC's -O2 leaves such loops scalar otherwise).
//   VORTEX_CPU_CLONES                on x86-64 with GCC, an x86-64-v3 (AVX2 + FMA) copy of the
//                                    function beside the baseline one, picked at load time by the
//                                    CPU (function multiversioning); the binary runs on any x86-64.
#pragma once

#if defined(_OPENMP)
#define VORTEX_SIMD _Pragma("omp simd")
#else
#define VORTEX_SIMD
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VORTEX_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VORTEX_CPU_CLONES
#endif
