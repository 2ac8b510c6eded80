// CudaFlowRunner: a flow's generated kernels on one device. create() lowers the flow at the
// model's shapes, generates its CUDA, compiles it (or loads it from the disk cache), loads the
// module, sizes persistent grids from the occupancy of each kernel and allocates the scratch
// buffers; the per-step calls fill one argument block and launch.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <regex>
#include <string>
#include <vector>

#include "cuda_module.h"
#include "vortex/compiler/passes.h"
#include "vortex/compiler/program.h"
#include "vortex/core/cuda_allocator.h"
#include "vortex/core/cuda_check.h"
#include "vortex/flow/policy.h"
#include "vortex/kernels/cuda/flow_runtime.h"
#include "vortex/kernels/cuda/row_topk.h"

namespace vortex::gpu {
namespace {

using compiler::CudaKernelArgs;
using compiler::CudaKernelSpec;

struct Kernel {
  CudaKernelSpec spec;
  CUfunction fn = nullptr;
  int resident = 1;  // CTAs resident on the whole device (persistent grid size)
};

std::string dtype_str(DType t) { return std::string(dtype_name(t)); }

}  // namespace

struct CudaFlowRunner::Impl {
  flow::SparseConfig sparse;  // keeps the program (and policy) alive
  CudaFlowRunnerConfig config;
  compiler::CudaFlowSource src;
  CompiledModule compiled;
  detail::CudaModule module;
  std::vector<Kernel> cache_kernels, indexer_kernels;
  CUfunction plan_rows = nullptr;
  std::vector<Buffer> buffers;  // src.buffers
  Buffer scores;                // row page space
  BudgetArgs args;
  bool layer_dependent = false;  // the budget policy reads `layer`

  std::string where() const { return "flow '" + src.flow + "' (CUDA)"; }

