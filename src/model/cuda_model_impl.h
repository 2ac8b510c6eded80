// Internal to CudaModel: device weights, the fixed layout of a step's metadata (identical in the
// pinned host staging and on the device, so one step is a handful of async copies), the shape of
// a step, captured graphs and the Impl shared by the cuda_model_*.cpp files.
#pragma once

#if defined(VORTEX_WITH_CUDA)

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "vortex/core/allocator.h"
#include "vortex/core/status.h"
#include "vortex/kernels/cuda/gemm.h"
#include "vortex/kernels/cuda/paged_decode_attention.h"
#include "vortex/kernels/cuda/sampling.h"
#include "vortex/model/cuda_model.h"

namespace vortex::detail {

using bf16 = __nv_bfloat16;

/// Page-locked host memory for staging that the GPU copies asynchronously (cudaHostAlloc).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  static Expected<PinnedBuffer> allocate(size_t bytes);
  ~PinnedBuffer() { reset(); }
  PinnedBuffer(PinnedBuffer&& o) noexcept { *this = std::move(o); }
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* data() const { return ptr_; }
  size_t size() const { return bytes_; }
  void reset();

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

/// An owned CUDA event (timing disabled unless asked).
class CudaEvent {
 public:
  CudaEvent() = default;
  static Expected<CudaEvent> create(bool timing);
  ~CudaEvent();
  CudaEvent(CudaEvent&& o) noexcept : ev_(std::exchange(o.ev_, nullptr)) {}
  CudaEvent& operator=(CudaEvent&& o) noexcept;
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  cudaEvent_t get() const { return ev_; }

