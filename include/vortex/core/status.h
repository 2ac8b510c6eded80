// Status and Expected<T>: errors as values. Anything a user, a file or the hardware can cause is
// returned as a Status whose message names the input and the fix; bugs use VORTEX_CHECK instead.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace vortex {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kOutOfMemory,
  kUnsupported,
  kInternal,
  kResourceExhausted,  ///< a pool or queue is full; retry later (maps to HTTP 429)
  kCancelled,
  kUnauthenticated,  ///< missing or wrong credentials (maps to HTTP 401)
  kTooLarge,         ///< an input exceeds a size limit (maps to HTTP 413)
};

/// Human-readable name of a status code ("invalid argument", ...).
std::string_view status_code_name(StatusCode code);

/// The result of an operation that can fail for reasons outside the program's control.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  /// "invalid argument: <message>"
  std::string to_string() const;
  /// Prepends context ("loading model.gguf: ") to the message; keeps the code.
  Status with_context(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

Status invalid_argument(std::string message);
Status not_found(std::string message);
Status out_of_memory(std::string message);
Status unsupported(std::string message);
Status internal_error(std::string message);
Status resource_exhausted(std::string message);
Status cancelled(std::string message);
Status unauthenticated(std::string message);
Status too_large(std::string message);

/// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : data_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Expected(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(data_).is_ok()) {
      data_ = Status(StatusCode::kInternal, "Expected constructed from an OK status");
    }
  }

  bool has_value() const { return std::holds_alternative<T>(data_); }
  explicit operator bool() const { return has_value(); }

  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Expected*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Expected*>(this)->checked(); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return const_cast<Expected*>(this)->checked(); }

  /// The error; OK when a value is held.
  Status status() const { return has_value() ? Status::ok() : std::get<Status>(data_); }

 private:
  T& checked();
  std::variant<T, Status> data_;
};

[[noreturn]] void check_failed(const char* file, int line, const char* expr,
                               const std::string& msg);

template <typename T>
T& Expected<T>::checked() {
  if (!has_value()) {
    check_failed(__FILE__, __LINE__, "Expected::value()", std::get<Status>(data_).to_string());
  }
  return std::get<T>(data_);
}

}  // namespace vortex

/// Returns the status from the enclosing function if it is not OK.
#define VORTEX_RETURN_IF_ERROR(expr)                    \
  do {                                                  \
    ::vortex::Status vortex_status_ = (expr);           \
    if (!vortex_status_.is_ok()) return vortex_status_; \
  } while (0)

#define VORTEX_CONCAT_INNER_(a, b) a##b
#define VORTEX_CONCAT_(a, b) VORTEX_CONCAT_INNER_(a, b)
#define VORTEX_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.has_value()) return tmp.status();          \
  lhs = std::move(tmp).value()

/// `VORTEX_ASSIGN_OR_RETURN(auto x, f());` unwraps an Expected or returns its status.
#define VORTEX_ASSIGN_OR_RETURN(lhs, expr) \
  VORTEX_ASSIGN_OR_RETURN_IMPL_(VORTEX_CONCAT_(vortex_expected_, __LINE__), lhs, expr)
