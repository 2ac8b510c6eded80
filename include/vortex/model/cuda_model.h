// CudaModel: the Llama / Qwen2 / Qwen3 forward pass on one CUDA GPU (sm_90a) over a bf16 paged KV
// cache, mirroring CpuModel. Weights live on the device as bf16 (norm weights and biases fp32).
// Besides CpuModel's synchronous forward(), a step can run asynchronously with sampling on the
// device: plan() stages the step's metadata on the host (pinned, double-buffered), launch()
// enqueues it — decode-only steps replay a CUDA graph captured per batch-size bucket — and wait()
// returns only the sampled token ids. The host can plan step N+1 while step N runs; a decode
// token may be taken from the previous step's samples on the device (token_from_prev), so step N+1
// can be launched before step N's tokens are read.
//
// Only built with the CUDA backend (VORTEX_WITH_CUDA).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vortex/core/status.h"
#include "vortex/kernels/cuda/block_topk_fused.h"
#include "vortex/kernels/cuda/sparse_planner.h"
#include "vortex/kvcache/kv_cache.h"
#include "vortex/model/forward_batch.h"
#include "vortex/model/model_config.h"
#include "vortex/model/sampler.h"
#include "vortex/model/weights.h"

namespace vortex {

struct CudaModelOptions {
  int32_t device = 0;
  int32_t max_batch = 256;    ///< most chunks in one step, and the largest decode graph bucket
  int32_t max_tokens = 8192;  ///< most tokens in one step (the prefill chunk budget)
  int32_t max_context = 0;    ///< 0: the config's max_context (sizes the RoPE table, page lists)
  bool use_graphs = true;     ///< capture and replay decode-only steps per batch-size bucket
  /// Time the cuBLASLt heuristic's top candidates for skinny GEMM shapes (n <= 512 rows) and keep
  /// the fastest. The pick depends on timing, so two models (or two runs) may pick different
  /// algorithms and their logits differ in the last bits. false: the heuristic's first pick, the
  /// same in every model for a shape, so models with equal weights give bitwise-equal logits.
  bool gemm_autotune = true;
  /// Decode batch-size buckets (ascending); empty: 1 2 4 8 16 24 32 48 64 96 128 ... max_batch.
  std::vector<int32_t> graph_buckets;
  /// A flow's sparse layers as one fused kernel (scores + top-k + attention, one CTA per row of
  /// requests x KV heads) where the flow has one (block_topk), else its top-k + attention as one
  /// kernel over its indexer's scores: kAuto when a decode range has at least as many rows as the
  /// GPU has SMs, kOn whenever the shape is covered, kOff never.
  /// VORTEX_FUSED_SPARSE=auto|on|off overrides it (for A/B runs).
  enum class FusedSparse { kAuto, kOn, kOff };
  FusedSparse fused_sparse = FusedSparse::kAuto;
  /// Prefetch each decode GEMM's weights into the L2 from a side branch of the step (a kernel of
  /// this many one-warp CTAs issuing bulk L2 prefetches, forked before the kernel that precedes
  /// the GEMM), so the weight reads start before the GEMM does. 0: off; negative: one per SM.
  /// An L2 hint only: no value changes. Not yet measured (off by default).
  /// VORTEX_L2_PREFETCH=off|on|N overrides it (on: one CTA per SM).
  int32_t weight_prefetch_ctas = 0;
  /// With weight prefetch on: the o projection's weights are prefetched by the attention kernels'
  /// CTAs as they finish (true), or from the side branch beside the GEMM (false).
  /// VORTEX_L2_PREFETCH_O=attention|side overrides it.
  bool attention_prefetches_o = true;
  /// Prefetch into the L2, beside each sparse layer's qkv projection, the page summaries (the
  /// flow's aux fields) of the first `summary_prefetch_fraction` of every sparse row's pages,
  /// which the indexer reads next. 0: off. VORTEX_L2_PREFETCH_SUMMARIES=<fraction> overrides it.
  /// An L2 hint only. Not yet measured (off by default).
  float summary_prefetch_fraction = 0.0f;
};

/// How to sample the logits row of one chunk with want_logits, on the device.
struct CudaSampleSpec {
  const SamplingParams* params = nullptr;  ///< null: greedy, no penalties
  std::span<const int32_t> prompt;         ///< repetition penalty context
  std::span<const int32_t> generated;      ///< penalties; its size is the Philox draw index
  /// >= 0: the Philox draw index instead of generated.size() (a decode token taken from the
  /// previous step is generated but not in `generated` yet).
  int64_t draw_index = -1;
  bool want_logprob = false;
};

/// What a launched step returns.
struct CudaStepResult {
  std::vector<int32_t> tokens;  ///< one per sampled chunk, in batch order
  std::vector<float> logprobs;  ///< same order; log-softmax after penalties and temperature
  ForwardStats stats;
  /// The step replayed a captured CUDA graph (the first step of a bucket runs eagerly and is
  /// captured for the next ones).
  bool graph_replayed = false;
};

/// Per-stage GPU time of one step run eagerly with events between stages (StepProfile::enabled).
struct StepProfile {
  bool enabled = false;
  /// elementwise: RMSNorms, residual adds, SwiGLU. gemm: every projection except the LM head.
  double embedding_ms = 0, elementwise_ms = 0, gemm_ms = 0, rope_append_ms = 0, attention_ms = 0;
  double cache_flow_ms = 0, planner_ms = 0, indexer_ms = 0, topk_ms = 0, lm_head_ms = 0;
  double sampling_ms = 0, total_ms = 0;
  /// Fused sparse layers (indexer + top-k + attention in one kernel; then indexer_ms and topk_ms
  /// stay 0 for those layers).
  double sparse_fused_ms = 0;
};

/// The device half of one flow inside a CUDA decode step: its cache flow and its indexer. The
/// model owns the rest of the sparse pipeline (device planner, top-k, attention over the
/// selection). block_topk has a hand-written implementation; other flows come from the factory
/// set with set_cuda_flow_factory (the NVRTC flow backend). Every method only enqueues work on
/// `stream` over preallocated memory, so it can be captured in the decode graph.
class CudaFlowKernels {
 public:
  virtual ~CudaFlowKernels() = default;
  /// Writes the flow's aux fields of layer `layer` for the first min(*count, max_pages) page ids
  /// of `pages` (device), pages whose last token this step wrote.
  virtual Status cache_flow(const KVCache& cache, int32_t layer, const int32_t* pages,
                            const int32_t* count, int32_t max_pages, cudaStream_t stream) = 0;
  /// Scores every candidate page of the planner's worklist for the rows of `pt` (device CSR of the
  /// decode requests, page_indptr[0] == 0) into the row page space `scores` (fp32).
  ///   q  [pt.batch_size, H_q, D] bf16, after RoPE and q-norm
  virtual Status score(const KVCache& cache, int32_t layer, const void* q, const PageTableView& pt,
                       const gpu::WorkListView& work, float* scores, cudaStream_t stream) = 0;

