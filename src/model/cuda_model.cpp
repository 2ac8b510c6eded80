// CudaModel: construction (weights, buffers, RoPE table, graph buckets), the asynchronous step
// pipeline (plan -> launch -> wait) and CpuModel's synchronous forward() on top of it.
#if defined(VORTEX_WITH_CUDA)

#include "vortex/model/cuda_model.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_model_impl.h"
#include "cuda_model_kernels.h"
#include "vortex/core/cuda_allocator.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/causal_attention.h"
#include "vortex/kernels/cuda/rope_append.h"

namespace vortex {
namespace detail {

Expected<PinnedBuffer> PinnedBuffer::allocate(size_t bytes) {
  PinnedBuffer b;
  if (bytes == 0) return b;
  VORTEX_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&b.ptr_, bytes, cudaHostAllocDefault));
  b.bytes_ = bytes;
  return b;
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

void PinnedBuffer::reset() {
  if (ptr_ != nullptr) VORTEX_CUDA_CHECK(cudaFreeHost(ptr_));
  ptr_ = nullptr;
  bytes_ = 0;
}

Expected<CudaEvent> CudaEvent::create(bool timing) {
  CudaEvent e;
  VORTEX_CUDA_RETURN_IF_ERROR(
      cudaEventCreateWithFlags(&e.ev_, timing ? cudaEventDefault : cudaEventDisableTiming));
  return e;
}

CudaEvent::~CudaEvent() {
  if (ev_ != nullptr) (void)cudaEventDestroy(ev_);
}

CudaEvent& CudaEvent::operator=(CudaEvent&& o) noexcept {
  if (this != &o) {
    if (ev_ != nullptr) (void)cudaEventDestroy(ev_);
    ev_ = std::exchange(o.ev_, nullptr);
  }
  return *this;
}

Expected<CudaStream> CudaStream::create() {
  CudaStream s;
  VORTEX_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s.s_, cudaStreamNonBlocking));
  return s;
}

CudaStream::~CudaStream() {
  if (s_ != nullptr) {
    (void)cudaStreamSynchronize(s_);
    (void)cudaStreamDestroy(s_);
  }
}

CudaStream& CudaStream::operator=(CudaStream&& o) noexcept {
  if (this != &o) {
    if (s_ != nullptr) (void)cudaStreamDestroy(s_);
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}

CudaGraph::~CudaGraph() {
  if (exec_ != nullptr) (void)cudaGraphExecDestroy(exec_);
  if (graph_ != nullptr) (void)cudaGraphDestroy(graph_);
}

StepArrays StepArrays::layout(const StepCapacity& cap) {
  StepArrays a;
  size_t at = 0;
  auto take = [&at](int64_t words) {
    const size_t begin = at;
    at += (static_cast<size_t>(words) + 3) / 4 * 4;  // 16-byte aligned arrays
    return begin;
  };
  const int64_t T = cap.tokens, C = cap.chunks;
  a.tokens = take(T);
  a.prev_index = take(T);
  a.positions = take(T);
  a.slots = take(T);
  a.q_start = take(C + 1);
  a.page_indptr = take(C + 1);
  a.start_pos = take(C);
  a.last_page_len = take(C);
  a.logit_rows = take(C);
  a.pen_indptr = take(C + 1);
  a.sampling = take(C * static_cast<int64_t>(sizeof(cuda::SamplingRow) / sizeof(int32_t)));
  a.tile_chunk = take(cap.tiles);
  a.tile_first = take(cap.tiles);
  a.completed = take(T);
  a.completed_count = take(1);
  a.group_indptr = take(2 * C + 1);
  a.page_indices = take(cap.pages);
  a.words = at;
  return a;
}

}  // namespace detail

namespace {

std::vector<int32_t> default_buckets(int32_t max_batch) {
  std::vector<int32_t> b;
  for (int32_t x : {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128}) {
    if (x < max_batch) b.push_back(x);
  }
  for (int32_t x = 192; x < max_batch; x += 64) b.push_back(x);
  b.push_back(max_batch);
  return b;
}

Status check_supported(const ModelConfig& c) {
  VORTEX_RETURN_IF_ERROR(c.validate());
  const int32_t d = c.head_dim;
  if (d != 64 && d != 128 && d != 256) {
    return unsupported("CUDA model: head_dim " + std::to_string(d) +
                       " is not supported (64, 128 or 256)");
  }
  if (c.hidden_size % 8 != 0 || c.hidden_size > 16384) {
    return unsupported("CUDA model: hidden size " + std::to_string(c.hidden_size) +
                       " must be a multiple of 8 and at most 16384");
  }
  if (c.group_size() > cuda::kCausalTileRows) {
    return unsupported("CUDA model: GQA group " + std::to_string(c.group_size()) + " > " +
                       std::to_string(cuda::kCausalTileRows));
  }
  return Status::ok();
}

}  // namespace

