// Prometheus rendering of EngineMetrics.
#include "vortex/server/metrics_text.h"

#include <fmt/format.h>

namespace vortex::server {
namespace {

void metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            double value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
}

void histogram(std::string& out, std::string_view name, std::string_view help,
               const engine::Histogram& h) {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    cumulative += h.counts()[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, h.bounds()[i], cumulative);
  }
  cumulative += h.counts().back();
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cumulative,
                     name, h.sum(), name, h.count());
}

}  // namespace

std::string render_prometheus(const engine::EngineMetrics& m) {
  std::string out;
  metric(out, "vortex_requests_running", "gauge", "Requests prefilling or decoding.", m.running);
  metric(out, "vortex_requests_waiting", "gauge", "Requests queued for admission.", m.waiting);
  metric(out, "vortex_kv_pages_total", "gauge", "KV pages in the pool.", m.kv_pages_total);
  metric(out, "vortex_kv_pages_used", "gauge",
         "KV pages allocated (requests and the prefix cache).", m.kv_pages_used);
  metric(out, "vortex_kv_pages_free", "gauge", "KV pages free.", m.kv_pages_free);
  metric(out, "vortex_prefix_cache_pages", "gauge", "KV pages held by the prefix cache.",
         m.prefix_cache_pages);
  metric(out, "vortex_prefix_cache_hit_rate", "gauge",
         "Prompt tokens served from the prefix cache / prompt tokens looked up.",
         m.prefix_hit_rate());
  metric(out, "vortex_prefix_cache_hit_tokens_total", "counter",
         "Prompt tokens served from the prefix cache.", static_cast<double>(m.prefix_hit_tokens));
  metric(out, "vortex_prefix_cache_query_tokens_total", "counter",
         "Prompt tokens looked up in the prefix cache.",
         static_cast<double>(m.prefix_query_tokens));
  metric(out, "vortex_generation_tokens_per_second", "gauge",
         "Generated tokens per second over the last few seconds.", m.tokens_per_second);
  metric(out, "vortex_generated_tokens_total", "counter", "Tokens generated.",
         static_cast<double>(m.generated_tokens));
  metric(out, "vortex_prompt_tokens_total", "counter", "Prompt tokens of accepted requests.",
         static_cast<double>(m.prompt_tokens));
  metric(out, "vortex_computed_tokens_total", "counter",
         "Tokens whose K/V a step computed (prefill, recompute and decode).",
         static_cast<double>(m.computed_tokens));
  metric(out, "vortex_steps_total", "counter", "Engine steps run.", static_cast<double>(m.steps));
  metric(out, "vortex_overlapped_steps_total", "counter",
         "Steps planned and launched while the previous step was still running.",
         static_cast<double>(m.overlapped_steps));
  metric(out, "vortex_discarded_tokens_total", "counter",
         "Tokens an overlapped step sampled for a request that had already finished.",
         static_cast<double>(m.discarded_tokens));
  metric(out, "vortex_preemptions_total", "counter", "Requests preempted by recompute.",
         static_cast<double>(m.preemptions));
  metric(out, "vortex_requests_submitted_total", "counter", "Requests accepted.",
         static_cast<double>(m.requests_submitted));
  metric(out, "vortex_requests_rejected_total", "counter",
         "Requests refused at submission (invalid, too long, queue full).",
         static_cast<double>(m.requests_rejected));
  out +=
      "# HELP vortex_requests_finished_total Requests finished, by reason.\n"
      "# TYPE vortex_requests_finished_total counter\n";
  out += fmt::format("vortex_requests_finished_total{{reason=\"stop\"}} {}\n", m.requests_stopped);
  out += fmt::format("vortex_requests_finished_total{{reason=\"length\"}} {}\n", m.requests_length);
  out += fmt::format("vortex_requests_finished_total{{reason=\"cancelled\"}} {}\n",
                     m.requests_cancelled);
  out += fmt::format("vortex_requests_finished_total{{reason=\"error\"}} {}\n", m.requests_failed);
  metric(out, "vortex_selected_page_fraction", "gauge",
         "Pages attended by sparse decode rows / pages dense attention would read (1: dense).",
         m.selected_page_fraction());
  metric(out, "vortex_selected_pages_total", "counter", "Pages attended by sparse decode rows.",
         static_cast<double>(m.selected_pages));
  metric(out, "vortex_candidate_pages_total", "counter",
         "Pages dense attention would have read for the same rows.",
         static_cast<double>(m.candidate_pages));
  histogram(out, "vortex_time_to_first_token_seconds", "Time from arrival to the first token.",
            m.ttft);
  histogram(out, "vortex_inter_token_latency_seconds", "Time between consecutive tokens.", m.itl);
  return out;
}

}  // namespace vortex::server