  // Fills the cache-dependent part of the argument block for `layer`.
  Status bind_cache(const KVCache& cache, int32_t layer, CudaKernelArgs* a) const {
    const KVCacheConfig& cfg = cache.config();
    if (layer < 0 || layer >= cfg.num_layers) {
      return invalid_argument(where() + ": layer " + std::to_string(layer) + " is outside 0.." +
                              std::to_string(cfg.num_layers - 1));
    }
    if (cfg.page_size != src.env.block_size || cfg.head_dim != src.env.head_dim ||
        cfg.num_kv_heads != config.num_kv_heads || cfg.kv_dtype != config.kv_dtype) {
      return invalid_argument(
          where() + " was compiled for P=" + std::to_string(src.env.block_size) +
          " D=" + std::to_string(src.env.head_dim) +
          " H_kv=" + std::to_string(config.num_kv_heads) + " " + dtype_str(config.kv_dtype) +
          " K/V, but the KV cache has P=" + std::to_string(cfg.page_size) +
          " D=" + std::to_string(cfg.head_dim) + " H_kv=" + std::to_string(cfg.num_kv_heads) + " " +
          dtype_str(cfg.kv_dtype));
    }
    if (src.param_layers > 0 && layer >= src.param_layers) {
      return invalid_argument(where() + " has per-layer Parameters for " +
                              std::to_string(src.param_layers) + " layers but runs at layer " +
                              std::to_string(layer) + "; give one slice per layer of the model");
    }
    const KVLayerView lv = cache.layer(layer);
    a->k = lv.k;
    a->v = lv.v;
    for (size_t f = 0; f < src.fields.size(); ++f) {
      const std::string name = src.flow + "/" + src.fields[f].name;
      const int32_t i = cache.field_index(name);
      if (i < 0) {
        return invalid_argument("the KV cache has no aux field '" + name +
                                "'; build its config with flow_aux_fields() of every flow");
      }
      const AuxFieldSpec& spec = cfg.aux_fields[static_cast<size_t>(i)];
      if (spec.rows != src.fields[f].rows || spec.cols != src.fields[f].cols ||
          spec.dtype != config.aux_dtype) {
        return invalid_argument(
            "KV cache field '" + name + "' is [" + std::to_string(spec.rows) + ", " +
            std::to_string(spec.cols) + "] " + dtype_str(spec.dtype) + " but " + where() +
            " needs [" + std::to_string(src.fields[f].rows) + ", " +
            std::to_string(src.fields[f].cols) + "] " + dtype_str(config.aux_dtype));
      }
      const AuxFieldView av = cache.aux(layer, i);
      if (av.data == nullptr) {
        return invalid_argument("layer " + std::to_string(layer) +
                                " keeps no aux fields (KV cache layers_skip) but " + where() +
                                " runs there; list it in BudgetParams::layers_skip too");
      }
      if (reinterpret_cast<uintptr_t>(av.data) % 16 != 0) {
        return invalid_argument("KV cache field '" + name + "' is not 16-byte aligned");
      }
      a->field[f] = av.data;
    }
    if (reinterpret_cast<uintptr_t>(lv.k) % 16 != 0 || reinterpret_cast<uintptr_t>(lv.v) % 16) {
      return invalid_argument("the KV cache's K/V pools are not 16-byte aligned");
    }
    a->num_q_heads = config.num_q_heads;
    a->num_kv_heads = config.num_kv_heads;
    a->layer = layer;
    return Status::ok();
  }
};

CudaFlowRunner::CudaFlowRunner() : impl_(std::make_unique<Impl>()) {}
CudaFlowRunner::~CudaFlowRunner() = default;

Expected<std::unique_ptr<CudaFlowRunner>> CudaFlowRunner::create(const flow::SparseConfig& sparse,
                                                                 const CudaFlowRunnerConfig& c) {
  if (sparse.program == nullptr || flow::flow_is_dense(*sparse.program)) {
    return invalid_argument("CudaFlowRunner: the flow is dense; dense attention needs no runner");
  }
  const flow::FlowProgram& prog = *sparse.program;
  const std::string& name = flow::flow_name(prog);
  if (c.num_kv_heads <= 0 || c.num_q_heads <= 0 || c.num_q_heads % c.num_kv_heads != 0 ||
      c.head_dim <= 0) {
    return invalid_argument("flow '" + name + "': " + std::to_string(c.num_q_heads) +
                            " query heads must be a positive multiple of " +
                            std::to_string(c.num_kv_heads) + " KV heads (head_dim " +
                            std::to_string(c.head_dim) + ")");
  }
  if (c.max_batch <= 0 || c.max_pages_per_request <= 0) {
    return invalid_argument("flow '" + name +
                            "': max_batch and max_pages_per_request must be positive");
  }
  const int32_t P = c.page_size > 0 ? c.page_size : sparse.budget.block_size;
  if (sparse.budget.block_size != P) {
    return invalid_argument("the flow's block_size is " + std::to_string(sparse.budget.block_size) +
                            " but the KV cache pages hold " + std::to_string(P) +
                            " tokens; set BudgetParams::block_size to the page size");
  }
  auto runner = std::unique_ptr<CudaFlowRunner>(new CudaFlowRunner());
  Impl& m = *runner->impl_;
  m.sparse = sparse;
  m.config = c;
  m.config.page_size = P;
  const flow::ShapeEnv env{P, c.head_dim, c.num_q_heads / c.num_kv_heads};
  auto plan = compiler::compile_plan(prog.ir(), env);
  if (!plan) return plan.status().with_context("compiling flow '" + name + "' for CUDA");
  compiler::CudaCodegenOptions opt;
  opt.q_dtype = c.q_dtype;
  opt.kv_dtype = c.kv_dtype;
  opt.aux_dtype = c.aux_dtype;
  opt.policy = sparse.budget.policy.get();
  opt.reduction_lane_elems = std::max(1, c.reduction_lane_elems);
  auto src = compiler::emit_cuda(*plan, opt);
  if (!src) return src.status().with_context("generating CUDA for flow '" + name + "'");
  m.src = std::move(src).value();

  VORTEX_CUDA_RETURN_IF_ERROR(cudaSetDevice(c.device));
  VORTEX_CUDA_RETURN_IF_ERROR(cudaFree(nullptr));  // the primary context is current
  VORTEX_ASSIGN_OR_RETURN(
      m.compiled, compile_cached(m.src.source, "vortex_flow_" + name, CubinCache(c.cache_dir)));
  VORTEX_ASSIGN_OR_RETURN(m.module, detail::CudaModule::load(m.compiled.image));
  int sms = 0;
  VORTEX_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, c.device));
  auto prepare = [&](const CudaKernelSpec& spec) -> Expected<Kernel> {
    Kernel k;
    k.spec = spec;
    VORTEX_ASSIGN_OR_RETURN(k.fn, m.module.function(spec.name));
    if (spec.smem_bytes > 48 * 1024) {
      VORTEX_RETURN_IF_ERROR(detail::set_dynamic_smem(k.fn, spec.smem_bytes));
    }
    VORTEX_ASSIGN_OR_RETURN(int per_sm,
                            detail::resident_ctas_per_sm(k.fn, spec.threads, spec.smem_bytes));
    if (per_sm <= 0) {
      return unsupported("kernel " + spec.name + " of flow '" + name + "' cannot run (" +
                         std::to_string(spec.smem_bytes) + " B shared memory)");
    }
    k.resident = per_sm * sms;
    return k;
  };
  for (const CudaKernelSpec& s : m.src.cache_kernels) {
    VORTEX_ASSIGN_OR_RETURN(Kernel k, prepare(s));
    m.cache_kernels.push_back(k);
  }
  for (const CudaKernelSpec& s : m.src.indexer_kernels) {
    VORTEX_ASSIGN_OR_RETURN(Kernel k, prepare(s));
    m.indexer_kernels.push_back(k);
  }
  VORTEX_ASSIGN_OR_RETURN(m.plan_rows, m.module.function(m.src.plan_rows_kernel));

  VORTEX_ASSIGN_OR_RETURN(Allocator * alloc, cuda_allocator(c.device));
  const int64_t total_pages =
      c.max_total_pages > 0 ? c.max_total_pages : int64_t{c.max_batch} * c.max_pages_per_request;
  const size_t page_slots = static_cast<size_t>(total_pages) * static_cast<size_t>(c.num_kv_heads);
  const size_t row_slots = static_cast<size_t>(c.max_batch) * static_cast<size_t>(c.num_kv_heads);
  for (const compiler::CudaBufferSpec& b : m.src.buffers) {
    const size_t floats = (b.per_page ? page_slots : row_slots) * static_cast<size_t>(b.tile);
    VORTEX_ASSIGN_OR_RETURN(Buffer buf, Buffer::allocate(*alloc, floats * sizeof(float)));
    m.buffers.push_back(std::move(buf));
  }
  VORTEX_ASSIGN_OR_RETURN(m.scores, Buffer::allocate(*alloc, page_slots * sizeof(float)));
  const flow::BudgetParams& b = sparse.budget;
  m.args = BudgetArgs{b.topk_val, b.topk_ratio, b.bos, b.eos};
  if (b.policy != nullptr) {  // the emitted expression names its variables verbatim
    static const std::regex layer_var("\\blayer\\b");
    m.layer_dependent = std::regex_search(b.policy->emit_cuda(), layer_var);
  }
  return runner;
}

