// One row's selection: candidate range, deterministic top-k, bos/eos assembly.
#include "vortex/compiler/selection.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "vortex/core/check.h"

namespace vortex::compiler {

CandidateRange candidate_range(int64_t n, int32_t bos, int32_t eos) {
  const int64_t eos_eff = std::max<int64_t>(eos, 1);
  CandidateRange r;
  r.first = std::min<int64_t>(std::max<int64_t>(bos, 0), n);
  r.last = std::max(r.first, n - eos_eff);
  return r;
}

std::vector<int64_t> top_candidates(std::span<const float> scores, int64_t k) {
  const int64_t n = static_cast<int64_t>(scores.size());
  k = std::clamp<int64_t>(k, 0, n);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  // Strict weak order: numbers before NaN, higher score first, then lower index.
  auto better = [&](int64_t a, int64_t b) {
    const float sa = scores[static_cast<size_t>(a)], sb = scores[static_cast<size_t>(b)];
    const bool na = std::isnan(sa), nb = std::isnan(sb);
    if (na != nb) return nb;
    if (!na && sa != sb) return sa > sb;
    return a < b;
  };
  if (k < n) std::nth_element(idx.begin(), idx.begin() + k, idx.end(), better);
  idx.resize(static_cast<size_t>(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}

std::vector<int64_t> assemble_row(int64_t n, int32_t bos, int32_t eos,
                                  std::span<const int64_t> chosen) {
  const CandidateRange c = candidate_range(n, bos, eos);
  std::vector<int64_t> pages;
  pages.reserve(static_cast<size_t>(c.first + static_cast<int64_t>(chosen.size()) + n - c.last));
  for (int64_t p = 0; p < c.first; ++p) pages.push_back(p);
  for (int64_t s : chosen) {
    VORTEX_CHECK(s >= 0 && s < c.size());
    pages.push_back(c.first + s);
  }
  for (int64_t p = c.last; p < n; ++p) pages.push_back(p);
  return pages;
}

}  // namespace vortex::compiler
