// tokenizer_spec_from_json: reads a Hugging Face tokenizer.json (plus tokenizer_config.json and
// chat_template.jinja beside it) into the loader-neutral TokenizerSpec.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vortex/core/logging.h"
#include "vortex/model/pretokenizer.h"
#include "vortex/model/tokenizer.h"

namespace vortex {
namespace {

using nlohmann::json;

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

Expected<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open '" + path + "'; check the path and its permissions");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Regex source matching `literal` exactly (HF Split with a String pattern).
std::string escape_literal(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

struct PreTokenizerInfo {
  std::vector<std::string> patterns;
  bool byte_level = false;
  bool add_prefix_space = false;
};

Status parse_pre_tokenizer(const json& node, PreTokenizerInfo* info) {
  if (node.is_null()) return Status::ok();
  const std::string type = node.value("type", "");
  if (type == "Sequence") {
    for (const json& child : node.at("pretokenizers")) {
      VORTEX_RETURN_IF_ERROR(parse_pre_tokenizer(child, info));
    }
    return Status::ok();
  }
  if (type == "ByteLevel") {
    info->byte_level = true;
    info->add_prefix_space = info->add_prefix_space || node.value("add_prefix_space", false);
    if (node.value("use_regex", true)) info->patterns.emplace_back(kGpt2Pattern);
    return Status::ok();
  }
  if (type == "Digits") {
    info->patterns.emplace_back(node.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
    return Status::ok();
  }
  if (type == "Split") {
    const json& pattern = node.at("pattern");
    const std::string behavior = node.value("behavior", "Isolated");
    if (behavior != "Isolated" || node.value("invert", false)) {
      return unsupported("pre_tokenizer Split with behavior '" + behavior +
                         "' / invert is not supported (only Isolated splits are)");
    }
    if (pattern.contains("Regex")) {
      info->patterns.push_back(pattern.at("Regex").get<std::string>());
    } else {
      info->patterns.push_back(escape_literal(pattern.at("String").get<std::string>()));
    }
    return Status::ok();
  }
  return unsupported("pre_tokenizer '" + type +
                     "' is not supported (supported: ByteLevel, Split, Digits, Sequence)");
}

// Finds BOS from a TemplateProcessing post-processor whose single-sequence template starts with a
// special token.
void parse_post_processor(const json& node, const std::vector<std::string>& tokens,
                          TokenizerSpec* spec) {
  if (node.is_null()) return;
  const std::string type = node.value("type", "");
  if (type == "Sequence") {
    for (const json& child : node.at("processors")) parse_post_processor(child, tokens, spec);
    return;
  }
  if (type == "ByteLevel") return;  // offsets only
  if (type != "TemplateProcessing") {
    VORTEX_LOG_WARN("tokenizer.json post_processor '{}' is ignored", type);
    return;
  }
  const json& single = node.at("single");
  if (single.empty() || !single.front().contains("SpecialToken")) return;
  const std::string name = single.front().at("SpecialToken").at("id").get<std::string>();
  int32_t id = -1;
  if (node.contains("special_tokens") && node.at("special_tokens").contains(name)) {
    const json& ids = node.at("special_tokens").at(name).at("ids");
    if (!ids.empty()) id = ids.front().get<int32_t>();
  }
  if (id < 0) {
    auto it = std::find(tokens.begin(), tokens.end(), name);
    if (it != tokens.end()) id = static_cast<int32_t>(it - tokens.begin());
  }
  if (id >= 0) {
    spec->bos_id = id;
    spec->add_bos = true;
  }
}

int32_t find_token(const std::vector<std::string>& tokens, const json& value) {
  std::string text;
  if (value.is_string()) {
    text = value.get<std::string>();
  } else if (value.is_object() && value.contains("content")) {
    text = value.at("content").get<std::string>();
  } else {
    return -1;
  }
  auto it = std::find(tokens.begin(), tokens.end(), text);
  return it == tokens.end() ? -1 : static_cast<int32_t>(it - tokens.begin());
}

// tokenizer_config.json: special token names, add_bos_token and the chat template.
Status read_tokenizer_config(const std::filesystem::path& dir, TokenizerSpec* spec) {
  const std::filesystem::path config_path = dir / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    VORTEX_ASSIGN_OR_RETURN(std::string text, read_text(config_path.string()));
    const json config = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
      return invalid_argument("'" + config_path.string() + "' is not a JSON object");
    }
    const auto set_id = [&](const char* key, int32_t* id) {
      if (!config.contains(key)) return;
      const int32_t found = find_token(spec->tokens, config.at(key));
      if (found >= 0) *id = found;
    };
    if (spec->bos_id < 0) set_id("bos_token", &spec->bos_id);
    set_id("eos_token", &spec->eos_id);
    set_id("pad_token", &spec->pad_id);
    set_id("unk_token", &spec->unk_id);
    if (config.value("add_bos_token", false) && spec->bos_id >= 0) spec->add_bos = true;
    if (config.contains("chat_template")) {
      const json& t = config.at("chat_template");
      if (t.is_string()) {
        spec->chat_template = t.get<std::string>();
      } else if (t.is_array()) {
        for (const json& named : t) {
          if (spec->chat_template.empty() || named.value("name", "") == "default") {
            spec->chat_template = named.value("template", "");
          }
        }
      }
    }
  }
  const std::filesystem::path jinja_path = dir / "chat_template.jinja";
  if (spec->chat_template.empty() && std::filesystem::exists(jinja_path)) {
    VORTEX_ASSIGN_OR_RETURN(spec->chat_template, read_text(jinja_path.string()));
  }
  return Status::ok();
}

Expected<TokenizerSpec> parse_tokenizer_json(const json& root, const std::string& path) {
  TokenizerSpec spec;
  const json& model = root.at("model");
  const std::string type = model.value("type", model.contains("merges") ? "BPE" : "");
  if (type != "BPE") {
    return unsupported("'" + path + "': tokenizer model '" + type +
                       "' is not supported; only byte-level BPE is");
  }
  if (model.value("byte_fallback", false)) {
    return unsupported("'" + path +
                       "': BPE with byte_fallback (SentencePiece-style) is not supported; only "
                       "byte-level BPE is");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && model.at(key).is_string() &&
        !model.at(key).get<std::string>().empty()) {
      return unsupported("'" + path + "': BPE " + key + " is not supported");
    }
  }
  spec.ignore_merges = model.value("ignore_merges", false);