const compiler::CudaFlowSource& CudaFlowRunner::generated() const { return impl_->src; }
const CompiledModule& CudaFlowRunner::module() const { return impl_->compiled; }
bool CudaFlowRunner::layer_is_dense(int32_t layer) const {
  return impl_->sparse.budget.layer_is_dense(layer);
}
BudgetArgs CudaFlowRunner::budget_args() const { return impl_->args; }
float CudaFlowRunner::tolerance() const { return impl_->src.tolerance; }
bool CudaFlowRunner::budget_depends_on_layer() const { return impl_->layer_dependent; }
float* CudaFlowRunner::scores() const { return static_cast<float*>(impl_->scores.data()); }

Status CudaFlowRunner::run_cache_flow(const KVCache& cache, int32_t layer, const int32_t* pages,
                                      const int32_t* count, int32_t max_pages,
                                      cudaStream_t stream) {
  Impl& m = *impl_;
  if (m.cache_kernels.empty() || layer_is_dense(layer) || max_pages <= 0) return Status::ok();
  if (layer >= 0 && layer < cache.config().num_layers && !cache.config().layer_has_aux(layer)) {
    return Status::ok();
  }
  if (pages == nullptr) return invalid_argument(m.where() + ": run_cache_flow got no page list");
  CudaKernelArgs a;
  VORTEX_RETURN_IF_ERROR(m.bind_cache(cache, layer, &a));
  a.cache_pages = pages;
  a.cache_count = count;
  a.cache_max_pages = max_pages;
  void* params[] = {&a};
  for (const Kernel& k : m.cache_kernels) {
    const int64_t items = static_cast<int64_t>(max_pages) * m.config.num_kv_heads;
    const int64_t batches = (items + k.spec.pages_per_batch - 1) / k.spec.pages_per_batch;
    const int grid = static_cast<int>(std::min<int64_t>(batches, k.resident));
    VORTEX_RETURN_IF_ERROR(detail::launch(k.fn, grid, k.spec.threads, k.spec.smem_bytes, stream,
                                          params, k.spec.name.c_str()));
  }
  return Status::ok();
}

