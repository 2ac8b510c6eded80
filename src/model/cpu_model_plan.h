// Internal to CpuModel: the host-side plan of one step — flattened tokens, positions, KV slots,
// pages completed by the step, and which chunks run prefill or decode attention.
#pragma once

#include <cstdint>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/kvcache/kv_cache.h"
#include "vortex/model/forward_batch.h"
#include "vortex/model/model_config.h"

namespace vortex::detail {

struct StepPlan {
  int64_t num_tokens = 0;          ///< T, all chunks together
  std::vector<int64_t> offsets;    ///< [chunks] first row of each chunk in the [T, ...] buffers
  std::vector<int32_t> tokens;     ///< [T]
  std::vector<int32_t> positions;  ///< [T]
  std::vector<int32_t> slots;      ///< [T] page * P + offset
  std::vector<int32_t> completed_pages;  ///< pages whose last slot this step writes
  std::vector<size_t> prefill_chunks;    ///< chunks attended causally (prefill)
  std::vector<size_t> decode_chunks;     ///< chunks of one token after a prefix (decode)
  std::vector<int64_t> logit_rows;       ///< [count(want_logits)] last row of each such chunk
};

/// Checks the batch against the model and cache (the error names the chunk and the fix) and builds
/// its plan.
Expected<StepPlan> plan_step(const ModelConfig& config, const ForwardBatch& batch,
                             const KVCache& cache);

}  // namespace vortex::detail
