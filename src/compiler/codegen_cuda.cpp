// CUDA codegen, the translation unit: the prelude every generated module starts with (bf16
// conversions, the ops' scalar helpers with the CPU oracle's semantics, lane / block reductions,
// cp.async, the argument block and worklist cursors), then the kernels of both sides in run order
// and the planner's rows kernel with the flow's budget policy.
#include "vortex/compiler/codegen_cuda.h"

#include <algorithm>
#include <cstddef>
#include <string>

#include "codegen_cuda_detail.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::compiler {
namespace {

using cuda_detail::SideInfo;

std::string num(int64_t v) { return std::to_string(v); }

constexpr const char* kPrelude =
    R"(// ---- prelude (self-contained: no includes; bf16 is stored as raw 16-bit words)
#define VX_INF __int_as_float(0x7f800000)

// Programmatic dependent launch (vortex::gpu::pdl_enter): the first statement of every kernel.
// Waits for the grids this one depends on, then lets the next kernel of the stream launch.
__device__ __forceinline__ void vx_pdl_enter() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

__device__ __forceinline__ float vx_cvt(float x) { return x; }
__device__ __forceinline__ float vx_cvt(unsigned short x) {
  return __uint_as_float(((unsigned)x) << 16);
}
__device__ __forceinline__ void vx_st(float* p, float x) { *p = x; }
// fp32 -> bf16, round to nearest even, NaN stays NaN (vortex::f32_to_bf16).
__device__ __forceinline__ void vx_st(unsigned short* p, float x) {
  unsigned u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    *p = (unsigned short)((u >> 16) | 0x0040u);
    return;
  }
  u += 0x7fffu + ((u >> 16) & 1u);
  *p = (unsigned short)(u >> 16);
}

// Scalar ops with the CPU oracle's semantics (std::max / std::min; FLOW_SPEC unary forms).
__device__ __forceinline__ float vx_max(float a, float b) { return a < b ? b : a; }
__device__ __forceinline__ float vx_min(float a, float b) { return b < a ? b : a; }
__device__ __forceinline__ float vx_relu(float x, float a, float b) { return x >= a ? x : b; }
__device__ __forceinline__ float vx_sigmoid(float x, float a, float b) {
  return 1.0f / (1.0f + expf(b * x + a));
}
__device__ __forceinline__ float vx_silu(float x, float a, float b) {
  return x / (1.0f + expf(b * x + a));
}
__device__ __forceinline__ float vx_affine(float x, float a, float b) { return b * x + a; }
__device__ __forceinline__ float vx_abs(float x, float a, float b) { return fabsf(b * x + a); }
__device__ __forceinline__ float vx_log(float x, float a, float b) { return logf(b * x + a); }
__device__ __forceinline__ float vx_exp(float x, float a, float b) { return expf(b * x + a); }

// Reductions over groups of L consecutive lanes (L a power of two <= 32; the whole warp calls).
struct VxSum {
  static __device__ __forceinline__ float id() { return 0.0f; }
  static __device__ __forceinline__ float op(float a, float b) { return a + b; }
};
struct VxMax {
  static __device__ __forceinline__ float id() { return -VX_INF; }
  static __device__ __forceinline__ float op(float a, float b) { return vx_max(a, b); }
};
struct VxMin {
  static __device__ __forceinline__ float id() { return VX_INF; }
  static __device__ __forceinline__ float op(float a, float b) { return vx_min(a, b); }
};
template <class Op, int L>
__device__ __forceinline__ float vx_lanes(float v) {
#pragma unroll
  for (int m = L / 2; m > 0; m >>= 1) v = Op::op(v, __shfl_xor_sync(0xffffffffu, v, m));
  return v;
}
template <int L> __device__ __forceinline__ float vx_lanes_sum(float v) { return vx_lanes<VxSum, L>(v); }
template <int L> __device__ __forceinline__ float vx_lanes_max(float v) { return vx_lanes<VxMax, L>(v); }
template <int L> __device__ __forceinline__ float vx_lanes_min(float v) { return vx_lanes<VxMin, L>(v); }
// N block-wide reductions at once, results in every thread (every thread calls; red: 32 * N
// floats).
template <class Op, int N>
__device__ __forceinline__ void vx_block_n(float* v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
#pragma unroll
  for (int u = 0; u < N; ++u) {
    v[u] = vx_lanes<Op, 32>(v[u]);
    if (lane == 0) red[u * 32 + warp] = v[u];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int u = 0; u < N; ++u) {
      const float x = vx_lanes<Op, 32>(lane < warps ? red[u * 32 + lane] : Op::id());
      if (lane == 0) red[u * 32] = x;
    }
  }
  __syncthreads();