 private:
  cudaEvent_t ev_ = nullptr;
};

/// An owned non-blocking CUDA stream (synchronised before it is destroyed).
class CudaStream {
 public:
  CudaStream() = default;
  static Expected<CudaStream> create();
  ~CudaStream();
  CudaStream(CudaStream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  CudaStream& operator=(CudaStream&& o) noexcept;
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

/// An instantiated CUDA graph (owns the graph and its executable).
class CudaGraph {
 public:
  CudaGraph() = default;
  CudaGraph(cudaGraph_t graph, cudaGraphExec_t exec) : graph_(graph), exec_(exec) {}
  ~CudaGraph();
  CudaGraph(CudaGraph&& o) noexcept
      : graph_(std::exchange(o.graph_, nullptr)), exec_(std::exchange(o.exec_, nullptr)) {}
  CudaGraph& operator=(CudaGraph&&) = delete;
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;
  cudaGraphExec_t exec() const { return exec_; }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

/// One layer's device weights. Matrices bf16 [out, in]; vectors fp32.
struct CudaLayerWeights {
  const float* attn_norm = nullptr;  // [hidden]
  const bf16* qkv = nullptr;         // [(Hq + 2 Hkv) D, hidden]: q rows, k rows, v rows
  const float* qkv_bias = nullptr;   // [(Hq + 2 Hkv) D] or null (Qwen2)
  const float* q_norm = nullptr;     // [D] or null (Qwen3)
  const float* k_norm = nullptr;     // [D] or null (Qwen3)
  const bf16* o = nullptr;           // [hidden, Hq D]
  const float* ffn_norm = nullptr;   // [hidden]
  const bf16* gate_up = nullptr;     // [2 ffn, hidden]: gate rows, then up rows
  const bf16* down = nullptr;        // [hidden, ffn]
};

struct CudaWeights {
  std::vector<Buffer> owners;
  const bf16* embd = nullptr;       // [vocab, hidden]
  const float* out_norm = nullptr;  // [hidden]
  const bf16* lm_head = nullptr;    // [vocab, hidden] (embd when tied)
  std::vector<CudaLayerWeights> layers;
  int64_t bytes = 0;
};

/// Uploads a WeightMap (fp32 on the host, shapes checked) as device weights.
Expected<CudaWeights> upload_weights(const ModelConfig& config, const WeightMap& weights,
                                     Allocator& alloc);
/// Device-generated weights equal to synthetic_weights(config, seed) rounded to bf16.
Expected<CudaWeights> random_weights(const ModelConfig& config, uint64_t seed, Allocator& alloc,
                                     cudaStream_t stream);

/// Capacities of the per-step metadata.
struct StepCapacity {
  int32_t tokens = 0;  // T
  int32_t chunks = 0;  // C (also logits rows R)
  int64_t pages = 0;   // page ids of all chunks' requests
  int32_t tiles = 0;   // causal-attention query tiles
};

/// Offsets (in int32 words, 16-byte aligned) of every metadata array inside one block. The host
/// staging and the device block share it.
struct StepArrays {
  size_t tokens = 0, prev_index = 0, positions = 0, slots = 0;  // [T]
  size_t q_start = 0, page_indptr = 0;                          // [C + 1]
  size_t start_pos = 0, last_page_len = 0, logit_rows = 0;      // [C]
  size_t pen_indptr = 0;                                        // [C + 1]
  size_t sampling = 0;                                          // [C] SamplingRow
  size_t tile_chunk = 0, tile_first = 0;                        // [tiles]
  size_t completed = 0;                                         // [T] pages completed this step
  size_t completed_count = 0;  // [1] how many of them (read on the device by graph replays)
  size_t group_indptr = 0;     // [2C + 1] rebased page-table CSR of decode ranges after the first
  size_t page_indices = 0;     // [pages]
  size_t words = 0;
  static StepArrays layout(const StepCapacity& cap);
};

/// One flow as the CUDA step runs it: budget arguments, dense layers and its kernels.
struct SparseFlow {
  flow::SparseConfig config;  // a copy: callers may pass temporaries (one per request)
  std::string name;
  gpu::BudgetArgs args;
  int32_t chunk_pages = 64;
  std::vector<uint8_t> dense_layer;  // [layers] 1: runs dense attention, keeps no aux fields
  int32_t sparse_layers = 0;
  int32_t first_sparse_layer = -1;  // where the step's plan is made (the budget ignores layer)
  std::unique_ptr<CudaFlowKernels> kernels;
  /// Generated flows: plans with the flow's budget policy (null: the template planner, args).
  std::function<Status(gpu::SparsePlanner&, const PageTableView&, int32_t, cudaStream_t)> plan;
  bool plan_per_layer = false;         // the budget policy reads `layer`
  float tolerance = 0.0f;              // approxTopK
  std::vector<std::string> aux_names;  // the flow's page summaries (cache aux fields)
};

/// A contiguous range of decode rows attended the same way: dense (flow null) or by one flow.
struct DecodeRange {
  SparseFlow* flow = nullptr;
  int32_t first = 0;           // first decode row (= chunk index)
  int32_t count = 0;           // rows, graph padding included
  std::vector<size_t> chunks;  // batch index of each real row (graph padding rows have none)
  int32_t page_offset = 0;     // page_indptr[first]
  size_t indptr_offset = 0;    // words: CSR of the range rebased to 0 (page_indptr for range 0)
  bool operator==(const DecodeRange& o) const {
    return flow == o.flow && first == o.first && count == o.count;
  }
};

/// The sizes that decide which kernels a step launches (and so which graph it can replay).
struct StepShape {
  int32_t tokens = 0;               // T rows (decode rows first)
  int32_t decode_rows = 0;          // B_d: chunks of one token after a prefix, rows [0, B_d)
  int32_t chunks = 0;               // C
  int32_t tiles = 0;                // causal tiles: decode chunks' first (one each), then prefill
  int32_t logit_rows = 0;           // R
  int32_t completed = 0;            // pages completed this step
  int32_t completed_max = 0;        // bound the cache-flow kernels are launched for
  std::vector<DecodeRange> ranges;  // decode rows [0, decode_rows) by attention kind
  std::vector<SparseFlow*> flows;   // flows whose cache flow runs this step
  bool sample = false;              // run the sampler over the R rows
  bool logprobs = false;
  bool graph = false;  // decode-only and padded to a bucket
};

/// Used extents of each staged array, for the host-to-device copies.
struct StagedExtents {
  int64_t tokens = 0, chunks = 0, pages = 0, tiles = 0, penalties = 0, group_indptr = 0;
};

/// A planned step waiting for launch().
struct PlannedStep {
  int slot = 0;  // staging slot
  StepShape shape;
  StagedExtents extents;
  std::vector<std::pair<PageTable*, int32_t>> commits;
  int32_t real_samples = 0;  // rows of the result (the rest is graph padding)
  int64_t real_tokens = 0;
  int64_t candidate_pages = 0;   // pages dense attention would read for the sparse rows
  int64_t padding_selected = 0;  // selections of graph padding rows (subtracted from the count)
  int32_t page_size = 0;
  bool logits_only = false;
};

/// A launched step waiting for wait().
struct InflightStep {
  int slot = 0;
  int32_t real_samples = 0;
  int64_t real_tokens = 0;
  int64_t candidate_pages = 0;
  int64_t padding_selected = 0;
  bool sparse = false;
  bool graph = false;
  bool sampled = false;
  bool logprobs = false;
  StepProfile* profile = nullptr;
  std::vector<std::pair<int, int>> stage_events;  // (stage, event index) marks
};

/// Stages of a step for the profile.
enum class Stage : int {
  kEmbedding,
  kElementwise,
  kGemm,
  kRopeAppend,
  kAttention,
  kCacheFlow,
  kPlanner,
  kIndexer,
  kTopK,
  kLmHead,
  kSampling,
  kSparseFused,
  kEnd,
  kCount
};

}  // namespace vortex::detail

namespace vortex {

struct CudaModel::Impl {
  detail::CudaStream owned_stream;  // declared first: destroyed after everything using it
  ModelConfig config;
  CudaModelOptions options;
  Allocator* alloc = nullptr;
  cudaStream_t stream = nullptr;
  detail::CudaWeights weights;
  std::unique_ptr<cuda::Gemm> gemm;
  // Weight prefetch (options.weight_prefetch_ctas): a side stream forked from `stream` before the
  // kernel that precedes each GEMM and joined at the end of the step.
  detail::CudaStream prefetch_stream;
  detail::CudaEvent prefetch_fork, prefetch_join;
  bool prefetch_pending = false;
  int32_t max_context = 0;
  int32_t qkv_width = 0;  // (Hq + 2 Hkv) D
  int num_sms = 1;

  // RoPE table [max_context, D/2] (cos, sin).
  Buffer rope_table;

  // Activations, sized for capacity.tokens rows (logits for capacity.chunks rows).
  Buffer residual;  // [T, hidden] f32
  Buffer normed;    // [T, hidden] bf16
  Buffer qkv;       // [T, qkv_width] bf16
  Buffer q;         // [T, Hq, D] bf16
  Buffer attn;      // [T, Hq D] bf16
  Buffer proj;      // [T, hidden] bf16 (o-proj and down-proj outputs)
  Buffer gate_up;   // [T, 2 ffn] bf16
  Buffer act;       // [T, ffn] bf16
  Buffer final_in;  // [R, hidden] bf16
  Buffer logits;    // [R, vocab] f32
  Buffer sampled;   // [R] int32 (read by the next step's token_from_prev)
  Buffer logprobs;  // [R] f32

  // Step metadata: one device block, two pinned staging slots, penalties in growable arrays.
  detail::StepCapacity capacity;
  detail::StepArrays arrays;
  Buffer meta;                                     // device block
  std::array<detail::PinnedBuffer, 2> staging;     // host blocks
  std::array<detail::PinnedBuffer, 2> staged_pen;  // [2 * pen_capacity] int32 per slot
  std::array<detail::PinnedBuffer, 2> results;     // [R] tokens + [R] logprobs per slot
  std::array<detail::CudaEvent, 2> staging_free;   // the slot's copies have completed
  std::array<detail::CudaEvent, 2> step_done;      // the slot's results are on the host
  Buffer penalties;                                // [2 * pen_capacity] int32: tokens then counts
  int64_t pen_capacity = 0;

  // Attention.
  std::map<int32_t, gpu::PagedDecodeAttention> decode_attention;  // by page size

  // Sparse decode: flows by config, a planner per (decode range, chunk size), page scores, and
  // the device counter of selected pages.
  // Keyed by content, not address: a caller's SparseConfig may be a temporary whose address the
  // next request's (different) config reuses.
  std::map<std::string, std::unique_ptr<detail::SparseFlow>> flows;
  std::map<std::pair<size_t, int32_t>, gpu::SparsePlanner> planners;
  Buffer scores;        // row page space, [capacity.pages * H_kv] f32
  Buffer selected_acc;  // [1] int64

  // Graphs by (bucket, page size, logprobs, whether the cache flow runs, every K/V and aux pool
  // pointer, decode ranges).
  using GraphKey = std::tuple<int32_t, int32_t, bool, bool, std::vector<const void*>,
                              std::vector<std::pair<const void*, int32_t>>>;
  std::map<GraphKey, detail::CudaGraph> graphs;
  std::vector<int32_t> buckets;
  bool use_graphs = true;
  SelectionHook selection_hook;  // tests: sees the sparse selections (steps then run eagerly)

  // Step pipeline.
  std::vector<detail::PlannedStep> planned;  // at most 2
  std::vector<detail::InflightStep> inflight;
  int next_slot = 0;
  std::vector<detail::CudaEvent> timing_events;
  int last_completed_slot = -1;
  int32_t last_completed_rows = 0;

  // Helpers (cuda_model.cpp / cuda_model_forward.cpp / cuda_model_plan.cpp).
  Status init_buffers();
  Status grow_penalties(int64_t entries);
  /// The SparseFlow of a chunk's config (resolved once), or null for dense attention.
  Expected<detail::SparseFlow*> flow_for(const flow::SparseConfig* sparse);
  Expected<gpu::SparsePlanner*> planner_for(size_t range, int32_t chunk_pages);
  /// Bound on any request's page count (sizes the planner, the flow runner, the fused kernel).
  int32_t max_pages_per_request() const;
  /// Whether a decode range of `rows` requests runs flow `f`'s sparse layers fused
  /// (options.fused_sparse, the flow's kernels, one CTA per request x KV head vs the SMs).
  bool use_fused_layer(const detail::SparseFlow& f, int32_t rows, int32_t page_size) const;
  /// Whether a range of `rows` requests may run fused kernels (options.fused_sparse, rows vs SMs).
  bool fused_rows(int32_t rows) const;
  /// Whether flows without a fused layer run top-k + attention as one kernel over their
  /// indexer's scores (gpu::fused_select_attend).
  bool use_fused_tail(int32_t rows, int32_t page_size) const;
  /// Decode attention of every range (dense, sparse, fused); `prefetch` goes to each attention
  /// kernel (its CTAs prefetch that range into the L2 as they finish).
  Status sparse_attention(const detail::StepShape& s, const KVCache& cache, int32_t layer,
                          gpu::PagedDecodeAttention* op, cuda::L2Range prefetch,
                          detail::InflightStep* timing);
  /// Reads back range `r`'s selection of `layer` and hands it to selection_hook (synchronises).
  Status report_selection(const detail::DecodeRange& r, int32_t layer,
                          const gpu::SparsePlanner& planner);
  int32_t bucket_for(int32_t batch) const;
  Status plan_step(const ForwardBatch& batch, std::span<const CudaSampleSpec> samples,
                   std::span<const int32_t> token_from_prev, bool logits_only);
  Status stage_copies(const detail::PlannedStep& step);
  Expected<gpu::PagedDecodeAttention*> decode_attention_for(int32_t page_size);
  Status enqueue_forward(const detail::StepShape& shape, const KVCache& cache,
                         detail::InflightStep* timing);
  Status prepare_gemms(const detail::StepShape& shape);
  /// Replays the graph of this shape (*replayed = true), or on its first use runs the step
  /// eagerly and captures it for the next steps.
  Status run_graph(const detail::StepShape& shape, const KVCache& cache, int32_t page_size,
                   bool* replayed);
  void mark(detail::InflightStep* timing, detail::Stage stage);
  /// The side stream, made to wait for everything enqueued on `stream` so far.
  Expected<cudaStream_t> fork_prefetch();
  /// Forks an L2 prefetch of [p, p + bytes) from the stream's current point (no-op when off).
  Status prefetch_weights(const void* p, size_t bytes);
  /// Forks an L2 prefetch of layer `layer`'s page summaries for every sparse range of the step
  /// (options.summary_prefetch_fraction; no-op when off).
  Status prefetch_summaries(const detail::StepShape& s, const KVCache& cache, int32_t layer);
  /// The page table of one decode range (rebased CSR in the step's metadata).
  PageTableView range_pages(const detail::DecodeRange& r) const;
  /// Joins the prefetch branch back into the stream (before the step's last kernels finish).
  Status join_prefetch();

  template <typename T>
  T* meta_ptr(size_t word_offset) const {
    return reinterpret_cast<T*>(static_cast<int32_t*>(meta.data()) + word_offset);
  }
  template <typename T>
  T* staged_ptr(int slot, size_t word_offset) const {
    return reinterpret_cast<T*>(static_cast<int32_t*>(staging[slot].data()) + word_offset);
  }
};

}  // namespace vortex

#endif  // VORTEX_WITH_CUDA
