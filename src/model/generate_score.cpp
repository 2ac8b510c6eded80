// Generator::score: teacher-forced negative log-likelihood of a continuation, decoded token by
// token so sparse flows select pages exactly as they do while generating (perplexity evals).
#include <algorithm>
#include <cmath>

#include "generate_impl.h"
#include "vortex/kvcache/page_table.h"

namespace vortex {

double ScoreResult::perplexity() const {
  return scored_tokens > 0 ? std::exp(nll_sum / static_cast<double>(scored_tokens)) : 0.0;
}

namespace {

// −log softmax(logits)[token], in double for a stable sum.
double token_nll(const std::vector<float>& logits, int32_t token) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double z = 0.0;
  for (float l : logits) z += std::exp(static_cast<double>(l - mx));
  return std::log(z) - static_cast<double>(logits[static_cast<size_t>(token)] - mx);
}

}  // namespace

Expected<ScoreResult> Generator::score(std::span<const int32_t> context,
                                       std::span<const int32_t> continuation,
                                       const flow::SparseConfig& sparse) {
  Impl& m = *impl_;
  const ModelConfig& c = m.model->config();
  if (context.empty()) return invalid_argument("score: the context must hold at least one token");
  for (auto ids : {context, continuation}) {
    for (int32_t t : ids) {
      if (t < 0 || t >= c.vocab_size) {
        return invalid_argument("score: token id " + std::to_string(t) +
                                " is outside the vocabulary");
      }
    }
  }
  const auto total = static_cast<int64_t>(context.size() + continuation.size());
  if (total > c.max_context) {
    return invalid_argument("score: " + std::to_string(total) + " tokens exceed the context of " +
                            std::to_string(c.max_context));
  }
  const int32_t P = sparse.program != nullptr ? sparse.budget.block_size : m.options.page_size;
  VORTEX_ASSIGN_OR_RETURN(KVCache cache,
                          m.model->make_cache(P, m.options.kv_dtype, sparse,
                                              static_cast<int32_t>((total + P - 1) / P)));
  PageTable table(P);
  VORTEX_RETURN_IF_ERROR(table.reserve(total, cache.pool()));

  std::vector<float> logits(static_cast<size_t>(c.vocab_size));  // [vocab]
  const auto ctx_len = static_cast<int64_t>(context.size());
  for (int64_t first = 0; first < ctx_len; first += m.options.prefill_chunk) {
    const int64_t n = std::min<int64_t>(m.options.prefill_chunk, ctx_len - first);
    const ForwardBatch batch{{SequenceChunk{context.data() + first, static_cast<int32_t>(n), first,
                                            &table, &sparse, first + n == ctx_len}}};
    VORTEX_RETURN_IF_ERROR(m.model->forward(batch, cache, logits.data(), nullptr));
  }
  ScoreResult r;
  ForwardStats stats;
  for (size_t i = 0; i < continuation.size(); ++i) {
    const int32_t token = continuation[i];
    r.nll_sum += token_nll(logits, token);
    ++r.scored_tokens;
    if (i + 1 == continuation.size()) break;
    const ForwardBatch batch{
        {SequenceChunk{&continuation[i], 1, table.num_tokens(), &table, &sparse, true}}};
    VORTEX_RETURN_IF_ERROR(m.model->forward(batch, cache, logits.data(), &stats));
  }
  r.selected_pages = stats.selected_pages;
  r.candidate_pages = stats.candidate_pages;
  return r;
}

}  // namespace vortex
