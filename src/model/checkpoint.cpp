// load_checkpoint: resolves aliases and dispatches to the GGUF, Hugging Face or synthetic loader;
// the expected-weights table shared by every loader; the loaders' parallel conversion loop.
#include "vortex/model/checkpoint.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "checkpoint_tasks.h"
#include "vortex/model/gguf_checkpoint.h"
#include "vortex/model/hf_checkpoint.h"
#include "vortex/model/synthetic.h"

namespace vortex {

namespace fs = std::filesystem;

namespace detail {

Status run_parallel(size_t n, int64_t total_elements, const std::function<Status(size_t)>& fn) {
  std::vector<Status> results(n);
  const size_t hw = std::max<size_t>(1, std::thread::hardware_concurrency());
  const size_t workers =
      total_elements < (int64_t{1} << 22) ? 1 : std::min<size_t>({hw, size_t{8}, n});
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) results[i] = fn(i);
  };
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
  for (Status& s : results) {
    if (!s.is_ok()) return s;
  }
  return Status::ok();
}

std::vector<std::pair<int64_t, int64_t>> split_rows(int64_t rows, int64_t row_elems,
                                                    int64_t target_elems) {
  std::vector<std::pair<int64_t, int64_t>> out;
  const int64_t per = std::max<int64_t>(1, target_elems / std::max<int64_t>(1, row_elems));
  for (int64_t r = 0; r < rows; r += per) out.emplace_back(r, std::min(rows, r + per));
  if (out.empty()) out.emplace_back(0, 0);
  return out;
}

}  // namespace detail

std::string default_model_dir() {
  if (const char* d = std::getenv("VORTEX_MODEL_DIR"); d != nullptr && *d != '\0') return d;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/vortex/models";
}

Expected<std::string> resolve_model_path(const std::string& path_or_alias) {
  if (path_or_alias == "smollm2-135m") {
    const std::string path = default_model_dir() + "/" + kSmolLM2FileName;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      return not_found("model 'smollm2-135m' is not downloaded (expected " + path +
                       "); run scripts/fetch_model.sh, or set VORTEX_MODEL_DIR to the directory "
                       "that holds " +
                       kSmolLM2FileName);
    }
    return path;
  }
  return path_or_alias;
}

std::vector<ExpectedWeight> expected_weights(const ModelConfig& c) {
  const int64_t h = c.hidden_size, v = c.vocab_size, f = c.intermediate_size, d = c.head_dim;
  const int64_t q = int64_t{c.num_q_heads} * d, kv = int64_t{c.num_kv_heads} * d;
  std::vector<ExpectedWeight> w;
  w.push_back({"token_embd", Shape{v, h}});
  w.push_back({"output_norm", Shape{h}});
  if (!c.tie_embeddings) w.push_back({"output", Shape{v, h}});
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    w.push_back({p + "attn_norm", Shape{h}});
    w.push_back({p + "attn_q", Shape{q, h}});
    w.push_back({p + "attn_k", Shape{kv, h}});
    w.push_back({p + "attn_v", Shape{kv, h}});
    if (c.qkv_bias) {
      w.push_back({p + "attn_q.bias", Shape{q}});
      w.push_back({p + "attn_k.bias", Shape{kv}});
      w.push_back({p + "attn_v.bias", Shape{kv}});
    }
    if (c.qk_norm) {
      w.push_back({p + "attn_q_norm", Shape{d}});
      w.push_back({p + "attn_k_norm", Shape{d}});
    }
    w.push_back({p + "attn_output", Shape{h, q}});
    w.push_back({p + "ffn_norm", Shape{h}});
    w.push_back({p + "ffn_gate", Shape{f, h}});
    w.push_back({p + "ffn_up", Shape{f, h}});
    w.push_back({p + "ffn_down", Shape{h, f}});
  }
  return w;
}

