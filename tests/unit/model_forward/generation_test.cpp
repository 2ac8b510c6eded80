// Tests of generation: the stop-string matcher under every split of the stream, the Generator's
// token loop on synthetic models (determinism, chunked prefill, stop tokens, limits, errors), the
// text level, and SmolLM2 answering a question when the model file is present.
#include "vortex/model/generation.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "vortex/model/checkpoint.h"
#include "vortex/model/tokenizer.h"

namespace vortex {
namespace {

std::string run_matcher(const std::vector<std::string>& stops,
                        const std::vector<std::string>& pieces, bool* stopped) {
  StopStringMatcher m(stops);
  std::string out;
  for (const auto& p : pieces) out += m.push(p);
  out += m.flush();
  *stopped = m.stopped();
  return out;
}

TEST(StopStringMatcher, CutsBeforeTheFirstStopWhateverTheSplit) {
  const std::string text = "Hello wor<END>ld and <STOP> more";
  for (size_t a = 0; a <= text.size(); ++a) {
    for (size_t b = a; b <= text.size(); b += 3) {
      bool stopped = false;
      const auto out =
          run_matcher({"<STOP>", "<END>"},
                      {text.substr(0, a), text.substr(a, b - a), text.substr(b)}, &stopped);
      EXPECT_EQ(out, "Hello wor") << a << " " << b;
      EXPECT_TRUE(stopped);
    }
  }
}

TEST(StopStringMatcher, HoldsBackOnlyPossibleStopPrefixes) {
  StopStringMatcher m({"###"});
  EXPECT_EQ(m.push("abc#"), "abc");
  EXPECT_EQ(m.push("#"), "");
  EXPECT_EQ(m.push("x"), "##x");
  EXPECT_EQ(m.push("##"), "");
  EXPECT_EQ(m.flush(), "##");
  EXPECT_FALSE(m.stopped());
  StopStringMatcher none({});
  EXPECT_EQ(none.push("anything ###"), "anything ###");
}

class GeneratorTest : public ::testing::Test {
 protected:
  static std::unique_ptr<Generator> make(const std::string& model, GeneratorOptions o = {}) {
    auto g = Generator::load(model, o);
    EXPECT_TRUE(g.has_value()) << g.status().to_string();
    return std::move(g).value();
  }
  const flow::SparseConfig dense_;
};

TEST_F(GeneratorTest, GreedyIsDeterministicAndIndependentOfPrefillChunking) {
  SamplingParams s;
  s.max_tokens = 40;
  const std::vector<int32_t> prompt = {5, 17, 200, 3, 9, 44, 81, 120, 7, 7, 7, 1, 250};
  std::vector<int32_t> first;
  for (int32_t chunk : {512, 5, 1}) {
    GeneratorOptions o;
    o.prefill_chunk = chunk;
    auto g = make("synthetic:tiny-qwen3", o);
    auto r = g->generate_ids(prompt, s, dense_);
    ASSERT_TRUE(r.has_value()) << r.status().to_string();
    EXPECT_EQ(r->output_ids.size(), 40u);
    EXPECT_EQ(r->finish_reason, "length");
    EXPECT_EQ(r->selected_fraction(), 1.0);
    if (first.empty()) first = r->output_ids;
    EXPECT_EQ(r->output_ids, first) << "prefill chunk " << chunk;
  }
}

TEST_F(GeneratorTest, StopTokensEndTheOutputAndSeedsRepeat) {
  auto g = make("synthetic:tiny-llama@4");
  SamplingParams s;
  s.temperature = 0.8f;
  s.seed = 99;
  s.max_tokens = 30;
  const std::vector<int32_t> prompt = {1, 2, 3};
  auto a = g->generate_ids(prompt, s, dense_).value();
  auto b = g->generate_ids(prompt, s, dense_).value();
  EXPECT_EQ(a.output_ids, b.output_ids);
  // Stop at the first occurrence of the 6th token.
  const int32_t stop = a.output_ids[5];
  const auto first =
      std::find(a.output_ids.begin(), a.output_ids.end(), stop) - a.output_ids.begin();
  s.stop_token_ids = {stop};
  auto c = g->generate_ids(prompt, s, dense_).value();
  EXPECT_EQ(c.finish_reason, "stop");
  EXPECT_EQ(c.output_ids, std::vector<int32_t>(a.output_ids.begin(), a.output_ids.begin() + first));
  // The token callback can stop early too.
  s.stop_token_ids.clear();
  int seen = 0;
  auto d = g->generate_ids(prompt, s, dense_, [&](int32_t) { return ++seen < 4; }).value();
  EXPECT_EQ(d.output_ids.size(), 4u);
  EXPECT_EQ(d.finish_reason, "stop");
}

TEST_F(GeneratorTest, RejectsBadRequests) {
  auto g = make("synthetic:tiny-llama");
  SamplingParams s;
  EXPECT_FALSE(g->generate_ids({}, s, dense_).has_value());
  const std::vector<int32_t> bad = {1, 256};
  EXPECT_FALSE(g->generate_ids(bad, s, dense_).has_value());
  s.max_tokens = 5000;  // past the 4096-token context
  const std::vector<int32_t> ok = {1};
  auto r = g->generate_ids(ok, s, dense_);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.status().message().find("context"), std::string::npos);
  s.max_tokens = 4;
  s.top_p = 0.0f;
  EXPECT_FALSE(g->generate_ids(ok, s, dense_).has_value());
  GeneratorOptions o;
  o.kv_dtype = DType::kF16;
  EXPECT_FALSE(Generator::load("synthetic:tiny-llama", o).has_value());
  EXPECT_FALSE(Generator::load("/no/such/model.gguf").has_value());
}

TEST_F(GeneratorTest, TextLevelStreamsWhatTheTokensDecodeTo) {
  GeneratorOptions o;
  o.kv_dtype = DType::kBF16;
  auto g = make("synthetic:tiny-llama", o);
  GenerationRequest req;
  req.prompt = "hello";
  req.sampling.max_tokens = 24;
  std::string streamed;
  auto r = g->generate(req, [&](std::string_view p) {
    streamed += p;
    return true;
  });
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_EQ(r->prompt_ids.size(), 5u);  // byte-level: one token per byte
  EXPECT_EQ(streamed, r->text);
  EXPECT_FALSE(r->text.empty());
  // A stop string made of the first two output characters ends the text immediately.
  req.sampling.stop = {r->text.substr(0, 2)};
  auto cut = g->generate(req);
  ASSERT_TRUE(cut.has_value());
  EXPECT_EQ(cut->finish_reason, "stop");
  EXPECT_EQ(cut->text.find(req.sampling.stop[0]), std::string::npos);
}

TEST_F(GeneratorTest, SmolLM2AnswersTheCapitalOfFrance) {
  auto path = resolve_model_path("smollm2-135m");
  if (!path || !std::filesystem::exists(*path)) {
    GTEST_SKIP() << "SmolLM2-135M GGUF not found (run scripts/fetch_model.sh)";
  }
  auto g = make("smollm2-135m");
  GenerationRequest req;
  req.chat = true;
  req.prompt = "What is the capital of France?";
  req.sampling.max_tokens = 32;
  auto r = g->generate(req);
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_NE(r->text.find("Paris"), std::string::npos) << r->text;
  EXPECT_EQ(r->finish_reason, "stop");  // ends with <|im_end|>, not the token limit
}

}  // namespace
}  // namespace vortex
