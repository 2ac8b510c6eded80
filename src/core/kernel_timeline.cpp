// summarize_timeline / chrome_trace_json: interval union for busy time, stage rules by name.
#include "vortex/core/kernel_timeline.h"

#include <cxxabi.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <utility>

namespace vortex {
namespace {

bool has(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

std::vector<KernelTimeline::Group> sorted_groups(
    const std::map<std::string, KernelTimeline::Group>& m) {
  std::vector<KernelTimeline::Group> out;
  for (const auto& [name, g] : m) out.push_back(g);
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.total_us > b.total_us; });
  return out;
}

void json_escape(std::string_view s, std::string* out) {
  for (char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          *out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          *out += c;
        }
    }
  }
}

}  // namespace

std::string kernel_stage(std::string_view n) {
  // Most specific first: the fused sparse layer's name contains "topk", the indexer's "score".
  if (has(n, "l2_prefetch")) return "L2 prefetch";
  if (has(n, "block_topk_fused")) return "sparse fused";
  if (has(n, "centroid_score") || has(n, "vx_indexer") || has(n, "vx_streaming_scores")) {
    return "indexer";
  }
  if (has(n, "centroid_cache") || has(n, "vx_cache_flow")) return "cache flow";
  if (has(n, "topk") || has(n, "radix")) return "top-k";
  if (has(n, "planner") || has(n, "vx_plan")) return "planner";
  if (has(n, "attention") || has(n, "stream_kernel") || has(n, "merge_kernel")) return "attention";
  if (has(n, "norm_kernel") || has(n, "rms_norm")) return "norm";
  if (has(n, "rope")) return "rope+append";
  if (has(n, "silu")) return "activation";
  if (has(n, "embedding")) return "embedding";
  if (has(n, "sample") || has(n, "sampling")) return "sampling";
  if (has(n, "gemm") || has(n, "gemv") || has(n, "nvjet") || has(n, "cutlass") || has(n, "xmma") ||
      has(n, "splitKreduce")) {
    return "GEMM";
  }
  return "other";
}

std::string short_kernel_name(std::string_view name) {
  std::string s(name);
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> dem(
      abi::__cxa_demangle(s.c_str(), nullptr, nullptr, &status), std::free);
  if (status == 0 && dem != nullptr) s = dem.get();
  for (size_t at; (at = s.find("(anonymous namespace)::")) != std::string::npos;) s.erase(at, 23);
  // Elide template arguments and the parameter list: "ns::kernel<...>(...)" -> "ns::kernel".
  std::string out;
  int depth = 0;
  for (char c : s) {
    if (c == '<' || c == '(') {
      if (depth++ == 0) out += c == '<' ? "<>" : "";
      continue;
    }
    if (c == '>' || c == ')') {
      depth = std::max(0, depth - 1);
      continue;
    }
    if (depth == 0) out += c;
  }
  if (out.rfind("void ", 0) == 0) out.erase(0, 5);
  return out.empty() ? std::string(name) : out;
}

KernelTimeline summarize_timeline(const std::vector<KernelSpan>& spans) {
  KernelTimeline t;
  if (spans.empty()) return t;
  std::vector<std::pair<uint64_t, uint64_t>> iv;
  std::map<std::string, KernelTimeline::Group> stages, names;
  for (const KernelSpan& k : spans) {
    const uint64_t end = std::max(k.start_ns, k.end_ns);
    iv.emplace_back(k.start_ns, end);
    const double us = static_cast<double>(end - k.start_ns) * 1e-3;
    for (auto [map, key] :
         {std::pair{&stages, kernel_stage(k.name)}, std::pair{&names, short_kernel_name(k.name)}}) {
      KernelTimeline::Group& g = (*map)[key];
      g.name = key;
      g.count += 1;
      g.total_us += us;
    }
  }
  std::sort(iv.begin(), iv.end());
  uint64_t cur_a = iv.front().first, cur_b = iv.front().second, busy = 0;
  std::vector<double> gaps;
  for (size_t i = 1; i < iv.size(); ++i) {
    if (iv[i].first > cur_b) {  // a gap: no kernel ran in (cur_b, iv[i].first)
      busy += cur_b - cur_a;
      gaps.push_back(static_cast<double>(iv[i].first - cur_b) * 1e-3);
      cur_a = iv[i].first;
    }
    cur_b = std::max(cur_b, iv[i].second);
  }
  busy += cur_b - cur_a;
  t.span_us = static_cast<double>(cur_b - iv.front().first) * 1e-3;
  t.busy_us = static_cast<double>(busy) * 1e-3;
  t.idle_us = t.span_us - t.busy_us;
  t.kernels = static_cast<int64_t>(spans.size());
  t.gaps = static_cast<int64_t>(gaps.size());
  if (!gaps.empty()) {
    std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
    t.median_gap_us = gaps[gaps.size() / 2];
  }
  t.stages = sorted_groups(stages);
  t.by_name = sorted_groups(names);
  return t;
}

std::string chrome_trace_json(const std::vector<KernelSpan>& spans) {
  uint64_t t0 = UINT64_MAX;
  for (const KernelSpan& k : spans) t0 = std::min(t0, k.start_ns);
  std::string out = "{\"traceEvents\":[";
  for (size_t i = 0; i < spans.size(); ++i) {
    const KernelSpan& k = spans[i];
    const uint64_t end = std::max(k.start_ns, k.end_ns);
    if (i > 0) out += ",";
    out += "\n{\"name\":\"";
    json_escape(short_kernel_name(k.name), &out);
    out += fmt::format(
        "\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{:.3f},\"dur\":{:.3f},\"pid\":0,\"tid\":{},"
        "\"args\":{{\"grid\":{},\"block\":{},\"kernel\":\"",
        kernel_stage(k.name), static_cast<double>(k.start_ns - t0) * 1e-3,
        static_cast<double>(end - k.start_ns) * 1e-3, k.stream, k.grid, k.block);
    json_escape(k.name, &out);
    out += "\"}}";
  }
  out += "\n],\"displayTimeUnit\":\"ns\"}\n";
  return out;
}

}  // namespace vortex