  /// Whether fused_layer() covers this model shape, page size and page-count bound (default: no
  /// fused kernel).
  virtual bool has_fused_layer(int32_t page_size, int32_t max_pages) const {
    (void)page_size;
    (void)max_pages;
    return false;
  }
  /// The whole sparse layer in one launch: scores, the selection into sel_indices (the same
  /// entries score + select_topk produce) and attention over it into `out`. `args` comes filled
  /// in by the model except the flow's own inputs (block_topk: the centroid field of `layer`).
  virtual Status fused_layer(const KVCache& cache, int32_t layer, gpu::BlockTopKFusedArgs args,
                             cudaStream_t stream) {
    (void)cache;
    (void)layer;
    (void)args;
    (void)stream;
    return unsupported("this flow has no fused sparse layer");
  }
};

/// Makes the CUDA kernels of a flow that has no hand-written implementation.
using CudaFlowFactory = std::function<Expected<std::unique_ptr<CudaFlowKernels>>(
    const flow::SparseConfig& sparse, const ModelConfig& model)>;
/// Installs the factory used for such flows (process-wide; null removes it).
void set_cuda_flow_factory(CudaFlowFactory factory);

class CudaModel {
 public:
  /// Uploads `weights` (fp32, canonical names, checked like CpuModel) as bf16 to the device.
  static Expected<std::unique_ptr<CudaModel>> create(const ModelConfig& config,
                                                     const WeightMap& weights,
                                                     const CudaModelOptions& options = {});
  /// Random weights generated on the device with the formula of synthetic_weights(config, seed)
  /// (the same values, rounded to bf16): benchmark-sized models without host weights.
  static Expected<std::unique_ptr<CudaModel>> create_random(const ModelConfig& config,
                                                            uint64_t seed,
                                                            const CudaModelOptions& options = {});
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  const ModelConfig& config() const;
  const CudaModelOptions& options() const;
  /// The stream every step runs on.
  cudaStream_t stream() const;
  /// Device bytes of the weights.
  int64_t weight_bytes() const;

