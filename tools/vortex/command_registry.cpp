// Storage for the subcommand registry.
#include "command_registry.h"

namespace vortex::cli {

std::vector<CommandEntry>& command_registry() {
  static std::vector<CommandEntry> entries;
  return entries;
}

}  // namespace vortex::cli
