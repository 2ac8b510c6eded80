// RULER-style task generation: filler sized by binary search on the model's token count, needles
// inserted at sentence boundaries at the requested depth.
#include "vortex/eval/tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace vortex::eval {
namespace {

constexpr const char* kNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

const std::vector<std::string_view> kSyllables = {
    "ka",  "lo",  "mi",  "ren", "sa",  "tor", "vel", "qui", "dan", "fen", "gar", "hol",
    "jin", "kor", "lum", "mar", "nes", "pol", "ras", "sul", "tam", "vor", "wen", "zel"};

std::string make_word(std::mt19937_64& rng, int syllables) {
  std::string w;
  for (int i = 0; i < syllables; ++i) w += kSyllables[rng() % kSyllables.size()];
  return w;
}

std::string make_key(std::mt19937_64& rng) { return make_word(rng, 2) + "-" + make_word(rng, 3); }
std::string make_number(std::mt19937_64& rng) { return std::to_string(1000000 + rng() % 9000000); }

std::vector<std::string> split_sentences(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    // Collapse internal whitespace runs (the novels are hard-wrapped).
    std::string clean;
    bool space = false;
    for (char c : cur) {
      const bool ws = c == ' ' || c == '\n' || c == '\r' || c == '\t';
      if (ws) {
        space = !clean.empty();
      } else {
        if (space) clean += ' ';
        clean += c;
        space = false;
      }
    }
    if (clean.size() > 1) out.push_back(std::move(clean));
    cur.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    cur += text[i];
    const char c = text[i];
    if ((c == '.' || c == '?' || c == '!') &&
        (i + 1 == text.size() || text[i + 1] == ' ' || text[i + 1] == '\n')) {
      flush();
    } else if (c == '\n' && i + 1 < text.size() && text[i + 1] == '\n') {
      flush();
    }
  }
  flush();
  return out;
}

std::string join(const std::vector<std::string>& parts, size_t n, std::string_view sep = " ") {
  std::string s;
  for (size_t i = 0; i < n && i < parts.size(); ++i) {
    if (i) s += sep;
    s += parts[i];
  }
  return s;
}

struct Plan {
  std::vector<std::string> needles;  // inserted in order; the first at `depth`
  std::string question;
  std::string answer_prefix;
  std::vector<std::string> answers;
};

Plan plan_task(TaskKind kind, std::mt19937_64& rng) {
  Plan p;
  auto magic = [](const std::string& key, const std::string& value) {
    return fmt::format("One of the special magic numbers for {} is: {}.", key, value);
  };
  switch (kind) {
    case TaskKind::kPasskey: {
      const std::string v = make_number(rng);
      p.needles = {fmt::format("The pass key is {}. Remember it. {} is the pass key.", v, v)};
      p.question = "What is the pass key?";
      p.answer_prefix = "The pass key is";
      p.answers = {v};
      break;
    }
    case TaskKind::kSingleKeyValue: {
      const std::string k = make_key(rng), v = make_number(rng);
      p.needles = {magic(k, v)};
      p.question =
          fmt::format("What is the special magic number for {} mentioned in the provided text?", k);
      p.answer_prefix =
          fmt::format("The special magic number for {} mentioned in the provided text is", k);
      p.answers = {v};
      break;
    }
    case TaskKind::kMultiKey: {
      const std::string k = make_key(rng), v = make_number(rng);
      p.needles = {magic(k, v)};
      for (int i = 0; i < 3; ++i) p.needles.push_back(magic(make_key(rng), make_number(rng)));
      p.question =
          fmt::format("What is the special magic number for {} mentioned in the provided text?", k);
      p.answer_prefix =
          fmt::format("The special magic number for {} mentioned in the provided text is", k);
      p.answers = {v};
      break;
    }
    case TaskKind::kMultiValue: {
      const std::string k = make_key(rng);
      for (int i = 0; i < 4; ++i) {
        p.answers.push_back(make_number(rng));
        p.needles.push_back(magic(k, p.answers.back()));
      }
      p.question = fmt::format(
          "What are all the special magic numbers for {} mentioned in the provided text?", k);
      p.answer_prefix =
          fmt::format("The special magic numbers for {} mentioned in the provided text are", k);
      break;
    }
    case TaskKind::kMultiQuery: {
      std::vector<std::string> keys;
      for (int i = 0; i < 4; ++i) {
        keys.push_back(make_key(rng));
        p.answers.push_back(make_number(rng));
        p.needles.push_back(magic(keys.back(), p.answers.back()));
      }
      p.question = fmt::format(
          "What are all the special magic numbers for {}, {}, {} and {} mentioned in the provided "
          "text?",
          keys[0], keys[1], keys[2], keys[3]);
      p.answer_prefix = "The special magic numbers mentioned in the provided text are";
      break;
    }
    case TaskKind::kVariableTracking: {
      const std::string v = std::to_string(10000 + rng() % 90000);
      std::set<std::string> used;
      std::string prev;
      for (int hop = 0; hop < 5; ++hop) {
        std::string name;
        do {
          name.clear();
          for (int i = 0; i < 5; ++i) name += static_cast<char>('A' + rng() % 26);
        } while (!used.insert(name).second);
        p.needles.push_back(hop == 0 ? fmt::format("VAR {} = {}.", name, v)
                                     : fmt::format("VAR {} = VAR {}.", name, prev));
        p.answers.push_back(name);
        prev = name;
      }
      p.question =
          fmt::format("Find all variables that are assigned the value {} in the text above.", v);
      p.answer_prefix = fmt::format(
          "Answer: According to the chain(s) of variable assignment in the text above, 5 variables "
          "are assigned the value {}, they are:",
          v);
      break;
    }
    case TaskKind::kCommonWords:
      break;  // built separately: the context is the word list itself
  }
  return p;
}

}  // namespace