Status CudaModel::Impl::init_buffers() {
  const ModelConfig& c = config;
  const int32_t max_batch = std::max(1, options.max_batch);
  capacity.tokens = std::max(options.max_tokens, max_batch);
  capacity.chunks = max_batch;
  capacity.pages = int64_t{max_batch} * ((max_context + 15) / 16 + 1);
  capacity.tiles = capacity.tokens + capacity.chunks;
  arrays = detail::StepArrays::layout(capacity);
  const size_t T = static_cast<size_t>(capacity.tokens), R = static_cast<size_t>(capacity.chunks);
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t q_dim = static_cast<size_t>(c.num_q_heads) * static_cast<size_t>(c.head_dim);
  const size_t ffn = static_cast<size_t>(c.intermediate_size);
  auto dev = [this](Buffer& b, size_t bytes) -> Status {
    VORTEX_ASSIGN_OR_RETURN(b, Buffer::allocate(*alloc, bytes));
    return Status::ok();
  };
  VORTEX_RETURN_IF_ERROR(dev(residual, T * hidden * 4));
  VORTEX_RETURN_IF_ERROR(dev(normed, T * hidden * 2));
  VORTEX_RETURN_IF_ERROR(dev(qkv, T * static_cast<size_t>(qkv_width) * 2));
  VORTEX_RETURN_IF_ERROR(dev(q, T * q_dim * 2));
  VORTEX_RETURN_IF_ERROR(dev(attn, T * q_dim * 2));
  VORTEX_RETURN_IF_ERROR(dev(proj, T * hidden * 2));
  VORTEX_RETURN_IF_ERROR(dev(gate_up, T * 2 * ffn * 2));
  VORTEX_RETURN_IF_ERROR(dev(act, T * ffn * 2));
  VORTEX_RETURN_IF_ERROR(dev(final_in, R * hidden * 2));
  VORTEX_RETURN_IF_ERROR(dev(logits, R * static_cast<size_t>(c.vocab_size) * 4));
  VORTEX_RETURN_IF_ERROR(dev(sampled, R * 4));
  VORTEX_RETURN_IF_ERROR(dev(logprobs, R * 4));
  VORTEX_RETURN_IF_ERROR(dev(meta, arrays.words * 4));
  VORTEX_RETURN_IF_ERROR(
      dev(scores, static_cast<size_t>(capacity.pages) * static_cast<size_t>(c.num_kv_heads) * 4));
  VORTEX_RETURN_IF_ERROR(dev(selected_acc, 16));
  // Zero once: graph padding and prev-token reads never see garbage.
  VORTEX_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(meta.data(), 0, meta.size(), stream));
  VORTEX_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(sampled.data(), 0, sampled.size(), stream));
  for (int s = 0; s < 2; ++s) {
    VORTEX_ASSIGN_OR_RETURN(staging[s], detail::PinnedBuffer::allocate(arrays.words * 4));
    std::memset(staging[s].data(), 0, staging[s].size());
    // [R] tokens, [R] logprobs, one int64 counter of selected pages.
    VORTEX_ASSIGN_OR_RETURN(results[s], detail::PinnedBuffer::allocate(R * 8 + 16));
    VORTEX_ASSIGN_OR_RETURN(staging_free[s], detail::CudaEvent::create(false));
    VORTEX_ASSIGN_OR_RETURN(step_done[s], detail::CudaEvent::create(false));
  }
  VORTEX_RETURN_IF_ERROR(grow_penalties(int64_t{1} << 16));
  const size_t events = 64 + static_cast<size_t>(c.num_layers) * 48;
  for (size_t i = 0; i < events; ++i) {
    VORTEX_ASSIGN_OR_RETURN(detail::CudaEvent e, detail::CudaEvent::create(true));
    timing_events.push_back(std::move(e));
  }
  return Status::ok();
}

