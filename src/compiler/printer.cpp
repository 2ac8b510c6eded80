// Printers for the IR, the fused groups and the plan: stable text, used by the CLI and by the
// golden tests under tests/compiler/golden/.
#include "vortex/compiler/printer.h"

#include <set>
#include <sstream>
#include <string>

#include "vortex/compiler/passes.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::compiler {
namespace {

using flow::Node;
using flow::op_info;
using flow::OpKind;

std::string sym_list(const std::vector<flow::Sym>& l) {
  std::string s = "[";
  for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + l[i].text();
  return s + "]";
}

std::string tensor_desc(const flow::ConstTensor& t) {
  std::string s = "tensor[";
  for (size_t i = 0; i < t.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}

// "Mean(dim=1)", "Softmax(dim=0, scale=1/sqrt(D))": attributes in catalogue order.
std::string op_call(const Node& n) {
  const auto& info = op_info(n.op);
  std::string s(info.name);
  s += "(";
  bool first = true;
  for (const auto& spec : info.attrs) {
    auto it = n.attrs.find(std::string(spec.name));
    if (it == n.attrs.end()) continue;
    s += (first ? "" : ", ") + std::string(spec.name) + "=";
    first = false;
    if (const auto* v = std::get_if<flow::Sym>(&it->second)) {
      s += v->text();
    } else if (const auto* l = std::get_if<std::vector<flow::Sym>>(&it->second)) {
      s += sym_list(*l);
    } else {
      s += tensor_desc(std::get<flow::ConstTensor>(it->second));
    }
  }
  return s + ")";
}

std::string num(double v) {
  std::string s = flow::format_double(v);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

// Resolved attributes of a plan step, concrete numbers.
std::string resolved_call(OpKind op, const flow::ResolvedAttrs& a) {
  const auto& info = op_info(op);
  std::string s(info.name);
  s += "(";
  bool first = true;
  for (const auto& spec : info.attrs) {
    const std::string name(spec.name);
    std::string v;
    if (name == "dim") v = std::to_string(a.dim);
    if (name == "k") v = std::to_string(a.k);
    if (name == "start") v = std::to_string(a.start);
    if (name == "end") v = std::to_string(a.end);
    if (name == "scale") v = num(a.scale);
    if (name == "alpha") v = num(a.alpha);
    if (name == "beta") v = num(a.beta);
    if (name == "a") v = num(a.a);
    if (name == "b") v = num(a.b);
    if (name == "value") v = num(a.value);
    if (name == "tolerance") v = num(a.tolerance);
    if (name == "value" && op == OpKind::kParameter) v = tensor_desc(a.tensor);
    if (name == "weight") v = tensor_desc(a.tensor);
    if (name == "dims" || name == "shape") {
      v = "[";
      if (name == "dims") {
        for (size_t i = 0; i < a.dims.size(); ++i) v += (i ? ", " : "") + std::to_string(a.dims[i]);
      } else {
        for (size_t i = 0; i < a.shape.size(); ++i)
          v += (i ? ", " : "") + std::to_string(a.shape[i]);
      }
      v += "]";
    }
    s += (first ? "" : ", ") + name + "=" + v;
    first = false;
  }
  return s + ")";
}

std::string args(const std::vector<int32_t>& inputs, const char* prefix) {
  std::string s;
  for (size_t i = 0; i < inputs.size(); ++i)
    s += (i ? ", %" : "%") + std::string(prefix) + std::to_string(inputs[i]);
  return s;
}

std::string node_line(const Node& n, int32_t id) {
  std::string s = "%" + std::to_string(id);
  if (!n.label.empty()) s += " " + n.label;
  s += " = ";
  if (n.op == OpKind::kInput) {
    s += "Input \"" + n.ref + "\"";
  } else if (n.op == OpKind::kField) {
    s += "cache[\"" + n.ref + "\"]";
  } else {
    s += op_call(n);
    if (!n.inputs.empty()) s += "(" + args(n.inputs, "") + ")";
  }
  if (!n.out.empty()) s += " -> cache[\"" + n.out + "\"]";
  return s;
}

std::string pad(std::string s, size_t col) {
  if (s.size() < col)
    s.resize(col, ' ');
  else
    s += "  ";
  return s;
}

const char* side_title(flow::Side side) {
  return side == flow::Side::kCache ? "cache (per completed page and kv head)"
                                    : "indexer (per row, over its S candidate pages)";
}

void print_header(std::ostringstream& os, const flow::FlowIR& ir) {
  os << "flow " << ir.name << " (" << flow::mode_name(ir.mode) << ")\n";
  if (ir.mode != flow::FlowMode::kSparse) return;
  os << "fields:" << (ir.fields.empty() ? " none" : "") << "\n";
  for (const auto& f : ir.fields) {
    os << "  " << f.name << " (" << f.rows.text() << ", " << f.cols.text() << ")\n";
  }
}

}  // namespace

std::string print_ir(const flow::FlowIR& ir, const flow::ShapeEnv& env) {
  std::ostringstream os;
  print_header(os, ir);
  if (ir.mode != flow::FlowMode::kSparse) return os.str();
  const bool typed_ok = verify_structure(ir).is_ok();
  for (flow::Side side : {flow::Side::kCache, flow::Side::kIndexer}) {
    os << side_title(side) << ", types at " << env.to_string() << ":\n";
    const auto& g = ir.graph(side);
    Expected<TypedGraph> typed =
        typed_ok ? verify_side(ir, side, env) : Expected<TypedGraph>(internal_error(""));
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      std::string line = "  " + node_line(g.nodes[i], static_cast<int32_t>(i));
      if (typed) line = pad(line, 60) + typed->types[i].to_string();
      os << line << "\n";
    }
    if (!typed && typed_ok) os << "  (does not verify: " << typed.status().message() << ")\n";
  }
  return os.str();
}

Expected<std::string> print_fused(const flow::FlowIR& ir, const flow::ShapeEnv& env) {
  VORTEX_RETURN_IF_ERROR(verify_flow(ir, env));
  const flow::FlowIR live = eliminate_dead_code(ir);
  std::ostringstream os;
  os << "flow " << ir.name << " (" << flow::mode_name(ir.mode) << ") fused at " << env.to_string()
     << "\n";
  if (ir.mode != flow::FlowMode::kSparse) {
    os << "no kernels: "
       << (ir.mode == flow::FlowMode::kDense ? "every page is attended"
                                             : "bos sink pages + the most recent pages")
       << "\n";
    return os.str();
  }
  for (flow::Side side : {flow::Side::kCache, flow::Side::kIndexer}) {
    VORTEX_ASSIGN_OR_RETURN(TypedGraph typed, verify_side(live, side, env));
    const Fusion f = fuse(live, side);
    const auto& g = live.graph(side);
    os << side_title(side) << ": " << f.groups.size() << " kernel"
       << (f.groups.size() == 1 ? "" : "s") << "\n";
    for (size_t gi = 0; gi < f.groups.size(); ++gi) {
      const auto& grp = f.groups[gi];
      os << "  kernel " << gi << " ";
      if (grp.boundary) {
        os << "[boundary: " << op_info(g.nodes[static_cast<size_t>(grp.nodes[0])].op).name << "]";
      } else {
        os << "[fused, " << grp.nodes.size() << " op" << (grp.nodes.size() == 1 ? "" : "s") << "]";
      }
      std::set<std::string> reads, writes;
      const std::set<int32_t> members(grp.nodes.begin(), grp.nodes.end());
      for (int32_t id : grp.nodes) {
        const Node& n = g.nodes[static_cast<size_t>(id)];
        if (!n.out.empty()) writes.insert("cache[\"" + n.out + "\"]");
        for (int32_t in : n.inputs) {
          if (members.count(in)) continue;
          const Node& src = g.nodes[static_cast<size_t>(in)];
          if (src.op == OpKind::kInput)
            reads.insert("q");
          else if (src.op == OpKind::kField)
            reads.insert("cache[\"" + src.ref + "\"]");
          else if (src.op == OpKind::kParameter)
            reads.insert("%" + std::to_string(in) + " (parameter)");
          else
            reads.insert("%" + std::to_string(in) + " (kernel " +
                         std::to_string(f.group_of[static_cast<size_t>(in)]) + ")");
        }
      }
      auto join = [](const std::set<std::string>& s) {
        std::string r;
        for (const auto& x : s) r += (r.empty() ? "" : ", ") + x;
        return r;
      };
      os << " reads " << (reads.empty() ? "nothing" : join(reads));
      if (!writes.empty()) os << "; writes " << join(writes);
      os << "\n";
      for (int32_t id : grp.nodes) {
        os << pad("    " + node_line(g.nodes[static_cast<size_t>(id)], id), 62)
           << typed.types[static_cast<size_t>(id)].to_string() << "\n";
      }
    }
  }
  return os.str();
}

std::string print_plan(const Plan& plan) {
  std::ostringstream os;
  os << "plan " << plan.flow << " (" << flow::mode_name(plan.mode) << ") at "
     << plan.env.to_string() << (plan.uses_save ? ", uses Save (no prefix cache)" : "") << "\n";
  for (const SidePlan* sp : {&plan.cache, &plan.indexer}) {
    os << flow::side_name(sp->side) << ": " << sp->steps.size() << " steps, " << sp->groups.size()
       << (sp->groups.size() == 1 ? " kernel, " : " kernels, ") << sp->num_values << " values";
    if (sp->terminal >= 0) os << "; score %v" << sp->score << ", terminal step " << sp->terminal;
    os << "\n";
    for (size_t f = 0; f < sp->fields.size() && sp->side == flow::Side::kCache; ++f) {
      os << "  field " << f << " " << sp->fields[f].name << " [" << sp->fields[f].rows << ", "
         << sp->fields[f].cols << "]\n";
    }
    int32_t group = -2;
    for (size_t i = 0; i < sp->steps.size(); ++i) {
      const PlanStep& s = sp->steps[i];
      if (s.group != group) {
        group = s.group;
        if (group < 0) {
          os << "  sources:\n";
        } else {
          const auto& g = sp->groups[static_cast<size_t>(group)];
          os << "  kernel " << group << (g.boundary ? " (boundary" : " (fused") << ", stage "
             << g.stage << "):\n";
        }
      }
      auto field_name = [&](int32_t f) -> std::string {
        if (f == kFieldK) return "k";
        if (f == kFieldV) return "v";
        return std::to_string(f) + ":" + sp->fields[static_cast<size_t>(f)].name;
      };
      std::string line = "    " + std::to_string(i) + ": %v" + std::to_string(s.value) + " = ";
      if (s.op == OpKind::kInput)
        line += "load q";
      else if (s.op == OpKind::kField)
        line += "gather field " + field_name(s.read_field);
      else
        line += resolved_call(s.op, s.attrs) +
                (s.inputs.empty() ? "" : "(" + args(s.inputs, "v") + ")");
      if (s.write_field != kNoField) line += " -> field " + field_name(s.write_field);
      os << pad(line, 72) << s.type.to_string() << "\n";
    }
  }
  return os.str();
}

Expected<int64_t> aux_bytes_per_page(const flow::FlowIR& ir, const flow::ShapeEnv& env,
                                     int64_t elem_bytes) {
  int64_t total = 0;
  for (const auto& f : ir.fields) {
    VORTEX_ASSIGN_OR_RETURN(auto rc, flow::field_shape(ir, f.name, env));
    total += rc.first * rc.second * elem_bytes;
  }
  return total;
}

}  // namespace vortex::compiler
