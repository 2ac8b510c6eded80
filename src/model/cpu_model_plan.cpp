// The host-side plan of one CpuModel step, and the checks of a ForwardBatch against the model.
#include "cpu_model_plan.h"

#include <limits>
#include <string>

namespace vortex::detail {
namespace {

Status bad_chunk(size_t i, const std::string& why) {
  return invalid_argument("forward batch chunk " + std::to_string(i) + ": " + why);
}

}  // namespace

Expected<StepPlan> plan_step(const ModelConfig& config, const ForwardBatch& batch,
                             const KVCache& cache) {
  const KVCacheConfig& kc = cache.config();
  if (kc.num_layers != config.num_layers || kc.num_kv_heads != config.num_kv_heads ||
      kc.head_dim != config.head_dim) {
    return invalid_argument("KV cache shape (layers, kv heads, head dim) does not match model '" +
                            config.name + "'; build the cache from CpuModel::kv_cache_config");
  }
  if (kc.kv_dtype != DType::kF32 && kc.kv_dtype != DType::kBF16) {
    return unsupported("the CPU model stores KV as f32 or bf16, not " +
                       std::string(dtype_name(kc.kv_dtype)));
  }
  const int32_t P = kc.page_size;
  StepPlan plan;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceChunk& c = batch.seqs[i];
    if (c.tokens == nullptr || c.num_tokens <= 0) return bad_chunk(i, "has no tokens");
    if (c.pages == nullptr) return bad_chunk(i, "has no page table");
    if (c.pages->page_size() != P) {
      return bad_chunk(i, "page size " + std::to_string(c.pages->page_size()) +
                              " differs from the cache's " + std::to_string(P));
    }
    if (c.start_pos != c.pages->num_tokens()) {
      return bad_chunk(i, "start_pos " + std::to_string(c.start_pos) +
                              " but the page table holds " + std::to_string(c.pages->num_tokens()) +
                              " tokens");
    }
    const int64_t end = c.start_pos + c.num_tokens;
    if (end > int64_t{c.pages->num_pages()} * P) {
      return bad_chunk(i, "pages are not reserved for " + std::to_string(end) +
                              " tokens; call PageTable::reserve first");
    }
    if (end > std::numeric_limits<int32_t>::max()) return bad_chunk(i, "position overflows int32");
    for (int32_t t = 0; t < c.num_tokens; ++t) {
      if (c.tokens[t] < 0 || c.tokens[t] >= config.vocab_size) {
        return bad_chunk(i, "token id " + std::to_string(c.tokens[t]) +
                                " is outside the vocabulary of " +
                                std::to_string(config.vocab_size));
      }
    }
    for (int32_t page : c.pages->pages()) {
      if (page < 0 || page >= cache.num_pages()) {
        return bad_chunk(i, "page id " + std::to_string(page) + " is outside the cache");
      }
    }
    plan.offsets.push_back(plan.num_tokens);
    const auto& pages = c.pages->pages();
    for (int32_t t = 0; t < c.num_tokens; ++t) {
      const int64_t pos = c.start_pos + t;
      plan.tokens.push_back(c.tokens[t]);
      plan.positions.push_back(static_cast<int32_t>(pos));
      const int32_t page = pages[static_cast<size_t>(pos / P)];
      plan.slots.push_back(page * P + static_cast<int32_t>(pos % P));
      if (pos % P == P - 1) plan.completed_pages.push_back(page);
    }
    plan.num_tokens += c.num_tokens;
    if (c.num_tokens == 1 && c.start_pos > 0) {
      plan.decode_chunks.push_back(i);
    } else {
      plan.prefill_chunks.push_back(i);
    }
    if (c.want_logits) plan.logit_rows.push_back(plan.num_tokens - 1);
  }
  return plan;
}

}  // namespace vortex::detail
