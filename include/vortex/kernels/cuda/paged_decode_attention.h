// Paged decode attention on the GPU (sm_90a): one query token per request over a bf16 paged KV
// cache, through the request's page table (dense) or a per-row page selection (sparse), with no
// copy of K/V. GQA-aware (the G query heads of a KV head share every K/V load), split-KV with a
// log-sum-exp merge, cp.async pipelines of 16-byte loads, fp32 softmax.
//
// Plan/run: create() sizes and allocates everything once (partial buffers for the largest batch);
// run() only launches kernels. The split layout is a closed-form function of the CSR offsets,
// evaluated on the device (decode_schedule.h), so run() is CUDA-graph safe: a captured run stays
// valid when lengths, page ids and selections change between replays (same batch size B).
// kStream's per-row arrival counters are zeroed by create() and left at zero by every run; like
// the partial buffers they require one op's runs to be ordered (one stream).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "vortex/core/allocator.h"
#include "vortex/core/dtype.h"
#include "vortex/core/status.h"
#include "vortex/kernels/cuda/l2_prefetch.h"
#include "vortex/kvcache/layout.h"

namespace vortex::gpu {

enum class DecodeSchedule : int32_t {
  kDefault = 0,     ///< VORTEX_ATTN_SCHED (old -> kSplitMerge, new -> kStream), else kStream
  kSplitMerge = 1,  ///< per-segment pipeline + a merge kernel (two launches)
  kStream = 2,      ///< cross-segment pipeline + merge by the last CTA of a row (one launch)
};

/// The schedule kDefault resolves to in this process (VORTEX_ATTN_SCHED, read once).
DecodeSchedule default_decode_schedule();
const char* decode_schedule_name(DecodeSchedule s);

struct DecodeAttentionConfig {
  int32_t num_q_heads = 0;        ///< H_q, a multiple of H_kv with G = H_q / H_kv in 1..8
  int32_t num_kv_heads = 0;       ///< H_kv
  int32_t head_dim = 0;           ///< D: 64 or 128
  int32_t page_size = 16;         ///< P: a power of two >= 16
  DType io_dtype = DType::kBF16;  ///< dtype of q and out: kBF16 or kF32 (K/V are always bf16)
  int32_t max_batch = 0;          ///< largest B that run() will see (sizes the partial buffers)
  int32_t device = 0;             ///< CUDA device ordinal
  DecodeSchedule schedule = DecodeSchedule::kDefault;
  /// CTAs of the persistent grid per SM: 0 = as many as fit for dense runs and, with kStream, at
  /// most 2 for runs over a selection (short rows: fewer bytes in flight keep the queue at the
  /// memory and the tail short; VORTEX_ATTN_CTAS_PER_SM overrides both); k > 0 = min(k, as many
  /// as fit) for both. The grid depends only on whether `sel` is null, so captures stay valid.
  int32_t ctas_per_sm = 0;
  /// kStream: percent of the flattened page space (0..50) left out of the CTAs' static ranges and
  /// claimed in small chunks by whichever CTAs finish first (dynamic balance across SMs that
  /// stream at different speeds). -1: VORTEX_ATTN_POOL if set, else the default (see .cu).
  int32_t pool_percent = -1;
  /// kStream: the pool is cut into at most this many chunks per CTA of the grid (1..64; fewer,
  /// larger chunks restart the pipeline less often). -1: VORTEX_ATTN_POOL_CHUNKS, else 4.
  int32_t pool_chunks_per_cta = -1;
};

/// Launch geometry chosen by create(), for reports and tuning.
struct DecodeAttentionLaunch {
  int32_t num_ctas = 0;     ///< persistent grid of dense runs: SMs x ctas_per_sm
  int32_t ctas_per_sm = 0;  ///< used (at most what fits)
  int32_t threads_per_cta = 0;
  int32_t smem_bytes = 0;         ///< dynamic shared memory per CTA
  int32_t min_pages_per_cta = 0;  ///< lower bound of W (short batches use fewer CTAs)
  int32_t selection_ctas = 0;     ///< grid of runs over a selection (sel != null)
  int32_t selection_ctas_per_sm = 0;
  int32_t stage_tokens = 0;                           ///< tokens per warp pipeline stage
  int32_t pool_percent = 0;                           ///< kStream work pool (0: static cut)
  int32_t pool_chunks_per_cta = 0;                    ///< chunks of the pool per CTA of a run
  DecodeSchedule schedule = DecodeSchedule::kStream;  ///< resolved (never kDefault)
  int32_t launches = 0;                               ///< kernels per run()
};

class PagedDecodeAttention {
 public:
  /// Validates the config and allocates the split-KV partial buffers on `config.device`.
  static Expected<PagedDecodeAttention> create(const DecodeAttentionConfig& config);

  /// out[b, hq, :] = softmax(scale * q[b, hq] · Kᵀ) V over the request's tokens (dense, `sel`
  /// null) or over the pages of row (b, hq / G) in `sel` (its last entry must be the request's last
  /// page, holding last_page_len[b] tokens; every other entry a full page). Rows without pages get
  /// zeros. All pointers are device pointers; q/out 16-byte aligned.
  ///   q    [B, H_q, D]  io_dtype          out [B, H_q, D]  io_dtype
  ///   kv   K, V [num_pages, H_kv, P, D] bf16
  ///   pt   page table CSR of the B requests (pt.batch_size = B <= max_batch)
  ///   sel  null, or the selection CSR over rows b * H_kv + h (sel->num_rows = B * H_kv)
  /// `fresh_tokens` >= 0 (kStream, no selection) promises that the kernel launched just before on
  /// `stream` writes neither the page table nor any K/V but the last `fresh_tokens` tokens of each
  /// row (a decode step's append: 1): with programmatic dependent launch the kernel then finds its
  /// rows and requests its first K/V stages while that kernel still runs. -1: no promise.
  /// `prefetch`: a byte range the CTAs prefetch into the L2 as they finish (the next GEMM's
  /// weights; l2_prefetch.h), none by default.
  Status run(const void* q, const KVLayerView& kv, const PageTableView& pt,
             const SelectionView* sel, float scale, void* out, cudaStream_t stream,
             int32_t fresh_tokens = -1, cuda::L2Range prefetch = {}) const;

  const DecodeAttentionConfig& config() const { return config_; }
  const DecodeAttentionLaunch& launch() const { return launch_; }

 private:
  PagedDecodeAttention() = default;
  DecodeAttentionConfig config_;
  DecodeAttentionLaunch launch_;
  const void* attention_kernel_ = nullptr;
  const void* merge_kernel_ = nullptr;
  Buffer partial_o_;    // [num_ctas + max_batch * H_kv, G, D] fp32
  Buffer partial_lse_;  // [num_ctas + max_batch * H_kv, G] fp32, log2 domain
  Buffer arrivals_;     // [max_batch * H_kv] int32, kStream: zero between runs
  Buffer pool_;         // [2] int32, kStream pool claims: zero between runs
};

}  // namespace vortex::gpu
