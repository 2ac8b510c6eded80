// `vortex flow list|check|show|export`: inspect, verify and export sparse-attention flows (built-in
// names or .json files) — every compiler stage can be printed with --emit.
#include <fmt/format.h>

#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "command_registry.h"
#include "vortex/compiler/codegen_cuda.h"
#include "vortex/compiler/passes.h"
#include "vortex/compiler/printer.h"
#include "vortex/compiler/program.h"
#include "vortex/flow/json.h"
#include "vortex/flow/runtime.h"

namespace {

using vortex::flow::FlowProgram;
using vortex::flow::ShapeEnv;

struct ShapeOptions {
  int64_t block_size = 0;  // 0: the flow's own verify shape
  int64_t head_dim = 0;
  int64_t group = 0;

  void add(CLI::App* cmd) {
    cmd->add_option("--block-size", block_size, "page size P to check at (default: the flow's)");
    cmd->add_option("--head-dim", head_dim, "head dim D to check at (default: the flow's)");
    cmd->add_option("--group", group, "query heads per KV head G (default: the flow's)");
  }
  ShapeEnv env(const FlowProgram& p) const {
    ShapeEnv e = p.source().verify_env;
    if (block_size > 0) e.block_size = block_size;
    if (head_dim > 0) e.head_dim = head_dim;
    if (group > 0) e.group = group;
    return e;
  }
};

std::shared_ptr<const FlowProgram> load_or_report(const std::string& name) {
  auto p = vortex::flow::load_flow(name);
  if (!p) {
    fmt::print(stderr, "error: {}\n", p.status().message());
    return nullptr;
  }
  return *p;
}

int run_list() {
  for (const auto& name : vortex::flow::builtin_flow_names()) {
    auto p = vortex::flow::load_flow(name);
    if (!p) {
      fmt::print("{:<18} INVALID: {}\n", name, p.status().message());
      continue;
    }
    const auto& ir = (*p)->source();
    std::string fields;
    for (const auto& f : ir.fields) {
      fields +=
          (fields.empty() ? "" : ", ") + f.name + " (" + f.rows.text() + ", " + f.cols.text() + ")";
    }
    fmt::print("{:<18} {:<10} {}\n", name, vortex::flow::mode_name(ir.mode),
               fields.empty() ? "-" : fields);
  }
  return 0;
}

int run_check(const std::string& name, const ShapeOptions& shape) {
  auto p = load_or_report(name);
  if (!p) return 1;
  const ShapeEnv env = shape.env(*p);
  auto fused = vortex::compiler::print_fused(p->source(), env);
  if (!fused) {
    fmt::print(stderr, "error: {}\n", fused.status().message());
    return 1;
  }
  fmt::print("{}", *fused);
  auto bytes = vortex::compiler::aux_bytes_per_page(p->ir(), env, 2);
  if (!bytes) {
    fmt::print(stderr, "error: {}\n", bytes.status().message());
    return 1;
  }
  fmt::print("aux bytes per page, per kv head and layer (bf16): {}\n", *bytes);
  fmt::print("uses Save: {}\n", p->uses_save() ? "yes (prefix cache off for its requests)" : "no");
  fmt::print("check: flow '{}' OK at {}\n", p->ir().name, env.to_string());
  return 0;
}

int run_show(const std::string& name, const std::string& emit, const ShapeOptions& shape) {
  auto p = load_or_report(name);
  if (!p) return 1;
  const ShapeEnv env = shape.env(*p);
  if (emit == "ir") {
    fmt::print("{}", vortex::compiler::print_ir(p->source(), env));
    return 0;
  }
  if (emit == "fused") {
    auto s = vortex::compiler::print_fused(p->source(), env);
    if (!s) {
      fmt::print(stderr, "error: {}\n", s.status().message());
      return 1;
    }
    fmt::print("{}", *s);
    return 0;
  }
  if (emit == "plan") {
    auto plan = vortex::compiler::compile_plan(p->source(), env);
    if (!plan) {
      fmt::print(stderr, "error: {}\n", plan.status().message());
      return 1;
    }
    fmt::print("{}", vortex::compiler::print_plan(*plan));
    return 0;
  }
  if (emit == "json") {
    fmt::print("{}", vortex::flow::flow_to_json(p->source()));
    return 0;
  }
  if (emit == "cuda") {  // the generated CUDA C++ (bf16 q / K/V / fields, default policy)
    auto plan = vortex::compiler::compile_plan(p->source(), env);
    auto src = plan ? vortex::compiler::emit_cuda(*plan)
                    : vortex::Expected<vortex::compiler::CudaFlowSource>(plan.status());
    if (!src) {
      fmt::print(stderr, "error: {}\n", src.status().message());
      return 1;
    }
    fmt::print("{}", src->source);
    return 0;
  }
  fmt::print(stderr, "error: unknown --emit={}; use ir, fused, plan, json or cuda\n", emit);
  return 2;
}

int run_export(const std::string& name, const std::string& out) {
  auto p = load_or_report(name);
  if (!p) return 1;
  const std::string json = vortex::flow::flow_to_json(p->source());
  if (out.empty() || out == "-") {
    fmt::print("{}", json);
    return 0;
  }
  std::ofstream f(out, std::ios::binary);
  if (!f || !(f << json)) {
    fmt::print(stderr, "error: cannot write '{}'\n", out);
    return 1;
  }
  fmt::print("wrote {} ({} bytes)\n", out, json.size());
  return 0;
}

void setup_flow_command(CLI::App& app, int* exit_code) {
  auto* flow =
      app.add_subcommand("flow", "list, verify, inspect and export sparse-attention flows");
  flow->require_subcommand(1);

  flow->add_subcommand("list", "list the built-in flows")->callback([exit_code] {
    *exit_code = run_list();
  });

  struct Args {
    std::string name;
    std::string emit = "ir";
    std::string out;
    ShapeOptions shape;
  };
  auto args = std::make_shared<Args>();

  auto* check =
      flow->add_subcommand("check", "verify a flow; print its fused kernels and aux bytes");
  check->add_option("flow", args->name, "built-in name or path to a .json flow")->required();
  args->shape.add(check);
  check->callback([args, exit_code] { *exit_code = run_check(args->name, args->shape); });

  auto* show = flow->add_subcommand("show", "print a compiler stage of a flow");
  show->add_option("flow", args->name, "built-in name or path to a .json flow")->required();
  show->add_option("--emit", args->emit, "ir | fused | plan | json | cuda (default ir)");
  args->shape.add(show);
  show->callback([args, exit_code] { *exit_code = run_show(args->name, args->emit, args->shape); });

  auto* exp = flow->add_subcommand("export", "write a flow as JSON");
  exp->add_option("flow", args->name, "built-in name or path to a .json flow")->required();
  exp->add_option("-o,--output", args->out, "output file (default: stdout)");
  exp->callback([args, exit_code] { *exit_code = run_export(args->name, args->out); });
}

}  // namespace

VORTEX_REGISTER_COMMAND(flow, 40, setup_flow_command);
