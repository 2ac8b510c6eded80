// GGUF -> Checkpoint: metadata mapping for llama / qwen2 / qwen3 and parallel dequantization.
#include "vortex/model/gguf_checkpoint.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <numbers>

#include "checkpoint_tasks.h"
#include "vortex/core/logging.h"

namespace vortex {
namespace {

// Reads `<arch>.<suffix>` as a positive int32.
Expected<int32_t> get_dim(const GgufFile& f, const std::string& key) {
  VORTEX_ASSIGN_OR_RETURN(int64_t v, f.get_int(key));
  if (v <= 0 || v > std::numeric_limits<int32_t>::max()) {
    return invalid_argument(f.path() + ": metadata '" + key + "' is " + std::to_string(v) +
                            "; expected a positive 32-bit size");
  }
  return static_cast<int32_t>(v);
}

Expected<std::optional<int32_t>> find_dim(const GgufFile& f, const std::string& key) {
  if (!f.find(key)) return std::optional<int32_t>();
  VORTEX_ASSIGN_OR_RETURN(int32_t v, get_dim(f, key));
  return std::optional<int32_t>(v);
}

// Token id metadata: absent -> -1; present must lie in [0, vocab).
Expected<int32_t> find_token_id(const GgufFile& f, const std::string& key, size_t vocab) {
  VORTEX_ASSIGN_OR_RETURN(auto v, f.find_int(key));
  if (!v) return -1;
  if (*v < 0 || static_cast<uint64_t>(*v) >= vocab) {
    return invalid_argument(f.path() + ": metadata '" + key + "' is " + std::to_string(*v) +
                            ", outside the vocabulary of " + std::to_string(vocab) + " tokens");
  }
  return static_cast<int32_t>(*v);
}

// The per-pair RoPE frequency divisors of Llama-3 scaling (as the GGUF converter writes them in
// `rope_freqs`): 1 for high frequencies, `factor` for low ones, a smooth blend in between.
std::vector<double> llama3_freq_factors(const RopeConfig& r, int32_t head_dim) {
  std::vector<double> out;
  const double low_wavelen = r.original_max_position / static_cast<double>(r.low_freq_factor);
  const double high_wavelen = r.original_max_position / static_cast<double>(r.high_freq_factor);
  for (int32_t i = 0; i < head_dim / 2; ++i) {
    const double freq = std::pow(static_cast<double>(r.theta), -2.0 * i / head_dim);
    const double wavelen = 2.0 * std::numbers::pi / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0);
    } else if (wavelen > low_wavelen) {
      out.push_back(r.factor);
    } else {
      const double smooth = (r.original_max_position / wavelen - r.low_freq_factor) /
                            (r.high_freq_factor - r.low_freq_factor);
      out.push_back(1.0 / ((1.0 - smooth) / r.factor + smooth));
    }
  }
  return out;
}

// Recognises a `rope_freqs` tensor as Llama-3 scaling (low 1, high 4 and the original context
// from metadata or 8192), or explains why not.
Status fit_llama3_rope(const GgufFile& f, const GgufTensorInfo& t, const std::string& arch,
                       ModelConfig* c) {
  if (t.numel != c->head_dim / 2) {
    return invalid_argument(
        f.path() + ": tensor 'rope_freqs.weight' has " + std::to_string(t.numel) +
        " elements, expected head_dim / 2 = " + std::to_string(c->head_dim / 2));
  }
  VORTEX_ASSIGN_OR_RETURN(Tensor fr, f.load_f32(t));
  const float* v = fr.data_as<float>();
  float factor = 1.0f;
  for (int64_t i = 0; i < t.numel; ++i) factor = std::max(factor, v[i]);
  RopeConfig r = c->rope;
  r.scaling = RopeScaling::kLlama3;
  r.factor = factor;
  r.low_freq_factor = 1.0f;
  r.high_freq_factor = 4.0f;
  VORTEX_ASSIGN_OR_RETURN(auto orig, find_dim(f, arch + ".rope.scaling.original_context_length"));
  r.original_max_position = orig.value_or(8192);
  const std::vector<double> want = llama3_freq_factors(r, c->head_dim);
  for (int64_t i = 0; i < t.numel; ++i) {
    if (!(std::fabs(v[i] - want[i]) <= 1e-4 * std::fabs(want[i]))) {
      return unsupported(f.path() +
                         ": tensor 'rope_freqs.weight' does not match Llama-3 RoPE "
                         "scaling (factor " +
                         std::to_string(factor) +
                         ", low 1, high 4); custom RoPE frequency factors are not supported");
    }
  }
  c->rope = r;
  return Status::ok();
}

