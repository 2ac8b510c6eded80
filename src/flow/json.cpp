// JSON form of the flow IR: strict, lossless, never crashing on malformed input.
#include "vortex/flow/json.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "vortex/flow/op_catalogue.h"

namespace vortex::flow {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kFormatVersion = 1;

// ---- writing ---------------------------------------------------------------------------------

Json sym_json(const Sym& s) {
  if (!s.is_literal()) return s.text();
  const double v = s.literal();
  if (v == std::floor(v) && std::fabs(v) < 9.0e15) return static_cast<int64_t>(v);
  return v;
}

Json attr_json(const AttrValue& v) {
  if (const auto* s = std::get_if<Sym>(&v)) return sym_json(*s);
  if (const auto* l = std::get_if<std::vector<Sym>>(&v)) {
    Json a = Json::array();
    for (const auto& s : *l) a.push_back(sym_json(s));
    return a;
  }
  const auto& t = std::get<ConstTensor>(v);
  Json o = Json::object();
  o["shape"] = t.shape;
  Json data = Json::array();
  for (float f : t.data) data.push_back(static_cast<double>(f));
  o["data"] = std::move(data);
  return o;
}

Json graph_json(const Graph& g) {
  Json nodes = Json::array();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    Json j = Json::object();
    j["id"] = i;
    j["op"] = std::string(op_info(n.op).name);
    if (!n.inputs.empty()) j["inputs"] = n.inputs;
    if (!n.attrs.empty()) {
      Json a = Json::object();
      for (const auto& spec : op_info(n.op).attrs) {  // catalogue order, stable output
        auto it = n.attrs.find(std::string(spec.name));
        if (it != n.attrs.end()) a[std::string(spec.name)] = attr_json(it->second);
      }
      j["attrs"] = std::move(a);
    }
    if (!n.ref.empty()) j["ref"] = n.ref;
    if (!n.out.empty()) j["out"] = n.out;
    if (!n.label.empty()) j["label"] = n.label;
    nodes.push_back(std::move(j));
  }
  return nodes;
}

// ---- reading ---------------------------------------------------------------------------------

Status bad(const std::string& where, const std::string& msg) {
  return invalid_argument("flow JSON, " + where + ": " + msg);
}

Status check_keys(const Json& obj, const std::string& where,
                  std::initializer_list<std::string_view> allowed) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return bad(where, "unknown key '" + it.key() + "'; allowed keys: " + list);
    }
  }
  return Status::ok();
}

Expected<std::string> get_string(const Json& obj, const std::string& key, const std::string& where,
                                 bool required) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) return bad(where, "missing \"" + key + "\"");
    return std::string();
  }
  if (!it->is_string()) return bad(where, "\"" + key + "\" must be a string");
  return it->get<std::string>();
}

