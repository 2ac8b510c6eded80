// FinishReason names and the per-request event stream.
#include "vortex/engine/request.h"

namespace vortex::engine {

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "";
}

void EventSignal::notify() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++count_;
  }
  cv_.notify_all();
}

bool EventSignal::wait(uint64_t* seen, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool notified = cv_.wait_for(lock, timeout, [&] { return count_ != *seen; });
  *seen = count_;
  return notified;
}

void RequestStream::push(RequestEvent event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finish_pushed_) return;  // nothing follows the finish event
    finish_pushed_ = event.finish != FinishReason::kNone;
    events_.push_back(std::move(event));
  }
  cv_.notify_all();
  if (signal_) signal_->notify();
}

std::optional<RequestEvent> RequestStream::next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (finish_taken_) return std::nullopt;
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
  RequestEvent e = std::move(events_.front());
  events_.pop_front();
  if (e.finish != FinishReason::kNone) finish_taken_ = true;
  return e;
}

bool RequestStream::finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finish_pushed_;
}

}  // namespace vortex::engine
