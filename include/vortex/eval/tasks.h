// RULER-style long-context tasks, generated in-project from a seed: needles planted at a chosen
// depth of a public-domain haystack (Jane Austen, from Debian's r-cran-janeaustenr) or of
// synthetic noise sentences, sized in tokens of the model under test.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "vortex/core/status.h"

namespace vortex::eval {

enum class TaskKind : uint8_t {
  kPasskey,           ///< "The pass key is N." — retrieve N
  kSingleKeyValue,    ///< one "special magic number for KEY is N" needle
  kMultiKey,          ///< several needles with distinct keys; ask for one
  kMultiValue,        ///< one key with several values; ask for all
  kMultiQuery,        ///< several keys; ask for all of their values
  kVariableTracking,  ///< chains "VAR A = N", "VAR B = VAR A"; list every variable holding N
  kCommonWords,       ///< a long word list; name the most frequent words
};

/// Stable names: passkey, niah_single, niah_multikey, niah_multivalue, niah_multiquery, vt, cwe.
std::string_view task_name(TaskKind kind);
Expected<TaskKind> parse_task(std::string_view name);
std::vector<TaskKind> all_tasks();

struct Sample {
  TaskKind kind;
  int64_t target_tokens = 0;  ///< requested context length (tokens)
  double depth = 0.5;         ///< where the (first) needle sits, 0 = start, 1 = end
  uint64_t seed = 0;
  std::string context;               ///< haystack with needles
  std::string question;              ///< appended after the context
  std::string answer_prefix;         ///< the start of the answer, appended to the prompt
  std::vector<std::string> answers;  ///< every string that must appear in the output

  /// context + question + answer prefix, as one plain-text prompt.
  std::string prompt() const;
};

/// Counts tokens of a text under the model's tokenizer.
using TokenCounter = std::function<int64_t(std::string_view)>;

class TaskGenerator {
 public:
  /// `haystack`: long plain text (paragraphs); empty uses synthetic noise sentences.
  TaskGenerator(std::string haystack, TokenCounter count_tokens);

  /// One sample of `kind` whose full prompt is at most `target_tokens` tokens (and close to it).
  Expected<Sample> generate(TaskKind kind, int64_t target_tokens, double depth,
                            uint64_t seed) const;

 private:
  std::string filler(int64_t num_words, uint64_t seed) const;
  std::vector<std::string> sentences_;  // the haystack split into sentences
  TokenCounter count_tokens_;
};

/// RULER's string-match score: the fraction of `answers` found in `output` (case-sensitive).
double score_output(const Sample& sample, std::string_view output);

}  // namespace vortex::eval
