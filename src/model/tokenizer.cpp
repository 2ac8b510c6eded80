// Tokenizer: byte-level BPE encode/decode with atomic special tokens and a per-word merge cache.
#include "vortex/model/tokenizer.h"

#include <algorithm>
#include <mutex>

#include "bpe.h"
#include "vortex/core/check.h"
#include "vortex/core/logging.h"

namespace vortex {
namespace {

constexpr uint8_t kFlagSpecial = 1;  // matched whole inside text
constexpr uint8_t kFlagControl = 2;  // dropped by decode(skip_special)
constexpr uint8_t kFlagEog = 4;      // ends generation

constexpr int32_t kTypeNormal = 1;
constexpr int32_t kTypeControl = 3;
constexpr int32_t kTypeUserDefined = 4;
constexpr int32_t kTypeByte = 6;

// Words longer than this are not cached (they are rare and would bloat the cache).
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 1 << 16;

// Names of end-of-turn tokens in the vocabularies we serve.
constexpr std::string_view kEndOfTurnNames[] = {"<|im_end|>",     "<|eot_id|>",    "<|eom_id|>",
                                                "<|end|>",        "<end_of_turn>", "<|endoftext|>",
                                                "<|end_of_text|>"};

bool looks_special(std::string_view text) {
  return text.size() > 4 && text.substr(0, 2) == "<|" && text.substr(text.size() - 2) == "|>";
}

// "<0x0A>" -> 10 for byte tokens (type 6), -1 otherwise.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (char c : text.substr(3, 2)) {
    value *= 16;
    if (c >= '0' && c <= '9') {
      value += c - '0';
    } else if (c >= 'A' && c <= 'F') {
      value += c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      value += c - 'a' + 10;
    } else {
      return -1;
    }
  }
  return value;
}

Status check_id(const char* field, int32_t id, size_t vocab) {
  if (id < -1 || id >= static_cast<int64_t>(vocab)) {
    return invalid_argument(std::string("tokenizer ") + field + " " + std::to_string(id) +
                            " is outside the vocabulary of " + std::to_string(vocab) +
                            " tokens; the checkpoint's tokenizer metadata is inconsistent");
  }
  return Status::ok();
}

}  // namespace

