// Internal to CudaModel: device kernels that are not model ops — seeded random fills that
// reproduce synthetic_weights() on the device, and bf16 noise for benchmark KV caches.
#pragma once

#if defined(VORTEX_WITH_CUDA)

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace vortex::detail {

/// out[i] = mean + (2u - 1)·half_width with u from splitmix64(stream + first + i) (the formula of
/// synthetic_weights), rounded to bf16.   out [n]
void fill_synthetic_bf16(__nv_bfloat16* out, int64_t n, uint64_t stream_key, int64_t first,
                         float mean, float half_width, cudaStream_t stream);
/// The same values in fp32.   out [n]
void fill_synthetic_f32(float* out, int64_t n, uint64_t stream_key, int64_t first, float mean,
                        float half_width, cudaStream_t stream);

/// *acc += *value * times (one thread; counters of the sparse planner summed over a step).
void accumulate_count(const int32_t* value, int32_t times, long long* acc, cudaStream_t stream);

}  // namespace vortex::detail

#endif  // VORTEX_WITH_CUDA
