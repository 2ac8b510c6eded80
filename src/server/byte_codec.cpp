// Byte-level TextCodec: token id = byte value, for synthetic models without a vocabulary.
#include <cstdint>

#include "vortex/server/text_codec.h"

namespace vortex::server {
namespace {

/// Length of the UTF-8 sequence a lead byte starts (0: not a valid lead byte).
int utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

/// Groups bytes into UTF-8 characters; an invalid byte becomes U+FFFD. (Overlong 3/4-byte forms
/// and surrogates are let through: the bytes came from the model, and JSON output replaces them.)
class ByteTextStream : public TokenTextStream {
 public:
  std::string push(int32_t token) override {
    if (token < 0 || token > 255) return "";
    const auto b = static_cast<unsigned char>(token);
    std::string out;
    if (!pending_.empty()) {
      if (is_continuation(b)) {
        pending_.push_back(static_cast<char>(b));
        if (static_cast<int>(pending_.size()) == want_) {
          out.swap(pending_);
        }
        return out;
      }
      out = kReplacement;  // the character was cut short
      pending_.clear();
    }
    const int n = utf8_length(b);
    if (n == 1) {
      out.push_back(static_cast<char>(b));
    } else if (n == 0) {
      out += kReplacement;
    } else {
      pending_.push_back(static_cast<char>(b));
      want_ = n;
    }
    return out;
  }
  std::string flush() override {
    if (pending_.empty()) return "";
    pending_.clear();
    return std::string(kReplacement);
  }

 private:
  std::string pending_;
  int want_ = 0;
};

class ByteCodec : public TextCodec {
 public:
  std::string name() const override { return "bytes"; }
  std::vector<int32_t> encode_prompt(std::string_view text) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    for (char c : text) ids.push_back(static_cast<unsigned char>(c));
    return ids;
  }
  Expected<std::vector<int32_t>> encode_chat(std::span<const ChatTurn> messages) const override {
    std::string text;
    for (const ChatTurn& m : messages) {
      if (m.role.empty()) return invalid_argument("a chat message has an empty role");
      text += m.role + ": " + m.content + "\n";
    }
    text += "assistant: ";
    return encode_prompt(text);
  }
  std::unique_ptr<TokenTextStream> text_stream() const override {
    return std::make_unique<ByteTextStream>();
  }
  std::string token_text(int32_t token) const override {
    ByteTextStream s;
    std::string t = s.push(token);
    return t + s.flush();
  }
  std::vector<int32_t> end_of_turn_ids() const override { return {}; }
};

}  // namespace

std::unique_ptr<TextCodec> make_byte_codec() { return std::make_unique<ByteCodec>(); }

}  // namespace vortex::server