  // Vocabulary: the model's vocab plus added tokens, which may extend it.
  const json& vocab = model.at("vocab");
  int64_t size = 0;
  for (const auto& [text, id] : vocab.items())
    size = std::max<int64_t>(size, id.get<int64_t>() + 1);
  const json added = root.value("added_tokens", json::array());
  for (const json& t : added) size = std::max<int64_t>(size, t.at("id").get<int64_t>() + 1);
  if (size <= 0 || size > (int64_t{1} << 24)) {
    return invalid_argument("'" + path + "': vocabulary size " + std::to_string(size) +
                            " is out of range");
  }
  spec.tokens.assign(size, "");
  spec.token_types.assign(size, 5);  // unused until filled
  for (const auto& [text, id] : vocab.items()) {
    const int64_t i = id.get<int64_t>();
    if (i < 0) return invalid_argument("'" + path + "': token '" + text + "' has a negative id");
    spec.tokens[i] = text;
    spec.token_types[i] = 1;
  }
  for (const json& t : added) {
    const int64_t i = t.at("id").get<int64_t>();
    if (i < 0) return invalid_argument("'" + path + "': an added token has a negative id");
    spec.tokens[i] = t.at("content").get<std::string>();
    spec.token_types[i] = t.value("special", false) ? 3 : 4;
  }

  for (const json& m : model.at("merges")) {
    if (m.is_string()) {
      spec.merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2) {
      spec.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      return invalid_argument("'" + path + "': merge " + m.dump() +
                              " is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }

  if (root.contains("normalizer") && !root.at("normalizer").is_null()) {
    const json& norm = root.at("normalizer");
    const std::string norm_type = norm.value("type", "");
    const bool empty_sequence =
        norm_type == "Sequence" && norm.value("normalizers", json::array()).empty();
    if (norm_type == "NFC") {
      VORTEX_LOG_INFO("'{}': NFC normalizer not applied; input is taken as NFC already", path);
    } else if (!empty_sequence) {
      return unsupported("'" + path + "': normalizer '" + norm_type + "' is not supported");
    }
  }

  PreTokenizerInfo pre;
  VORTEX_RETURN_IF_ERROR(
      parse_pre_tokenizer(root.value("pre_tokenizer", json()), &pre).with_context(path));
  if (!pre.byte_level) {
    return unsupported("'" + path +
                       "': the pre_tokenizer has no ByteLevel step, so this is not a byte-level "
                       "BPE vocabulary; only byte-level BPE is supported");
  }
  if (pre.patterns.empty()) {
    return unsupported("'" + path +
                       "': a ByteLevel pre-tokenizer without any split regex is not "
                       "supported");
  }
  spec.pre_patterns = pre.patterns;
  spec.add_space_prefix = pre.add_prefix_space;
  spec.pre = "custom";
  for (const char* name : {"gpt2", "smollm", "llama3", "qwen2"}) {
    if (pretokenizer_patterns(name) == pre.patterns) spec.pre = name;
  }

  parse_post_processor(root.value("post_processor", json()), spec.tokens, &spec);
  return spec;
}

}  // namespace

Expected<TokenizerSpec> tokenizer_spec_from_json(const std::string& path) {
  VORTEX_ASSIGN_OR_RETURN(std::string text, read_text(path));
  const json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return invalid_argument("'" + path + "' is not valid JSON; is it a tokenizer.json?");
  }
  try {
    VORTEX_ASSIGN_OR_RETURN(TokenizerSpec spec, parse_tokenizer_json(root, path));
    VORTEX_RETURN_IF_ERROR(read_tokenizer_config(std::filesystem::path(path).parent_path(), &spec));
    return spec;
  } catch (const json::exception& e) {
    return invalid_argument("'" + path + "' does not have the layout of an HF tokenizer.json (" +
                            e.what() + ")");
  } catch (const std::filesystem::filesystem_error& e) {
    return invalid_argument("reading the files beside '" + path + "': " + e.what());
  }
}

Expected<Tokenizer> Tokenizer::from_tokenizer_json(const std::string& path) {
  VORTEX_ASSIGN_OR_RETURN(TokenizerSpec spec, tokenizer_spec_from_json(path));
  auto tok = from_spec(spec);
  if (!tok.has_value()) return tok.status().with_context(path);
  return tok;
}

}  // namespace vortex
