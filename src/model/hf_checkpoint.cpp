// HF directory loading and writing.
#include "vortex/model/hf_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "checkpoint_tasks.h"
#include "vortex/core/logging.h"
#include "vortex/model/hf_config.h"
#include "vortex/model/hf_tensor_names.h"
#include "vortex/model/safetensors_file.h"
#include "vortex/model/safetensors_writer.h"

namespace vortex {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr uintmax_t kMaxJsonFileBytes = 64u << 20;

Expected<std::string> read_text_file(const fs::path& p) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(p, ec);
  if (ec) return not_found("cannot read '" + p.string() + "': " + ec.message());
  if (size > kMaxJsonFileBytes) {
    return invalid_argument("'" + p.string() + "' is " + std::to_string(size) +
                            " bytes; JSON files above 64 MiB are not read");
  }
  std::ifstream in(p, std::ios::binary);
  std::string s(static_cast<size_t>(size), '\0');
  if (!in.read(s.data(), static_cast<std::streamsize>(size))) {
    return invalid_argument("cannot read '" + p.string() + "'");
  }
  return s;
}

bool exists_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// The safetensors files of a directory: the index's shards, model.safetensors, or every
// *.safetensors (sorted). Also returns the index's weight map (empty without an index).
Status find_shards(const fs::path& dir, std::vector<fs::path>* shards,
                   std::map<std::string, std::string>* index_map) {
  const fs::path index = dir / "model.safetensors.index.json";
  if (exists_file(index)) {
    VORTEX_ASSIGN_OR_RETURN(std::string text, read_text_file(index));
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    auto wm = j.is_object() ? j.find("weight_map") : j.end();
    if (j.is_discarded() || !j.is_object() || wm == j.end() || !wm->is_object()) {
      return invalid_argument(index.string() + ": expected a JSON object with a 'weight_map'");
    }
    std::set<std::string> files;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string()) {
        return invalid_argument(index.string() + ": weight_map entry '" + it.key() +
                                "' is not a file name");
      }
      const std::string f = it->get<std::string>();
      if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos ||
          f == "." || f == ".." || fs::path(f).extension() != ".safetensors") {
        return invalid_argument(index.string() + ": weight_map names shard '" + f +
                                "'; shards must be *.safetensors files in the same directory");
      }
      files.insert(f);
      (*index_map)[it.key()] = f;
    }
    for (const std::string& f : files) shards->push_back(dir / f);
    return Status::ok();
  }
  if (exists_file(dir / "model.safetensors")) {
    shards->push_back(dir / "model.safetensors");
    return Status::ok();
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file() && e.path().extension() == ".safetensors") shards->push_back(e.path());
  }
  std::sort(shards->begin(), shards->end());
  if (shards->empty()) {
    return not_found(dir.string() +
                     " has no *.safetensors weights (and no "
                     "model.safetensors.index.json)");
  }
  return Status::ok();
}

// chat_template and add_bos_token from tokenizer_config.json (absent file: nothing to do).
Status read_tokenizer_config(const fs::path& dir, TokenizerSpec* tok) {
  const fs::path p = dir / "tokenizer_config.json";
  if (!exists_file(p)) return Status::ok();
  VORTEX_ASSIGN_OR_RETURN(std::string text, read_text_file(p));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return invalid_argument(p.string() + ": not a valid JSON object");
  }
  if (auto t = j.find("chat_template"); t != j.end()) {
    if (t->is_string()) {
      tok->chat_template = t->get<std::string>();
    } else if (t->is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const json& e : *t) {
        if (e.is_object() && e.value("name", json()).is_string() &&
            e.value("template", json()).is_string() && e["name"] == "default") {
          tok->chat_template = e["template"].get<std::string>();
        }
      }
    }
  }
  if (auto b = j.find("add_bos_token"); b != j.end() && b->is_boolean()) {
    tok->add_bos = b->get<bool>();
  }
  return Status::ok();
}

struct Source {
  const SafetensorsFile* file;
  const SafetensorsTensorInfo* info;
};

}  // namespace

