// CUDA embedding lookup: bf16 table rows gathered into the fp32 residual stream, with the token id
// optionally taken from the previous step's sampled tokens (so step N+1 can be launched before the
// host has read step N's tokens).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace vortex::cuda {

/// out[n, d] = table[id(i), :] as fp32, where id(i) = prev_tokens[prev_index[i]] when prev_index
/// is non-null and prev_index[i] >= 0, else ids[i]. Ids outside [0, vocab) give a zero row (the
/// host validates ids; this only keeps a bad id from reading out of bounds).
///   table [vocab, d] bf16   ids [n]   prev_tokens [*]   prev_index [n] or null   out [n, d] f32
void embedding_lookup(const __nv_bfloat16* table, int32_t vocab, int32_t d, const int32_t* ids,
                      const int32_t* prev_tokens, const int32_t* prev_index, int64_t n, float* out,
                      cudaStream_t stream);

}  // namespace vortex::cuda
