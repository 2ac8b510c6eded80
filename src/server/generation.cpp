// Generation: engine events → OpenAI completion / chat objects and SSE chunks.
#include "generation.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "vortex/server/api_error.h"

namespace vortex::server {
namespace {

using json = nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string random_id(std::string_view prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(prefix);
  for (int i = 0; i < 24; ++i) id.push_back(kHex[rng() % 16]);
  return id;
}

std::string_view reason_text(engine::FinishReason r) {
  switch (r) {
    case engine::FinishReason::kStop:
      return "stop";
    case engine::FinishReason::kLength:
      return "length";
    case engine::FinishReason::kCancelled:
      return "abort";
    case engine::FinishReason::kError:
      return "error";
    case engine::FinishReason::kNone:
      break;
  }
  return "";
}

json utf8_bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

struct LogprobEntry {
  std::string text;
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;
  int64_t offset = 0;
};

namespace {

/// OpenAI logprobs of entries [first, end): chat {"content": [...]}, completions
/// {"tokens", "token_logprobs", "top_logprobs", "text_offset"}.
json logprobs_json(bool chat, const std::vector<LogprobEntry>& entries, size_t first) {
  json lp = json::object();
  if (chat) {
    json content = json::array();
    for (size_t i = first; i < entries.size(); ++i) {
      const LogprobEntry& e = entries[i];
      json top = json::array();
      for (const auto& [t, l] : e.top) {
        top.push_back({{"token", t}, {"logprob", l}, {"bytes", utf8_bytes(t)}});
      }
      content.push_back({{"token", e.text},
                         {"logprob", e.logprob},
                         {"bytes", utf8_bytes(e.text)},
                         {"top_logprobs", top}});
    }
    lp["content"] = content;
    return lp;
  }
  json tokens = json::array(), token_lps = json::array(), tops = json::array(),
       offsets = json::array();
  for (size_t i = first; i < entries.size(); ++i) {
    const LogprobEntry& e = entries[i];
    tokens.push_back(e.text);
    token_lps.push_back(e.logprob);
    json top = json::object();
    for (const auto& [t, l] : e.top) top[t] = l;
    tops.push_back(top);
    offsets.push_back(e.offset);
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_lps},
          {"top_logprobs", tops},
          {"text_offset", offsets}};
}

}  // namespace

struct Generation::Choice {
  Choice(int32_t i, const TextCodec& codec, std::vector<std::string> stop)
      : index(i), text(codec, std::move(stop)) {}
  int32_t index;
  std::shared_ptr<engine::RequestStream> stream;
  CompletionText text;
  std::vector<LogprobEntry> logprobs;
  int64_t text_offset = 0;
  int32_t completion_tokens = 0;
  std::string finish_reason;  // "" while running
  bool done = false;
  bool role_sent = false;
};

Generation::Generation(engine::Engine& engine, const ApiRequest& request, const TextCodec& codec,
                       std::string model_name)
    : engine_(engine),
      codec_(codec),
      chat_(request.chat),
      stream_(request.stream),
      include_usage_(request.include_usage),
      logprobs_(request.logprobs),
      id_(random_id(request.chat ? "chatcmpl-" : "cmpl-")),
      created_(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count()),
      model_(std::move(model_name)),
      signal_(std::make_shared<engine::EventSignal>()) {}

Generation::~Generation() { cancel(); }

Expected<std::unique_ptr<Generation>> Generation::start(engine::Engine& engine,
                                                        const ApiRequest& request,
                                                        const engine::RequestFlow& flow,
                                                        const TextCodec& codec,
                                                        std::string model_name) {
  std::unique_ptr<Generation> g(new Generation(engine, request, codec, std::move(model_name)));
  std::random_device rd;
  const std::vector<int32_t> end_of_turn = codec.end_of_turn_ids();
  for (size_t p = 0; p < request.prompts.size(); ++p) {
    g->prompt_tokens_ += static_cast<int64_t>(request.prompts[p].size());
    for (int32_t k = 0; k < request.n; ++k) {
      const auto index = static_cast<int32_t>(p) * request.n + k;
      engine::GenerationRequest r;
      r.prompt = request.prompts[p];
      r.sampling = request.sampling;
      r.sampling.seed = request.seed_given ? request.sampling.seed + static_cast<uint64_t>(index)
                                           : (static_cast<uint64_t>(rd()) << 32) ^ rd();
      r.sampling.stop_token_ids.insert(r.sampling.stop_token_ids.end(), end_of_turn.begin(),
                                       end_of_turn.end());
      r.flow = flow;
      r.top_logprobs = request.logprobs;
      auto choice = std::make_unique<Choice>(index, codec, request.stop);
      auto stream = engine.submit(std::move(r), g->signal_);
      if (!stream.has_value()) return stream.status();  // ~Generation cancels the others
      choice->stream = *stream;
      g->choices_.push_back(std::move(choice));
    }
  }
  return g;
}

bool Generation::done() const {
  for (const auto& c : choices_) {
    if (!c->done) return false;
  }
  return true;
}

void Generation::cancel() {
  for (const auto& c : choices_) {
    if (!c->done && c->stream) engine_.cancel(c->stream->id());
  }
}

std::string Generation::chunk_json(const Choice& c, const std::string& delta, size_t first_lp,
                                   bool with_finish) const {
  json choice = {{"index", c.index}};
  json lp = nullptr;
  if (logprobs_ >= 0 && first_lp < c.logprobs.size())
    lp = logprobs_json(chat_, c.logprobs, first_lp);
  choice["logprobs"] = lp;
  choice["finish_reason"] = with_finish ? json(c.finish_reason) : json(nullptr);
  if (chat_) {
    json d = json::object();
    if (!c.role_sent) {
      d["role"] = "assistant";
      d["content"] = delta;
    } else if (!with_finish || !delta.empty()) {
      d["content"] = delta;
    }
    choice["delta"] = d;
  } else {
    choice["text"] = delta;
  }
  const json chunk = {{"id", id_},
                      {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
                      {"created", created_},
                      {"model", model_},
                      {"choices", json::array({choice})}};
  return "data: " + dump(chunk) + "\n\n";
}

void Generation::apply(Choice& c, const engine::RequestEvent& e) {
  if (c.done) return;
  std::string delta;
  const size_t first_lp = c.logprobs.size();
  for (size_t i = 0; i < e.tokens.size() && !c.done; ++i) {
    const engine::SampledToken& t = e.tokens[i];
    ++c.completion_tokens;
    if (e.stopped_on_token && i + 1 == e.tokens.size()) break;  // EOS: counted, not shown
    delta += c.text.push(t.token);
    if (logprobs_ >= 0) {
      LogprobEntry entry;
      entry.text = codec_.token_text(t.token);
      entry.logprob = t.logprob;
      for (const auto& [id, l] : t.top) entry.top.emplace_back(codec_.token_text(id), l);
      entry.offset = c.text_offset;
      c.text_offset += static_cast<int64_t>(entry.text.size());
      c.logprobs.push_back(std::move(entry));
    }
    if (c.text.stopped()) {
      c.finish_reason = "stop";
      c.done = true;
      engine_.cancel(c.stream->id());
    }
  }
  if (!c.done && e.finish != engine::FinishReason::kNone) {
    if (e.finish == engine::FinishReason::kError && error_.empty()) error_ = e.error;
    delta += c.text.finish();
    c.finish_reason = reason_text(e.finish);
    c.done = true;
  }
  if (!stream_) return;
  // A chunk per engine event that carried tokens, even when they completed no text (part of a
  // UTF-8 character, a control token): clients time tokens by chunks (TTFT, TPOT).
  if (!delta.empty() || first_lp < c.logprobs.size() || (chat_ && !c.role_sent) ||
      (!e.tokens.empty() && !c.done)) {
    sse_ += chunk_json(c, delta, first_lp, false);
    c.role_sent = true;
  }
  if (c.done) {
    if (c.finish_reason == "error") {
      sse_ += "data: " + error_body(internal_error(e.error)) + "\n\n";
    } else {
      sse_ += chunk_json(c, "", c.logprobs.size(), true);
    }
  }
}

bool Generation::poll(std::chrono::milliseconds timeout) {
  if (done()) return true;
  signal_->wait(&seen_, timeout);
  for (const auto& c : choices_) {
    while (!c->done) {
      auto e = c->stream->try_next();
      if (!e.has_value()) break;
      apply(*c, *e);
    }
  }
  return done();
}

std::string Generation::take_sse() {
  if (stream_ && done() && !finished_sent_) {
    finished_sent_ = true;
    if (include_usage_) {
      int64_t completion = 0;
      for (const auto& c : choices_) completion += c->completion_tokens;
      const json chunk = {{"id", id_},
                          {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
                          {"created", created_},
                          {"model", model_},
                          {"choices", json::array()},
                          {"usage",
                           {{"prompt_tokens", prompt_tokens_},
                            {"completion_tokens", completion},
                            {"total_tokens", prompt_tokens_ + completion}}}};
      sse_ += "data: " + dump(chunk) + "\n\n";
    }
    sse_ += "data: [DONE]\n\n";
  }
  std::string out;
  out.swap(sse_);
  return out;
}

std::string Generation::response_json() const {
  if (!error_.empty()) return error_body(internal_error(error_));
  json choices = json::array();
  int64_t completion = 0;
  for (const auto& c : choices_) {
    completion += c->completion_tokens;
    json lp = nullptr;
    if (logprobs_ >= 0) lp = logprobs_json(chat_, c->logprobs, 0);
    json choice = {{"index", c->index}, {"logprobs", lp}, {"finish_reason", c->finish_reason}};
    if (chat_) {
      choice["message"] = {{"role", "assistant"}, {"content", c->text.text()}};
    } else {
      choice["text"] = c->text.text();
    }
    choices.push_back(choice);
  }
  const json body = {{"id", id_},
                     {"object", chat_ ? "chat.completion" : "text_completion"},
                     {"created", created_},
                     {"model", model_},
                     {"choices", choices},
                     {"usage",
                      {{"prompt_tokens", prompt_tokens_},
                       {"completion_tokens", completion},
                       {"total_tokens", prompt_tokens_ + completion}}}};
  return dump(body);
}

}  // namespace vortex::server