Status map_rope_scaling(const GgufFile& f, const std::string& arch, ModelConfig* c) {
  VORTEX_ASSIGN_OR_RETURN(auto type, f.find_string(arch + ".rope.scaling.type"));
  VORTEX_ASSIGN_OR_RETURN(auto factor, f.find_float(arch + ".rope.scaling.factor"));
  VORTEX_ASSIGN_OR_RETURN(auto linear, f.find_float(arch + ".rope.scale_linear"));
  const std::string kind = type.value_or(linear ? "linear" : "none");
  if (kind == "linear") {
    c->rope.scaling = RopeScaling::kLinear;
    c->rope.factor = static_cast<float>(factor.value_or(linear.value_or(1.0)));
  } else if (kind != "none") {
    return unsupported(f.path() + ": RoPE scaling '" + kind +
                       "' is not supported (none, linear and Llama-3 are)");
  }
  if (const GgufTensorInfo* t = f.find_tensor("rope_freqs.weight")) {
    if (c->rope.scaling != RopeScaling::kNone) {
      return unsupported(f.path() + ": both '" + kind + "' RoPE scaling and rope_freqs");
    }
    VORTEX_RETURN_IF_ERROR(fit_llama3_rope(f, *t, arch, c));
  }
  return Status::ok();
}

// The GGUF tensor name of a canonical name: biases keep their name, the rest gain ".weight".
std::string gguf_tensor_name(const std::string& canonical) {
  if (canonical.size() > 5 && canonical.compare(canonical.size() - 5, 5, ".bias") == 0) {
    return canonical;
  }
  return canonical + ".weight";
}

}  // namespace

Expected<ModelConfig> gguf_model_config(const GgufFile& f) {
  ModelConfig c;
  VORTEX_ASSIGN_OR_RETURN(std::string arch, f.get_string("general.architecture"));
  if (arch == "llama") {
    c.arch = Arch::kLlama;
    c.rope.style = RopeStyle::kAdjacentPairs;
  } else if (arch == "qwen2") {
    c.arch = Arch::kQwen2;
    c.rope.style = RopeStyle::kHalfSplit;
    c.qkv_bias = true;
  } else if (arch == "qwen3") {
    c.arch = Arch::kQwen3;
    c.rope.style = RopeStyle::kHalfSplit;
    c.qk_norm = true;
  } else {
    return unsupported(f.path() + ": architecture '" + arch +
                       "' is not supported (llama, qwen2 and qwen3 are)");
  }
  const std::string a = arch + ".";
  VORTEX_ASSIGN_OR_RETURN(auto name, f.find_string("general.name"));
  c.name = name.value_or(std::filesystem::path(f.path()).stem().string());
  VORTEX_ASSIGN_OR_RETURN(c.num_layers, get_dim(f, a + "block_count"));
  VORTEX_ASSIGN_OR_RETURN(c.hidden_size, get_dim(f, a + "embedding_length"));
  VORTEX_ASSIGN_OR_RETURN(c.intermediate_size, get_dim(f, a + "feed_forward_length"));
  VORTEX_ASSIGN_OR_RETURN(c.num_q_heads, get_dim(f, a + "attention.head_count"));
  VORTEX_ASSIGN_OR_RETURN(auto kv, find_dim(f, a + "attention.head_count_kv"));
  c.num_kv_heads = kv.value_or(c.num_q_heads);
  VORTEX_ASSIGN_OR_RETURN(auto key_len, find_dim(f, a + "attention.key_length"));
  if (key_len) {
    c.head_dim = *key_len;
  } else if (c.hidden_size % c.num_q_heads == 0) {
    c.head_dim = c.hidden_size / c.num_q_heads;
  } else {
    return invalid_argument(f.path() + ": embedding_length " + std::to_string(c.hidden_size) +
                            " is not a multiple of head_count and attention.key_length is absent");
  }
  VORTEX_ASSIGN_OR_RETURN(auto val_len, find_dim(f, a + "attention.value_length"));
  if (val_len && *val_len != c.head_dim) {
    return unsupported(f.path() + ": attention.value_length " + std::to_string(*val_len) +
                       " differs from key_length " + std::to_string(c.head_dim));
  }
  VORTEX_ASSIGN_OR_RETURN(auto rope_dims, find_dim(f, a + "rope.dimension_count"));
  if (rope_dims && *rope_dims != c.head_dim) {
    return unsupported(f.path() + ": partial RoPE (rope.dimension_count " +
                       std::to_string(*rope_dims) + " < head_dim " + std::to_string(c.head_dim) +
                       ") is not supported");
  }
  VORTEX_ASSIGN_OR_RETURN(double eps, f.get_float(a + "attention.layer_norm_rms_epsilon"));
  c.rms_norm_eps = static_cast<float>(eps);
  VORTEX_ASSIGN_OR_RETURN(auto theta, f.find_float(a + "rope.freq_base"));
  c.rope.theta = static_cast<float>(theta.value_or(10000.0));
  VORTEX_ASSIGN_OR_RETURN(c.max_context, get_dim(f, a + "context_length"));

  // Vocabulary: the token list, else the embedding rows.
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (embd == nullptr)
    return invalid_argument(f.path() + ": tensor 'token_embd.weight' is missing");
  const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
  int64_t vocab = tokens ? static_cast<int64_t>(tokens->array_size())
                         : (embd->dims.size() == 2 ? embd->dims[1] : 0);
  VORTEX_ASSIGN_OR_RETURN(auto meta_vocab, f.find_int(a + "vocab_size"));
  if (meta_vocab && tokens && *meta_vocab != vocab) {
    return invalid_argument(f.path() + ": " + a + "vocab_size " + std::to_string(*meta_vocab) +
                            " differs from the " + std::to_string(vocab) +
                            " tokens of the vocabulary");
  }
  if (vocab <= 0 || vocab > std::numeric_limits<int32_t>::max()) {
    return invalid_argument(f.path() + ": vocabulary size " + std::to_string(vocab) +
                            " is invalid");
  }
  c.vocab_size = static_cast<int32_t>(vocab);
  c.tie_embeddings = f.find_tensor("output.weight") == nullptr;
  VORTEX_RETURN_IF_ERROR(map_rope_scaling(f, arch, &c));

  VORTEX_ASSIGN_OR_RETURN(TokenizerSpec tok, gguf_tokenizer_spec(f));
  c.bos_token_id = tok.bos_id;
  if (tok.eos_id >= 0) c.eos_token_ids.push_back(tok.eos_id);
  for (int32_t id : tok.eot_ids) c.eos_token_ids.push_back(id);
  for (int32_t id : c.eos_token_ids) {
    if (id >= c.vocab_size) {
      return invalid_argument(f.path() + ": end token id " + std::to_string(id) +
                              " is outside the vocabulary");
    }
  }
  Status s = c.validate();
  if (!s.is_ok()) return s.with_context(f.path());
  return c;
}