struct Tokenizer::WordCache {
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<int32_t>> words;
};

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Expected<Tokenizer> Tokenizer::from_spec(const TokenizerSpec& spec) {
  if (spec.model != "gpt2") {
    return unsupported("tokenizer model '" + spec.model +
                       "' is not supported; only byte-level BPE ('gpt2': GPT-2, Llama-3, Qwen, "
                       "SmolLM vocabularies) is implemented" +
                       (spec.model == "llama" ? " (SentencePiece vocabularies are not)" : ""));
  }
  const size_t n = spec.tokens.size();
  if (n == 0) return invalid_argument("tokenizer has an empty vocabulary (tokenizer.ggml.tokens)");
  if (n > static_cast<size_t>(INT32_MAX)) return invalid_argument("tokenizer vocabulary too large");
  if (!spec.token_types.empty() && spec.token_types.size() != n) {
    return invalid_argument("tokenizer has " + std::to_string(spec.token_types.size()) +
                            " token types for " + std::to_string(n) + " tokens");
  }
  VORTEX_RETURN_IF_ERROR(check_id("bos id", spec.bos_id, n));
  VORTEX_RETURN_IF_ERROR(check_id("eos id", spec.eos_id, n));
  VORTEX_RETURN_IF_ERROR(check_id("unknown-token id", spec.unk_id, n));
  VORTEX_RETURN_IF_ERROR(check_id("padding id", spec.pad_id, n));
  for (int32_t id : spec.eot_ids) VORTEX_RETURN_IF_ERROR(check_id("end-of-turn id", id, n));

  Tokenizer tok;
  if (!spec.pre_patterns.empty()) {
    VORTEX_ASSIGN_OR_RETURN(tok.pre_, PreTokenizer::from_patterns(spec.pre_patterns));
  } else {
    tok.pre_ = PreTokenizer::from_name(spec.pre);
  }
  tok.tokens_ = spec.tokens;
  tok.bos_id_ = spec.bos_id;
  tok.eos_id_ = spec.eos_id;
  tok.add_bos_ = spec.add_bos && spec.bos_id >= 0;
  tok.add_space_prefix_ = spec.add_space_prefix;
  tok.ignore_merges_ = spec.ignore_merges || spec.pre == "llama3" || spec.pre == "llama-v3" ||
                       spec.pre == "llama-bpe";
  tok.chat_template_ = spec.chat_template;
  tok.cache_ = std::make_unique<WordCache>();
  tok.merges_ = std::make_unique<bpe::MergeTable>();

  const bpe::ByteAlphabet& alphabet = bpe::ByteAlphabet::get();
  tok.bytes_.resize(n);
  tok.flags_.assign(n, 0);
  tok.token_ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = spec.tokens[i];
    const int32_t type = spec.token_types.empty() ? kTypeNormal : spec.token_types[i];
    const auto id = static_cast<int32_t>(i);
    tok.token_ids_.emplace(text, id);  // the first of duplicate texts wins
    const int byte = type == kTypeByte ? parse_byte_token(text) : -1;
    if (byte >= 0) {
      tok.bytes_[i] = std::string(1, static_cast<char>(byte));
    } else if (type == kTypeControl || type == kTypeUserDefined ||
               !alphabet.decode(text, &tok.bytes_[i])) {
      tok.bytes_[i] = text;  // stored raw (added tokens), as HF's ByteLevel decoder does
    }
    if (text.empty()) continue;
    if (type == kTypeControl || type == kTypeUserDefined || looks_special(text)) {
      tok.flags_[i] |= kFlagSpecial;
    }
    if (type == kTypeControl || looks_special(text)) tok.flags_[i] |= kFlagControl;
  }
  for (int32_t id : {spec.bos_id, spec.eos_id}) {
    if (id >= 0) tok.flags_[id] |= kFlagSpecial | kFlagControl;
  }
  for (int32_t id : spec.eot_ids) tok.flags_[id] |= kFlagSpecial | kFlagControl | kFlagEog;
  if (spec.eos_id >= 0) tok.flags_[spec.eos_id] |= kFlagEog;
  for (std::string_view name : kEndOfTurnNames) {
    const int32_t id = tok.token_to_id(name);
    if (id >= 0 && (tok.flags_[id] & kFlagControl)) tok.flags_[id] |= kFlagEog;
  }
  for (size_t i = 0; i < n; ++i) {
    if (tok.flags_[i] & kFlagEog) tok.eog_ids_.push_back(static_cast<int32_t>(i));
    if (tok.flags_[i] & kFlagSpecial)
      tok.specials_.push_back({tok.tokens_[i], static_cast<int32_t>(i)});
  }
  // Longest first, so a scan that takes the first candidate gets the leftmost-longest match.
  std::stable_sort(
      tok.specials_.begin(), tok.specials_.end(),
      [](const SpecialToken& a, const SpecialToken& b) { return a.text.size() > b.text.size(); });
  for (size_t k = 0; k < tok.specials_.size(); ++k) {
    tok.specials_by_first_byte_[static_cast<uint8_t>(tok.specials_[k].text[0])].push_back(
        static_cast<int32_t>(k));
  }
  for (int b = 0; b < 256; ++b) {
    tok.byte_ids_[b] = tok.token_to_id(alphabet.encode(static_cast<uint8_t>(b)));
  }

  int64_t skipped = 0;
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const std::string& merge = spec.merges[r];
    const size_t space = merge.find(' ', 1);
    if (space == std::string::npos || space + 1 >= merge.size()) {
      return invalid_argument("tokenizer merge #" + std::to_string(r) + " '" + merge +
                              "' is not of the form 'left right'");
    }
    const std::string_view left(merge.data(), space);
    const std::string_view right(merge.data() + space + 1, merge.size() - space - 1);
    const int32_t left_id = tok.token_to_id(left);
    const int32_t right_id = tok.token_to_id(right);
    const int32_t merged_id = tok.token_to_id(std::string(left) + std::string(right));
    if (left_id < 0 || right_id < 0 || merged_id < 0) {
      ++skipped;
      continue;
    }
    tok.merges_->add(left_id, right_id, static_cast<int32_t>(r), merged_id);
  }
  if (skipped > 0) {
    VORTEX_LOG_WARN("tokenizer: {} of {} merges name tokens outside the vocabulary; ignored",
                    skipped, spec.merges.size());
  }
  return tok;
}

