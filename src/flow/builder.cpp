// The C++ builder: records op calls of a lang::Flow into the FlowIR's two graphs.
#include "vortex/flow/builder.h"

#include <string>

#include "vortex/core/check.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::flow {
namespace lang {

// Owns one side's graph while the flow's method for that side runs. The first error is kept; later
// calls become no-ops returning invalid tensors, so one mistake gives one message.
class GraphBuilder {
 public:
  GraphBuilder(FlowIR* ir, Side side) : ir_(ir), side_(side) {}

  bool failed() const { return !error_.is_ok(); }
  const Status& error() const { return error_; }
  void fail(const std::string& msg) {
    if (error_.is_ok()) {
      error_ =
          invalid_argument("flow '" + ir_->name + "', forward_" + side_name(side_) + ": " + msg);
    }
  }

  Tensor make(int32_t node) {
    Tensor t;
    t.graph_ = this;
    t.node_ = node;
    return t;
  }
  Tensor field_ref(std::string name) {
    Tensor t;
    t.graph_ = this;
    t.field_ = std::move(name);
    return t;
  }

  int32_t add(Node n) {
    graph().nodes.push_back(std::move(n));
    return static_cast<int32_t>(graph().nodes.size() - 1);
  }

  // The node reading field `name` (one per field and graph).
  int32_t read_field(const std::string& name) {
    auto it = field_reads_.find(name);
    if (it != field_reads_.end()) return it->second;
    Node n = make_node(OpKind::kField, {});
    n.ref = name;
    const int32_t id = add(std::move(n));
    field_reads_.emplace(name, id);
    return id;
  }

  // Resolves an input tensor to a node id, or -1 after recording why not.
  int32_t input_node(const Tensor& t, std::string_view op, size_t pos) {
    if (t.graph_ == nullptr) {
      fail(std::string(op) + ": input " + std::to_string(pos) +
           " is an empty tensor (the result of an op that failed, or a default Tensor)");
      return -1;
    }
    if (t.graph_ != this) {
      fail(std::string(op) + ": input " + std::to_string(pos) +
           " belongs to the other side of the flow; cache and indexer tensors do not mix");
      return -1;
    }
    return t.node_ >= 0 ? t.node_ : read_field(t.field_);
  }

  Graph& graph() { return ir_->graph(side_); }
  FlowIR& ir() { return *ir_; }

 private:
  FlowIR* ir_;
  Side side_;
  Status error_;
  std::map<std::string, int32_t> field_reads_;
};

namespace {
thread_local GraphBuilder* t_current = nullptr;

struct CurrentScope {
  explicit CurrentScope(GraphBuilder* g) : prev(t_current) { t_current = g; }
  ~CurrentScope() { t_current = prev; }
  GraphBuilder* prev;
};
}  // namespace

Tensor& Tensor::named(std::string label) {
  if (graph_ != nullptr && node_ >= 0) {
    graph_->graph().nodes[static_cast<size_t>(node_)].label = std::move(label);
  }
  return *this;
}

Tensor CacheView::operator[](std::string_view name) const {
  return graph_->field_ref(std::string(name));
}

Tensor Op::call(std::vector<Tensor> inputs, const Tensor& out) {
  GraphBuilder* g = t_current;
  VORTEX_CHECK_MSG(g != nullptr, "flow ops can only be called inside build_flow()");
  const std::string_view name = op_info(kind_).name;
  if (g->failed()) return Tensor();
  if (called_) {
    g->fail(std::string(name) +
            " was called twice; create one op object per call (op instances are not reusable)");
    return Tensor();
  }
  called_ = true;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const int32_t id = g->input_node(inputs[i], name, i);
    if (id < 0) return Tensor();
    ids.push_back(id);
  }
  Node n = make_node(kind_, std::move(ids), attrs_);
  if (out.valid()) {
    if (out.graph_ != g || out.node_ >= 0) {
      g->fail(std::string(name) + ": the output must be a field of this side, cache[\"name\"]");
      return Tensor();
    }
    n.out = out.field_;
  } else if (kind_ == OpKind::kSave || kind_ == OpKind::kFill) {
    g->fail(std::string(name) + " needs the field to write: " + std::string(op_info(kind_).usage));
    return Tensor();
  }
  return g->make(g->add(std::move(n)));
}

}  // namespace lang

Expected<FlowIR> build_flow(lang::Flow& flow) {
  FlowIR ir;
  ir.name = flow.name();
  ir.mode = flow.mode();
  ir.verify_env = flow.verify_env();
  ir.fields = flow.create_cache(sym_P(), sym_D());
  if (ir.mode != FlowMode::kSparse) return ir;

  lang::GraphBuilder cache(&ir, Side::kCache);
  {
    lang::CurrentScope scope(&cache);
    lang::CacheView view(&cache);
    flow.forward_cache(view);
  }
  if (cache.failed()) return cache.error();

  lang::GraphBuilder indexer(&ir, Side::kIndexer);
  lang::Tensor result;
  {
    lang::CurrentScope scope(&indexer);
    lang::CacheView view(&indexer);
    Node q = make_node(OpKind::kInput, {});
    q.ref = "q";
    q.label = "q";
    const lang::Tensor qt = indexer.make(indexer.add(std::move(q)));
    result = flow.forward_indexer(qt, view);
  }
  if (indexer.failed()) return indexer.error();
  (void)result;  // the terminal is found by the verifier (exactly one topK / approxTopK)
  return ir;
}

}  // namespace vortex::flow