Status CudaModel::Impl::grow_penalties(int64_t entries) {
  const int64_t cap = std::max(entries, std::max<int64_t>(pen_capacity * 2, 1 << 16));
  // Steps in flight read the old buffers: finish them first.
  VORTEX_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  VORTEX_ASSIGN_OR_RETURN(Buffer dev, Buffer::allocate(*alloc, static_cast<size_t>(cap) * 8));
  for (int s = 0; s < 2; ++s) {
    VORTEX_ASSIGN_OR_RETURN(detail::PinnedBuffer host,
                            detail::PinnedBuffer::allocate(static_cast<size_t>(cap) * 8));
    if (pen_capacity > 0) {  // keep what a planned step staged: tokens, then counts
      auto* from = static_cast<int32_t*>(staged_pen[s].data());
      auto* to = static_cast<int32_t*>(host.data());
      std::memcpy(to, from, static_cast<size_t>(pen_capacity) * 4);
      std::memcpy(to + cap, from + pen_capacity, static_cast<size_t>(pen_capacity) * 4);
    }
    staged_pen[s] = std::move(host);
  }
  penalties = std::move(dev);
  pen_capacity = cap;
  graphs.clear();  // they captured the old pointer
  return Status::ok();
}

CudaModel::CudaModel() : impl_(std::make_unique<Impl>()) {}

CudaModel::~CudaModel() {
  if (impl_ != nullptr && impl_->stream != nullptr) (void)cudaStreamSynchronize(impl_->stream);
}

Expected<std::unique_ptr<CudaModel>> CudaModel::make(const ModelConfig& config,
                                                     const CudaModelOptions& options,
                                                     const WeightMap* weights, uint64_t seed) {
  VORTEX_RETURN_IF_ERROR(check_supported(config));
  if (options.max_batch <= 0 || options.max_tokens <= 0) {
    return invalid_argument("CUDA model: max_batch and max_tokens must be positive");
  }
  std::unique_ptr<CudaModel> model(new CudaModel());
  Impl& m = *model->impl_;
  m.config = config;
  m.options = options;
  if (const char* v = std::getenv("VORTEX_FUSED_SPARSE")) {  // A/B runs without a rebuild
    const std::string s = v;
    if (s == "on") m.options.fused_sparse = CudaModelOptions::FusedSparse::kOn;
    if (s == "off") m.options.fused_sparse = CudaModelOptions::FusedSparse::kOff;
    if (s == "auto") m.options.fused_sparse = CudaModelOptions::FusedSparse::kAuto;
  }
  if (const char* v = std::getenv("VORTEX_L2_PREFETCH")) {  // A/B runs without a rebuild
    const std::string s = v;
    m.options.weight_prefetch_ctas = s == "on" ? -1 : std::max(0, std::atoi(v));  // off: 0
  }
  if (const char* v = std::getenv("VORTEX_L2_PREFETCH_SUMMARIES")) {
    m.options.summary_prefetch_fraction = std::clamp(static_cast<float>(std::atof(v)), 0.0f, 1.0f);
  }
  if (const char* v = std::getenv("VORTEX_L2_PREFETCH_O")) {
    m.options.attention_prefetches_o = std::string(v) != "side";
  }
  m.max_context = options.max_context > 0 ? options.max_context : config.max_context;
  m.qkv_width = (config.num_q_heads + 2 * config.num_kv_heads) * config.head_dim;
  m.use_graphs = options.use_graphs;
  m.buckets =
      options.graph_buckets.empty() ? default_buckets(options.max_batch) : options.graph_buckets;
  std::sort(m.buckets.begin(), m.buckets.end());
  if (m.buckets.front() <= 0 || m.buckets.back() > options.max_batch) {
    return invalid_argument("CUDA model: graph buckets must lie in [1, max_batch " +
                            std::to_string(options.max_batch) + "]");
  }
  VORTEX_ASSIGN_OR_RETURN(m.alloc, cuda_allocator(options.device));
  VORTEX_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
  VORTEX_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&m.num_sms, cudaDevAttrMultiProcessorCount, options.device));
  VORTEX_ASSIGN_OR_RETURN(m.owned_stream, detail::CudaStream::create());
  m.stream = m.owned_stream.get();
  if (m.options.weight_prefetch_ctas < 0) m.options.weight_prefetch_ctas = m.num_sms;
  if (m.options.weight_prefetch_ctas > 0 || m.options.summary_prefetch_fraction > 0.0f) {
    VORTEX_ASSIGN_OR_RETURN(m.prefetch_stream, detail::CudaStream::create());
    VORTEX_ASSIGN_OR_RETURN(m.prefetch_fork, detail::CudaEvent::create(false));
    VORTEX_ASSIGN_OR_RETURN(m.prefetch_join, detail::CudaEvent::create(false));
  }
  VORTEX_ASSIGN_OR_RETURN(m.gemm,
                          cuda::Gemm::create(*m.alloc, size_t{32} << 20, options.gemm_autotune));
  const std::string context = "model '" + config.name + "'";
  if (weights != nullptr) {
    auto w = detail::upload_weights(config, *weights, *m.alloc);
    if (!w.has_value()) return w.status().with_context(context);
    m.weights = std::move(*w);
  } else {
    VORTEX_ASSIGN_OR_RETURN(m.weights, detail::random_weights(config, seed, *m.alloc, m.stream));
  }
  VORTEX_ASSIGN_OR_RETURN(
      m.rope_table,
      Buffer::allocate(*m.alloc, static_cast<size_t>(m.max_context) *
                                     static_cast<size_t>(config.head_dim / 2) * sizeof(float2)));
  VORTEX_RETURN_IF_ERROR(cuda::build_rope_table(config.rope, config.head_dim, m.max_context,
                                                static_cast<float2*>(m.rope_table.data()),
                                                m.stream));
  VORTEX_RETURN_IF_ERROR(m.init_buffers().with_context(context));
  VORTEX_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(m.stream));
  return model;
}

