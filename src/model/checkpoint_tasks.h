// Internal to the loaders: a tiny parallel loop for converting tensors at load time, and the
// split of a tensor's rows into tasks of roughly equal size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "vortex/core/status.h"

namespace vortex::detail {

/// Runs fn(i) for every i in [0, n) on up to hardware_concurrency threads (capped at 8); returns
/// the first error by task index (all tasks run even after an error; they are independent).
/// `total_elements` is the work size: small jobs run on the calling thread (no thread start-up).
Status run_parallel(size_t n, int64_t total_elements, const std::function<Status(size_t)>& fn);

/// Row ranges [begin, end) covering `rows` rows of `row_elems` elements, each ~`target_elems`.
std::vector<std::pair<int64_t, int64_t>> split_rows(int64_t rows, int64_t row_elems,
                                                    int64_t target_elems = int64_t{1} << 20);

}  // namespace vortex::detail
