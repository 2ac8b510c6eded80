// Shared helpers of the tokenizer tests (see test_support.h).
#include "test_support.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "vortex/model/pretokenizer.h"

namespace vortex::test {
namespace fs = std::filesystem;

std::string utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

std::vector<std::string> tricky_corpus() {
  return {
      "",
      " ",
      "Hello world",
      "Hello, world! How are you today?",
      "  leading and trailing spaces  ",
      "multiple     spaces   between\twords",
      "\t\ttabs\tand\nnewlines\n\n\nand\r\nCRLF\r\n",
      "\n",
      "   \n   \n",
      "trailing newline\n",
      "a  b   c    d     e",
      "12345678901234567890",
      "Numbers: 3.14159, 1,000,000 and 42nd 7th",
      "phone +1-555-0123 x 99",
      "I'm you're we've they'll she'd it's don't",
      "I'M YOU'RE WE'VE THEY'LL SHE'D IT'S DON'T",
      "'s 't 're 've 'm 'll 'd",
      "\xC5\xBF 's '\xC5\xBF x'\xC5\xBF"
      "ab",  // long s: not a contraction
      "caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xC3\xBC\xC3\xB6\xC3\xA4\xC3\x9F",
      "cafe\xCC\x81 combining a\xCC\x8A\xCC\x81 marks",  // decomposed accents
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83"
      "\x88",  // Japanese
      "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97\xE7\xAC\xA6\xE6\xB5\x8B\xE8\xAF\x95 mixed English",  // Chinese
      "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 \xED\x85\x8C\xEC\x8A\xA4\xED\x8A\xB8",  // Korean
      "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\xBC\xD0\xB8\xD1\x80",  // Russian
      "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 "
      "\xD8\xA8\xD8\xA7\xD9\x84\xD8\xB9\xD8\xA7\xD9\x84\xD9"
      "\x85",                                                                      // Arabic
      "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87",  // Devanagari
      "\xF0\x9F\x98\x80\xF0\x9F\x98\x83\xF0\x9F\x98\x84 emoji",
      // family (ZWJ sequence), flag, skin tone, keycap
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7\xE2\x80\x8D\xF0\x9F"
      "\x91\xA6 family",
      "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD 1\xEF\xB8\x8F\xE2\x83\xA3",
      "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80",
      "math \xE2\x88\x91\xE2\x88\xAB\xE2\x88\x9A \xCF\x80\xE2\x89\x88 3.14 \xC2\xB2\xC2\xB3 "
      "\xC2\xBD",
      "fullwidth \xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\xA3 \xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93",
      "roman \xE2\x85\xA0\xE2\x85\xA1\xE2\x85\xA2 and circled \xE2\x91\xA0\xE2\x91\xA1",
      "nbsp\xC2\xA0\xC2\xA0here, nel\xC2\x85there, ls\xE2\x80\xA8ps\xE2\x80\xA9"
      "end",
      "ideographic\xE3\x80\x80space thin\xE2\x80\x89space zwsp\xE2\x80\x8Bjoin",
      "a\xC2\xA0\xC2\xA0"
      "b a\xE3\x80\x80\xE3\x80\x80"
      "b",
      "code: for (int i = 0; i < n; ++i) { sum += a[i]; }\n",
      "def f(x):\n    return x**2  # square\n\n\nprint(f(3))",
      "<html><body class=\"main\">Text &amp; more</body></html>",
      "path/to/file.txt C:\\Windows\\System32 https://example.com/a?b=c&d=e",
      "!!!???...,,,;;;:::---___***",
      "user@example.com #hashtag @mention $100 50% ^_^",
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
      "text<|im_end|>more<|endoftext|>",
      "<|im_start|><|im_start|><|im_end|>",
      "almost special <|im_start| and <im_start|> and <|im_start |>",
      "<|endoftext|>",
      "x\xF0\x9F\x98\x80y\xE4\xB8\xADz\xCC\x81",
      "\xE2\x80\x8D\xE2\x80\x8C zero width joiners",
      "Mixed: English, \xE4\xB8\xAD\xE6\x96\x87, "
      "\xD0\xA0\xD1\x83\xD1\x81\xD1\x81\xD0\xBA\xD0\xB8\xD0"
      "\xB9, \xCE\x95\xCE\xBB\xCE\xBB\xCE\xB7\xCE\xBD\xCE\xB9\xCE\xBA\xCE\xAC, \xD7\xA2\xD7\x91\xD7"
      "\xA8\xD7\x99\xD7\xAA 123",
      "\x01\x02\x7F control bytes \x1B[0m",
      "The year 2024: Q1 revenue $1.5B (up 23%).",
      // Bytes SmolLM2 has no token for (controls 0x04/0x06, the lead byte of plane 5): dropped.
      "ctrl \x04\x06 and plane-5 \xF1\x90\x80\x80 char",
  };
}

namespace {

// True when PCRE2 classifies `cp` as unassigned (\p{Cn}): "x" + cp splits in two only then.
bool pcre2_unassigned(uint32_t cp) {
  static const PreTokenizer probe =
      std::move(PreTokenizer::from_patterns({R"(x(?=\p{Cn}))"}).value());
  std::vector<std::string_view> pieces;
  const std::string s = "x" + utf8(cp);
  probe.split(s, &pieces);
  return pieces.size() == 2;
}

}  // namespace

std::string random_utf8(std::mt19937& rng, int n, bool assigned_only) {
  static const uint32_t kPool[] = {' ',    ' ',     ' ',    '\n',    '\t',   'a',    'b',    'e',
                                   'Z',    '0',     '7',    '\'',    's',    '.',    ',',    '!',
                                   0xE9,   0x301,   0xA0,   0x85,    0x2028, 0x3000, 0x4E2D, 0x6587,
                                   0xAC00, 0x1F600, 0x200D, 0x1F469, 0xFE0F, 0x2160, 0xFF21, 0x17F};
  std::uniform_int_distribution<int> pick(0, static_cast<int>(std::size(kPool)) - 1);
  std::uniform_int_distribution<uint32_t> any_cp(0x20, 0x10FFFF);
  std::uniform_int_distribution<int> coin(0, 9);
  std::string out;
  for (int i = 0; i < n; ++i) {
    if (coin(rng) == 0) {
      uint32_t cp = any_cp(rng);
      while (assigned_only && pcre2_unassigned(cp)) cp = any_cp(rng);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
      out += utf8(cp);
    } else {
      out += utf8(kPool[pick(rng)]);
    }
  }
  return out;
}

std::string random_bytes(std::mt19937& rng, int n) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>(byte(rng)));
  return out;
}