Expected<std::unique_ptr<CudaModel>> CudaModel::create(const ModelConfig& config,
                                                       const WeightMap& weights,
                                                       const CudaModelOptions& options) {
  return make(config, options, &weights, 0);
}

Expected<std::unique_ptr<CudaModel>> CudaModel::create_random(const ModelConfig& config,
                                                              uint64_t seed,
                                                              const CudaModelOptions& options) {
  return make(config, options, nullptr, seed);
}

const ModelConfig& CudaModel::config() const { return impl_->config; }
const CudaModelOptions& CudaModel::options() const { return impl_->options; }
cudaStream_t CudaModel::stream() const { return impl_->stream; }
int64_t CudaModel::weight_bytes() const { return impl_->weights.bytes; }
void CudaModel::set_use_graphs(bool on) { impl_->use_graphs = on; }
void CudaModel::set_selection_hook(SelectionHook hook) { impl_->selection_hook = std::move(hook); }
int32_t CudaModel::num_graphs() const { return static_cast<int32_t>(impl_->graphs.size()); }

Expected<KVCache> CudaModel::create_kv_cache(const KVCacheConfig& config, int32_t num_pages) const {
  if (config.kv_dtype != DType::kBF16) {
    return unsupported("the CUDA model stores K/V as bf16, not " +
                       std::string(dtype_name(config.kv_dtype)));
  }
  return KVCache::create(config, num_pages, *impl_->alloc);
}

Status CudaModel::plan(const ForwardBatch& batch, std::span<const CudaSampleSpec> samples,
                       std::span<const int32_t> token_from_prev) {
  return impl_->plan_step(batch, samples, token_from_prev, false);
}

