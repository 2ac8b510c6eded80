// Budget policies of the sparse planner as host/device functors: the default
// max(topk_val + bos + eos, floor(n * topk_ratio)), and the hook through which a generated policy
// expression (the flow module's policy language emitted as CUDA source) replaces it: any type with
//   VORTEX_HD int64_t operator()(const BudgetInputs&) const
// Plain C++ (compiled by the CPU tests and by NVRTC) plus CUDA qualifiers.
#pragma once

#include <stdint.h>

#include "vortex/kernels/cuda/host_device.h"

namespace vortex::gpu {

/// The policy's parameters that do not depend on the row (a POD passed to kernels by value).
struct BudgetArgs {
  int32_t topk_val = 30;
  float topk_ratio = 0.0f;
  int32_t bos = 1;
  int32_t eos = 1;
};

/// Everything a policy may read (the variables of the policy language).
struct BudgetInputs {
  int64_t pages = 0;  ///< n = ceil(len / P)
  int32_t topk_val = 0;
  float topk_ratio = 0.0f;
  int32_t bos = 0;
  int32_t eos = 0;
  int32_t layer = 0;
};

/// max(topk_val + bos + eos, floor(n * topk_ratio)); the product in double, as on the host.
struct DefaultBudgetPolicy {
  VORTEX_HD int64_t operator()(const BudgetInputs& in) const {
    const int64_t fixed = static_cast<int64_t>(in.topk_val) + in.bos + in.eos;
    const double scaled = static_cast<double>(in.pages) * static_cast<double>(in.topk_ratio);
    const int64_t ratio = scaled > 0.0 ? static_cast<int64_t>(scaled) : 0;  // floor for >= 0
    return fixed > ratio ? fixed : ratio;
  }
};

/// The eos the selection really reserves: the partial last page has no summary and is always
/// selected, even when eos = 0.
VORTEX_HD int32_t effective_eos(int32_t eos) { return eos > 1 ? eos : 1; }

/// Per-row plan shared by the device planner and its CPU check: count of selected pages (n when
/// dense) and the number of worklist chunks of the row's candidates (0 when dense).
struct RowPlan {
  int64_t budget = 0;
  int32_t count = 0;
  int32_t chunks = 0;
  bool dense = true;
};

template <class Policy>
VORTEX_HD RowPlan plan_row(const Policy& policy, int32_t n, const BudgetArgs& a, int32_t layer,
                           int32_t chunk_pages) {
  BudgetInputs in;
  in.pages = n;
  in.topk_val = a.topk_val;
  in.topk_ratio = a.topk_ratio;
  in.bos = a.bos;
  in.eos = a.eos;
  in.layer = layer;
  int64_t budget = policy(in);
  const int64_t floor_budget = static_cast<int64_t>(a.bos) + a.eos + 1;  // clamp (BudgetParams)
  if (budget < floor_budget) budget = floor_budget;
  RowPlan r;
  r.budget = budget;
  r.dense = n <= budget;
  if (r.dense) {
    r.count = n;
    r.chunks = 0;
  } else {
    r.count = static_cast<int32_t>(budget);
    const int32_t candidates = n - a.bos - effective_eos(a.eos);
    r.chunks = (candidates + chunk_pages - 1) / chunk_pages;
  }
  return r;
}

}  // namespace vortex::gpu