Expected<TokenizerSpec> gguf_tokenizer_spec(const GgufFile& f) {
  TokenizerSpec t;
  VORTEX_ASSIGN_OR_RETURN(auto model, f.find_string("tokenizer.ggml.model"));
  if (model) t.model = *model;
  VORTEX_ASSIGN_OR_RETURN(auto pre, f.find_string("tokenizer.ggml.pre"));
  t.pre = pre.value_or("default");
  if (const GgufValue* v = f.find("tokenizer.ggml.tokens")) {
    if (!v->is_array() || v->elem_type != GgufValueType::kString) {
      return invalid_argument(f.path() + ": tokenizer.ggml.tokens is " + v->describe() +
                              ", expected an array of strings");
    }
    t.tokens = v->strings;
  }
  if (const GgufValue* v = f.find("tokenizer.ggml.merges")) {
    if (!v->is_array() || v->elem_type != GgufValueType::kString) {
      return invalid_argument(f.path() + ": tokenizer.ggml.merges is " + v->describe() +
                              ", expected an array of strings");
    }
    t.merges = v->strings;
  }
  if (const GgufValue* v = f.find("tokenizer.ggml.token_type")) {
    if (!v->is_array() || v->ints.size() != t.tokens.size() ||
        (v->elem_type != GgufValueType::kI32 && v->elem_type != GgufValueType::kU32 &&
         v->elem_type != GgufValueType::kI8 && v->elem_type != GgufValueType::kU8)) {
      return invalid_argument(f.path() + ": tokenizer.ggml.token_type is " + v->describe() +
                              ", expected an integer array with one entry per token (" +
                              std::to_string(t.tokens.size()) + ")");
    }
    t.token_types.reserve(v->ints.size());
    for (int64_t x : v->ints) t.token_types.push_back(static_cast<int32_t>(x));
  }
  const size_t n = t.tokens.size();
  VORTEX_ASSIGN_OR_RETURN(t.bos_id, find_token_id(f, "tokenizer.ggml.bos_token_id", n));
  VORTEX_ASSIGN_OR_RETURN(t.eos_id, find_token_id(f, "tokenizer.ggml.eos_token_id", n));
  VORTEX_ASSIGN_OR_RETURN(t.unk_id, find_token_id(f, "tokenizer.ggml.unknown_token_id", n));
  VORTEX_ASSIGN_OR_RETURN(t.pad_id, find_token_id(f, "tokenizer.ggml.padding_token_id", n));
  auto add_eot = [&](int32_t id) {
    if (id < 0 || id == t.eos_id) return;
    for (int32_t e : t.eot_ids) {
      if (e == id) return;
    }
    t.eot_ids.push_back(id);
  };
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    VORTEX_ASSIGN_OR_RETURN(int32_t id, find_token_id(f, key, n));
    add_eot(id);
  }
  // Well-known end-of-generation control tokens (what llama.cpp also treats as end of turn).
  static const char* const kEndTokens[] = {"<|im_end|>", "<|eot_id|>",     "<|eom_id|>",
                                           "<|end|>",    "<end_of_turn>",  "<|endoftext|>",
                                           "<EOT>",      "<|end_of_text|>"};
  for (size_t i = 0; i < n; ++i) {
    const bool special = t.token_types.empty() || t.token_types[i] == 3 || t.token_types[i] == 4;
    if (!special) continue;
    for (const char* e : kEndTokens) {
      if (t.tokens[i] == e) add_eot(static_cast<int32_t>(i));
    }
  }
  VORTEX_ASSIGN_OR_RETURN(auto add_bos, f.find_bool("tokenizer.ggml.add_bos_token"));
  t.add_bos = add_bos.value_or(t.model == "llama");
  VORTEX_ASSIGN_OR_RETURN(auto tmpl, f.find_string("tokenizer.chat_template"));
  t.chat_template = tmpl.value_or("");
  return t;
}

