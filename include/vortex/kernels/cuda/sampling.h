// CUDA sampling: penalties, greedy argmax (lowest index on ties), temperature, top-k, top-p, min-p
// and a seeded Philox draw, one block per logits row, returning only token ids. Deterministic: the
// probability masses are summed in fixed point, so the same logits and seed give the same token.
//
// Semantics (in this order):
//   1. penalties on the row's penalty list (every token of the prompt or the output, once, with
//      its count in the output): repetition (HF: positive logits divided by r, negative
//      multiplied), then logit -= frequency · count + presence · (count > 0);
//   2. temperature <= 0 (or top_k == 1): the argmax, lowest index among equal maxima;
//   3. otherwise w_i = exp((l_i - max) / T); keep the tokens whose logit is >= the k-th largest
//      (top_k > 0; ties kept), then the smallest upper set of those whose mass is >= top_p of
//      theirs (top_p < 1), then those with w_i >= min_p (min_p > 0);
//   4. draw x = philox_draw(seed, offset) (Philox4x32-10, key = seed, counter = (offset, 0, 0, 0)),
//      scale it to r = floor(x * M / 2^64) (the high 64 bits of the 128-bit product), M = the kept
//      mass, and return the kept token where the running mass in vocabulary order (ascending token
//      id) first exceeds r.
// Masses are w_i rounded to multiples of 2^-26 (tokens below ~1.5e-8 of the max have mass 0), so M
// and the running sums are exact integers. Scaling (rather than x mod M) makes the draw stable
// under a last-bit difference of exp (device expf vs a host reference): M and the running sums move
// by a few units, so r moves by as few and only a draw that close to a token boundary changes.
// This is not the CPU Sampler's convention (model/sampler.h: a stateful mt19937_64 stream and
// cumulation in descending probability), so the two backends draw different tokens for one seed.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace vortex::cuda {

/// Per-row parameters, device-resident (one per logits row).
struct SamplingRow {
  float temperature = 0.0f;  ///< <= 0: greedy
  int32_t top_k = 0;         ///< 0: off
  float top_p = 1.0f;        ///< 1: off
  float min_p = 0.0f;        ///< 0: off
  float repetition_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  int32_t reserved = 0;
  uint64_t seed = 0;
  uint64_t offset = 0;  ///< Philox counter: the request's generated-token count, one draw a step
};

/// Per-row penalty lists (CSR over rows); null indptr: no penalties anywhere.
struct PenaltyView {
  const int32_t* indptr = nullptr;  // [rows + 1]
  const int32_t* tokens = nullptr;  // [indptr[rows]] distinct tokens of the prompt and output
  const int32_t* counts = nullptr;  // [indptr[rows]] occurrences in the output (0: prompt only)
};

/// Samples one token per row. Penalties are applied to `logits` in place.
///   logits [rows, vocab] f32   params [rows]   out_tokens [rows]
///   out_logprobs [rows] or null: log-probability of the chosen token under softmax((l - max)/T)
///   after penalties (T = 1 for greedy rows), before truncation.
void sample_tokens(float* logits, int32_t rows, int32_t vocab, const SamplingRow* params,
                   PenaltyView penalties, int32_t* out_tokens, float* out_logprobs,
                   cudaStream_t stream);

/// The Philox4x32-10 draw used by sample_tokens (host side too, for tests): the first two 32-bit
/// outputs of the block at counter (offset, 0, 0, 0) under key seed, as (hi << 32) | lo.
uint64_t philox_draw(uint64_t seed, uint64_t offset);

}  // namespace vortex::cuda
