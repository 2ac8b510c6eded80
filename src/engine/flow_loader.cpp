// load_flow_program over the flow module's runtime API.
#include "flow_loader.h"

namespace vortex::engine {

Expected<LoadedFlow> load_flow_program(const std::string& name_or_path) {
  auto program = flow::load_flow(name_or_path);
  if (!program.has_value())
    return program.status().with_context("loading flow '" + name_or_path + "'");
  LoadedFlow out;
  out.program = *program;
  out.name = flow::flow_name(*out.program);
  out.dense = flow::flow_is_dense(*out.program);
  out.uses_save = flow::flow_uses_save(*out.program);
  return out;
}

}  // namespace vortex::engine
