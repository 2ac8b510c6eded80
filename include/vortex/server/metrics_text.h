// Prometheus text exposition (format 0.0.4) of the engine's metrics, served at GET /metrics.
#pragma once

#include <string>

#include "vortex/engine/metrics.h"

namespace vortex::server {

/// Every metric with HELP and TYPE lines; names start with `vortex_`.
std::string render_prometheus(const engine::EngineMetrics& m);

}  // namespace vortex::server