Status CudaModel::launch(KVCache& cache, StepProfile* profile) {
  Impl& m = *impl_;
  if (m.planned.empty()) return invalid_argument("CudaModel::launch: no planned step");
  detail::PlannedStep step = std::move(m.planned.front());
  m.planned.erase(m.planned.begin());
  const KVCacheConfig& kc = cache.config();
  if (kc.num_layers != m.config.num_layers || kc.num_kv_heads != m.config.num_kv_heads ||
      kc.head_dim != m.config.head_dim || kc.kv_dtype != DType::kBF16) {
    return invalid_argument("KV cache (layers, kv heads, head dim, bf16) does not match model '" +
                            m.config.name + "'; build it with CudaModel::create_kv_cache");
  }
  if (kc.page_size != step.page_size) {
    return invalid_argument("the batch's page tables use page size " +
                            std::to_string(step.page_size) + " but the cache has " +
                            std::to_string(kc.page_size));
  }
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, cache.layer(0).k) != cudaSuccess ||
      attr.type != cudaMemoryTypeDevice || attr.device != m.options.device) {
    (void)cudaGetLastError();
    return invalid_argument(
        "the KV cache is not in memory of cuda:" + std::to_string(m.options.device) +
        "; build it with CudaModel::create_kv_cache");
  }
  // Everything that allocates happens here, before a graph may be captured.
  if (step.shape.decode_rows > 0) {
    VORTEX_ASSIGN_OR_RETURN(gpu::PagedDecodeAttention * op, m.decode_attention_for(kc.page_size));
    for (size_t k = 0; k < step.shape.ranges.size(); ++k) {
      const detail::SparseFlow* f = step.shape.ranges[k].flow;
      if (f == nullptr) continue;
      if (op == nullptr) {
        return unsupported(
            "sparse decode needs the split-KV attention kernel, which does not "
            "support this model's shape (head_dim 64/128, G <= 8, P >= 16)");
      }
      VORTEX_ASSIGN_OR_RETURN(gpu::SparsePlanner * planner, m.planner_for(k, f->chunk_pages));
      (void)planner;
    }
  }
  VORTEX_RETURN_IF_ERROR(m.stage_copies(step));
  detail::InflightStep inf;
  inf.slot = step.slot;
  inf.real_samples = step.real_samples;
  inf.real_tokens = step.real_tokens;
  inf.sampled = step.shape.sample;
  inf.candidate_pages = step.candidate_pages;
  inf.padding_selected = step.padding_selected;
  inf.sparse = std::any_of(step.shape.ranges.begin(), step.shape.ranges.end(),
                           [](const detail::DecodeRange& r) { return r.flow != nullptr; });
  inf.logprobs = step.shape.logprobs;
  const bool profiling = profile != nullptr && profile->enabled;
  if (step.shape.graph && !profiling) {
    VORTEX_RETURN_IF_ERROR(m.run_graph(step.shape, cache, kc.page_size, &inf.graph));
  } else {
    if (profiling) inf.profile = profile;
    VORTEX_RETURN_IF_ERROR(m.enqueue_forward(step.shape, cache, profiling ? &inf : nullptr));
  }
  auto* out = static_cast<int32_t*>(m.results[static_cast<size_t>(step.slot)].data());
  const size_t R = static_cast<size_t>(step.real_samples);
  if (inf.sampled && R > 0) {
    VORTEX_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(out, m.sampled.data(), R * 4, cudaMemcpyDeviceToHost, m.stream));
    if (inf.logprobs) {
      VORTEX_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out + m.capacity.chunks, m.logprobs.data(), R * 4,
                                                  cudaMemcpyDeviceToHost, m.stream));
    }
  }
  if (inf.sparse) {
    VORTEX_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out + 2 * m.capacity.chunks, m.selected_acc.data(),
                                                sizeof(long long), cudaMemcpyDeviceToHost,
                                                m.stream));
  }
  VORTEX_CUDA_RETURN_IF_ERROR(
      cudaEventRecord(m.step_done[static_cast<size_t>(step.slot)].get(), m.stream));
  for (auto& [table, n] : step.commits) table->commit(n);
  m.inflight.push_back(std::move(inf));
  return Status::ok();
}

Status CudaModel::wait(CudaStepResult* result) {
  Impl& m = *impl_;
  if (m.inflight.empty()) return invalid_argument("CudaModel::wait: no launched step");
  detail::InflightStep inf = std::move(m.inflight.front());
  m.inflight.erase(m.inflight.begin());
  VORTEX_CUDA_RETURN_IF_ERROR(
      cudaEventSynchronize(m.step_done[static_cast<size_t>(inf.slot)].get()));
  m.last_completed_rows = inf.real_samples;
  if (result == nullptr) return Status::ok();
  const auto* out = static_cast<const int32_t*>(m.results[static_cast<size_t>(inf.slot)].data());
  const auto R = static_cast<size_t>(inf.real_samples);
  result->tokens.clear();
  result->logprobs.clear();
  if (inf.sampled) result->tokens.assign(out, out + R);
  if (inf.sampled && inf.logprobs) {
    const auto* lp = reinterpret_cast<const float*>(out + m.capacity.chunks);
    result->logprobs.assign(lp, lp + R);
  }
  result->stats = ForwardStats{};
  result->stats.tokens = inf.real_tokens;
  if (inf.sparse) {
    long long selected = 0;
    std::memcpy(&selected, out + 2 * m.capacity.chunks, sizeof(selected));
    result->stats.selected_pages = selected - inf.padding_selected;
    result->stats.candidate_pages = inf.candidate_pages;
  }
  result->graph_replayed = inf.graph;
  if (inf.profile != nullptr) {
    StepProfile& p = *inf.profile;
    const bool enabled = p.enabled;
    p = StepProfile{};
    p.enabled = enabled;
    double* by_stage[] = {&p.embedding_ms, &p.elementwise_ms, &p.gemm_ms,     &p.rope_append_ms,
                          &p.attention_ms, &p.cache_flow_ms,  &p.planner_ms,  &p.indexer_ms,
                          &p.topk_ms,      &p.lm_head_ms,     &p.sampling_ms, &p.sparse_fused_ms,
                          nullptr};
    const auto& ev = inf.stage_events;
    for (size_t i = 0; i + 1 < ev.size(); ++i) {
      float ms = 0.0f;
      VORTEX_CUDA_RETURN_IF_ERROR(
          cudaEventElapsedTime(&ms, m.timing_events[static_cast<size_t>(ev[i].second)].get(),
                               m.timing_events[static_cast<size_t>(ev[i + 1].second)].get()));
      if (double* slot = by_stage[ev[i].first]) *slot += ms;
      p.total_ms += ms;
    }
  }
  return Status::ok();
}

