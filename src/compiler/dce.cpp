// Dead-code elimination: keeps the nodes that reach a root (a field write on the cache side; the
// terminal or a Save on the indexer side), renumbered in their original order.
#include <vector>

#include "vortex/compiler/passes.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::compiler {
namespace {

flow::Graph prune(const flow::Graph& g) {
  const size_t n = g.nodes.size();
  std::vector<bool> live(n, false);
  for (size_t i = n; i-- > 0;) {
    const flow::Node& node = g.nodes[i];
    if (!node.out.empty() || flow::op_info(node.op).cls == flow::OpClass::kTerminal) live[i] = true;
    if (!live[i]) continue;
    for (int32_t in : node.inputs) live[static_cast<size_t>(in)] = true;
  }
  std::vector<int32_t> remap(n, -1);
  flow::Graph out;
  for (size_t i = 0; i < n; ++i) {
    if (!live[i]) continue;
    flow::Node node = g.nodes[i];
    for (int32_t& in : node.inputs) in = remap[static_cast<size_t>(in)];
    remap[i] = static_cast<int32_t>(out.nodes.size());
    out.nodes.push_back(std::move(node));
  }
  return out;
}

}  // namespace

FlowIR eliminate_dead_code(const FlowIR& ir) {
  FlowIR out = ir;
  out.cache = prune(ir.cache);
  out.indexer = prune(ir.indexer);
  return out;
}

}  // namespace vortex::compiler
