// Task generators: sizes within the token target, needles at the requested depth, answers present
// in the context exactly as asked, seeded determinism, and scoring.
#include "vortex/eval/tasks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

namespace vortex::eval {
namespace {

// A stand-in tokenizer: one token per whitespace-separated word.
int64_t count_words(std::string_view s) {
  int64_t n = 0;
  bool in = false;
  for (char c : s) {
    const bool ws = c == ' ' || c == '\n' || c == '\t';
    if (!ws && !in) ++n;
    in = !ws;
  }
  return n;
}

std::string austen_or_empty() {
  const char* home = std::getenv("HOME");
  std::ifstream f(std::string(home ? home : "/root") + "/.cache/vortex/data/austen.txt");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Tasks, NamesRoundTrip) {
  for (TaskKind k : all_tasks()) EXPECT_EQ(*parse_task(task_name(k)), k);
  EXPECT_FALSE(parse_task("nope").has_value());
}

TEST(Tasks, EveryTaskFitsItsBudgetAndHoldsItsAnswers) {
  for (const std::string& hay : {std::string(), austen_or_empty()}) {
    TaskGenerator gen(hay, count_words);
    for (TaskKind k : all_tasks()) {
      for (int64_t len : {256, 1024, 4096}) {
        auto s = gen.generate(k, len, 0.5, 3);
        ASSERT_TRUE(s.has_value()) << task_name(k) << " " << s.status().to_string();
        const int64_t n = count_words(s->prompt());
        EXPECT_LE(n, len) << task_name(k);
        EXPECT_GE(n, len * 8 / 10) << task_name(k) << " too short at " << len;
        ASSERT_FALSE(s->answers.empty());
        for (const auto& a : s->answers) EXPECT_NE(s->context.find(a), std::string::npos) << a;
        EXPECT_DOUBLE_EQ(score_output(*s, "nothing"), 0.0);
        std::string all;
        for (const auto& a : s->answers) all += a + ", ";
        EXPECT_DOUBLE_EQ(score_output(*s, all), 1.0);
      }
    }
  }
}

TEST(Tasks, DepthPlacesTheNeedle) {
  TaskGenerator gen("", count_words);
  double last = -1.0;
  for (double depth : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    auto s = gen.generate(TaskKind::kPasskey, 2048, depth, 9);
    ASSERT_TRUE(s.has_value());
    const size_t at = s->context.find("The pass key is");
    ASSERT_NE(at, std::string::npos);
    const double rel = static_cast<double>(at) / static_cast<double>(s->context.size());
    EXPECT_NEAR(rel, depth, 0.08) << depth;
    EXPECT_GT(rel, last);
    last = rel;
  }
}

TEST(Tasks, SeededAndDistinct) {
  TaskGenerator gen(austen_or_empty(), count_words);
  auto a = gen.generate(TaskKind::kMultiKey, 1024, 0.3, 42);
  auto b = gen.generate(TaskKind::kMultiKey, 1024, 0.3, 42);
  auto c = gen.generate(TaskKind::kMultiKey, 1024, 0.3, 43);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->prompt(), b->prompt());
  EXPECT_NE(a->answers, c->answers);
}

TEST(Tasks, VariableTrackingChainReadsForward) {
  TaskGenerator gen("", count_words);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto s = gen.generate(TaskKind::kVariableTracking, 1024, 0.2, seed);
    ASSERT_TRUE(s.has_value());
    ASSERT_EQ(s->answers.size(), 5u);
    size_t prev = 0;
    for (const auto& name : s->answers) {
      const size_t at = s->context.find("VAR " + name + " =");
      ASSERT_NE(at, std::string::npos);
      EXPECT_GE(at, prev);
      prev = at;
    }
  }
}

TEST(Tasks, CommonWordsAreMostFrequent) {
  TaskGenerator gen("", count_words);
  auto s = gen.generate(TaskKind::kCommonWords, 2048, 0.5, 5);
  ASSERT_TRUE(s.has_value());
  std::map<std::string, int> freq;
  std::istringstream in(s->context);
  std::string line;
  while (std::getline(in, line)) {
    const size_t dot = line.find(". ");
    if (dot != std::string::npos && std::isdigit(static_cast<unsigned char>(line[0])))
      freq[line.substr(dot + 2)]++;
  }
  int min_answer = 1 << 30, max_other = 0;
  for (const auto& [w, n] : freq) {
    if (std::find(s->answers.begin(), s->answers.end(), w) != s->answers.end())
      min_answer = std::min(min_answer, n);
    else
      max_other = std::max(max_other, n);
  }
  EXPECT_EQ(min_answer, 20);  // 2048 / 100
  EXPECT_EQ(max_other, 3);
}

TEST(Tasks, BadArgumentsAreErrors) {
  TaskGenerator gen("", count_words);
  EXPECT_FALSE(gen.generate(TaskKind::kPasskey, 10, 0.5, 0).has_value());
  EXPECT_FALSE(gen.generate(TaskKind::kPasskey, 1000, 1.5, 0).has_value());
  EXPECT_FALSE(gen.generate(TaskKind::kMultiQuery, 70, 0.5, 0).has_value());
}

}  // namespace
}  // namespace vortex::eval