Expected<Checkpoint> load_hf_checkpoint(const std::string& dir_str) {
  const fs::path dir(dir_str);
  const fs::path config_path = dir / "config.json";
  if (!exists_file(config_path)) {
    return not_found(dir_str + " is not a Hugging Face model directory: config.json is missing");
  }
  Checkpoint ck;
  ck.source = dir_str;
  VORTEX_ASSIGN_OR_RETURN(std::string config_text, read_text_file(config_path));
  VORTEX_ASSIGN_OR_RETURN(ck.config, parse_hf_config(config_text, config_path.string()));
  if (const fs::path g = dir / "generation_config.json"; exists_file(g)) {
    VORTEX_ASSIGN_OR_RETURN(std::string text, read_text_file(g));
    VORTEX_RETURN_IF_ERROR(apply_hf_generation_config(text, g.string(), &ck.config));
  }
  if (ck.config.name.empty()) ck.config.name = fs::absolute(dir).filename().string();
  VORTEX_RETURN_IF_ERROR(ck.config.validate().with_context(config_path.string()));

  ck.tokenizer.bos_id = ck.config.bos_token_id;
  if (!ck.config.eos_token_ids.empty()) ck.tokenizer.eos_id = ck.config.eos_token_ids[0];
  for (size_t i = 1; i < ck.config.eos_token_ids.size(); ++i) {
    ck.tokenizer.eot_ids.push_back(ck.config.eos_token_ids[i]);
  }
  VORTEX_RETURN_IF_ERROR(read_tokenizer_config(dir, &ck.tokenizer));
  if (exists_file(dir / "tokenizer.json"))
    ck.tokenizer_json_path = (dir / "tokenizer.json").string();

  std::vector<fs::path> shard_paths;
  std::map<std::string, std::string> index_map;
  VORTEX_RETURN_IF_ERROR(find_shards(dir, &shard_paths, &index_map));
  std::vector<SafetensorsFile> shards;
  for (const fs::path& p : shard_paths) {
    VORTEX_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(p.string()));
    shards.push_back(std::move(f));
  }
  std::map<std::string, Source> by_canonical;
  for (const SafetensorsFile& f : shards) {
    for (const SafetensorsTensorInfo& t : f.tensors()) {
      std::optional<std::string> canon = hf_to_canonical(t.name);
      if (!canon) {
        VORTEX_LOG_DEBUG("{}: ignoring tensor '{}'", f.path(), t.name);
        continue;
      }
      if (*canon == "output" && ck.config.tie_embeddings) continue;
      if (!by_canonical.emplace(*canon, Source{&f, &t}).second) {
        return invalid_argument(f.path() + ": tensor '" + t.name + "' appears in two shards");
      }
    }
  }
  for (const auto& [name, file] : index_map) {
    const fs::path p = dir / file;
    auto it = std::find_if(shards.begin(), shards.end(),
                           [&](const SafetensorsFile& s) { return s.path() == p.string(); });
    if (it == shards.end() || it->find(name) == nullptr) {
      return invalid_argument(p.string() + ": tensor '" + name +
                              "' listed in "
                              "model.safetensors.index.json is missing from its shard");
    }
  }

  // A layer needs at least 9 tensors: a hostile num_hidden_layers must not size the tables below.
  if (uint64_t{9} * static_cast<uint64_t>(ck.config.num_layers) > by_canonical.size()) {
    return invalid_argument(
        dir_str + ": num_hidden_layers " + std::to_string(ck.config.num_layers) +
        " needs more tensors than the checkpoint's " + std::to_string(by_canonical.size()));
  }
  // Check presence, shape and dtype of everything before allocating.
  const std::vector<ExpectedWeight> want = expected_weights(ck.config);
  for (const ExpectedWeight& e : want) {
    auto it = by_canonical.find(e.name);
    if (it == by_canonical.end()) {
      return invalid_argument(dir_str + ": tensor '" + canonical_to_hf(e.name).value_or(e.name) +
                              "' is missing" +
                              (e.name == "output" ? " (and tie_word_embeddings is false)" : ""));
    }
    const SafetensorsTensorInfo& t = *it->second.info;
    if (!(t.to_shape() == e.shape)) {
      return invalid_argument(it->second.file->path() + ": tensor '" + t.name + "' has shape " +
                              t.to_shape().to_string() + ", expected " + e.shape.to_string());
    }
    if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16") {
      return unsupported(it->second.file->path() + ": tensor '" + t.name + "' has dtype " +
                         t.dtype + "; weights must be F32, F16 or BF16");
    }
  }
  struct Job {
    Source src;
    Tensor dst;
    int64_t begin, end;
  };
  std::vector<Job> jobs;
  int64_t total = 0;
  for (const ExpectedWeight& e : want) {
    const Source& s = by_canonical.at(e.name);
    VORTEX_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(e.shape, DType::kF32));
    for (auto [b, end] : detail::split_rows(s.info->numel, 1)) jobs.push_back({s, t, b, end});
    total += t.numel();
    ck.weights.put(e.name, t);
  }
  VORTEX_RETURN_IF_ERROR(detail::run_parallel(jobs.size(), total, [&](size_t i) {
    const Job& j = jobs[i];
    return j.src.file->read_f32(*j.src.info, j.begin, j.end, j.dst.data_as<float>() + j.begin);
  }));
  return ck;
}

