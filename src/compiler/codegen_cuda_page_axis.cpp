// CUDA codegen, kernels over whole rows: page-axis ops (Softmax / Normalize / Conv1d over the
// pages, reductions with dim=0), the streaming flow's scores, the commit of deferred Saves, the
// planner's rows kernel with the flow's budget policy, and the constant arrays (Parameter values,
// Conv1d weights).
#include <string>

#include "codegen_cuda_detail.h"
#include "vortex/core/check.h"
#include "vortex/flow/op_catalogue.h"
#include "vortex/flow/policy.h"

namespace vortex::compiler::cuda_detail {
namespace {

using flow::OpKind;
using Mode = BodyEmitter::Mode;

std::string num(int64_t v) { return std::to_string(v); }

const std::string kThreads = std::to_string(kPageAxisThreads);

// The loop over the worklist of a row kernel; `first_only` keeps one CTA per row (the one that
// got the row's first chunk).
std::string row_loop_head(bool first_only) {
  std::string k;
  k += "  const int vx_tid = threadIdx.x;\n";
  k += "  const int vx_items = min(*a.work_count, a.work_capacity);\n";
  k += "  for (int vx_item = blockIdx.x; vx_item < vx_items; vx_item += gridDim.x) {\n";
  k += "    const int2 vx_it = a.work_items[vx_item];\n";
  if (first_only) k += "    if (vx_it.y != a.bos) continue;  // one CTA per row: its first chunk\n";
  k += "    const VxRow vx_r = vx_row_of(a, vx_it.x);\n";
  k += "    const int vx_row = vx_r.row, vx_h = vx_r.h;\n";
  k += "    const int* const vx_pages = vx_r.pages;  // logical -> physical page\n";
  k += "    const long long vx_rp = vx_r.rp;         // row page space of page 0\n";
  k += "    const bool vx_first = true;\n";
  k += "    (void)vx_row; (void)vx_h; (void)vx_pages; (void)vx_rp; (void)vx_first;\n";
  return k;
}

std::string pages_loop(const std::string& var) {
  return "for (int " + var + " = vx_lo + vx_tid; " + var + " < vx_hi; " + var + " += " + kThreads +
         ")";
}

}  // namespace

std::string emit_page_axis_kernel(const SideInfo& si, const CudaCodegenOptions& opt, int32_t group,
                                  CudaKernelSpec* spec) {
  const SidePlan& plan = *si.plan;
  const auto& g = plan.groups[static_cast<size_t>(group)];
  VORTEX_CHECK(g.boundary && g.steps.size() == 1);
  const PlanStep& st = plan.steps[static_cast<size_t>(g.steps[0])];
  BodyEmitter em(si, opt, Mode::kPageAxis, group);
  const int32_t x = st.inputs[0];
  const flow::TensorType& t = st.type;
  const int64_t tile = t.tile_elems(), d1 = t.d1;
  const std::string X = em.elem(x, "vs", "vi", "vj");
  const std::string store = em.global_store(st.value, "vs", "ve", "vr");

  spec->name = "vx_indexer_g" + num(group);
  spec->kind = CudaKernelKind::kPageAxis;
  spec->group = group;
  spec->threads = kPageAxisThreads;
  spec->smem_bytes = 0;
  spec->what = "page-axis group " + num(group) + ": %v" + num(st.value) + " = " +
               std::string(flow::op_info(st.op).name);

  std::string k = "// " + spec->what + " " + t.to_string() + "\n";
  k += "extern \"C\" __global__ void __launch_bounds__(" + kThreads + ") " + spec->name +
       "(const VxArgs a) {\n  vx_pdl_enter();\n";
  // Slots of the tile are processed V at a time (registers per slot, one block reduction for
  // all V): fewer passes over the row and fewer barriers.
  int64_t v = 1;
  for (int64_t c : {8, 4, 2}) {
    if (st.op != OpKind::kConv1d && tile % c == 0) {
      v = c;
      break;
    }
  }
  const std::string V = num(v);
  if (st.op != OpKind::kConv1d) {
    k += "  __shared__ float vx_red[32 * " + V + "];  // block reductions, " + V + " slots\n";
  }
  k += row_loop_head(true);
  k += "    const int vx_lo = a.bos, vx_hi = vx_r.end;  // candidates [bos, n - eos)\n";
  k += "    for (int ve0 = 0; ve0 < " + num(tile) + "; ve0 += " + V + ") {\n";
  // `body` once per slot vu of the group (ve, vi, vj defined), unrolled.
  auto per_slot = [&](const std::string& body, const std::string& indent) {
    std::string o = "#pragma unroll\n" + indent + "for (int vu = 0; vu < " + V + "; ++vu) {\n";
    o += indent + "  const int ve = ve0 + vu;\n";
    o += indent +
         (d1 == 1 ? std::string("  const int vi = ve, vj = 0;\n")
                  : "  const int vi = ve / " + num(d1) + ", vj = ve - vi * " + num(d1) + ";\n");
    o += indent + "  (void)vi; (void)vj;\n";
    o += indent + "  " + body + "\n" + indent + "}\n";
    return o;
  };
  auto init = [&](const std::string& name, const std::string& value) {
    return "      float " + name + "[" + V + "];\n#pragma unroll\n      for (int vu = 0; vu < " +
           V + "; ++vu) " + name + "[vu] = " + value + ";\n";
  };
  const std::string loop = "      " + pages_loop("vs") + " {\n";
  switch (st.op) {
    case OpKind::kSoftmax: {
      const std::string sx = "(" + flt(st.attrs.scale) + " * " + X + ")";
      k += init("vm", "-VX_INF") + init("vsum", "0.0f");
      k += loop + per_slot("vm[vu] = vx_max(vm[vu], " + sx + ");", "        ") + "      }\n";
      k += "      vx_block_n<VxMax, " + V + ">(vm, vx_red);\n";
      k += loop + per_slot("vsum[vu] += expf(" + sx + " - vm[vu]);", "        ") + "      }\n";
      k += "      vx_block_n<VxSum, " + V + ">(vsum, vx_red);\n";
      k += loop +
           per_slot("const float vr = expf(" + sx + " - vm[vu]) / vsum[vu];\n          " + store,
                    "        ") +
           "      }\n";
      break;
    }
    case OpKind::kNormalize:
      k += init("vsum", "0.0f");
      k += loop + per_slot("vsum[vu] += " + X + ";", "        ") + "      }\n";
      k += "      vx_block_n<VxSum, " + V + ">(vsum, vx_red);\n";
      k += loop +
           per_slot("const float vr = " + X + " / vsum[vu];\n          " + store, "        ") +
           "      }\n";
      break;
    case OpKind::kConv1d: {
      const auto& w = st.attrs.tensor.shape;  // [K, wa, wb]
      const int64_t K = w[0], wa = w[1], wb = w[2];
      const std::string wi = wa == 1 ? "0" : "vi", wj = wb == 1 ? "0" : "vj";
      k += "      const int ve = ve0;\n";
      k += d1 == 1 ? "      const int vi = ve, vj = 0;\n"
                   : "      const int vi = ve / " + num(d1) + ", vj = ve - vi * " + num(d1) + ";\n";
      k += "      (void)vi; (void)vj;\n";
      k += loop;
      k += "        float vacc = 0.0f;\n";
      k += "        for (int vt = 0; vt < " + num(K) + "; ++vt) {\n";
      k += "          const int vsrc = vs + vt - " + num(K / 2) + ";\n";
      k += "          if (vsrc < vx_lo || vsrc >= vx_hi) continue;\n";
      k += "          vacc = vacc + vx_i" + num(st.value) + "[(vt * " + num(wa) + " + " + wi +
           ") * " + num(wb) + " + " + wj + "] * " + em.elem(x, "vsrc", "vi", "vj") + ";\n";
      k += "        }\n";
      k += "        const float vr = vacc;\n";
      k += "        " + store + "\n      }\n";
      break;
    }
    case OpKind::kSum:
    case OpKind::kMean:
    case OpKind::kMax:
    case OpKind::kMin:
    case OpKind::kL2Norm: {
      const bool mx = st.op == OpKind::kMax, mn = st.op == OpKind::kMin;
      const bool l2 = st.op == OpKind::kL2Norm;
      k += init("vacc", mx ? "-VX_INF" : mn ? "VX_INF" : "0.0f");
      const std::string fold = mx   ? "vx_max(vacc[vu], vx)"
                               : mn ? "vx_min(vacc[vu], vx)"
                               : l2 ? "vacc[vu] + vx * vx"
                                    : "vacc[vu] + vx";
      k += loop +
           per_slot("const float vx = " + X + ";\n          vacc[vu] = " + fold + ";", "        ") +
           "      }\n";
      k += std::string("      vx_block_n<") +
           (mx   ? "VxMax"
            : mn ? "VxMin"
                 : "VxSum") +
           ", " + V + ">(vacc, vx_red);\n";
      k += "      if (vx_tid == 0) {\n        const int vs = 0;\n        (void)vs;\n";
      const std::string finish = st.op == OpKind::kMean ? "vacc[vu] / (float)(vx_hi - vx_lo)"
                                 : l2                   ? "sqrtf(vacc[vu])"
                                                        : "vacc[vu]";
      k += per_slot("const float vr = " + finish + ";\n          " + store, "        ");
      k += "      }\n";
      break;
    }
    default:
      VORTEX_CHECK_MSG(false, flow::op_info(st.op).name << " is not a page-axis op");
  }
  k += "    }\n  }\n}\n";
  return k;
}

std::string emit_streaming_kernel(CudaKernelSpec* spec) {
  spec->name = "vx_streaming_scores";
  spec->kind = CudaKernelKind::kStreamingScores;
  spec->threads = kPageAxisThreads;
  spec->what = "streaming: score = logical page index (the most recent pages win)";
  std::string k = "// " + spec->what + "\n";
  k += "extern \"C\" __global__ void __launch_bounds__(" + kThreads +
       ") vx_streaming_scores(const VxArgs a) {\n  vx_pdl_enter();\n";
  k += row_loop_head(false);
  k += "    const int vx_lo = vx_it.y, vx_hi = min(vx_it.y + a.chunk_pages, vx_r.end);\n";
  k += "    " + pages_loop("vs") + " a.scores[vx_rp + vs] = (float)vs;\n";
  k += "  }\n}\n";
  return k;
}

std::string emit_commit_kernel(const SideInfo& si, const CudaCodegenOptions& opt, int32_t step,
                               CudaKernelSpec* spec) {
  const SidePlan& plan = *si.plan;
  const PlanStep& st = plan.steps[static_cast<size_t>(step)];
  BodyEmitter em(si, opt, Mode::kPageAxis, -1);
  const int64_t tile = st.type.tile_elems(), d1 = st.type.d1;
  const std::string at = ctype(opt.aux_dtype);
  spec->name = "vx_commit_v" + num(st.value);
  spec->kind = CudaKernelKind::kSaveCommit;
  spec->threads = kPageAxisThreads;
  spec->what = "commit Save %v" + num(st.inputs[0]) + " -> field '" +
               plan.fields[static_cast<size_t>(st.write_field)].name +
               "' (read by a later kernel of this step)";
  std::string k = "// " + spec->what + "\n";
  k += "extern \"C\" __global__ void __launch_bounds__(" + kThreads + ") " + spec->name +
       "(const VxArgs a) {\n  vx_pdl_enter();\n";
  k += row_loop_head(false);
  k += "    const int vx_lo = vx_it.y, vx_hi = min(vx_it.y + a.chunk_pages, vx_r.end);\n";
  k += "    for (int vo = vx_tid; vo < (vx_hi - vx_lo) * " + num(tile) + "; vo += " + kThreads +
       ") {\n";
  k += "      const int vs = vx_lo + vo / " + num(tile) + ", ve = vo % " + num(tile) + ";\n";
  k += d1 == 1 ? "      const int vi = ve, vj = 0;\n"
               : "      const int vi = ve / " + num(d1) + ", vj = ve - vi * " + num(d1) + ";\n";
  k += "      (void)vi; (void)vj;\n";
  k += "      vx_st(reinterpret_cast<" + at + "*>(a.field[" + num(st.write_field) +
       "]) + ((long long)vx_pages[vs] * a.num_kv_heads + vx_h) * " + num(tile) + " + ve, " +
       em.elem(st.inputs[0], "vs", "vi", "vj") + ");\n";
  k += "    }\n  }\n}\n";
  return k;
}

std::string emit_plan_rows_kernel(const flow::PolicyExpr* policy) {
  std::string k = flow::emit_cuda_budget_function(policy, "vx_budget");
  k += R"(
// The planner's rows kernel with this budget policy (vortex::gpu::plan_rows_kernel, same packing):
// packed[r] = count << 32 | worklist chunks; totals[2] counts sparse rows.
extern "C" __global__ void vx_plan_rows(const int* page_indptr, int batch, int num_kv_heads,
                                        int topk_val, float topk_ratio, int bos, int eos,
                                        int layer, int chunk_pages, unsigned long long* packed,
                                        int* totals) {
  vx_pdl_enter();
  const int rows = batch * num_kv_heads;
  const int r = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (r > rows) return;
  if (r == rows) {
    packed[r] = 0ull;
    return;
  }
  const int b = r / num_kv_heads;
  const int n = page_indptr[b + 1] - page_indptr[b];
  const long long budget = vx_budget(n, layer, topk_val, topk_ratio, bos, eos);
  const bool dense = (long long)n <= budget;
  int count = n, chunks = 0;
  if (!dense) {
    count = (int)budget;
    const int eos_eff = eos > 1 ? eos : 1;
    chunks = (n - bos - eos_eff + chunk_pages - 1) / chunk_pages;
  }
  packed[r] = ((unsigned long long)count << 32) | (unsigned long long)(unsigned)chunks;
  if (!dense) atomicAdd(&totals[2], 1);
}
)";
  return k;
}

std::string emit_constants(const SideInfo& si, const char* prefix) {
  std::string out;
  for (const PlanStep& st : si.plan->steps) {
    if (st.op != OpKind::kParameter && st.op != OpKind::kConv1d) continue;
    const auto& t = st.attrs.tensor;
    std::string shape;
    for (int64_t d : t.shape) shape += (shape.empty() ? "" : ", ") + num(d);
    out += "// %v" + num(st.value) + " " + std::string(flow::op_info(st.op).name) +
           (st.op == OpKind::kConv1d ? " weight" : " value") + " [" + shape + "]\n";
    out += "__device__ const float vx_" + std::string(prefix) + num(st.value) + "[" +
           num(static_cast<int64_t>(t.data.size())) + "] = {";
    for (size_t i = 0; i < t.data.size(); ++i) {
      out += (i % 8 == 0 ? "\n    " : " ") + flt(t.data[i]) + (i + 1 < t.data.size() ? "," : "");
    }
    out += "};\n";
  }
  return out;
}

}  // namespace vortex::compiler::cuda_detail