#pragma unroll
  for (int u = 0; u < N; ++u) v[u] = red[u * 32];
  __syncthreads();
}

// Asynchronous 16-byte global -> shared copies (sm_80+), completed in commit groups.
__device__ __forceinline__ void vx_cp16(void* smem, const void* gmem) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void vx_cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void vx_cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
)";

constexpr const char* kRowHelpers = R"(
// A row (request b, kv head h) of the batch: its pages, the row page space of its page 0, the end
// of its candidates [bos, n - eos).
struct VxRow {
  int row, h, n, end;
  const int* pages;
  long long rp;
};
__device__ __forceinline__ VxRow vx_row_of(const VxArgs& a, int row) {
  VxRow r;
  r.row = row;
  const int b = row / a.num_kv_heads;
  r.h = row - b * a.num_kv_heads;
  const int pb = a.page_indptr[b];
  r.n = a.page_indptr[b + 1] - pb;
  r.pages = a.page_indices + pb;
  r.rp = (long long)pb * a.num_kv_heads + (long long)r.h * r.n;
  r.end = r.n - a.eos;
  return r;
}
// A persistent CTA's position in the worklist: work item, and the page sub-batch [j0, j0 + np).
struct VxCursor {
  bool valid;
  int item, row, h, first, last, j0, np;
  const int* pages;
  long long rp;
};
__device__ __forceinline__ void vx_cursor_item(const VxArgs& a, VxCursor* c, int item, int items,
                                               int sb) {
  c->item = item;
  c->valid = item < items;
  if (!c->valid) return;
  const int2 it = a.work_items[item];
  const VxRow r = vx_row_of(a, it.x);
  c->row = r.row;
  c->h = r.h;
  c->pages = r.pages;
  c->rp = r.rp;
  c->first = it.y;
  c->last = min(it.y + a.chunk_pages, r.end);
  c->j0 = it.y;
  c->np = min(sb, c->last - c->j0);
}
__device__ __forceinline__ void vx_cursor_next(const VxArgs& a, VxCursor* c, int items, int sb) {
  if (c->j0 + sb < c->last) {
    c->j0 += sb;
    c->np = min(sb, c->last - c->j0);
    return;
  }
  vx_cursor_item(a, c, c->item + (int)gridDim.x, items, sb);
}
)";

static_assert(offsetof(CudaKernelArgs, field) == 80 &&
                  offsetof(CudaKernelArgs, buf) == 80 + 8 * kCudaMaxFields &&
                  offsetof(CudaKernelArgs, batch) == 80 + 8 * (kCudaMaxFields + kCudaMaxBuffers) &&
                  sizeof(CudaKernelArgs) == 80 + 8 * (kCudaMaxFields + kCudaMaxBuffers) + 40,
              "CudaKernelArgs must keep the layout the generated VxArgs declares");

// The argument block, with its layout pinned to CudaKernelArgs.
std::string args_struct() {
  std::string s = R"(
// The argument block of every kernel (vortex::compiler::CudaKernelArgs).
struct VxArgs {
  const void* q;            // [B, H_q, D]
  const int* page_indptr;   // [B + 1]
  const int* page_indices;  // [page_indptr[B]]
  const int2* work_items;   // [work_capacity] (row, first candidate page)
  const int* work_count;    // [1]
  float* scores;            // row page space
  const int* cache_pages;   // cache flow: completed pages
  const int* cache_count;   // cache flow: [1] or null
  const void* k;            // [num_pages, H_kv, P, D]
  const void* v;            // [num_pages, H_kv, P, D]
)";
  s += "  void* field[" + num(kCudaMaxFields) + "];  // [num_pages, H_kv, r, c]\n";
  s += "  float* buf[" + num(kCudaMaxBuffers) + "];  // scratch\n";
  s += "  int batch, num_q_heads, num_kv_heads, layer, work_capacity, chunk_pages, bos, eos;\n";
  s += "  int cache_max_pages, reserved;\n};\n";
  // Ten pointers, the two arrays, then ints: one layout under the host and device ABIs (pinned
  // on the host below; NVRTC has no offsetof, the size pins it there).
  s += "static_assert(sizeof(VxArgs) == " + num(sizeof(CudaKernelArgs)) + ", \"VxArgs layout\");\n";
  return s;
}

