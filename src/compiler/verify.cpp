// Verify pass: the rules of FLOW_SPEC ("Rules a flow must pass"), checked at load time with the
// flow, the op and the fix in every message, then shapes and formats at concrete sizes.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>

#include "vortex/compiler/passes.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::compiler {
namespace {

using flow::describe_node;
using flow::FlowMode;
using flow::Graph;
using flow::Node;
using flow::op_info;
using flow::OpClass;
using flow::OpKind;

Status flow_error(const FlowIR& ir, const std::string& msg) {
  return invalid_argument("flow '" + ir.name + "': " + msg);
}
Status node_error(const FlowIR& ir, Side side, int32_t i, const std::string& msg) {
  return invalid_argument(describe_node(ir, side, i) + ": " + msg);
}

bool valid_field_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool is_terminal(const Node& n) { return op_info(n.op).cls == OpClass::kTerminal; }

bool attrs_use_group(const Node& n) {
  for (const auto& [name, v] : n.attrs) {
    if (const auto* s = std::get_if<flow::Sym>(&v); s && s->uses_group()) return true;
    if (const auto* l = std::get_if<std::vector<flow::Sym>>(&v)) {
      for (const auto& s : *l) {
        if (s.uses_group()) return true;
      }
    }
  }
  return false;
}

// Live nodes: those that reach a root (a field write on the cache side; the terminal or a Save on
// the indexer side).
std::vector<bool> live_nodes(const Graph& g) {
  std::vector<bool> live(g.nodes.size(), false);
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const Node& n = g.nodes[i];
    if (!n.out.empty() || is_terminal(n)) live[i] = true;
    if (!live[i]) continue;
    for (int32_t in : n.inputs) {
      if (in >= 0 && static_cast<size_t>(in) < i) live[static_cast<size_t>(in)] = true;
    }
  }
  return live;
}

Status verify_graph_order(const FlowIR& ir, Side side) {
  const Graph& g = ir.graph(side);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    const auto& info = op_info(n.op);
    const int32_t id = static_cast<int32_t>(i);
    const int n_in = static_cast<int>(n.inputs.size());
    if (n_in < info.min_inputs || n_in > info.max_inputs) {
      return node_error(ir, side, id,
                        "takes " + std::to_string(info.min_inputs) + " input(s), got " +
                            std::to_string(n_in) + "; usage " + std::string(info.usage));
    }
    for (int32_t in : n.inputs) {
      if (in < 0 || in >= id) {
        return node_error(ir, side, id,
                          "input %" + std::to_string(in) +
                              " is not an earlier node; a graph must be acyclic "
                              "and list every node after its inputs");
      }
      const Node& src = g.nodes[static_cast<size_t>(in)];
      if (is_terminal(src) || src.op == OpKind::kSave || src.op == OpKind::kFill) {
        return node_error(ir, side, id,
                          "reads the result of %" + std::to_string(in) + " " +
                              std::string(op_info(src.op).name) +
                              ", which is a sink; use that op's input instead");
      }
    }
    if (side == Side::kCache && attrs_use_group(n)) {
      return node_error(ir, side, id,
                        "the cache flow cannot depend on G (query heads); use P and D only");
    }
    if (n.op == OpKind::kField && n.ref != "k" && n.ref != "v" && !ir.find_field(n.ref)) {
      std::string known = "k, v";
      for (const auto& f : ir.fields) known += ", " + f.name;
      return node_error(ir, side, id,
                        "cache[\"" + n.ref + "\"] is not a field; fields are " + known);
    }
    if (side == Side::kCache && n.op == OpKind::kField && n.ref != "k" && n.ref != "v") {
      return node_error(ir, side, id,
                        "the cache flow reads only cache[\"k\"] and cache[\"v\"]; "
                        "use the temporary of the op that computed '" +
                            n.ref + "'");
    }
    if (!n.out.empty() && (n.out == "k" || n.out == "v")) {
      return node_error(ir, side, id, "k and v are written by the engine, never by a flow");
    }
    if (!n.out.empty() && !ir.find_field(n.out)) {
      return node_error(ir, side, id,
                        "writes cache[\"" + n.out + "\"], which create_cache does not declare");
    }
    if (side == Side::kIndexer && !n.out.empty() && n.op != OpKind::kSave) {
      return node_error(
          ir, side, id,
          "indexer ops write fields only through Save()(x, cache[\"" + n.out + "\"])");
    }
    if ((n.op == OpKind::kSave || n.op == OpKind::kFill) && n.out.empty()) {
      return node_error(ir, side, id, "needs the field to write: " + std::string(info.usage));
    }
  }
  return Status::ok();
}

Status verify_fields(const FlowIR& ir) {
  std::set<std::string> names;
  for (const auto& f : ir.fields) {
    if (f.name == "k" || f.name == "v") {
      return flow_error(ir, "do not declare '" + f.name +
                                "': k and v are implicit fields of (block_size, head_dim)");
    }
    if (!valid_field_name(f.name)) {
      return flow_error(ir,
                        "field name '" + f.name + "' must be 1-64 letters, digits or underscores");
    }
    if (!names.insert(f.name).second) {
      return flow_error(ir, "field '" + f.name + "' is declared twice");
    }
    if (f.rows.uses_group() || f.cols.uses_group()) {
      return flow_error(ir, "field '" + f.name + "' (" + f.rows.text() + ", " + f.cols.text() +
                                ") depends on G; fields are per KV head and may use P and D only");
    }
  }
  return Status::ok();
}

