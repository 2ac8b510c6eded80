// CudaModel's sparse decode (ARCHITECTURE §6): the flows it runs (resolved from the flow runtime:
// budget, dense layers, the hand-written block_topk kernels or a factory's), the aux fields its
// cache needs, and per decode range and layer the device pipeline — planner -> indexer -> top-k
// -> attention over the selection — all enqueued on the model's stream (graph-capturable).
#if defined(VORTEX_WITH_CUDA)

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cuda_model_impl.h"
#include "cuda_model_kernels.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/block_topk_flow.h"
#include "vortex/kernels/cuda/block_topk_fused.h"
#include "vortex/kernels/cuda/row_topk.h"
#if VORTEX_HAVE_FLOW_CUDA
#include "vortex/kernels/cuda/flow_runtime.h"
#endif

namespace vortex {
namespace {

std::mutex& factory_mutex() {
  static std::mutex mu;
  return mu;
}

CudaFlowFactory& factory_slot() {
  static CudaFlowFactory factory;
  return factory;
}

bool is_sparse(const flow::SparseConfig* sparse) {
  return sparse != nullptr && sparse->program != nullptr && !flow::flow_is_dense(*sparse->program);
}

/// block_topk by hand: the cache flow stores each page's mean key (bf16 [1, D]); the indexer
/// scores a page by <mean of the row's G query heads, centroid>.
class BlockTopKKernels final : public CudaFlowKernels {
 public:
  BlockTopKKernels(std::string field, const ModelConfig& model)
      : field_(std::move(field)),
        hq_(model.num_q_heads),
        hkv_(model.num_kv_heads),
        dim_(model.head_dim) {}

  Status cache_flow(const KVCache& cache, int32_t layer, const int32_t* pages, const int32_t* count,
                    int32_t max_pages, cudaStream_t stream) override {
    VORTEX_ASSIGN_OR_RETURN(AuxFieldView f, field(cache, layer));
    return gpu::compute_centroids(cache.layer(layer), f, pages, count, max_pages, stream);
  }

  Status score(const KVCache& cache, int32_t layer, const void* q, const PageTableView& pt,
               const gpu::WorkListView& work, float* scores, cudaStream_t stream) override {
    VORTEX_ASSIGN_OR_RETURN(AuxFieldView f, field(cache, layer));
    return gpu::centroid_scores(q, DType::kBF16, hq_, hkv_, dim_, f, pt, work, scores, stream);
  }

  bool has_fused_layer(int32_t page_size, int32_t max_pages) const override {
    return gpu::block_topk_fused_supported(hq_, hkv_, dim_, page_size, DType::kBF16, max_pages);
  }

  Status fused_layer(const KVCache& cache, int32_t layer, gpu::BlockTopKFusedArgs args,
                     cudaStream_t stream) override {
    VORTEX_ASSIGN_OR_RETURN(args.centroids, field(cache, layer));
    return gpu::block_topk_fused(args, stream);
  }

 private:
  Expected<AuxFieldView> field(const KVCache& cache, int32_t layer) const {
    const int32_t index = cache.field_index(field_);
    if (index < 0) {
      return invalid_argument("the KV cache has no aux field '" + field_ +
                              "'; build it from CudaModel::kv_cache_config with this flow");
    }
    if (cache.config().aux_fields[static_cast<size_t>(index)].dtype != DType::kBF16) {
      return unsupported("block_topk's CUDA kernels store the centroid as bf16");
    }
    AuxFieldView f = cache.aux(layer, index);
    if (f.data == nullptr) {
      return internal_error("aux field '" + field_ + "' is not stored on layer " +
                            std::to_string(layer));
    }
    return f;
  }