Expected<int64_t> get_int(const Json& j, const std::string& where, int64_t lo, int64_t hi) {
  if (!j.is_number_integer()) return bad(where, "must be an integer");
  const int64_t v = j.is_number_unsigned() && j.get<uint64_t>() > static_cast<uint64_t>(hi)
                        ? hi + 1
                        : j.get<int64_t>();
  if (v < lo || v > hi) {
    return bad(where, "must be in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return v;
}

Expected<Sym> parse_sym(const Json& j, const std::string& where) {
  if (j.is_number()) {
    const double v = j.get<double>();
    if (!std::isfinite(v)) return bad(where, "must be a finite number");
    return Sym(v);
  }
  if (j.is_string()) {
    auto s = Sym::parse(j.get<std::string>(), where);
    if (!s) return s.status().with_context("flow JSON");
    return s;
  }
  return bad(where, "must be a number or an expression string over P, D, G (\"P/16\")");
}

Expected<AttrValue> parse_attr(const Json& j, const AttrSpec& spec, const std::string& where) {
  switch (spec.kind) {
    case AttrKind::kAxis:
    case AttrKind::kInt:
    case AttrKind::kFloat: {
      VORTEX_ASSIGN_OR_RETURN(Sym s, parse_sym(j, where));
      return AttrValue(std::move(s));
    }
    case AttrKind::kAxes:
    case AttrKind::kIntList: {
      if (!j.is_array() || j.size() > 8) return bad(where, "must be a list of at most 8 numbers");
      std::vector<Sym> list;
      for (size_t i = 0; i < j.size(); ++i) {
        VORTEX_ASSIGN_OR_RETURN(Sym s, parse_sym(j[i], where + "[" + std::to_string(i) + "]"));
        list.push_back(std::move(s));
      }
      return AttrValue(std::move(list));
    }
    case AttrKind::kTensor: {
      if (!j.is_object())
        return bad(where, "must be an object {\"shape\": [...], \"data\": [...]}");
      VORTEX_RETURN_IF_ERROR(check_keys(j, where, {"shape", "data"}));
      auto shape = j.find("shape");
      auto data = j.find("data");
      if (shape == j.end() || !shape->is_array() || shape->empty() || shape->size() > 3) {
        return bad(where, "\"shape\" must be a list of 1 to 3 sizes");
      }
      if (data == j.end() || !data->is_array()) return bad(where, "\"data\" must be a list");
      ConstTensor t;
      int64_t numel = 1;
      for (const auto& d : *shape) {
        VORTEX_ASSIGN_OR_RETURN(int64_t v, get_int(d, where + ".shape", 1, kMaxDim));
        t.shape.push_back(v);
        numel *= v;
        if (numel > kMaxTileElems) return bad(where, "is too large");
      }
      if (static_cast<int64_t>(data->size()) != numel) {
        return bad(where, "\"data\" has " + std::to_string(data->size()) +
                              " values but \"shape\" needs " + std::to_string(numel));
      }
      for (const auto& d : *data) {
        if (!d.is_number()) return bad(where, "\"data\" must hold numbers");
        const double v = d.get<double>();
        if (!std::isfinite(v) || std::fabs(v) > 3.0e38) {
          return bad(where, "\"data\" holds a value that is not a finite float");
        }
        t.data.push_back(static_cast<float>(v));
      }
      return AttrValue(std::move(t));
    }
  }
  return bad(where, "unknown attribute kind");
}

struct RawNode {
  int64_t id = 0;
  std::vector<int64_t> inputs;  // ids
  Node node;                    // inputs filled after sorting
};

Expected<RawNode> parse_node(const Json& j, const std::string& where) {
  if (!j.is_object()) return bad(where, "a node must be an object");
  VORTEX_RETURN_IF_ERROR(
      check_keys(j, where, {"id", "op", "inputs", "attrs", "ref", "out", "label"}));
  RawNode r;
  auto id = j.find("id");
  if (id == j.end()) return bad(where, "missing \"id\"");
  VORTEX_ASSIGN_OR_RETURN(r.id, get_int(*id, where + ".id", 0, 1'000'000'000));
  const std::string w = where + " (id " + std::to_string(r.id) + ")";
  VORTEX_ASSIGN_OR_RETURN(std::string op, get_string(j, "op", w, true));
  const OpInfo* info = find_op(op);
  if (info == nullptr) {
    return bad(w, "unknown op '" + op + "'; ops are Input, Field, " + all_op_names());
  }
  if (auto in = j.find("inputs"); in != j.end()) {
    if (!in->is_array() || in->size() > 8) return bad(w, "\"inputs\" must be a list of node ids");
    for (const auto& x : *in) {
      VORTEX_ASSIGN_OR_RETURN(int64_t v, get_int(x, w + ".inputs", 0, 1'000'000'000));
      r.inputs.push_back(v);
    }
  }
  const int n_in = static_cast<int>(r.inputs.size());
  if (n_in < info->min_inputs || n_in > info->max_inputs) {
    return bad(
        w,
        std::string(info->name) + " takes " + std::to_string(info->min_inputs) +
            (info->max_inputs != info->min_inputs ? ".." + std::to_string(info->max_inputs) : "") +
            " input(s), got " + std::to_string(n_in) + "; usage " + std::string(info->usage));
  }
  std::map<std::string, AttrValue> attrs;
  if (auto a = j.find("attrs"); a != j.end()) {
    if (!a->is_object()) return bad(w, "\"attrs\" must be an object");
    for (auto it = a->begin(); it != a->end(); ++it) {
      const AttrSpec* spec = nullptr;
      for (const auto& s : info->attrs) {
        if (s.name == it.key()) spec = &s;
      }
      if (spec == nullptr) {
        std::string names;
        for (const auto& s : info->attrs)
          names += (names.empty() ? "" : ", ") + std::string(s.name);
        return bad(w, std::string(info->name) + " has no attribute '" + it.key() + "'" +
                          (names.empty() ? "; it takes none" : "; it takes " + names));
      }
      VORTEX_ASSIGN_OR_RETURN(AttrValue v, parse_attr(it.value(), *spec, w + ".attrs." + it.key()));
      attrs.emplace(it.key(), std::move(v));
    }
  }
  for (const auto& s : info->attrs) {
    if (s.default_value.empty() && !attrs.count(std::string(s.name))) {
      return bad(w, std::string(info->name) + " needs attribute '" + std::string(s.name) +
                        "'; usage " + std::string(info->usage));
    }
  }
  r.node = make_node(info->kind, {}, std::move(attrs));
  VORTEX_ASSIGN_OR_RETURN(r.node.ref, get_string(j, "ref", w, false));
  VORTEX_ASSIGN_OR_RETURN(r.node.out, get_string(j, "out", w, false));
  VORTEX_ASSIGN_OR_RETURN(r.node.label, get_string(j, "label", w, false));
  if ((info->kind == OpKind::kInput || info->kind == OpKind::kField) && r.node.ref.empty()) {
    return bad(w, std::string(info->name) + " needs \"ref\": the name it reads (\"q\" or a field)");
  }
  if (info->kind != OpKind::kInput && info->kind != OpKind::kField && !r.node.ref.empty()) {
    return bad(w, "\"ref\" is only for Input and Field nodes");
  }
  return r;
}

// Sorts nodes so that inputs come first (file order kept where possible); cycles are errors.
Expected<Graph> parse_graph(const Json& j, const std::string& side) {
  if (!j.is_array()) return bad(side, "must be a list of nodes");
  if (j.size() > kMaxJsonNodes) {
    return bad(side, "has " + std::to_string(j.size()) + " nodes; at most " +
                         std::to_string(kMaxJsonNodes));
  }
  std::vector<RawNode> raw;
  std::map<int64_t, size_t> by_id;
  for (size_t i = 0; i < j.size(); ++i) {
    VORTEX_ASSIGN_OR_RETURN(RawNode r, parse_node(j[i], side + "[" + std::to_string(i) + "]"));
    if (!by_id.emplace(r.id, i).second) {
      return bad(side, "node id " + std::to_string(r.id) + " is used twice");
    }
    raw.push_back(std::move(r));
  }
  for (const auto& r : raw) {
    for (int64_t in : r.inputs) {
      if (!by_id.count(in)) {
        return bad(side, "node " + std::to_string(r.id) + " reads node " + std::to_string(in) +
                             ", which is not in the " + side + " graph");
      }
    }
  }
  // Iterative DFS post-order from each node in file order; grey nodes on the stack form cycles.
  enum Color : uint8_t { kWhite, kGrey, kBlack };
  std::vector<Color> color(raw.size(), kWhite);
  std::vector<size_t> order;
  for (size_t root = 0; root < raw.size(); ++root) {
    if (color[root] != kWhite) continue;
    std::vector<std::pair<size_t, size_t>> stack{{root, 0}};  // (node, next input)
    color[root] = kGrey;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < raw[node].inputs.size()) {
        const size_t in = by_id[raw[node].inputs[next++]];
        if (color[in] == kGrey) {
          std::string cycle = std::to_string(raw[in].id);
          for (auto it = stack.rbegin(); it != stack.rend() && it->first != in; ++it) {
            cycle = std::to_string(raw[it->first].id) + " -> " + cycle;
          }
          return bad(side, "the graph has a cycle through nodes " + std::to_string(raw[in].id) +
                               " -> ... -> " + cycle + "; a flow is a DAG");
        }
        if (color[in] == kWhite) {
          color[in] = kGrey;
          stack.emplace_back(in, 0);
        }
        continue;
      }
      color[node] = kBlack;
      order.push_back(node);
      stack.pop_back();
    }
  }
  std::vector<int32_t> index_of(raw.size());
  for (size_t i = 0; i < order.size(); ++i) index_of[order[i]] = static_cast<int32_t>(i);
  Graph g;
  for (size_t pos : order) {
    Node n = std::move(raw[pos].node);
    for (int64_t in : raw[pos].inputs) n.inputs.push_back(index_of[by_id[in]]);
    g.nodes.push_back(std::move(n));
  }
  return g;
}

Expected<FlowIR> parse_flow(const Json& j) {
  if (!j.is_object()) return bad("top level", "a flow is a JSON object");
  VORTEX_RETURN_IF_ERROR(check_keys(
      j, "top level", {"vflow", "name", "mode", "verify_shape", "fields", "cache", "indexer"}));
  auto version = j.find("vflow");
  if (version == j.end() || !version->is_number_integer() ||
      version->get<int64_t>() != kFormatVersion) {
    return bad("top level",
               "\"vflow\" must be " + std::to_string(kFormatVersion) + " (the format version)");
  }
  FlowIR ir;
  VORTEX_ASSIGN_OR_RETURN(ir.name, get_string(j, "name", "top level", true));
  VORTEX_ASSIGN_OR_RETURN(std::string mode, get_string(j, "mode", "top level", false));
  if (mode.empty() || mode == "sparse") {
    ir.mode = FlowMode::kSparse;
  } else if (mode == "dense") {
    ir.mode = FlowMode::kDense;
  } else if (mode == "streaming") {
    ir.mode = FlowMode::kStreaming;
  } else {
    return bad("\"mode\"", "'" + mode + "' is not dense, streaming or sparse");
  }
  if (auto v = j.find("verify_shape"); v != j.end()) {
    if (!v->is_object()) return bad("\"verify_shape\"", "must be an object");
    VORTEX_RETURN_IF_ERROR(check_keys(*v, "\"verify_shape\"", {"block_size", "head_dim", "group"}));
    for (auto [key, dst] : {std::pair{"block_size", &ir.verify_env.block_size},
                            std::pair{"head_dim", &ir.verify_env.head_dim},
                            std::pair{"group", &ir.verify_env.group}}) {
      if (auto it = v->find(key); it != v->end()) {
        VORTEX_ASSIGN_OR_RETURN(*dst, get_int(*it, std::string("verify_shape.") + key, 1, 65536));
      }
    }
  }
  if (auto f = j.find("fields"); f != j.end()) {
    if (!f->is_array() || f->size() > 64) return bad("\"fields\"", "must be a list of at most 64");
    for (size_t i = 0; i < f->size(); ++i) {
      const Json& fj = (*f)[i];
      const std::string w = "fields[" + std::to_string(i) + "]";
      if (!fj.is_object()) return bad(w, "must be {\"name\", \"rows\", \"cols\"}");
      VORTEX_RETURN_IF_ERROR(check_keys(fj, w, {"name", "rows", "cols"}));
      FieldDecl d;
      VORTEX_ASSIGN_OR_RETURN(d.name, get_string(fj, "name", w, true));
      for (auto [key, dst] : {std::pair{"rows", &d.rows}, std::pair{"cols", &d.cols}}) {
        auto it = fj.find(key);
        if (it == fj.end()) return bad(w, std::string("missing \"") + key + "\"");
        VORTEX_ASSIGN_OR_RETURN(*dst, parse_sym(*it, w + "." + key));
      }
      ir.fields.push_back(std::move(d));
    }
  }
  if (auto c = j.find("cache"); c != j.end()) {
    VORTEX_ASSIGN_OR_RETURN(ir.cache, parse_graph(*c, "cache"));
  }
  if (auto x = j.find("indexer"); x != j.end()) {
    VORTEX_ASSIGN_OR_RETURN(ir.indexer, parse_graph(*x, "indexer"));
  }
  return ir;
}

}  // namespace

std::string flow_to_json(const FlowIR& ir) {
  Json j = Json::object();
  j["vflow"] = kFormatVersion;
  j["name"] = ir.name;
  j["mode"] = mode_name(ir.mode);
  j["verify_shape"] = {{"block_size", ir.verify_env.block_size},
                       {"head_dim", ir.verify_env.head_dim},
                       {"group", ir.verify_env.group}};
  Json fields = Json::array();
  for (const auto& f : ir.fields) {
    Json fj = Json::object();
    fj["name"] = f.name;
    fj["rows"] = sym_json(f.rows);
    fj["cols"] = sym_json(f.cols);
    fields.push_back(std::move(fj));
  }
  j["fields"] = std::move(fields);
  j["cache"] = graph_json(ir.cache);
  j["indexer"] = graph_json(ir.indexer);
  return j.dump(2) + "\n";
}

Expected<FlowIR> flow_from_json(std::string_view text) {
  try {
    Json j = Json::parse(text.begin(), text.end());
    return parse_flow(j);
  } catch (const nlohmann::json::parse_error& e) {
    return invalid_argument(std::string("flow JSON is malformed: ") + e.what());
  } catch (const std::exception& e) {
    return invalid_argument(std::string("flow JSON could not be read: ") + e.what());
  }
}

}  // namespace vortex::flow
