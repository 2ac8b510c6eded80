// The fp32 CPU interpreter: runs a lowered plan step by step. The cache side runs on one (page, kv
// head) tile; the indexer side on one row's candidate pages and returns their scores plus the
// per-page state the flow saves. Storage (the KV cache, page tables) stays with the caller, behind
// a TileReader, so the interpreter is easy to test and to read.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "vortex/compiler/plan.h"
#include "vortex/core/status.h"

namespace vortex::compiler {

/// Reads the tile of `field` (a plan field index, kFieldK or kFieldV) for candidate `s` (the
/// indexer's page number within the row; 0 on the cache side) into `dst` [rows * cols] as fp32.
using TileReader = std::function<void(int32_t field, int64_t s, float* dst)>;

/// Cache side: the tiles [rows * cols] of the fields `plan` writes, indexed by plan field (empty
/// for a field this plan does not write).
Expected<std::vector<std::vector<float>>> run_cache_plan(const SidePlan& plan,
                                                         const TileReader& read, int32_t layer);

/// Indexer side result for one row.
struct RowScores {
  std::vector<float> scores;  // [S] the terminal's input
  struct Saved {
    int32_t field = -1;
    std::vector<float> values;  // [S, rows, cols]
  };
  std::vector<Saved> saves;  ///< state to write back after the step (Save)
};

/// Indexer side: scores the row's `num_pages` (S >= 1) candidate pages for query `q` [G, D].
Expected<RowScores> run_indexer_plan(const SidePlan& plan, std::span<const float> q,
                                     int64_t num_pages, const TileReader& read, int32_t layer);

}  // namespace vortex::compiler