Status CudaModel::read_logits(float* logits, int64_t rows) {
  Impl& m = *impl_;
  if (!m.inflight.empty()) return invalid_argument("read_logits: a step is still in flight");
  if (rows < 0 || rows > m.last_completed_rows) {
    return invalid_argument("read_logits: " + std::to_string(rows) +
                            " rows requested, the last "
                            "step produced " +
                            std::to_string(m.last_completed_rows));
  }
  if (rows == 0) return Status::ok();
  return cuda_status(cudaMemcpy(logits, m.logits.data(),
                                static_cast<size_t>(rows) * m.config.vocab_size * sizeof(float),
                                cudaMemcpyDeviceToHost),
                     "logits copy");
}

Status CudaModel::forward(const ForwardBatch& batch, KVCache& cache, float* logits,
                          ForwardStats* stats) {
  Impl& m = *impl_;
  if (!m.planned.empty() || !m.inflight.empty()) {
    return invalid_argument("CudaModel::forward: asynchronous steps are pending; wait() first");
  }
  if (batch.seqs.empty()) return Status::ok();  // as CpuModel: an empty step does nothing
  int64_t want = 0;
  for (const SequenceChunk& c : batch.seqs) want += c.want_logits ? 1 : 0;
  if (want > 0 && logits == nullptr) {
    return invalid_argument("forward: chunks want logits but the logits buffer is null");
  }
  VORTEX_RETURN_IF_ERROR(m.plan_step(batch, {}, {}, true));
  if (Status s = launch(cache); !s.is_ok()) {
    m.planned.clear();
    return s;
  }
  CudaStepResult result;
  VORTEX_RETURN_IF_ERROR(wait(&result));
  VORTEX_RETURN_IF_ERROR(read_logits(logits, want));
  if (stats != nullptr) {
    stats->tokens += result.stats.tokens;
    stats->selected_pages += result.stats.selected_pages;
    stats->candidate_pages += result.stats.candidate_pages;
  }
  return Status::ok();
}

Status CudaModel::fill_kv_random(KVCache& cache, uint64_t seed) {
  const KVCacheConfig& kc = cache.config();
  if (kc.kv_dtype != DType::kBF16) return unsupported("fill_kv_random needs a bf16 KV cache");
  const int64_t n = int64_t{cache.num_pages()} * kc.num_kv_heads * kc.page_size * kc.head_dim;
  const float half_width = 1.7320508f;  // unit standard deviation
  for (int32_t l = 0; l < kc.num_layers; ++l) {
    const KVLayerView kv = cache.layer(l);
    const uint64_t key = seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(2 * l);
    detail::fill_synthetic_bf16(static_cast<detail::bf16*>(kv.k), n, key, 0, 0.0f, half_width,
                                impl_->stream);
    detail::fill_synthetic_bf16(static_cast<detail::bf16*>(kv.v), n, key + 1, 0, 0.0f, half_width,
                                impl_->stream);
  }
  return cuda_status(cudaStreamSynchronize(impl_->stream), "fill_kv_random");
}

}  // namespace vortex

#endif  // VORTEX_WITH_CUDA
