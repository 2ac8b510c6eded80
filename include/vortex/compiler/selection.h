// The selection contract of one row (FLOW_SPEC "Selection"), independent of storage: which logical
// pages a row attends given its page count n, budget m, bos, eos and the candidates' scores.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace vortex::compiler {

/// The candidate pages a sparse row's indexer scores: logical [first, last) = [bos, n - eos_eff)
/// with eos_eff = max(eos, 1) — the last page (partial, no summary yet) is always reserved.
struct CandidateRange {
  int64_t first = 0;
  int64_t last = 0;
  int64_t size() const { return last - first; }
};
CandidateRange candidate_range(int64_t n, int32_t bos, int32_t eos);

/// True when the row attends every page (n <= m).
inline bool row_is_dense(int64_t n, int64_t m) { return n <= m; }

/// The `k` best candidates by score (higher first; ties to the lower index; NaN ranks below every
/// number), returned as candidate indices in ascending order.
std::vector<int64_t> top_candidates(std::span<const float> scores, int64_t k);

/// Logical pages of a sparse row (n > m >= bos + eos + 1), ascending: pages [0, bos), the
/// `chosen` candidates (candidate indices, ascending), pages [n - eos_eff, n).
std::vector<int64_t> assemble_row(int64_t n, int32_t bos, int32_t eos,
                                  std::span<const int64_t> chosen);

}  // namespace vortex::compiler