// Every declared field: written exactly once by the cache flow (an op's output or Fill), read by
// the indexer; Save targets must be initialised by the cache flow.
Status verify_field_use(const FlowIR& ir) {
  const std::vector<bool> live_cache = live_nodes(ir.cache);
  const std::vector<bool> live_indexer = live_nodes(ir.indexer);
  std::map<std::string, int> cache_writes, saves, reads;
  for (size_t i = 0; i < ir.cache.nodes.size(); ++i) {
    const Node& n = ir.cache.nodes[i];
    if (!n.out.empty() && ++cache_writes[n.out] > 1) {
      return node_error(ir, Side::kCache, static_cast<int32_t>(i),
                        "writes cache[\"" + n.out +
                            "\"] a second time; each field is written "
                            "once per page");
    }
  }
  for (size_t i = 0; i < ir.indexer.nodes.size(); ++i) {
    const Node& n = ir.indexer.nodes[i];
    if (n.op == OpKind::kSave && ++saves[n.out] > 1) {
      return node_error(ir, Side::kIndexer, static_cast<int32_t>(i),
                        "saves cache[\"" + n.out + "\"] a second time in one step; save once");
    }
    if (n.op == OpKind::kField && live_indexer[i]) ++reads[n.ref];
  }
  (void)live_cache;
  for (const auto& f : ir.fields) {
    if (!cache_writes.count(f.name)) {
      if (saves.count(f.name)) {
        return flow_error(ir, "field '" + f.name +
                                  "' is saved by the indexer but the cache flow "
                                  "never initialises it; pages are reused, so add "
                                  "Fill(0)(cache[\"" +
                                  f.name + "\"]) to forward_cache");
      }
      return flow_error(ir, "field '" + f.name +
                                "' is declared but nothing writes it; compute "
                                "it in forward_cache (e.g. Mean(1)(cache[\"k\"], cache[\"" +
                                f.name + "\"])) or remove it");
    }
    if (!reads.count(f.name)) {
      return flow_error(ir, "field '" + f.name +
                                "' is written but the indexer never reads it "
                                "(cache[\"" +
                                f.name +
                                "\"]); use it in forward_indexer or remove "
                                "it");
    }
  }
  return Status::ok();
}

}  // namespace

Status verify_structure(const FlowIR& ir) {
  if (ir.name.empty() || ir.name.size() > 64 || ir.name.find('/') != std::string::npos) {
    return invalid_argument("flow name '" + ir.name +
                            "' must be 1-64 characters without '/' (fields are named "
                            "'<flow>/<field>')");
  }
  if (ir.mode != FlowMode::kSparse) {
    if (!ir.fields.empty() || !ir.cache.nodes.empty() || !ir.indexer.nodes.empty()) {
      return flow_error(ir, std::string("a ") + flow::mode_name(ir.mode) +
                                " flow selects without an indexer; it has no fields and no ops "
                                "(use mode 'sparse' to score pages)");
    }
    return Status::ok();
  }
  VORTEX_RETURN_IF_ERROR(verify_fields(ir));
  VORTEX_RETURN_IF_ERROR(verify_graph_order(ir, Side::kCache));
  VORTEX_RETURN_IF_ERROR(verify_graph_order(ir, Side::kIndexer));
  int terminals = 0;
  for (const Node& n : ir.indexer.nodes) terminals += is_terminal(n) ? 1 : 0;
  if (terminals != 1) {
    return flow_error(ir,
                      "the indexer must end in exactly one topK()(score) or "
                      "approxTopK(tolerance)(score); found " +
                          std::to_string(terminals));
  }
  for (const Node& n : ir.cache.nodes) {
    if (is_terminal(n)) return flow_error(ir, "topK belongs to forward_indexer, not forward_cache");
  }
  return verify_field_use(ir);
}

Expected<TypedGraph> verify_side(const FlowIR& ir, Side side, const ShapeEnv& env) {
  if (env.block_size < 1 || env.head_dim < 1 || env.group < 1 || env.block_size > flow::kMaxDim ||
      env.head_dim > flow::kMaxDim || env.group > flow::kMaxDim) {
    return flow_error(ir, "shapes " + env.to_string() + " must be positive");
  }
  const Graph& g = ir.graph(side);
  TypedGraph t;
  t.env = env;
  for (const auto& f : ir.fields)
    VORTEX_RETURN_IF_ERROR(flow::field_shape(ir, f.name, env).status());
  t.types.reserve(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const int32_t id = static_cast<int32_t>(i);
    VORTEX_ASSIGN_OR_RETURN(flow::ResolvedAttrs attrs, flow::resolve_attrs(ir, side, id, env));
    std::vector<flow::TensorType> in;
    for (int32_t x : g.nodes[i].inputs) in.push_back(t.types[static_cast<size_t>(x)]);
    VORTEX_ASSIGN_OR_RETURN(flow::TensorType type, flow::infer_type(ir, side, id, in, &attrs, env));
    t.types.push_back(type);
    t.attrs.push_back(std::move(attrs));
  }
  return t;
}

Status verify_flow(const FlowIR& ir, const ShapeEnv& env) {
  VORTEX_RETURN_IF_ERROR(verify_structure(ir));
  for (Side side : {Side::kCache, Side::kIndexer}) {
    auto t = verify_side(ir, side, env);
    if (!t) return t.status();
  }
  return Status::ok();
}

}  // namespace vortex::compiler
