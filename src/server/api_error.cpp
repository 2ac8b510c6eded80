// The one Status → HTTP mapping, and OpenAI-style error bodies.
#include "vortex/server/api_error.h"

#include <nlohmann/json.hpp>

namespace vortex::server {

int http_status(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kUnsupported:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kTooLarge:
      return 413;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kCancelled:
    case StatusCode::kOutOfMemory:
      return 503;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

std::string_view error_type(const Status& status) {
  switch (http_status(status)) {
    case 400:
    case 404:
    case 413:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "service_unavailable";
    default:
      return "server_error";
  }
}

std::string error_body(const Status& status, std::string_view param) {
  nlohmann::json err = {
      {"message", status.message()},
      {"type", error_type(status)},
      {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
      {"code", http_status(status)},
  };
  return nlohmann::json{{"error", err}}.dump(-1, ' ', false,
                                             nlohmann::json::error_handler_t::replace);
}

}  // namespace vortex::server
