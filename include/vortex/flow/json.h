// The JSON form of a flow: how agents and operators hand the engine a new algorithm without
// rebuilding. Round-trips losslessly (flow_from_json(flow_to_json(ir)) == ir).
//
//   {"vflow": 1, "name": "block_topk", "mode": "sparse",
//    "verify_shape": {"block_size": 16, "head_dim": 128, "group": 4},
//    "fields": [{"name": "centroid", "rows": 1, "cols": "D"}],
//    "cache":   [{"id": 0, "op": "Field", "ref": "k"},
//                {"id": 1, "op": "Mean", "inputs": [0], "attrs": {"dim": 1}, "out": "centroid"}],
//    "indexer": [{"id": 0, "op": "Input", "ref": "q"}, ...]}
//
// Numbers may be literals or strings over P, D, G ("P/16", "1/sqrt(D)"). Node ids are any distinct
// non-negative integers; nodes may be listed in any order (they are sorted by dependency; cycles
// are errors). Unknown keys, ops and attributes are errors, never ignored.
#pragma once

#include <string>
#include <string_view>

#include "vortex/core/status.h"
#include "vortex/flow/ir.h"

namespace vortex::flow {

/// Serialises `ir` (pretty-printed, 2-space indent).
std::string flow_to_json(const FlowIR& ir);

/// Parses a flow; errors name the JSON location (node id, key) and what to write instead. The
/// result is structurally sorted but not verified (FlowProgram::compile verifies).
Expected<FlowIR> flow_from_json(std::string_view text);

/// Largest number of nodes per graph a JSON flow may have.
inline constexpr size_t kMaxJsonNodes = 4096;

}  // namespace vortex::flow
