// Logging sink: one line per message on stderr, serialised by a mutex.
#include "vortex/core/logging.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace vortex {
namespace {

LogLevel initial_level() {
  const char* env = std::getenv("VORTEX_LOG");
  LogLevel l = LogLevel::kWarn;
  if (env != nullptr) parse_log_level(env, &l);
  return l;
}

std::atomic<int>& level_storage() {
  static std::atomic<int> level{static_cast<int>(initial_level())};
  return level;
}

}  // namespace

void set_log_level(LogLevel level) { level_storage().store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(level_storage().load()); }

bool parse_log_level(std::string_view n, LogLevel* out) {
  if (n == "debug")
    *out = LogLevel::kDebug;
  else if (n == "info")
    *out = LogLevel::kInfo;
  else if (n == "warn" || n == "warning")
    *out = LogLevel::kWarn;
  else if (n == "error")
    *out = LogLevel::kError;
  else if (n == "off" || n == "quiet")
    *out = LogLevel::kOff;
  else
    return false;
  return true;
}

void log_message(LogLevel level, std::string_view message) {
  static std::mutex mu;
  static const char* names[] = {"D", "I", "W", "E", ""};
  const auto now =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "[vortex %s %.3f] %.*s\n", names[static_cast<int>(level)], now,
               static_cast<int>(message.size()), message.data());
}

}  // namespace vortex
