// API errors: every error the server returns is a Status, mapped to an HTTP status and an
// OpenAI-style JSON body ({"error": {"message", "type", "param", "code"}}) in one place.
#pragma once

#include <string>
#include <string_view>

#include "vortex/core/status.h"

namespace vortex::server {

/// The HTTP status for `status` — the single mapping used by every route:
/// invalid argument / unsupported 400, unauthenticated 401, not found 404, too large 413,
/// resource exhausted 429, cancelled (shutting down) 503, out of memory 503, internal 500.
int http_status(const Status& status);

/// The OpenAI error "type" for `status` ("invalid_request_error", "authentication_error", ...).
std::string_view error_type(const Status& status);

/// The JSON error body for `status`; `param` names the offending field when known.
std::string error_body(const Status& status, std::string_view param = {});

}  // namespace vortex::server