Status CudaFlowRunner::plan(SparsePlanner& planner, const PageTableView& pt, int32_t layer,
                            cudaStream_t stream) {
  Impl& m = *impl_;
  const PlannerConfig& pc = planner.config();
  if (pc.num_kv_heads != m.config.num_kv_heads) {
    return invalid_argument(m.where() + ": the planner has " + std::to_string(pc.num_kv_heads) +
                            " KV heads, the flow " + std::to_string(m.config.num_kv_heads));
  }
  if (pt.batch_size < 0 || pt.batch_size > pc.max_batch) {
    return invalid_argument(m.where() + ": batch " + std::to_string(pt.batch_size) +
                            " outside [0, planner max_batch " + std::to_string(pc.max_batch) + "]");
  }
  BudgetArgs args = m.args;
  if (args.bos < 0 || args.eos < 0 || args.topk_val < 0) {
    return invalid_argument(m.where() + ": bos, eos and topk_val must be >= 0");
  }
  VORTEX_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(planner.totals(), 0, 4 * sizeof(int32_t), stream));
  const int32_t rows = pt.batch_size * m.config.num_kv_heads;
  const int grid = (rows + 1 + 255) / 256;
  const int* indptr = pt.page_indptr;
  int batch = pt.batch_size, heads = m.config.num_kv_heads, chunk = pc.chunk_pages;
  unsigned long long* packed = planner.packed_counts();
  int* totals = planner.totals();
  void* params[] = {&indptr,   &batch, &heads, &args.topk_val, &args.topk_ratio, &args.bos,
                    &args.eos, &layer, &chunk, &packed,        &totals};
  VORTEX_RETURN_IF_ERROR(detail::launch(m.plan_rows, grid, 256, 0, stream, params, "vx_plan_rows"));
  return planner.finish(pt, args, stream);
}

Status CudaFlowRunner::score(const KVCache& cache, int32_t layer, const void* q,
                             const PageTableView& pt, const WorkListView& work, float* scores,
                             cudaStream_t stream) {
  Impl& m = *impl_;
  if (pt.batch_size < 0 || pt.batch_size > m.config.max_batch) {
    return invalid_argument(m.where() + ": batch " + std::to_string(pt.batch_size) +
                            " outside [0, max_batch " + std::to_string(m.config.max_batch) + "]");
  }
  if (pt.batch_size == 0 || work.capacity <= 0 || m.indexer_kernels.empty()) return Status::ok();
  if (q == nullptr || scores == nullptr || work.items == nullptr || work.count == nullptr ||
      pt.page_indptr == nullptr) {
    return invalid_argument(m.where() + ": score() needs q, scores, the worklist and page table");
  }
  CudaKernelArgs a;
  VORTEX_RETURN_IF_ERROR(m.bind_cache(cache, layer, &a));
  a.q = q;
  a.page_indptr = pt.page_indptr;
  a.page_indices = pt.page_indices;
  a.work_items = work.items;
  a.work_count = work.count;
  a.work_capacity = work.capacity;
  a.chunk_pages = work.chunk_pages;
  a.bos = work.bos;
  a.eos = work.eos;
  a.scores = scores;
  a.batch = pt.batch_size;
  for (size_t b = 0; b < m.buffers.size(); ++b) a.buf[b] = static_cast<float*>(m.buffers[b].data());
  void* params[] = {&a};
  for (const Kernel& k : m.indexer_kernels) {
    const int grid = std::max(1, std::min(work.capacity, k.resident));
    VORTEX_RETURN_IF_ERROR(detail::launch(k.fn, grid, k.spec.threads, k.spec.smem_bytes, stream,
                                          params, k.spec.name.c_str()));
  }
  return Status::ok();
}

Expected<SelectionView> CudaFlowRunner::select(const KVCache& cache, int32_t layer, const void* q,
                                               const PageTableView& pt, SparsePlanner& planner,
                                               cudaStream_t stream) {
  Impl& m = *impl_;
  VORTEX_RETURN_IF_ERROR(score(cache, layer, q, pt, planner.worklist(), scores(), stream));
  VORTEX_RETURN_IF_ERROR(select_topk(
      scores(), DType::kF32, pt, m.config.num_kv_heads, planner.sel_indptr(), planner.sel_indices(),
      planner.sel_capacity(), m.args.bos, m.args.eos, m.src.tolerance, stream));
  return planner.selection(pt.batch_size);
}

}  // namespace vortex::gpu
