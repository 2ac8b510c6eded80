// PreTokenizer: PCRE2-backed regex splitting with HF "Isolated" semantics, and the pattern table of
// the pre-tokenizers named in GGUF files.
#include "vortex/model/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "bpe.h"
#include "vortex/core/check.h"
#include "vortex/core/logging.h"

namespace vortex {
namespace {

// The regexes below are the ones the checkpoints' tokenizer.json files carry (GPT-2 since 2019,
// Llama-3 with `\p{N}{1,3}`, Qwen2 with `\p{N}`). The contraction group stays case-insensitive:
// like Oniguruma (what HF tokenizers runs), PCRE2 then also takes "'ſ" (U+017F) as "'s".
constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr std::string_view kContractionsCaseless = R"((?i:'s|'t|'re|'ve|'m|'ll|'d))";
constexpr std::string_view kLlama3Tail =
    R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Tail =
    R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kEachDigit = R"(\p{N})";

bool name_in(std::string_view name, std::initializer_list<std::string_view> names) {
  for (std::string_view n : names) {
    if (n == name) return true;
  }
  return false;
}

// Per-thread PCRE2 match state: match data and a JIT stack large enough for long inputs.
struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;

  MatchState() {
    data = pcre2_match_data_create(32, nullptr);
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    VORTEX_CHECK(data != nullptr && context != nullptr && jit_stack != nullptr);
    pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;

  static MatchState& for_this_thread() {
    thread_local MatchState state;
    return state;
  }
};

struct Piece {
  std::string_view text;
  bool valid_utf8;
};

// Splits `text` into maximal valid UTF-8 runs and single invalid bytes.
void split_invalid_utf8(std::string_view text, std::vector<Piece>* out) {
  size_t run_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t at = pos;
    if (bpe::next_code_point(text, &pos) >= 0) continue;
    if (at > run_start) out->push_back({text.substr(run_start, at - run_start), true});
    out->push_back({text.substr(at, 1), false});
    run_start = pos;
  }
  if (pos > run_start) out->push_back({text.substr(run_start, pos - run_start), true});
}

size_t utf8_char_len(std::string_view s, size_t pos) {
  size_t next = pos;
  bpe::next_code_point(s, &next);
  return next - pos;
}

}  // namespace

struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  std::string pattern;

  ~Regex() { pcre2_code_free(code); }

  // Isolated split of a valid UTF-8 piece: matches and the gaps between them become pieces.
  void split(std::string_view s, std::vector<Piece>* out) const {
    MatchState& state = MatchState::for_this_thread();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
    size_t piece_start = 0;
    size_t search_from = 0;
    while (search_from < s.size()) {
      const int rc = pcre2_match(code, subject, s.size(), search_from, PCRE2_NO_UTF_CHECK,
                                 state.data, state.context);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof(message));
        VORTEX_LOG_WARN(
            "pre-tokenizer regex failed on a {}-byte piece ({}); keeping the rest whole", s.size(),
            reinterpret_cast<const char*>(message));
        break;
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
      const size_t begin = ov[0];
      const size_t end = ov[1];
      if (begin > piece_start) out->push_back({s.substr(piece_start, begin - piece_start), true});
      if (end > begin) {
        out->push_back({s.substr(begin, end - begin), true});
        piece_start = search_from = end;
      } else {
        // An empty match only marks a split point; step over one character to make progress.
        piece_start = begin;
        search_from = begin + utf8_char_len(s, begin);
      }
    }
    if (piece_start < s.size()) out->push_back({s.substr(piece_start), true});
  }
};

std::vector<std::string> pretokenizer_patterns(std::string_view name) {
  const std::string llama3 = std::string(kContractionsCaseless) + std::string(kLlama3Tail);
  const std::string qwen2 = std::string(kContractionsCaseless) + std::string(kQwen2Tail);
  if (name_in(name, {"gpt2", "mpt", "olmo"})) return {std::string(kGpt2)};
  if (name_in(name, {"smollm", "starcoder", "refact", "command-r"})) {
    return {std::string(kEachDigit), std::string(kGpt2)};
  }
  if (name_in(name, {"llama3", "llama-v3", "llama-bpe", "smaug-bpe", "dbrx"})) return {llama3};
  if (name_in(name, {"qwen2", "stablelm2", "deepseek-r1-qwen"})) return {qwen2};
  return {};
}

PreTokenizer PreTokenizer::from_name(std::string_view name) {
  std::vector<std::string> patterns = pretokenizer_patterns(name);
  if (patterns.empty()) {
    VORTEX_LOG_WARN(
        "unknown pre-tokenizer '{}'; using the GPT-2 regex (tokens may differ from the model's own "
        "tokenizer; known: gpt2, smollm, llama3/llama-bpe, qwen2)",
        name);
    patterns = pretokenizer_patterns("gpt2");
  }
  auto pre = from_patterns(patterns);
  VORTEX_CHECK_OK(pre.status());  // the built-in patterns always compile
  return std::move(pre).value();
}

Expected<PreTokenizer> PreTokenizer::from_patterns(const std::vector<std::string>& patterns) {
  PreTokenizer pre;
  for (const std::string& raw : patterns) {
    auto regex = std::make_shared<Regex>();
    regex->pattern = raw;
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    regex->code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex->pattern.data()), regex->pattern.size(),
                      PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
    if (regex->code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return invalid_argument("pre-tokenizer regex '" + raw + "' does not compile at offset " +
                              std::to_string(error_offset) + ": " +
                              reinterpret_cast<const char*>(message) +
                              "; check the tokenizer's pre_tokenizer pattern");
    }
    // JIT is an optimization only: without it (unsupported CPU) the interpreter gives the same
    // splits.
    pcre2_jit_compile(regex->code, PCRE2_JIT_COMPLETE);
    pre.patterns_.push_back(raw);
    pre.regexes_.push_back(std::move(regex));
  }
  return pre;
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>* pieces) const {
  std::vector<Piece> current;
  split_invalid_utf8(text, &current);
  std::vector<Piece> next;
  for (const auto& regex : regexes_) {
    next.clear();
    for (const Piece& p : current) {
      if (p.valid_utf8) {
        regex->split(p.text, &next);
      } else {
        next.push_back(p);
      }
    }
    current.swap(next);
  }
  for (const Piece& p : current) pieces->push_back(p.text);
}

}  // namespace vortex
