// Leveled logging to stderr; quiet (warnings and errors only) by default.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace vortex {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
/// Parses "debug|info|warn|error|off".
bool parse_log_level(std::string_view name, LogLevel* out);
void log_message(LogLevel level, std::string_view message);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level < log_level()) return;
  log_message(level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace vortex

#define VORTEX_LOG_DEBUG(...) ::vortex::log(::vortex::LogLevel::kDebug, __VA_ARGS__)
#define VORTEX_LOG_INFO(...) ::vortex::log(::vortex::LogLevel::kInfo, __VA_ARGS__)
#define VORTEX_LOG_WARN(...) ::vortex::log(::vortex::LogLevel::kWarn, __VA_ARGS__)
#define VORTEX_LOG_ERROR(...) ::vortex::log(::vortex::LogLevel::kError, __VA_ARGS__)