  /// The KVCacheConfig this model needs for page size P (bf16 K/V) and the aux fields of `flows`
  /// (as CpuModel::kv_cache_config).
  KVCacheConfig kv_cache_config(int32_t page_size,
                                const std::vector<const flow::SparseConfig*>& flows) const;
  /// A KV cache of `num_pages` pages on the model's device.
  Expected<KVCache> create_kv_cache(const KVCacheConfig& config, int32_t num_pages) const;

  /// CpuModel's contract, synchronously: appends every chunk's K/V, writes the last-token logits
  /// of every chunk with want_logits, in batch order, to host `logits` [count, vocab], commits the
  /// chunks' tokens to their page tables. Fails if a step is in flight.
  Status forward(const ForwardBatch& batch, KVCache& cache, float* logits, ForwardStats* stats);

  /// Stages a step on the host. `samples` has one entry per chunk with want_logits (batch order),
  /// or is empty (no sampling: logits only). `token_from_prev`, when not empty, has one entry per
  /// chunk: >= 0 takes that chunk's (single) input token from that sample row of the previous
  /// launched step instead of chunk.tokens. At most two steps may be planned or in flight.
  Status plan(const ForwardBatch& batch, std::span<const CudaSampleSpec> samples = {},
              std::span<const int32_t> token_from_prev = {});
  /// Enqueues the planned step on stream() and commits its tokens to the page tables; returns
  /// without waiting. A non-null `profile` with enabled = true runs it eagerly with stage events
  /// (filled in by wait()).
  Status launch(KVCache& cache, StepProfile* profile = nullptr);
  /// Waits for the oldest launched step and returns its samples.
  Status wait(CudaStepResult* result);
  /// Copies the logits of the last completed step (rows in batch order of want_logits) to host.
  Status read_logits(float* logits, int64_t rows);

  /// Turns graph capture/replay on or off (tests compare the two).
  void set_use_graphs(bool on);
  /// Number of captured decode graphs.
  int32_t num_graphs() const;
  /// Tests and debugging: `hook` sees every sparse decode range's selection per layer (read back
  /// from the device; changing it has no effect). While a hook is set, steps run eagerly (no
  /// graphs) and each sparse layer synchronises the stream. Null removes it.
  void set_selection_hook(SelectionHook hook);

  /// Runs `sparse`'s cache flow over `pages` (host list of physical ids) on every layer where it
  /// keeps aux fields: summaries of pages filled outside forward() (benchmarks, restored caches).
  Status run_cache_flow(KVCache& cache, const flow::SparseConfig& sparse,
                        std::span<const int32_t> pages);

  /// Fills every K/V element of `cache` with seeded random bf16 values of unit scale (benchmarks
  /// of steady-state decode need a full cache, not a prefill).
  Status fill_kv_random(KVCache& cache, uint64_t seed);

 private:
  CudaModel();
  static Expected<std::unique_ptr<CudaModel>> make(const ModelConfig& config,
                                                   const CudaModelOptions& options,
                                                   const WeightMap* weights, uint64_t seed);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Streaming-read bandwidth of CUDA device `device` in GB/s (1e9 bytes/s): 16-byte loads over a
/// `bytes` buffer (several times the L2; 4 GiB by default), median of six timed passes. The
/// ceiling that decode benchmarks compare their bytes per step with.
Expected<double> measure_read_bandwidth_gbps(int device = 0, size_t bytes = size_t{4} << 30);

/// A SparseConfig for the built-in flow `name` (e.g. "block_topk") with `budget`; an error when
/// this build has no flow module or the flow is unknown.
Expected<flow::SparseConfig> builtin_sparse_config(const std::string& name,
                                                   const flow::BudgetParams& budget);

}  // namespace vortex
