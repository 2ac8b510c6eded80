// CompletionText: the text of one generated choice as it streams — tokens detokenized to complete
// UTF-8, stop strings found even when split across tokens, and text that might be the start of a
// stop string held back until it is known not to be.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vortex/server/text_codec.h"

namespace vortex::server {

class CompletionText {
 public:
  CompletionText(const TextCodec& codec, std::vector<std::string> stop);

  /// Adds a generated token; returns the text that can be shown now. After a stop string
  /// matched, returns "" and ignores further tokens.
  std::string push(int32_t token);
  /// The generation ended without a stop string: returns everything held back.
  std::string finish();
  /// A stop string matched; the text shown ends just before it.
  bool stopped() const { return stopped_; }
  /// Everything shown so far.
  const std::string& text() const { return text_; }

 private:
  std::string release(std::string piece);

  std::unique_ptr<TokenTextStream> decoder_;
  std::vector<std::string> stop_;
  std::string held_;  // decoded but not shown: a suffix that may begin a stop string
  std::string text_;
  bool stopped_ = false;
};

}  // namespace vortex::server