bool is_valid_utf8(const std::string& s) {
  // Decode by the definition: lead byte gives the length, every code point must need that length,
  // and surrogates / values above U+10FFFF are excluded.
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<uint8_t>(s[i]);
    int len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? b : b & (0x7F >> len);
    for (int k = 1; k < len; ++k) {
      const auto c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (utf8(cp).size() != static_cast<size_t>(len)) return false;  // overlong
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

std::string byte_level_char(uint8_t b) {
  uint32_t extra = 256;
  for (uint32_t x = 0; x < 256; ++x) {
    const bool printable = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
    if (x == b) return utf8(printable ? x : extra);
    if (!printable) ++extra;
  }
  return {};
}

bool vocab_covers(const Tokenizer& tok, const std::string& text) {
  for (char c : text) {
    if (tok.token_to_id(byte_level_char(static_cast<uint8_t>(c))) < 0) return false;
  }
  return true;
}

TokenizerSpec synthetic_spec(const std::vector<std::string>& merges,
                             const std::vector<std::string>& specials, const std::string& pre) {
  TokenizerSpec spec;
  spec.model = "gpt2";
  spec.pre = pre;
  for (int b = 0; b < 256; ++b) {
    spec.tokens.push_back(byte_level_char(static_cast<uint8_t>(b)));
    spec.token_types.push_back(1);
  }
  for (const std::string& m : merges) {
    const size_t space = m.find(' ');
    const std::string merged = m.substr(0, space) + m.substr(space + 1);
    if (std::find(spec.tokens.begin(), spec.tokens.end(), merged) == spec.tokens.end()) {
      spec.tokens.push_back(merged);
      spec.token_types.push_back(1);
    }
  }
  spec.merges = merges;
  for (const std::string& s : specials) {
    spec.tokens.push_back(s);
    spec.token_types.push_back(3);
  }
  return spec;
}

std::vector<int32_t> reference_bpe(const Tokenizer& tok, const std::vector<std::string>& merges,
                                   std::vector<int32_t> ids) {
  while (ids.size() > 1) {
    size_t best_rank = merges.size();
    size_t best_pos = 0;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const std::string pair =
          std::string(tok.token_text(ids[i])) + " " + std::string(tok.token_text(ids[i + 1]));
      for (size_t r = 0; r < best_rank; ++r) {
        if (merges[r] == pair) {
          best_rank = r;
          best_pos = i;
          break;
        }
      }
    }
    if (best_rank == merges.size()) break;
    const std::string merged =
        std::string(tok.token_text(ids[best_pos])) + std::string(tok.token_text(ids[best_pos + 1]));
    ids[best_pos] = tok.token_to_id(merged);
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best_pos) + 1);
  }
  return ids;
}

