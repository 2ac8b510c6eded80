// Brute-force decode attention of one query head over an explicit page list, in double, over a
// bf16 paged cache held on the host: the oracle of the GPU attention tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "vortex/core/dtype.h"

namespace vortex::gpu_test {

/// out[D] = softmax(scale * q · Kᵀ) V over the tokens of `pages` (every page full except the last,
/// which holds `last_len` tokens) of KV head h; zeros when `pages` is empty.
///   k, v [num_pages, H_kv, P, D] bf16 bits
inline void attention_row(const std::vector<uint16_t>& k, const std::vector<uint16_t>& v,
                          int32_t h_kv, int32_t page, int32_t dim,
                          const std::vector<int32_t>& pages, int32_t last_len, int32_t h,
                          const float* q, double scale, double* out) {
  std::fill(out, out + dim, 0.0);
  if (pages.empty()) return;
  auto at = [&](int32_t pg, int32_t t, int32_t d) {
    return ((static_cast<int64_t>(pg) * h_kv + h) * page + t) * dim + d;
  };
  std::vector<double> s;
  std::vector<std::pair<int32_t, int32_t>> toks;
  for (size_t j = 0; j < pages.size(); ++j) {
    const int32_t filled = j + 1 == pages.size() ? last_len : page;
    for (int32_t t = 0; t < filled; ++t) {
      double acc = 0;
      for (int32_t d = 0; d < dim; ++d) {
        acc += static_cast<double>(q[d]) * bf16_to_f32(k[at(pages[j], t, d)]);
      }
      s.push_back(acc * scale);
      toks.emplace_back(pages[j], t);
    }
  }
  const double mx = *std::max_element(s.begin(), s.end());
  double sum = 0;
  for (double& x : s) sum += (x = std::exp(x - mx));
  for (size_t i = 0; i < s.size(); ++i) {
    for (int32_t d = 0; d < dim; ++d) {
      out[d] += s[i] / sum * bf16_to_f32(v[at(toks[i].first, toks[i].second, d)]);
    }
  }
}

}  // namespace vortex::gpu_test