Status check_weights(const ModelConfig& config, const WeightMap& weights,
                     const std::string& source) {
  for (const ExpectedWeight& e : expected_weights(config)) {
    auto it = weights.all().find(e.name);
    if (it == weights.all().end()) {
      return invalid_argument(source + ": tensor '" + e.name + "' is missing");
    }
    if (it->second.dtype() != DType::kF32 || !(it->second.shape() == e.shape)) {
      return invalid_argument(
          source + ": tensor '" + e.name + "' is " + std::string(dtype_name(it->second.dtype())) +
          " " + it->second.shape().to_string() + ", expected f32 " + e.shape.to_string());
    }
  }
  return Status::ok();
}

namespace {

bool has_gguf_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string(magic, 4) == "GGUF";
}

Expected<Checkpoint> load_synthetic(const std::string& spec) {
  VORTEX_ASSIGN_OR_RETURN(SyntheticSpec parsed, parse_synthetic_spec("synthetic:" + spec));
  const std::string& preset = parsed.preset;
  const uint64_t seed = parsed.seed;
  VORTEX_ASSIGN_OR_RETURN(Checkpoint ck, make_synthetic_checkpoint(preset, seed));
  if (ck.source.empty()) ck.source = "synthetic:" + spec;
  VORTEX_RETURN_IF_ERROR(ck.config.validate());
  VORTEX_RETURN_IF_ERROR(check_weights(ck.config, ck.weights, ck.source));
  return ck;
}

Expected<Checkpoint> load_path(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    return not_found("model '" + path +
                     "' does not exist; pass a .gguf file, a Hugging Face "
                     "directory, 'smollm2-135m' or 'synthetic:<preset>'");
  }
  if (fs::is_directory(st)) return load_hf_checkpoint(path);
  if (has_gguf_magic(path)) return load_gguf_checkpoint(path);
  if (fs::path(path).extension() == ".safetensors") {
    return load_hf_checkpoint(fs::path(path).parent_path().string());
  }
  return invalid_argument("'" + path +
                          "' is neither a GGUF file (no 'GGUF' magic) nor a "
                          "Hugging Face directory with config.json and *.safetensors");
}

}  // namespace

Expected<SyntheticSpec> parse_synthetic_spec(std::string_view model) {
  constexpr std::string_view kSynthetic = "synthetic:";
  if (model.substr(0, kSynthetic.size()) != kSynthetic) {
    return invalid_argument("'" + std::string(model) + "' is not a synthetic:<preset> model");
  }
  const std::string spec(model.substr(kSynthetic.size()));
  SyntheticSpec out;
  out.preset = spec;
  if (auto at = spec.find('@'); at != std::string::npos) {
    out.preset = spec.substr(0, at);
    const std::string s = spec.substr(at + 1);
    char* end = nullptr;
    errno = 0;
    out.seed = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || end == nullptr || *end != '\0' || errno != 0 || s[0] == '-') {
      return invalid_argument("synthetic model '" + spec +
                              "': the seed after '@' must be a "
                              "non-negative integer (e.g. synthetic:qwen3-1.7b@7)");
    }
  }
  if (out.preset.empty()) {
    return invalid_argument("synthetic model needs a preset name, e.g. synthetic:qwen3-1.7b");
  }
  return out;
}

Expected<Checkpoint> load_checkpoint(const std::string& path_or_alias) {
  constexpr std::string_view kSynthetic = "synthetic:";
  if (path_or_alias.rfind(kSynthetic, 0) == 0) {
    return load_synthetic(path_or_alias.substr(kSynthetic.size()));
  }
  if (path_or_alias.empty()) {
    return invalid_argument(
        "no model given; pass a .gguf file, a Hugging Face directory, "
        "'smollm2-135m' or 'synthetic:<preset>'");
  }
  VORTEX_ASSIGN_OR_RETURN(std::string path, resolve_model_path(path_or_alias));
  Expected<Checkpoint> ck = load_path(path);
  if (!ck) return ck.status();
  VORTEX_RETURN_IF_ERROR(check_weights(ck->config, ck->weights, path));
  if (path_or_alias != path) ck->config.name = path_or_alias;  // an alias names the model
  return ck;
}

}  // namespace vortex
