#include "backend_common.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace vortex::engine {

SequenceChunk to_sequence_chunk(const ScheduledChunk& c) {
  SequenceChunk s;
  s.tokens = c.tokens.data();
  s.num_tokens = static_cast<int32_t>(c.tokens.size());
  s.start_pos = c.start_pos;
  s.pages = c.pages;
  s.sparse = c.sparse;
  s.want_logits = c.sample;
  return s;
}

void fill_logprobs(std::span<const float> logits, int32_t top_n, SampledToken* s,
                   std::vector<int32_t>* scratch) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float x : logits) sum += std::exp(static_cast<double>(x - mx));
  const auto log_z = static_cast<float>(mx + std::log(sum));
  s->logprob = logits[static_cast<size_t>(s->token)] - log_z;
  if (top_n <= 0) return;
  std::vector<int32_t>& order = *scratch;
  order.resize(logits.size());
  std::iota(order.begin(), order.end(), 0);
  const auto n = std::min<size_t>(static_cast<size_t>(top_n), order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<ptrdiff_t>(n), order.end(),
                    [&](int32_t a, int32_t b) {
                      const float la = logits[static_cast<size_t>(a)];
                      const float lb = logits[static_cast<size_t>(b)];
                      return la > lb || (la == lb && a < b);
                    });
  for (size_t i = 0; i < n; ++i) {
    s->top.emplace_back(order[i], logits[static_cast<size_t>(order[i])] - log_z);
  }
}

}  // namespace vortex::engine