Expected<Checkpoint> load_gguf_checkpoint(const std::string& path) {
  VORTEX_ASSIGN_OR_RETURN(GgufFile f, GgufFile::open(path));
  Checkpoint ck;
  ck.source = path;
  VORTEX_ASSIGN_OR_RETURN(ck.config, gguf_model_config(f));
  VORTEX_ASSIGN_OR_RETURN(ck.tokenizer, gguf_tokenizer_spec(f));

  // A block needs at least 9 tensors: a hostile block_count must not size the tables below.
  if (uint64_t{9} * static_cast<uint64_t>(ck.config.num_layers) > f.tensors().size()) {
    return invalid_argument(path + ": block_count " + std::to_string(ck.config.num_layers) +
                            " needs more tensors than the file's " +
                            std::to_string(f.tensors().size()));
  }
  // Check every tensor's presence, shape and type before allocating anything.
  struct Job {
    const GgufTensorInfo* info;
    Tensor dst;
    int64_t row_begin, row_end;
  };
  std::vector<Job> jobs;
  int64_t total = 0;
  const std::vector<ExpectedWeight> want = expected_weights(ck.config);
  for (const ExpectedWeight& e : want) {
    const std::string gname = gguf_tensor_name(e.name);
    const GgufTensorInfo* info = f.find_tensor(gname);
    if (info == nullptr) {
      return invalid_argument(path + ": tensor '" + gname + "' is missing (needed by the " +
                              "model config)");
    }
    if (!(info->shape() == e.shape)) {
      return invalid_argument(path + ": tensor '" + gname + "' has shape " +
                              info->shape().to_string() + ", expected " + e.shape.to_string());
    }
    VORTEX_RETURN_IF_ERROR(f.tensor_bytes(*info).status());
  }
  for (const ExpectedWeight& e : want) {
    const GgufTensorInfo* info = f.find_tensor(gguf_tensor_name(e.name));
    VORTEX_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(e.shape, DType::kF32));
    const int64_t row = info->dims[0];
    const int64_t rows = row == 0 ? 0 : info->numel / row;
    for (auto [b, end] : detail::split_rows(rows, row)) jobs.push_back({info, t, b, end});
    total += t.numel();
    ck.weights.put(e.name, t);
  }
  VORTEX_RETURN_IF_ERROR(detail::run_parallel(jobs.size(), total, [&](size_t i) {
    const Job& j = jobs[i];
    return f.dequantize_rows(*j.info, j.row_begin, j.row_end,
                             j.dst.data_as<float>() + j.row_begin * j.info->dims[0]);
  }));
  for (const GgufTensorInfo& t : f.tensors()) {
    std::string canon = t.name;
    if (canon.size() > 7 && canon.compare(canon.size() - 7, 7, ".weight") == 0) {
      canon.resize(canon.size() - 7);
    }
    if (!ck.weights.contains(canon) && t.name != "rope_freqs.weight") {
      VORTEX_LOG_DEBUG("{}: ignoring tensor '{}' the model does not use", path, t.name);
    }
  }
  return ck;
}

}  // namespace vortex
