// A decode step as the GPU ran it: the kernels of one step (name, start, end, stream, as a
// tracer such as CUPTI records them from a graph replay) summarised into what a performance
// engineer asks first -- how long the step spanned, how much of it no kernel ran (launch gaps),
// and where the kernel time went by stage (GEMMs, attention, norms, ...) and by kernel. Pure
// host code: the tracer lives with the tools (tools/vortex/cupti_trace.*), this part is tested on
// the CPU.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vortex {

/// One kernel execution on the GPU.
struct KernelSpan {
  std::string name;  ///< as recorded (C++ kernels mangled)
  uint64_t start_ns = 0, end_ns = 0;
  uint32_t stream = 0;
  uint32_t grid = 0, block = 0;  ///< CTAs and threads per CTA (x*y*z)
};

/// The stage a kernel belongs to, from its name: "GEMM", "attention", "sparse fused", "indexer",
/// "top-k", "planner", "cache flow", "norm", "rope+append", "activation", "embedding",
/// "sampling", "L2 prefetch", or "other".
std::string kernel_stage(std::string_view name);

/// A readable kernel name: demangled, template arguments and parameter lists elided.
std::string short_kernel_name(std::string_view name);

struct KernelTimeline {
  double span_us = 0;  ///< first start to last end
  double busy_us = 0;  ///< time with at least one kernel running (overlaps counted once)
  double idle_us = 0;  ///< span - busy: the gaps between kernels
  int64_t kernels = 0;
  int64_t gaps = 0;          ///< idle intervals inside the span
  double median_gap_us = 0;  ///< of those intervals
  struct Group {
    std::string name;
    int64_t count = 0;
    double total_us = 0;  ///< sum of the kernels' durations (concurrent kernels each counted)
  };
  std::vector<Group> stages;   ///< by total time, descending
  std::vector<Group> by_name;  ///< per short kernel name, by total time, descending
};

/// Summarises one step's kernels (any order; empty gives zeros).
KernelTimeline summarize_timeline(const std::vector<KernelSpan>& spans);

/// The spans as Chrome trace-event JSON (chrome://tracing, ui.perfetto.dev): one complete event
/// per kernel, timestamps in microseconds from the first start, one track per stream, the stage
/// and launch shape as arguments.
std::string chrome_trace_json(const std::vector<KernelSpan>& spans);

}  // namespace vortex
