// CUDA GEMMs for the model: y = x · wᵀ with bf16 inputs and fp32 accumulation through cuBLASLt,
// one workspace and one cached plan (layouts + heuristic algorithm) per shape, so a step that
// reuses its shapes does no planning and can be captured in a CUDA graph.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "vortex/core/allocator.h"
#include "vortex/core/dtype.h"
#include "vortex/core/status.h"

namespace vortex::cuda {

/// Whether decode-shaped products (n <= 64) may use the skinny tensor-core kernel
/// (skinny_gemm.h) instead of cuBLASLt. kAuto: only when autotuning, and only when it measures
/// faster (L2-cold timing); kOn: whenever it supports the shape; kOff: never. The environment
/// variable VORTEX_SKINNY_GEMM=auto|on|off sets it for new Gemm objects.
enum class SkinnyGemmMode { kAuto, kOn, kOff };

/// Owns a cuBLASLt handle, a device workspace and the per-shape plan cache. Not thread-safe: use
/// one per stream.
class Gemm {
 public:
  /// Creates the handle and a `workspace_bytes` workspace on `alloc`'s device. `autotune` false:
  /// every shape takes the cuBLASLt heuristic's first pick (no timing), so two Gemm objects plan
  /// the same algorithm for the same shape and alignment and give bitwise-equal products; true:
  /// skinny shapes are timed (see matmul/prepare), and the pick can differ between objects and
  /// runs.
  static Expected<std::unique_ptr<Gemm>> create(Allocator& alloc,
                                                size_t workspace_bytes = size_t{32} << 20,
                                                bool autotune = true);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  /// y[n, m] = x[n, k] · w[m, k]ᵀ + beta · y[n, m], all row-major and contiguous.
  ///   x bf16   w bf16 (a Linear weight [out, in])   y bf16 or f32 (`y_dtype`)
  /// beta must be 0 for bf16 output. Plans the shape on first use (autotuned like prepare() when
  /// beta is 0 and the stream is not being captured).
  Status matmul(const __nv_bfloat16* x, const __nv_bfloat16* w, void* y, DType y_dtype, int64_t n,
                int64_t m, int64_t k, float beta, cudaStream_t stream);

  /// Plans the shape matmul(x, w, y, ...) would use, without running it as a product, so that a
  /// later matmul (for instance during graph capture) finds it cached. Skinny shapes (n <= 512)
  /// are autotuned: the heuristic's top candidates (and the skinny kernel for n <= 64) are timed
  /// on these operands on `stream` with a cold L2 (which is synchronised, and y is overwritten),
  /// the fastest is kept.
  Status prepare(const void* x, const void* w, void* y, DType y_dtype, int64_t n, int64_t m,
                 int64_t k, cudaStream_t stream);

  /// Number of cached plans (for tests).
  size_t cached_plans() const;
  /// Applies to shapes planned from now on.
  void set_skinny_mode(SkinnyGemmMode mode);
  /// Number of cached plans that run the skinny kernel.
  int skinny_plans() const;

 private:
  Gemm();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vortex::cuda