int32_t Tokenizer::token_to_id(std::string_view text) const {
  auto it = token_ids_.find(text);
  return it == token_ids_.end() ? -1 : it->second;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return bytes_[id];
}

std::string_view Tokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return tokens_[id];
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && (flags_[id] & kFlagSpecial);
}
bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && id < vocab_size() && (flags_[id] & kFlagControl);
}
bool Tokenizer::is_end_of_generation(int32_t id) const {
  return id >= 0 && id < vocab_size() && (flags_[id] & kFlagEog);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && add_bos_) out.push_back(bos_id_);
  if (!parse_special || specials_.empty()) {
    encode_plain(text, &out);
    return out;
  }
  size_t plain_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& candidates = specials_by_first_byte_[static_cast<uint8_t>(text[pos])];
    const SpecialToken* hit = nullptr;
    for (int32_t k : candidates) {
      const SpecialToken& s = specials_[k];
      if (text.compare(pos, s.text.size(), s.text) == 0) {
        hit = &s;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    if (pos > plain_start) encode_plain(text.substr(plain_start, pos - plain_start), &out);
    out.push_back(hit->id);
    pos += hit->text.size();
    plain_start = pos;
  }
  if (plain_start < text.size()) encode_plain(text.substr(plain_start), &out);
  return out;
}

void Tokenizer::encode_plain(std::string_view text, std::vector<int32_t>* out) const {
  std::string prefixed;
  if (add_space_prefix_ && !text.empty() && text[0] != ' ') {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  std::vector<std::string_view> words;
  pre_.split(text, &words);
  for (std::string_view word : words) encode_word(word, out);
}

void Tokenizer::encode_word(std::string_view word, std::vector<int32_t>* out) const {
  if (word.size() > kMaxCachedWordBytes) {
    bpe_word(word, out);
    return;
  }
  const std::string key(word);
  {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    auto it = cache_->words.find(key);
    if (it != cache_->words.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out->size();
  bpe_word(word, out);
  std::vector<int32_t> ids(out->begin() + static_cast<std::ptrdiff_t>(start), out->end());
  std::lock_guard<std::mutex> lock(cache_->mutex);
  if (cache_->words.size() >= kMaxCacheEntries) cache_->words.clear();
  cache_->words.emplace(key, std::move(ids));
}

void Tokenizer::bpe_word(std::string_view word, std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    const int32_t whole = token_to_id(bpe::ByteAlphabet::get().encode(word));
    if (whole >= 0) {
      out->push_back(whole);
      return;
    }
  }
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  for (char c : word) {
    // A byte the vocabulary has no token for is dropped, as HF's BPE does without an unk_token
    // (SmolLM2 lacks a few control bytes and the lead bytes of unassigned planes).
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id >= 0) ids.push_back(id);
  }
  merges_->apply(&ids);
  out->insert(out->end(), ids.begin(), ids.end());
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    if (skip_special && (flags_[id] & kFlagControl)) continue;
    out += bytes_[id];
  }
  return out;
}

}  // namespace vortex