Expected<Tensor> adjacent_to_half_split_rows(const Tensor& w, int32_t heads, int32_t head_dim) {
  if (w.shape().rank() < 1 || w.dim(0) != int64_t{heads} * head_dim || head_dim % 2 != 0) {
    return invalid_argument("cannot permute RoPE rows of a " + w.shape().to_string() +
                            " tensor for " + std::to_string(heads) + " heads of " +
                            std::to_string(head_dim));
  }
  VORTEX_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(w.shape(), DType::kF32));
  const int64_t row = w.dim(0) == 0 ? 0 : w.numel() / w.dim(0);
  const int64_t half = head_dim / 2;
  const float* src = w.data_as<const float>();
  float* dst = out.data_as<float>();
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t s = 0; s < 2; ++s) {
        const int64_t from = h * head_dim + 2 * i + s;   // adjacent pairs
        const int64_t to = h * head_dim + s * half + i;  // half split
        std::memcpy(dst + to * row, src + from * row, static_cast<size_t>(row) * sizeof(float));
      }
    }
  }
  return out;
}

Status save_safetensors(const std::string& dir_str, const WeightMap& weights,
                        const ModelConfig& config, const HfSaveOptions& options) {
  VORTEX_RETURN_IF_ERROR(config.validate());
  VORTEX_RETURN_IF_ERROR(check_weights(config, weights, "save_safetensors"));
  if (options.num_shards < 1) return invalid_argument("save_safetensors: num_shards must be >= 1");
  const fs::path dir(dir_str);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return invalid_argument("cannot create directory '" + dir_str + "': " + ec.message());

  ModelConfig hf = config;
  hf.rope.style = RopeStyle::kHalfSplit;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const ExpectedWeight& e : expected_weights(config)) {
    Tensor t = weights.get(e.name).value();
    if (config.rope.style == RopeStyle::kAdjacentPairs) {
      const bool is_q = e.name.ends_with(".attn_q") || e.name.ends_with(".attn_q.bias");
      const bool is_k = e.name.ends_with(".attn_k") || e.name.ends_with(".attn_k.bias");
      if (is_q || is_k) {
        VORTEX_ASSIGN_OR_RETURN(
            t, adjacent_to_half_split_rows(t, is_q ? config.num_q_heads : config.num_kv_heads,
                                           config.head_dim));
      }
    }
    tensors.emplace_back(canonical_to_hf(e.name).value(), std::move(t));
  }
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  if (options.num_shards == 1) {
    VORTEX_RETURN_IF_ERROR(
        write_safetensors((dir / "model.safetensors").string(), tensors, options.dtype, meta));
  } else {
    const size_t n = static_cast<size_t>(options.num_shards);
    json index;
    uint64_t total = 0;
    for (size_t s = 0; s < n; ++s) {
      char name[64];
      std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", s + 1, n);
      const size_t b = tensors.size() * s / n, e = tensors.size() * (s + 1) / n;
      std::vector<std::pair<std::string, Tensor>> part(tensors.begin() + b, tensors.begin() + e);
      for (const auto& [hf_name, t] : part) {
        index["weight_map"][hf_name] = name;
        total += static_cast<uint64_t>(t.numel()) * dtype_size(options.dtype);
      }
      VORTEX_RETURN_IF_ERROR(write_safetensors((dir / name).string(), part, options.dtype, meta));
    }
    index["metadata"]["total_size"] = total;
    std::ofstream out(dir / "model.safetensors.index.json");
    out << index.dump(2) << "\n";
    if (!out.flush()) return invalid_argument("cannot write the safetensors index in " + dir_str);
  }
  VORTEX_ASSIGN_OR_RETURN(std::string cfg, hf_config_json(hf));
  std::ofstream c(dir / "config.json");
  c << cfg;
  std::ofstream g(dir / "generation_config.json");
  g << hf_generation_config_json(hf);
  if (!c.flush() || !g.flush()) return invalid_argument("cannot write config files in " + dir_str);
  return Status::ok();
}

}  // namespace vortex