std::optional<Reference> find_reference(std::string* skip_reason, const std::string& name,
                                        bool need_model) {
  Reference ref;
  ref.python = std::string(VORTEX_SOURCE_DIR) + "/.venv/bin/python";
  ref.script = std::string(VORTEX_SOURCE_DIR) + "/tests/unit/tokenizer/hf_reference.py";
  if (!fs::exists(ref.python)) {
    *skip_reason =
        "no Python reference environment at " + ref.python +
        " (create it with scripts/setup.sh or pip install -r scripts/requirements-test.txt)";
    return std::nullopt;
  }
  const char* env_dir = std::getenv("VORTEX_MODEL_DIR");
  const char* home = std::getenv("HOME");
  const std::string dir = env_dir != nullptr ? std::string(env_dir)
                          : home != nullptr  ? std::string(home) + "/.cache/vortex/models"
                                             : std::string();
  ref.gguf = dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if ((dir.empty() || !fs::exists(ref.gguf)) && !need_model) {
    ref.gguf.clear();
  } else if (dir.empty() || !fs::exists(ref.gguf)) {
    *skip_reason = "model file " + ref.gguf + " is missing (fetch it with scripts/fetch_model.sh)";
    return std::nullopt;
  }
  ref.work_dir = std::string(VORTEX_BINARY_DIR) + "/tests/tokenizer_reference/" + name;
  fs::create_directories(ref.work_dir);
  return ref;
}

bool run_reference(const Reference& ref, const std::string& args, std::string* log) {
  const std::string log_path = ref.work_dir + "/python.log";
  const std::string cmd =
      "'" + ref.python + "' '" + ref.script + "' " + args + " > '" + log_path + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(log_path);
  std::stringstream ss;
  ss << in.rdbuf();
  *log = cmd + "\n" + ss.str();
  return rc == 0;
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

void write_json_file(const std::string& path, const nlohmann::json& value) {
  std::ofstream out(path);
  out << value.dump();
}

TokenizerSpec spec_from_dump(const nlohmann::json& dump) {
  TokenizerSpec spec;
  spec.model = dump.at("model").get<std::string>();
  spec.pre = dump.at("pre").get<std::string>();
  spec.tokens = dump.at("tokens").get<std::vector<std::string>>();
  spec.merges = dump.at("merges").get<std::vector<std::string>>();
  spec.token_types = dump.at("token_types").get<std::vector<int32_t>>();
  spec.bos_id = dump.at("bos_id").get<int32_t>();
  spec.eos_id = dump.at("eos_id").get<int32_t>();
  spec.unk_id = dump.at("unk_id").get<int32_t>();
  spec.pad_id = dump.at("pad_id").get<int32_t>();
  spec.add_bos = dump.at("add_bos").get<bool>();
  spec.chat_template = dump.at("chat_template").get<std::string>();
  return spec;
}

}  // namespace vortex::test
