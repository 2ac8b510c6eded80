// CompletionText: streaming detokenization with stop strings.
#include "vortex/server/completion_text.h"

#include <algorithm>

namespace vortex::server {

CompletionText::CompletionText(const TextCodec& codec, std::vector<std::string> stop)
    : decoder_(codec.text_stream()), stop_(std::move(stop)) {
  stop_.erase(std::remove(stop_.begin(), stop_.end(), std::string()), stop_.end());
}

std::string CompletionText::release(std::string piece) {
  held_ += piece;
  // The earliest complete stop string ends the text.
  size_t cut = std::string::npos;
  for (const std::string& s : stop_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, cut);
    held_.clear();
    text_ += out;
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& s : stop_) {
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  text_ += out;
  return out;
}

std::string CompletionText::push(int32_t token) {
  if (stopped_) return "";
  return release(decoder_->push(token));
}

std::string CompletionText::finish() {
  if (stopped_) return "";
  std::string out = release(decoder_->flush());
  if (stopped_) return out;
  out += held_;
  text_ += held_;
  held_.clear();
  return out;
}

}  // namespace vortex::server