  std::string field_;
  int32_t hq_, hkv_, dim_;
};

#if VORTEX_HAVE_FLOW_CUDA
/// Any flow through the flow compiler's CUDA backend (generated kernels compiled with NVRTC).
class GeneratedFlowKernels final : public CudaFlowKernels {
 public:
  explicit GeneratedFlowKernels(std::unique_ptr<gpu::CudaFlowRunner> runner)
      : runner_(std::move(runner)) {}
  Status cache_flow(const KVCache& cache, int32_t layer, const int32_t* pages, const int32_t* count,
                    int32_t max_pages, cudaStream_t stream) override {
    return runner_->run_cache_flow(cache, layer, pages, count, max_pages, stream);
  }
  Status score(const KVCache& cache, int32_t layer, const void* q, const PageTableView& pt,
               const gpu::WorkListView& work, float* scores, cudaStream_t stream) override {
    return runner_->score(cache, layer, q, pt, work, scores, stream);
  }
  gpu::CudaFlowRunner& runner() { return *runner_; }

 private:
  std::unique_ptr<gpu::CudaFlowRunner> runner_;
};
#endif

}  // namespace

void set_cuda_flow_factory(CudaFlowFactory factory) {
  std::lock_guard<std::mutex> lock(factory_mutex());
  factory_slot() = std::move(factory);
}

KVCacheConfig CudaModel::kv_cache_config(
    int32_t page_size, const std::vector<const flow::SparseConfig*>& flows) const {
  const ModelConfig& c = impl_->config;
  KVCacheConfig kc;
  kc.num_layers = c.num_layers;
  kc.num_kv_heads = c.num_kv_heads;
  kc.head_dim = c.head_dim;
  kc.page_size = page_size;
  kc.kv_dtype = DType::kBF16;
  for (const flow::SparseConfig* f : flows) {
    if (!is_sparse(f)) continue;
    for (AuxFieldSpec& spec : flow::flow_aux_fields(*f->program, page_size, c.head_dim)) {
      const bool seen = std::any_of(kc.aux_fields.begin(), kc.aux_fields.end(),
                                    [&](const AuxFieldSpec& s) { return s.name == spec.name; });
      if (!seen) kc.aux_fields.push_back(std::move(spec));
    }
  }
  if (kc.aux_fields.empty()) return kc;
  for (int32_t l = 0; l < c.num_layers; ++l) {  // aux everywhere except layers all flows skip
    bool all_dense = true;
    for (const flow::SparseConfig* f : flows) {
      if (is_sparse(f) && !f->budget.layer_is_dense(l)) all_dense = false;
    }
    if (all_dense) kc.layers_skip.push_back(l);
  }
  return kc;
}

namespace {

/// What identifies a flow's compiled kernels and budget arguments: the program and policy objects
/// (shared, immutable) and every budget parameter.
std::string flow_key(const flow::SparseConfig& s) {
  const flow::BudgetParams& b = s.budget;
  std::string key = fmt::format(
      "{}|{}|{}|{}|{}|{}|{}|{}|", static_cast<const void*>(s.program.get()),
      static_cast<const void*>(b.policy.get()), b.topk_val, std::bit_cast<uint32_t>(b.topk_ratio),
      b.bos, b.eos, b.block_size, b.workload_chunk_size);
  for (int32_t l : b.layers_skip) key += std::to_string(l) + ",";
  return key;
}

}  // namespace

Expected<detail::SparseFlow*> CudaModel::Impl::flow_for(const flow::SparseConfig* sparse) {
  if (!is_sparse(sparse)) return static_cast<detail::SparseFlow*>(nullptr);
  const std::string key = flow_key(*sparse);
  auto it = flows.find(key);
  if (it != flows.end()) return it->second.get();
  auto f = std::make_unique<detail::SparseFlow>();
  f->config = *sparse;
  f->name = flow::flow_name(*sparse->program);
  const flow::BudgetParams& b = sparse->budget;
  f->args = gpu::BudgetArgs{b.topk_val, b.topk_ratio, b.bos, b.eos};
  f->chunk_pages = std::max(1, b.workload_chunk_size);
  for (int32_t l = 0; l < config.num_layers; ++l) {
    const bool dense = b.layer_is_dense(l);
    f->dense_layer.push_back(dense ? 1 : 0);
    if (!dense && f->first_sparse_layer < 0) f->first_sparse_layer = l;
    f->sparse_layers += dense ? 0 : 1;
  }
  for (const AuxFieldSpec& spec : flow::flow_aux_fields(*sparse->program, 16, config.head_dim)) {
    f->aux_names.push_back(spec.name);
  }
  if (f->name == "block_topk" && b.policy == nullptr) {
    const auto fields = flow::flow_aux_fields(*sparse->program, 16, config.head_dim);
    if (fields.size() != 1 || fields[0].rows != 1 || fields[0].cols != config.head_dim) {
      return internal_error(
          "flow 'block_topk' declares fields the CUDA kernels do not expect "
          "(one [1, head_dim] centroid)");
    }
    f->kernels = std::make_unique<BlockTopKKernels>(fields[0].name, config);
  } else {
    CudaFlowFactory factory;
    {
      std::lock_guard<std::mutex> lock(factory_mutex());
      factory = factory_slot();
    }
    if (factory) {
      VORTEX_ASSIGN_OR_RETURN(f->kernels, factory(f->config, config));
    } else {
#if VORTEX_HAVE_FLOW_CUDA
      gpu::CudaFlowRunnerConfig rc;
      rc.num_q_heads = config.num_q_heads;
      rc.num_kv_heads = config.num_kv_heads;
      rc.head_dim = config.head_dim;
      rc.page_size = b.block_size;
      rc.max_batch = capacity.chunks;
      rc.max_pages_per_request = max_pages_per_request();  // as planner_for
      rc.max_total_pages = capacity.pages;                 // as `scores`
      rc.device = options.device;
      VORTEX_ASSIGN_OR_RETURN(auto runner, gpu::CudaFlowRunner::create(f->config, rc));
      auto kernels = std::make_unique<GeneratedFlowKernels>(std::move(runner));
      gpu::CudaFlowRunner* r = &kernels->runner();
      f->plan = [r](gpu::SparsePlanner& p, const PageTableView& pt, int32_t layer, cudaStream_t s) {
        return r->plan(p, pt, layer, s);
      };
      f->plan_per_layer = r->budget_depends_on_layer();
      f->tolerance = r->tolerance();
      f->kernels = std::move(kernels);
#else
      return unsupported("flow '" + f->name +
                         "' has no CUDA kernels in this build (only block_topk is hand-written; "
                         "generated flows need the NVRTC flow backend); use --device cpu");
#endif
    }
  }
  detail::SparseFlow* raw = f.get();
  flows.emplace(key, std::move(f));
  return raw;
}

int32_t CudaModel::Impl::max_pages_per_request() const { return (max_context + 15) / 16 + 1; }

bool CudaModel::Impl::fused_rows(int32_t rows) const {
  using Mode = CudaModelOptions::FusedSparse;
  if (options.fused_sparse == Mode::kOff) return false;
  // One CTA per (request, KV head): below one row per SM the split pipeline keeps more SMs busy.
  return options.fused_sparse == Mode::kOn ||
         int64_t{rows} * config.num_kv_heads >= static_cast<int64_t>(num_sms);
}

bool CudaModel::Impl::use_fused_layer(const detail::SparseFlow& f, int32_t rows,
                                      int32_t page_size) const {
  return fused_rows(rows) && f.kernels->has_fused_layer(page_size, max_pages_per_request());
}

bool CudaModel::Impl::use_fused_tail(int32_t rows, int32_t page_size) const {
  return fused_rows(rows) &&
         gpu::block_topk_fused_supported(config.num_q_heads, config.num_kv_heads, config.head_dim,
                                         page_size, DType::kBF16, max_pages_per_request());
}

Expected<gpu::SparsePlanner*> CudaModel::Impl::planner_for(size_t range, int32_t chunk_pages) {
  const auto key = std::make_pair(range, chunk_pages);
  auto it = planners.find(key);
  if (it != planners.end()) return &it->second;
  gpu::PlannerConfig pc;
  pc.max_batch = capacity.chunks;
  pc.num_kv_heads = config.num_kv_heads;
  pc.max_pages_per_request = max_pages_per_request();
  pc.chunk_pages = chunk_pages;
  pc.device = options.device;
  VORTEX_ASSIGN_OR_RETURN(gpu::SparsePlanner planner, gpu::SparsePlanner::create(pc));
  return &planners.emplace(key, std::move(planner)).first->second;
}

PageTableView CudaModel::Impl::range_pages(const detail::DecodeRange& r) const {
  return PageTableView{meta_ptr<int32_t>(r.indptr_offset),
                       meta_ptr<int32_t>(arrays.page_indices) + r.page_offset,
                       meta_ptr<int32_t>(arrays.last_page_len) + r.first, r.count};
}

Status CudaModel::Impl::sparse_attention(const detail::StepShape& s, const KVCache& cache,
                                         int32_t layer, gpu::PagedDecodeAttention* op,
                                         cuda::L2Range prefetch, detail::InflightStep* timing) {
  const KVLayerView kv = cache.layer(layer);
  const float scale = 1.0f / std::sqrt(static_cast<float>(config.head_dim));
  const int64_t q_row = int64_t{config.num_q_heads} * config.head_dim;
  for (size_t k = 0; k < s.ranges.size(); ++k) {
    const detail::DecodeRange& r = s.ranges[k];
    if (r.count == 0) continue;
    const PageTableView pt = range_pages(r);
    const auto* q_r = static_cast<const detail::bf16*>(q.data()) + r.first * q_row;
    auto* out_r = static_cast<detail::bf16*>(attn.data()) + r.first * q_row;
    detail::SparseFlow* f = r.flow;
    if (f == nullptr || f->dense_layer[static_cast<size_t>(layer)] != 0) {
      mark(timing, detail::Stage::kAttention);
      // The page table is the step's metadata; the preceding kernels appended one token per row.
      VORTEX_RETURN_IF_ERROR(
          op->run(q_r, kv, pt, nullptr, scale, out_r, stream, /*fresh_tokens=*/1, prefetch));
      continue;
    }
    VORTEX_ASSIGN_OR_RETURN(gpu::SparsePlanner * planner, planner_for(k, f->chunk_pages));
    if (layer == f->first_sparse_layer || f->plan_per_layer) {
      // A budget that does not read `layer` gives one plan (selection offsets, worklist) for
      // every sparse layer of the step; only the top-k output changes per layer.
      mark(timing, detail::Stage::kPlanner);
      VORTEX_RETURN_IF_ERROR(f->plan ? f->plan(*planner, pt, layer, stream)
                                     : planner->plan(pt, f->args, layer, stream));
      detail::accumulate_count(planner->totals(), f->plan_per_layer ? 1 : f->sparse_layers,
                               static_cast<long long*>(selected_acc.data()), stream);
    }
    // Arguments of the fused kernels: the model's part (a flow adds its own inputs).
    auto fused_args = [&] {
      gpu::BlockTopKFusedArgs a;
      a.q = q_r;
      a.io_dtype = DType::kBF16;
      a.num_q_heads = config.num_q_heads;
      a.num_kv_heads = config.num_kv_heads;
      a.head_dim = config.head_dim;
      a.kv = kv;
      a.pt = pt;
      a.sel_indptr = planner->sel_indptr();
      a.sel_indices = planner->sel_indices();
      a.sel_capacity = planner->sel_capacity();
      a.bos = f->args.bos;
      a.eos = f->args.eos;
      a.tolerance = f->tolerance;
      a.scale = scale;
      a.max_pages = max_pages_per_request();
      a.out = out_r;
      a.l2_prefetch = prefetch;
      return a;
    };
    if (use_fused_layer(*f, r.count, cache.config().page_size)) {
      // Scores, selection and attention in one launch (the selection lands where select_topk
      // writes it, so the hook below reads it the same way).
      mark(timing, detail::Stage::kSparseFused);
      VORTEX_RETURN_IF_ERROR(f->kernels->fused_layer(cache, layer, fused_args(), stream));
      if (selection_hook) VORTEX_RETURN_IF_ERROR(report_selection(r, layer, *planner));
      continue;
    }
    mark(timing, detail::Stage::kIndexer);
    VORTEX_RETURN_IF_ERROR(f->kernels->score(cache, layer, q_r, pt, planner->worklist(),
                                             static_cast<float*>(scores.data()), stream));
    if (use_fused_tail(r.count, cache.config().page_size)) {
      // Top-k and attention over the selection in one launch, from the indexer's scores.
      mark(timing, detail::Stage::kSparseFused);
      VORTEX_RETURN_IF_ERROR(
          gpu::fused_select_attend(fused_args(), static_cast<const float*>(scores.data()), stream));
      if (selection_hook) VORTEX_RETURN_IF_ERROR(report_selection(r, layer, *planner));
      continue;
    }
    mark(timing, detail::Stage::kTopK);
    VORTEX_RETURN_IF_ERROR(gpu::select_topk(scores.data(), DType::kF32, pt, config.num_kv_heads,
                                            planner->sel_indptr(), planner->sel_indices(),
                                            planner->sel_capacity(), f->args.bos, f->args.eos,
                                            f->tolerance, stream));
    if (selection_hook) VORTEX_RETURN_IF_ERROR(report_selection(r, layer, *planner));
    mark(timing, detail::Stage::kAttention);
    const SelectionView sel = planner->selection(r.count);
    VORTEX_RETURN_IF_ERROR(op->run(q_r, kv, pt, &sel, scale, out_r, stream, -1, prefetch));
  }
  return Status::ok();
}

Status CudaModel::Impl::report_selection(const detail::DecodeRange& r, int32_t layer,
                                         const gpu::SparsePlanner& planner) {
  const int64_t rows = int64_t{r.count} * config.num_kv_heads;
  SelectionRecord record;
  record.layer = layer;
  record.chunks = r.chunks;
  record.selection.sel_indptr.resize(static_cast<size_t>(rows + 1));
  VORTEX_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  VORTEX_CUDA_RETURN_IF_ERROR(cudaMemcpy(record.selection.sel_indptr.data(), planner.sel_indptr(),
                                         static_cast<size_t>(rows + 1) * sizeof(int32_t),
                                         cudaMemcpyDeviceToHost));
  const int32_t total = record.selection.sel_indptr.back();
  if (record.selection.sel_indptr.front() != 0 || total < 0 || total > planner.sel_capacity()) {
    return internal_error("selection read back for the hook is malformed (layer " +
                          std::to_string(layer) + ")");
  }
  record.selection.sel_indices.resize(static_cast<size_t>(total));
  if (total > 0) {
    VORTEX_CUDA_RETURN_IF_ERROR(
        cudaMemcpy(record.selection.sel_indices.data(), planner.sel_indices(),
                   static_cast<size_t>(total) * sizeof(int32_t), cudaMemcpyDeviceToHost));
  }
  selection_hook(record);
  return Status::ok();
}

Expected<flow::SparseConfig> builtin_sparse_config(const std::string& name,
                                                   const flow::BudgetParams& budget) {
  flow::SparseConfig config;
  VORTEX_ASSIGN_OR_RETURN(config.program, flow::load_flow(name));
  config.budget = budget;
  return config;
}

Status CudaModel::run_cache_flow(KVCache& cache, const flow::SparseConfig& sparse,
                                 std::span<const int32_t> pages) {
  Impl& m = *impl_;
  VORTEX_ASSIGN_OR_RETURN(detail::SparseFlow * f, m.flow_for(&sparse));
  if (f == nullptr || pages.empty()) return Status::ok();
  for (int32_t p : pages) {
    if (p < 0 || p >= cache.num_pages()) {
      return invalid_argument("run_cache_flow: page id " + std::to_string(p) +
                              " is outside the cache");
    }
  }
  VORTEX_ASSIGN_OR_RETURN(Buffer ids, Buffer::allocate(*m.alloc, pages.size() * sizeof(int32_t)));
  VORTEX_CUDA_RETURN_IF_ERROR(
      cudaMemcpy(ids.data(), pages.data(), pages.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  for (int32_t l = 0; l < m.config.num_layers; ++l) {
    if (f->dense_layer[static_cast<size_t>(l)] != 0) continue;
    VORTEX_RETURN_IF_ERROR(f->kernels->cache_flow(cache, l, static_cast<const int32_t*>(ids.data()),
                                                  nullptr, static_cast<int32_t>(pages.size()),
                                                  m.stream));
  }
  return cuda_status(cudaStreamSynchronize(m.stream), "run_cache_flow");
}

}  // namespace vortex

#endif  // VORTEX_WITH_CUDA
