// VORTEX_CHECK: invariants that only a bug can break. Aborts with file:line, also in release.
#pragma once

#include <sstream>
#include <string>

#include "vortex/core/status.h"

#define VORTEX_CHECK(cond)                                              \
  do {                                                                  \
    if (!(cond)) ::vortex::check_failed(__FILE__, __LINE__, #cond, ""); \
  } while (0)

#define VORTEX_CHECK_MSG(cond, msg)                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::ostringstream vortex_check_os_;                                       \
      vortex_check_os_ << msg;                                                   \
      ::vortex::check_failed(__FILE__, __LINE__, #cond, vortex_check_os_.str()); \
    }                                                                            \
  } while (0)

#define VORTEX_CHECK_OK(expr)                                                              \
  do {                                                                                     \
    ::vortex::Status vortex_check_status_ = (expr);                                        \
    if (!vortex_check_status_.is_ok())                                                     \
      ::vortex::check_failed(__FILE__, __LINE__, #expr, vortex_check_status_.to_string()); \
  } while (0)
