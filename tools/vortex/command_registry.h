// Registry of `vortex` subcommands. Each tools/vortex/cmd_<name>.cpp registers itself with
// VORTEX_REGISTER_COMMAND, so subcommands land independently of main.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace vortex::cli {

/// Adds a subcommand to `app`. The callback it installs returns the process exit code through
/// `*exit_code`.
using CommandSetup = std::function<void(CLI::App& app, int* exit_code)>;

struct CommandEntry {
  std::string name;
  int order;  ///< position in --help (lower first)
  CommandSetup setup;
};

std::vector<CommandEntry>& command_registry();

/// "<prefix> --opt value --flag ..." from the options the user set on `cmd`, for reports.
std::string command_line(const std::string& prefix, const CLI::App& cmd);

/// One item of a --layers-skip list: a whole decimal integer >= 0, else nullopt.
std::optional<int32_t> parse_layer_index(const std::string& item);

struct CommandRegistrar {
  CommandRegistrar(std::string name, int order, CommandSetup setup) {
    command_registry().push_back({std::move(name), order, std::move(setup)});
  }
};

}  // namespace vortex::cli

#define VORTEX_REGISTER_COMMAND(name, order, fn) \
  static ::vortex::cli::CommandRegistrar vortex_command_registrar_##name(#name, order, fn)