std::string_view task_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::kPasskey:
      return "passkey";
    case TaskKind::kSingleKeyValue:
      return "niah_single";
    case TaskKind::kMultiKey:
      return "niah_multikey";
    case TaskKind::kMultiValue:
      return "niah_multivalue";
    case TaskKind::kMultiQuery:
      return "niah_multiquery";
    case TaskKind::kVariableTracking:
      return "vt";
    case TaskKind::kCommonWords:
      return "cwe";
  }
  return "?";
}

std::vector<TaskKind> all_tasks() {
  return {TaskKind::kPasskey,    TaskKind::kSingleKeyValue, TaskKind::kMultiKey,
          TaskKind::kMultiValue, TaskKind::kMultiQuery,     TaskKind::kVariableTracking,
          TaskKind::kCommonWords};
}

Expected<TaskKind> parse_task(std::string_view name) {
  for (TaskKind k : all_tasks()) {
    if (task_name(k) == name) return k;
  }
  return invalid_argument(fmt::format(
      "unknown task '{}'; expected one of passkey, niah_single, niah_multikey, niah_multivalue, "
      "niah_multiquery, vt, cwe",
      name));
}

std::string Sample::prompt() const { return context + "\n\n" + question + " " + answer_prefix; }

TaskGenerator::TaskGenerator(std::string haystack, TokenCounter count_tokens)
    : count_tokens_(std::move(count_tokens)) {
  sentences_ = split_sentences(haystack.empty() ? std::string(kNoise) : haystack);
}

std::string TaskGenerator::filler(int64_t num_words, uint64_t seed) const {
  // The first `num_words` words of the haystack's sentences, from a seeded start, cycling.
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
  const size_t start = sentences_.size() > 1 ? rng() % sentences_.size() : 0;
  std::string out;
  int64_t words = 0;
  for (size_t i = 0; words < num_words; ++i) {
    const std::string& sent = sentences_[(start + i) % sentences_.size()];
    size_t p = 0;
    while (p < sent.size() && words < num_words) {
      size_t q = sent.find(' ', p);
      if (q == std::string::npos) q = sent.size();
      if (!out.empty()) out += ' ';
      out.append(sent, p, q - p);
      ++words;
      p = q + 1;
    }
  }
  return out;
}

namespace {

// Largest n in [0, 2^k) with fits(n), given fits is monotone (true then false).
template <typename Fits>
int64_t largest_fitting(Fits fits) {
  int64_t lo = 0, hi = 16;
  while (fits(hi)) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (fits(mid))
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

}  // namespace

Expected<Sample> TaskGenerator::generate(TaskKind kind, int64_t target_tokens, double depth,
                                         uint64_t seed) const {
  if (depth < 0.0 || depth > 1.0) return invalid_argument("needle depth must be in [0, 1]");
  if (target_tokens < 64) return invalid_argument("context length must be at least 64 tokens");
  std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(kind) * 7919ULL);
  Sample s;
  s.kind = kind;
  s.target_tokens = target_tokens;
  s.depth = depth;
  s.seed = seed;
  // Every task builds its context from one size knob n; the largest n whose whole prompt fits
  // the token target is found by binary search on the real token count.
  std::function<std::string(int64_t)> build;

