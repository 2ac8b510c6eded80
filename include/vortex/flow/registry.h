// The flow registry: flows by name. The built-in library (FLOW_SPEC "Built-in flows") is
// registered on first use; applications add their own C++ flows with register_flow().
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/flow/builder.h"
#include "vortex/flow/ir.h"

namespace vortex::flow {

/// Makes a fresh instance of a C++ flow.
using FlowFactory = std::function<std::unique_ptr<lang::Flow>()>;

/// Registers a flow under `name`; an error when the name is taken.
Status register_flow(std::string name, FlowFactory factory);

/// Registers flow class F (default-constructible) under F().name().
template <typename F>
Status register_flow() {
  return register_flow(F().name(), [] { return std::make_unique<F>(); });
}

/// The IR of the registered flow `name` (built each call); not_found lists the names.
Expected<FlowIR> registered_flow_ir(std::string_view name);

/// Every registered name, built-ins first in FLOW_SPEC order.
std::vector<std::string> registered_flow_names();

/// Names of the built-in library only.
std::vector<std::string> builtin_names();

/// Adds the built-in library to the registry (called once by the registry itself).
void register_builtin_flows();
/// register_flow() for the built-in library (used by register_builtin_flows only).
Status register_builtin(std::string name, FlowFactory factory);

}  // namespace vortex::flow
