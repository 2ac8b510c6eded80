// Utf8StreamDecoder and sanitize_utf8: UTF-8 validation with maximal-subpart replacement, holding
// back an unfinished character at the end of the buffer while streaming.
#include "vortex/model/utf8_stream.h"

#include <span>

#include "vortex/model/tokenizer.h"

namespace vortex {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

enum class Scan { kValid, kInvalid, kTruncated };

// Looks at the sequence starting at s[i]: kValid (*len = its length), kInvalid (*len = bytes of
// the maximal invalid subpart, >= 1) or kTruncated (a valid prefix cut off by the end of s).
Scan scan(std::string_view s, size_t i, size_t* len) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    *len = 1;
    return Scan::kValid;
  }
  int need = 0;
  uint8_t lo = 0x80;  // allowed range of the second byte (excludes overlongs and surrogates)
  uint8_t hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    *len = 1;
    return Scan::kInvalid;
  }
  size_t k = 1;
  for (; k <= static_cast<size_t>(need); ++k) {
    if (i + k >= s.size()) {
      *len = k;
      return Scan::kTruncated;
    }
    const auto b = static_cast<uint8_t>(s[i + k]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      *len = k;
      return Scan::kInvalid;
    }
  }
  *len = k;
  return Scan::kValid;
}

// Appends the complete part of `bytes` to *out; returns how many bytes at the end were held back
// (0 when `final`, where a truncated tail becomes U+FFFD).
size_t emit(std::string_view bytes, bool final, std::string* out) {
  size_t i = 0;
  while (i < bytes.size()) {
    size_t len = 0;
    switch (scan(bytes, i, &len)) {
      case Scan::kValid:
        out->append(bytes.substr(i, len));
        break;
      case Scan::kInvalid:
        out->append(kReplacement);
        break;
      case Scan::kTruncated:
        if (!final) return bytes.size() - i;
        out->append(kReplacement);
        break;
    }
    i += len;
  }
  return 0;
}

}  // namespace

std::string sanitize_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  emit(bytes, /*final=*/true, &out);
  return out;
}

Utf8StreamDecoder::Utf8StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string Utf8StreamDecoder::push(int32_t id) {
  if (skip_special_ && tokenizer_->is_control(id)) return {};
  return push_bytes(tokenizer_->token_bytes(id));
}

std::string Utf8StreamDecoder::push_bytes(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  const size_t held = emit(pending_, /*final=*/false, &out);
  pending_.erase(0, pending_.size() - held);
  return out;
}

std::string Utf8StreamDecoder::flush() {
  std::string out;
  emit(pending_, /*final=*/true, &out);
  pending_.clear();
  return out;
}

}  // namespace vortex
