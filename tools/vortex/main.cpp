// `vortex`: the one CLI binary. Subcommands live in cmd_*.cpp and register themselves.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>

#include "command_registry.h"
#include "vortex/core/logging.h"
#include "vortex/version.h"

int main(int argc, char** argv) {
  CLI::App app{"Vortex: an LLM serving engine with programmable sparse attention"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  std::string log_level = "warn";
  app.add_flag("--version", show_version, "print version and git SHA");
  app.add_option("--log-level", log_level, "debug|info|warn|error|off (default warn)");

  int exit_code = 0;
  auto& registry = vortex::cli::command_registry();
  std::sort(registry.begin(), registry.end(),
            [](const auto& a, const auto& b) { return a.order < b.order; });
  for (auto& entry : registry) entry.setup(app, &exit_code);

  app.parse_complete_callback([&] {
    vortex::LogLevel level;
    if (!vortex::parse_log_level(log_level, &level)) {
      throw CLI::ValidationError("--log-level", "expected debug|info|warn|error|off");
    }
    vortex::set_log_level(level);
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (show_version) {
    fmt::print("vortex {} (git {})\n", VORTEX_VERSION, VORTEX_GIT_SHA);
    return 0;
  }
  if (app.get_subcommands().empty()) {
    fmt::print("{}", app.help());
    return 0;
  }
  return exit_code;
}