Status check_dtype(DType t, const char* what) {
  if (t == DType::kF32 || t == DType::kBF16) return Status::ok();
  return unsupported(std::string("CUDA flow codegen: ") + what + " dtype " +
                     std::string(dtype_name(t)) + " (f32 or bf16)");
}

int64_t param_layers(const SidePlan& plan, int64_t current) {
  for (const PlanStep& st : plan.steps) {
    if (st.op != flow::OpKind::kParameter || st.type.layers == 0) continue;
    current = current == 0 ? st.type.layers : std::min(current, st.type.layers);
  }
  return current;
}

}  // namespace

Expected<CudaFlowSource> emit_cuda(const Plan& plan, const CudaCodegenOptions& opt) {
  VORTEX_RETURN_IF_ERROR(check_dtype(opt.q_dtype, "q"));
  VORTEX_RETURN_IF_ERROR(check_dtype(opt.kv_dtype, "K/V"));
  VORTEX_RETURN_IF_ERROR(check_dtype(opt.aux_dtype, "aux field"));
  if (opt.reduction_lane_elems < 1 || opt.tile_smem_budget < 1024) {
    return invalid_argument(
        "CUDA flow codegen: reduction_lane_elems must be >= 1 and "
        "tile_smem_budget >= 1024 bytes");
  }
  CudaFlowSource out;
  out.flow = plan.flow;
  out.mode = plan.mode;
  out.env = plan.env;
  out.q_dtype = opt.q_dtype;
  out.kv_dtype = opt.kv_dtype;
  out.aux_dtype = opt.aux_dtype;
  out.uses_save = plan.uses_save;
  for (const PlanField& f : plan.indexer.fields) out.fields.push_back({f.name, f.rows, f.cols});
  if (out.fields.size() > static_cast<size_t>(kCudaMaxFields)) {
    return unsupported("flow '" + plan.flow + "' declares " +
                       num(static_cast<int64_t>(out.fields.size())) +
                       " fields; the CUDA backend addresses at most " + num(kCudaMaxFields));
  }

  std::string kernels;
  if (plan.mode == flow::FlowMode::kSparse) {
    const SideInfo cache = cuda_detail::analyse(plan.cache);
    const SideInfo idx = cuda_detail::analyse(plan.indexer);
    if (idx.buffers.size() > static_cast<size_t>(kCudaMaxBuffers)) {
      return unsupported("flow '" + plan.flow + "' passes " +
                         num(static_cast<int64_t>(idx.buffers.size())) +
                         " values between kernels; the CUDA backend holds at most " +
                         num(kCudaMaxBuffers) + " (fuse more ops between page-axis ops)");
    }
    out.buffers = idx.buffers;
    std::string consts =
        cuda_detail::emit_constants(cache, "c") + cuda_detail::emit_constants(idx, "i");
    if (!consts.empty()) kernels += "\n// ---- constants\n" + consts;
    if (!plan.cache.groups.empty()) {
      CudaKernelSpec spec;
      VORTEX_ASSIGN_OR_RETURN(std::string k,
                              cuda_detail::emit_fused_kernel(cache, opt, 0, {}, &spec));
      kernels += "\n// ---- cache flow (once per completed page and kv head)\n" + k;
      out.cache_kernels.push_back(std::move(spec));
    }
    kernels += "\n// ---- indexer (every decode step, over the planner's worklist)\n";
    for (size_t g = 0; g < plan.indexer.groups.size(); ++g) {
      const PlanGroup& grp = plan.indexer.groups[g];
      CudaKernelSpec spec;
      if (grp.boundary) {
        const PlanStep& st = plan.indexer.steps[static_cast<size_t>(grp.steps[0])];
        if (st.op == flow::OpKind::kTopK || st.op == flow::OpKind::kApproxTopK) {
          out.tolerance = static_cast<float>(st.attrs.tolerance);
          continue;  // the runtime's radix top-k
        }
        kernels += cuda_detail::emit_page_axis_kernel(idx, opt, static_cast<int32_t>(g), &spec);
      } else {
        VORTEX_ASSIGN_OR_RETURN(std::string k, cuda_detail::emit_fused_kernel(
                                                   idx, opt, static_cast<int32_t>(g), {}, &spec));
        kernels += k;
      }
      out.indexer_kernels.push_back(std::move(spec));
    }
    if (idx.is_source(plan.indexer.score)) {  // topK straight over a field
      CudaKernelSpec spec;
      VORTEX_ASSIGN_OR_RETURN(
          std::string k, cuda_detail::emit_fused_kernel(idx, opt, -1, {plan.indexer.score}, &spec));
      kernels += k;
      out.indexer_kernels.push_back(std::move(spec));
    }
    for (int32_t s : idx.deferred_saves) {
      CudaKernelSpec spec;
      kernels += cuda_detail::emit_commit_kernel(idx, opt, s, &spec);
      out.indexer_kernels.push_back(std::move(spec));
    }
    out.param_layers = param_layers(plan.indexer, param_layers(plan.cache, 0));
  } else if (plan.mode == flow::FlowMode::kStreaming) {
    CudaKernelSpec spec;
    kernels += "\n// ---- indexer\n" + cuda_detail::emit_streaming_kernel(&spec);
    out.indexer_kernels.push_back(std::move(spec));
  }
  if (plan.mode != flow::FlowMode::kDense) {
    kernels += "\n// ---- planner\n" + cuda_detail::emit_plan_rows_kernel(opt.policy);
    out.plan_rows_kernel = "vx_plan_rows";
  }

  std::string& s = out.source;
  s += "// Generated by the vortex flow compiler (CUDA backend) -- do not edit.\n";
  s += "// flow '" + plan.flow + "' (" + flow::mode_name(plan.mode) + ") at " +
       plan.env.to_string() + "; q " + std::string(dtype_name(opt.q_dtype)) + ", K/V " +
       std::string(dtype_name(opt.kv_dtype)) + ", aux fields " +
       std::string(dtype_name(opt.aux_dtype)) + "\n";
  for (size_t f = 0; f < out.fields.size(); ++f) {
    s += "// field " + num(static_cast<int64_t>(f)) + " '" + out.fields[f].name + "' [" +
         num(out.fields[f].rows) + ", " + num(out.fields[f].cols) + "]\n";
  }
  for (const auto* list : {&out.cache_kernels, &out.indexer_kernels}) {
    for (const CudaKernelSpec& k : *list) {
      s += "// kernel " + k.name + ": " + num(k.threads) + " threads, " + num(k.smem_bytes) +
           " B shared" + (k.pages_per_batch ? ", " + num(k.pages_per_batch) + " pages/batch" : "") +
           "\n";
    }
  }
  for (size_t b = 0; b < out.buffers.size(); ++b) {
    s += "// buffer " + num(static_cast<int64_t>(b)) + ": %v" + num(out.buffers[b].value) + " " +
         (out.buffers[b].per_page ? "per page" : "per row") + ", " + num(out.buffers[b].tile) +
         " floats\n";
  }
  if (plan.mode == flow::FlowMode::kSparse) {
    s += std::string("// terminal: ") + (out.tolerance > 0 ? "approxTopK(" : "topK(") +
         (out.tolerance > 0 ? cuda_detail::flt(out.tolerance) : "") +
         ") by the runtime's radix "
         "select\n";
  }
  s += "\n";
  s += kPrelude;
  s += args_struct();
  s += kRowHelpers;
  s += kernels;
  return out;
}

std::string cuda_module_key(std::string_view source, std::string_view arch,
                            const std::vector<std::string>& flags,
                            std::string_view compiler_version) {
  std::string msg = "vortex-cuda-module-v1";
  msg += '\0';
  msg += source;
  msg += '\0';
  msg += arch;
  for (const std::string& f : flags) {
    msg += '\0';
    msg += f;
  }
  msg += '\0';
  msg += compiler_version;
  return sha256_hex(msg);
}

}  // namespace vortex::compiler
