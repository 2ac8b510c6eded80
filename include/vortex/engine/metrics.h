// Engine metrics: counters, gauges and latency histograms the scheduler updates every step, and
// the snapshot the server renders as Prometheus text.
#pragma once

#include <cstdint>
#include <vector>

namespace vortex::engine {

/// A fixed-bucket histogram (Prometheus semantics: counts[i] = observations <= bounds[i], the last
/// count is +Inf; cumulative when rendered).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds = {});
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  /// Non-cumulative counts per bucket: [bounds.size() + 1], the last is (bounds.back(), +Inf).
  const std::vector<uint64_t>& counts() const { return counts_; }
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0.0;
};

/// Time to first token buckets, seconds.
std::vector<double> ttft_buckets();
/// Inter-token latency buckets, seconds.
std::vector<double> itl_buckets();

/// Everything /metrics reports. Counters are totals since start.
struct EngineMetrics {
  // gauges
  int32_t running = 0;
  int32_t waiting = 0;
  int32_t kv_pages_total = 0;
  int32_t kv_pages_used = 0;  ///< allocated pages, including pages only the prefix cache holds
  int32_t kv_pages_free = 0;
  int32_t prefix_cache_pages = 0;
  double tokens_per_second = 0.0;  ///< generated tokens/s over the last few seconds
  // counters
  uint64_t steps = 0;
  uint64_t requests_submitted = 0;
  uint64_t requests_finished = 0;  ///< all reasons
  uint64_t requests_stopped = 0;
  uint64_t requests_length = 0;
  uint64_t requests_cancelled = 0;
  uint64_t requests_failed = 0;
  uint64_t requests_rejected = 0;  ///< refused at submission (queue full, too long)
  uint64_t preemptions = 0;
  uint64_t prompt_tokens = 0;  ///< prompt tokens of submitted requests
  uint64_t computed_tokens =
      0;  ///< tokens whose K/V a step computed (prefill + recompute + decode)
  uint64_t generated_tokens = 0;
  uint64_t prefix_query_tokens = 0;  ///< prompt tokens looked up in the prefix cache
  uint64_t prefix_hit_tokens = 0;    ///< of those, served from cached pages
  uint64_t selected_pages = 0;       ///< pages sparse decode rows attended
  uint64_t candidate_pages = 0;      ///< pages dense attention would have read for those rows
  /// Steps planned and launched while the previous step was still running (overlap).
  uint64_t overlapped_steps = 0;
  /// Tokens sampled by an overlapped step for a request that had already finished (discarded).
  uint64_t discarded_tokens = 0;
  Histogram ttft{ttft_buckets()};
  Histogram itl{itl_buckets()};

  double prefix_hit_rate() const {
    return prefix_query_tokens == 0 ? 0.0
                                    : static_cast<double>(prefix_hit_tokens) / prefix_query_tokens;
  }
  double selected_page_fraction() const {
    return candidate_pages == 0 ? 1.0 : static_cast<double>(selected_pages) / candidate_pages;
  }
};

}  // namespace vortex::engine
