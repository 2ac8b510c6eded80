// The flow registry: name -> factory, built-ins registered lazily and exactly once.
#include "vortex/flow/registry.h"

#include <mutex>
#include <utility>

namespace vortex::flow {
namespace {

struct Registry {
  std::mutex mu;
  std::vector<std::pair<std::string, FlowFactory>> flows;  // registration order
  std::vector<std::string> builtins;
};

Registry& registry() {
  static Registry r;
  return r;
}

void ensure_builtins() {
  static std::once_flag once;
  std::call_once(once, [] { register_builtin_flows(); });
}

Status add(std::string name, FlowFactory factory) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const auto& [n, f] : r.flows) {
    if (n == name) return invalid_argument("a flow named '" + name + "' is already registered");
  }
  r.flows.emplace_back(std::move(name), std::move(factory));
  return Status::ok();
}

}  // namespace

Status register_flow(std::string name, FlowFactory factory) {
  ensure_builtins();
  return add(std::move(name), std::move(factory));
}

Expected<FlowIR> registered_flow_ir(std::string_view name) {
  ensure_builtins();
  FlowFactory factory;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    for (const auto& [n, f] : r.flows) {
      if (n == name) factory = f;
    }
  }
  if (!factory) {
    std::string known;
    for (const auto& n : registered_flow_names()) known += (known.empty() ? "" : ", ") + n;
    return not_found("no flow named '" + std::string(name) + "'; known flows: " + known +
                     " (or give a path to a .json flow)");
  }
  std::unique_ptr<lang::Flow> flow = factory();
  return build_flow(*flow);
}

std::vector<std::string> registered_flow_names() {
  ensure_builtins();
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [n, f] : r.flows) names.push_back(n);
  return names;
}

std::vector<std::string> builtin_names() {
  ensure_builtins();
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.builtins;
}

// Called from register_builtin_flows() (inside call_once): registers without re-entering
// ensure_builtins().
Status register_builtin(std::string name, FlowFactory factory) {
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.builtins.push_back(name);
  }
  return add(std::move(name), std::move(factory));
}

}  // namespace vortex::flow
