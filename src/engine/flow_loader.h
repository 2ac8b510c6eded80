// load_flow_program: the one place the engine calls into the flow module to load a flow, so a
// build without the flow module can still serve dense requests (flow_loader_unavailable.cpp).
#pragma once

#include <memory>
#include <string>

#include "vortex/core/status.h"
#include "vortex/flow/runtime.h"

namespace vortex::engine {

struct LoadedFlow {
  std::shared_ptr<const flow::FlowProgram> program;
  std::string name;
  bool dense = false;      ///< no indexer: runs as dense attention
  bool uses_save = false;  ///< per-page state that depends on history: no prefix cache
};

/// Loads a built-in flow by name or a flow from a .json file.
Expected<LoadedFlow> load_flow_program(const std::string& name_or_path);

}  // namespace vortex::engine
