// Storage for the subcommand registry.
#include "command_registry.h"

namespace vortex::cli {

std::vector<CommandEntry>& command_registry() {
  static std::vector<CommandEntry> entries;
  return entries;
}

std::string command_line(const std::string& prefix, const CLI::App& cmd) {
  std::string line = prefix;
  for (const CLI::Option* o : cmd.get_options()) {
    if (o->count() == 0 || o->get_lnames().empty() || o->get_lnames()[0] == "help") continue;
    line += " --" + o->get_lnames()[0];
    if (o->get_expected_max() != 0) line += " " + o->as<std::string>();
  }
  return line;
}

}  // namespace vortex::cli
