// load_flow_program for builds without the flow module: only dense attention is available.
#include "flow_loader.h"

namespace vortex::engine {

Expected<LoadedFlow> load_flow_program(const std::string& name_or_path) {
  return unsupported("flow '" + name_or_path +
                     "' requested, but this build has no flow module; only 'dense' is available");
}

}  // namespace vortex::engine
