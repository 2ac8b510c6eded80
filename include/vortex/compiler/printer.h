// Text forms of every compiler stage (`vortex flow show --emit=ir|fused|plan`, golden tests).
#pragma once

#include <cstdint>
#include <string>

#include "vortex/compiler/plan.h"
#include "vortex/core/status.h"
#include "vortex/flow/ir.h"

namespace vortex::compiler {

/// The IR as written (before DCE), with each node's type at `env` when the flow verifies there.
std::string print_ir(const flow::FlowIR& ir, const flow::ShapeEnv& env);

/// The fused groups (kernels) of both sides after verify + DCE at `env`.
Expected<std::string> print_fused(const flow::FlowIR& ir, const flow::ShapeEnv& env);

/// The execution plan.
std::string print_plan(const Plan& plan);

/// Aux bytes one page needs per KV head and layer for the flow's fields in `aux_dtype`-sized
/// elements (`elem_bytes`, 2 for bf16), at `env`.
Expected<int64_t> aux_bytes_per_page(const flow::FlowIR& ir, const flow::ShapeEnv& env,
                                     int64_t elem_bytes);

}  // namespace vortex::compiler
