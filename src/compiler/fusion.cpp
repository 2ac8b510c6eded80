// Fusion grouping: which ops run as one kernel. Per-page ops (elementwise, reductions inside a
// page, GeMM, Kron, masks, reshapes, Load, Save) fuse; page-axis ops (dim=0 reductions, Softmax,
// Normalize, Conv1d over pages, topK) need the whole row and are boundaries.
//
// Stage of a node = the number of boundaries on the longest path from the sources to it (a
// boundary counts itself); per-page ops are then sunk to the latest stage their consumers allow.
// Every edge keeps stage(u) <= stage(v) (strictly < into a boundary), so all per-page ops of one
// stage form one group: a path that leaves a group through a boundary ends at a higher stage, so
// every group is convex and can run as one kernel. Execution order: by stage, a stage's
// boundaries before its fused group.
#include <algorithm>
#include <vector>

#include "vortex/compiler/passes.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::compiler {

Fusion fuse(const FlowIR& ir, Side side) {
  const flow::Graph& g = ir.graph(side);
  const size_t n = g.nodes.size();
  Fusion f;
  f.group_of.assign(n, -1);
  std::vector<int32_t> stage(n, 0);
  std::vector<bool> boundary(n, false), source(n, false);
  for (size_t i = 0; i < n; ++i) {
    const flow::Node& node = g.nodes[i];
    source[i] = flow::op_info(node.op).cls == flow::OpClass::kSource;
    boundary[i] = side == Side::kIndexer && flow::is_page_axis_node(node);
    int32_t s = 0;
    for (int32_t in : node.inputs) s = std::max(s, stage[static_cast<size_t>(in)]);
    stage[i] = boundary[i] ? s + 1 : s;
  }
  // Sink per-page ops as late as their consumers allow (a per-page consumer at stage s takes it
  // at s, a boundary at s needs it by s - 1), so a value is computed in the kernel that uses it
  // (e.g. a Load feeding a late stage) instead of being materialised between kernels.
  for (size_t i = n; i-- > 0;) {
    if (source[i] || boundary[i]) continue;
    int32_t latest = -1;
    for (size_t c = i + 1; c < n; ++c) {
      const auto& ins = g.nodes[c].inputs;
      if (std::find(ins.begin(), ins.end(), static_cast<int32_t>(i)) == ins.end()) continue;
      const int32_t allowed = boundary[c] ? stage[c] - 1 : stage[c];
      latest = latest < 0 ? allowed : std::min(latest, allowed);
    }
    if (latest > stage[i]) stage[i] = latest;
  }

  // Groups keyed by (stage, boundary node or -1 for the stage's fused group).
  struct Key {
    int32_t stage;
    int32_t boundary_node;  // -1: the fused group of the stage
  };
  std::vector<Key> keys;
  auto group_for = [&](Key k) {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i].stage == k.stage && keys[i].boundary_node == k.boundary_node) {
        return static_cast<int32_t>(i);
      }
    }
    keys.push_back(k);
    f.groups.push_back({k.boundary_node >= 0, k.stage, {}});
    return static_cast<int32_t>(keys.size() - 1);
  };
  for (size_t i = 0; i < n; ++i) {
    if (source[i]) continue;
    const Key k{side == Side::kCache ? 0 : stage[i], boundary[i] ? static_cast<int32_t>(i) : -1};
    const int32_t gi = group_for(k);
    f.group_of[i] = gi;
    f.groups[static_cast<size_t>(gi)].nodes.push_back(static_cast<int32_t>(i));
  }

  // Execution order: stage ascending; within a stage boundaries (by node) before the fused group.
  std::vector<int32_t> order(f.groups.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const Key &ka = keys[static_cast<size_t>(a)], &kb = keys[static_cast<size_t>(b)];
    if (ka.stage != kb.stage) return ka.stage < kb.stage;
    const bool ba = ka.boundary_node >= 0, bb = kb.boundary_node >= 0;
    if (ba != bb) return ba;
    return ka.boundary_node < kb.boundary_node;
  });
  std::vector<int32_t> new_index(order.size());
  std::vector<Fusion::Group> groups;
  for (size_t i = 0; i < order.size(); ++i) {
    new_index[static_cast<size_t>(order[i])] = static_cast<int32_t>(i);
    groups.push_back(std::move(f.groups[static_cast<size_t>(order[i])]));
  }
  f.groups = std::move(groups);
  for (int32_t& gi : f.group_of) {
    if (gi >= 0) gi = new_index[static_cast<size_t>(gi)];
  }
  return f;
}

}  // namespace vortex::compiler