  if (kind == TaskKind::kCommonWords) {
    // 10 frequent words among rare ones, shuffled. RULER uses 30 vs 3 occurrences; short
    // contexts scale the frequent count down and keep rare words single.
    const int freq_common = static_cast<int>(std::clamp<int64_t>(target_tokens / 100, 4, 30));
    const int freq_rare = freq_common >= 10 ? 3 : 1;
    std::vector<std::string> common;
    std::set<std::string> seen;
    while (common.size() < 10) {
      std::string w = make_word(rng, 2);
      if (seen.insert(w).second) common.push_back(w);
    }
    s.question = "What are the 10 most common words in the above list?";
    s.answer_prefix = "Answer: The top 10 words that appear most often in the list are:";
    s.answers = common;
    build = [=](int64_t n_rare) {
      std::vector<std::string> words;
      for (const auto& w : common)
        for (int i = 0; i < freq_common; ++i) words.push_back(w);
      std::mt19937_64 wr(seed + 17);
      std::set<std::string> taken(seen);
      for (int64_t r = 0; r < n_rare;) {
        std::string w = make_word(wr, 3);
        if (!taken.insert(w).second) continue;
        for (int i = 0; i < freq_rare; ++i) words.push_back(w);
        ++r;
      }
      std::mt19937_64 shuffle_rng(seed);
      std::shuffle(words.begin(), words.end(), shuffle_rng);
      std::string list =
          "Below is a numbered list of words. In these words, some appear more often than "
          "others. Memorize the ones that appear most often.\n";
      for (size_t i = 0; i < words.size(); ++i) list += fmt::format("{}. {}\n", i + 1, words[i]);
      return list;
    };
  } else {
    Plan plan = plan_task(kind, rng);
    s.question = plan.question;
    s.answer_prefix = plan.answer_prefix;
    s.answers = plan.answers;
    // Insertion ranks (fractions of the filler's sentences): the first needle at `depth`, the
    // others uniformly at random (in order for variable tracking, so a chain reads forwards).
    std::vector<double> at = {depth};
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (size_t i = 1; i < plan.needles.size(); ++i) at.push_back(u(rng));
    if (kind == TaskKind::kVariableTracking) {
      for (double& a : at) a = depth + (1.0 - depth) * (&a == &at[0] ? 0.0 : a);
      std::sort(at.begin(), at.end());
    }
    build = [this, plan, at, seed](int64_t n_words) {
      std::vector<std::string> parts = split_sentences(filler(n_words, seed));
      const size_t n = parts.size();
      std::vector<size_t> order(at.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      // Insert from the back so earlier positions stay valid; on equal positions the later
      // needle goes in first so the earlier one ends up in front of it.
      auto pos = [&](size_t i) {
        return static_cast<size_t>(at[i] * static_cast<double>(n) + 0.5);
      };
      std::sort(order.begin(), order.end(),
                [&](size_t a, size_t b) { return pos(a) != pos(b) ? pos(a) > pos(b) : a > b; });
      for (size_t i : order) {
        parts.insert(parts.begin() + static_cast<long>(std::min(pos(i), parts.size())),
                     plan.needles[i]);
      }
      return "Some special pieces of information are hidden inside the following text. Read it "
             "and remember them; you will be asked about them afterwards.\n" +
             join(parts, parts.size());
    };
  }

  auto fits = [&](int64_t n) {
    s.context = build(n);
    return count_tokens_(s.prompt()) <= target_tokens;
  };
  if (!fits(0)) {
    return invalid_argument(
        fmt::format("{} needs more than {} tokens of context", task_name(kind), target_tokens));
  }
  s.context = build(largest_fitting(fits));
  return s;
}

double score_output(const Sample& sample, std::string_view output) {
  if (sample.answers.empty()) return 0.0;
  size_t hit = 0;
  for (const auto& a : sample.answers) {
    if (output.find(a) != std::string_view::npos) ++hit;
  }
  return static_cast<double>(hit) / static_cast<double>(sample.answers.size());
}

}  // namespace vortex::eval
