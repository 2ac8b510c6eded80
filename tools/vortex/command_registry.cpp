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

std::optional<int32_t> parse_layer_index(const std::string& item) {
  size_t used = 0;
  int value = -1;
  try {
    value = std::stoi(item, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (item.empty() || used != item.size() || value < 0) return std::nullopt;
  return value;
}

}  // namespace vortex::cli
