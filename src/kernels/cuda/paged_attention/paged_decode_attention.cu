// Host side of paged decode attention: config validation, kernel choice per (D, G, dtype),
// occupancy-sized persistent grid, partial buffers, and the launches of run() (two for
// kSplitMerge, one for kStream).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "decode_attention_kernel.cuh"
#include "vortex/core/check.h"
#include "vortex/core/cuda_allocator.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/paged_decode_attention.h"

namespace vortex::gpu {
namespace {

struct KernelSet {
  const void* attention = nullptr;  // kSplitMerge
  const void* merge = nullptr;      // kSplitMerge
  const void* stream = nullptr;     // kStream
  int smem_bytes = 0;
  int threads = 0;
  int stage_tokens = 0;
};

template <int D, int G, typename T>
KernelSet kernel_set() {
  using Tr = decode::Traits<D, G>;
  return {reinterpret_cast<const void*>(&decode::attention_kernel<D, G, T>),
          reinterpret_cast<const void*>(&decode::merge_kernel<T>),
          reinterpret_cast<const void*>(&decode::stream_kernel<D, G, T>),
          Tr::kSmemBytes,
          Tr::kThreads,
          Tr::kStageTokens};
}

template <int D, typename T>
KernelSet kernel_set_g(int g) {
  switch (g) {
    case 1:
      return kernel_set<D, 1, T>();
    case 2:
      return kernel_set<D, 2, T>();
    case 3:
      return kernel_set<D, 3, T>();
    case 4:
      return kernel_set<D, 4, T>();
    case 5:
      return kernel_set<D, 5, T>();
    case 6:
      return kernel_set<D, 6, T>();
    case 7:
      return kernel_set<D, 7, T>();
    case 8:
      return kernel_set<D, 8, T>();
    default:
      return {};
  }
}

KernelSet select_kernels(int d, int g, DType io) {
  const bool bf16 = io == DType::kBF16;
  if (d == 64) return bf16 ? kernel_set_g<64, __nv_bfloat16>(g) : kernel_set_g<64, float>(g);
  if (d == 128) return bf16 ? kernel_set_g<128, __nv_bfloat16>(g) : kernel_set_g<128, float>(g);
  return {};
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

int log2_exact(int32_t x) {
  int l = 0;
  while ((1 << l) < x) ++l;
  return l;
}

}  // namespace

DecodeSchedule default_decode_schedule() {
  static const DecodeSchedule s = [] {
    const char* env = std::getenv("VORTEX_ATTN_SCHED");
    if (env != nullptr && (std::strcmp(env, "old") == 0 || std::strcmp(env, "split_merge") == 0))
      return DecodeSchedule::kSplitMerge;
    return DecodeSchedule::kStream;
  }();
  return s;
}

namespace {
/// The integer in environment variable `name` when it lies in [lo, hi], else `fallback`.
int32_t env_int(const char* name, int32_t lo, int32_t hi, int32_t fallback) {
  const char* env = std::getenv(name);
  if (env == nullptr) return fallback;
  const int v = std::atoi(env);
  return v >= lo && v <= hi ? v : fallback;
}

// Process-wide defaults, read once: the kStream pool share (percent, 0 = static cut) and its
// chunks per CTA, and the CTAs per SM (0 = as many as fit).
int32_t default_pool_percent() {
  static const int32_t k = env_int("VORTEX_ATTN_POOL", 0, 50, 0);
  return k;
}
int32_t default_pool_chunks() {
  static const int32_t k = env_int("VORTEX_ATTN_POOL_CHUNKS", 1, 64, 4);
  return k;
}
int32_t default_ctas_per_sm() {
  static const int32_t k = env_int("VORTEX_ATTN_CTAS_PER_SM", 1, 64, 0);
  return k;
}
}  // namespace

const char* decode_schedule_name(DecodeSchedule s) {
  switch (s) {
    case DecodeSchedule::kSplitMerge:
      return "split_merge";
    case DecodeSchedule::kStream:
      return "stream";
    default:
      return "default";
  }
}

Expected<PagedDecodeAttention> PagedDecodeAttention::create(const DecodeAttentionConfig& c) {
  const std::string where = "paged decode attention config: ";
  if (c.num_kv_heads <= 0 || c.num_q_heads <= 0 || c.num_q_heads % c.num_kv_heads != 0) {
    return invalid_argument(where + "num_q_heads (" + std::to_string(c.num_q_heads) +
                            ") must be a positive multiple of num_kv_heads (" +
                            std::to_string(c.num_kv_heads) + ")");
  }
  const int g = c.num_q_heads / c.num_kv_heads;
  if (g > 8) {
    return unsupported(where + "GQA group " + std::to_string(g) + " > 8 is not supported");
  }
  if (c.head_dim != 64 && c.head_dim != 128) {
    return unsupported(where + "head_dim " + std::to_string(c.head_dim) +
                       " is not supported (64 or 128)");
  }
  if (c.page_size < 16 || (c.page_size & (c.page_size - 1)) != 0 || c.page_size > (1 << 16)) {
    return unsupported(where + "page_size " + std::to_string(c.page_size) +
                       " must be a power of two in [16, 65536]");
  }
  if (c.io_dtype != DType::kBF16 && c.io_dtype != DType::kF32) {
    return unsupported(where + "q/out dtype " + std::string(dtype_name(c.io_dtype)) +
                       " (use bf16 or f32)");
  }
  if (c.max_batch <= 0) return invalid_argument(where + "max_batch must be positive");
  const DecodeSchedule sched =
      c.schedule == DecodeSchedule::kDefault ? default_decode_schedule() : c.schedule;
  if (c.ctas_per_sm < 0) return invalid_argument(where + "ctas_per_sm must be >= 0");
  if (c.pool_percent < -1 || c.pool_percent > 50)
    return invalid_argument(where + "pool_percent must be -1 (default) or 0..50");
  if (c.pool_chunks_per_cta != -1 && (c.pool_chunks_per_cta < 1 || c.pool_chunks_per_cta > 64))
    return invalid_argument(where + "pool_chunks_per_cta must be -1 (default) or 1..64");
  if (sched != DecodeSchedule::kSplitMerge && sched != DecodeSchedule::kStream) {
    return invalid_argument(where + "unknown schedule " +
                            std::to_string(static_cast<int32_t>(c.schedule)));
  }

  const KernelSet ks = select_kernels(c.head_dim, g, c.io_dtype);
  VORTEX_CHECK(ks.attention != nullptr);
  const void* main_kernel = sched == DecodeSchedule::kStream ? ks.stream : ks.attention;
  if (c.page_size < ks.stage_tokens) {
    return unsupported(where + "page_size " + std::to_string(c.page_size) + " < stage of " +
                       std::to_string(ks.stage_tokens) + " tokens");
  }

  VORTEX_CUDA_RETURN_IF_ERROR(cudaSetDevice(c.device));
  int sms = 0;
  VORTEX_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, c.device));
  VORTEX_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
      main_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, ks.smem_bytes));
  // All of the unified L1/shared memory as shared memory: the residency below assumes it.
  VORTEX_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
      main_kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
  int per_sm = 0;
  VORTEX_CUDA_RETURN_IF_ERROR(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &per_sm, main_kernel, ks.threads, ks.smem_bytes));
  if (per_sm <= 0) return internal_error(where + "attention kernel cannot be resident on an SM");

  PagedDecodeAttention op;
  op.config_ = c;
  const int32_t want = c.ctas_per_sm > 0 ? c.ctas_per_sm : default_ctas_per_sm();
  if (want > 0 && want < per_sm) per_sm = want;
  op.launch_.ctas_per_sm = per_sm;
  op.launch_.num_ctas = sms * per_sm;
  // Selections (short rows by construction): measured on H200 (vortex_kernel_bench, the
  // qwen3-1.7b shape), 2 CTAs per SM beat 3 by 15% on 32-page selections, while 3 stay ahead
  // for long dense rows (B=32 L=16K; by 8% with G=4).
  const int32_t sel_per_sm =
      want == 0 && sched == DecodeSchedule::kStream ? std::min(per_sm, 2) : per_sm;
  op.launch_.selection_ctas_per_sm = sel_per_sm;
  op.launch_.selection_ctas = sms * sel_per_sm;
  op.launch_.threads_per_cta = ks.threads;
  op.launch_.smem_bytes = ks.smem_bytes;
  op.launch_.min_pages_per_cta = c.page_size >= 64 ? 1 : 64 / c.page_size;
  op.launch_.stage_tokens = ks.stage_tokens;
  op.launch_.schedule = sched;
  op.launch_.launches = sched == DecodeSchedule::kStream ? 1 : 2;
  op.launch_.pool_percent = sched != DecodeSchedule::kStream ? 0
                            : c.pool_percent >= 0            ? c.pool_percent
                                                             : default_pool_percent();
  op.launch_.pool_chunks_per_cta = op.launch_.pool_percent == 0 ? 0
                                   : c.pool_chunks_per_cta > 0  ? c.pool_chunks_per_cta
                                                                : default_pool_chunks();
  op.attention_kernel_ = main_kernel;
  op.merge_kernel_ = sched == DecodeSchedule::kStream ? nullptr : ks.merge;

  VORTEX_ASSIGN_OR_RETURN(Allocator * alloc, cuda_allocator(c.device));
  const int64_t slots =
      static_cast<int64_t>(op.launch_.num_ctas) * (1 + op.launch_.pool_chunks_per_cta) +
      static_cast<int64_t>(c.max_batch) * c.num_kv_heads;
  VORTEX_ASSIGN_OR_RETURN(
      op.partial_o_, Buffer::allocate(*alloc, static_cast<size_t>(slots) * g * c.head_dim * 4));
  VORTEX_ASSIGN_OR_RETURN(op.partial_lse_,
                          Buffer::allocate(*alloc, static_cast<size_t>(slots) * g * 4));
  if (sched == DecodeSchedule::kStream) {
    const size_t rows = static_cast<size_t>(c.max_batch) * c.num_kv_heads;
    VORTEX_ASSIGN_OR_RETURN(op.arrivals_, Buffer::allocate(*alloc, rows * 4));
    VORTEX_CUDA_RETURN_IF_ERROR(cudaMemset(op.arrivals_.data(), 0, rows * 4));
    VORTEX_ASSIGN_OR_RETURN(op.pool_, Buffer::allocate(*alloc, 2 * sizeof(int32_t)));
    VORTEX_CUDA_RETURN_IF_ERROR(cudaMemset(op.pool_.data(), 0, 2 * sizeof(int32_t)));
    VORTEX_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  }
  return Expected<PagedDecodeAttention>(std::move(op));
}

Status PagedDecodeAttention::run(const void* q, const KVLayerView& kv, const PageTableView& pt,
                                 const SelectionView* sel, float scale, void* out,
                                 cudaStream_t stream, int32_t fresh_tokens,
                                 cuda::L2Range prefetch) const {
  const DecodeAttentionConfig& c = config_;
  const std::string where = "paged decode attention: ";
  if (pt.batch_size < 0 || pt.batch_size > c.max_batch) {
    return invalid_argument(where + "batch " + std::to_string(pt.batch_size) +
                            " outside [0, max_batch " + std::to_string(c.max_batch) + "]");
  }
  if (kv.num_kv_heads != c.num_kv_heads || kv.head_dim != c.head_dim ||
      kv.page_size != c.page_size) {
    return invalid_argument(where + "KV layer shape (H_kv " + std::to_string(kv.num_kv_heads) +
                            ", D " + std::to_string(kv.head_dim) + ", P " +
                            std::to_string(kv.page_size) + ") does not match the config");
  }
  const int32_t rows = pt.batch_size * c.num_kv_heads;
  if (sel != nullptr && sel->num_rows != rows) {
    return invalid_argument(where + "selection has " + std::to_string(sel->num_rows) +
                            " rows, expected B * H_kv = " + std::to_string(rows));
  }
  if (!aligned16(q) || !aligned16(out) || !aligned16(kv.k) || !aligned16(kv.v)) {
    return invalid_argument(where + "q, out, K and V must be 16-byte aligned device pointers");
  }
  if (rows == 0) return Status::ok();

  decode::Params p;
  p.rows.page_indptr = pt.page_indptr;
  p.rows.page_indices = pt.page_indices;
  p.rows.last_page_len = pt.last_page_len;
  p.rows.sel_indptr = sel != nullptr ? sel->sel_indptr : nullptr;
  p.rows.sel_indices = sel != nullptr ? sel->sel_indices : nullptr;
  p.rows.batch = pt.batch_size;
  p.rows.num_kv_heads = c.num_kv_heads;
  p.rows.log2_page = log2_exact(c.page_size);
  p.q = q;
  p.out = out;
  p.k = static_cast<const __nv_bfloat16*>(kv.k);
  p.v = static_cast<const __nv_bfloat16*>(kv.v);
  p.partial_o = static_cast<float*>(partial_o_.data());
  p.partial_lse = static_cast<float*>(partial_lse_.data());
  p.arrivals = static_cast<int32_t*>(arrivals_.data());
  p.num_q_heads = c.num_q_heads;
  p.num_rows = rows;
  p.num_ctas = sel != nullptr ? launch_.selection_ctas : launch_.num_ctas;
  p.min_pages = launch_.min_pages_per_cta;
  p.scale_log2 = scale * 1.4426950408889634f;
  p.pool_units = launch_.pool_chunks_per_cta * p.num_ctas;  // 0 without a pool
  p.pool_percent = launch_.pool_percent;
  p.pool = static_cast<int32_t*>(pool_.data());
  p.fresh_tokens =
      sel == nullptr && merge_kernel_ == nullptr && fresh_tokens >= 0 ? fresh_tokens : -1;

  p.l2_prefetch = prefetch.p;
  p.l2_prefetch_bytes = prefetch.bytes;

  void* attn_args[] = {&p};
  VORTEX_CUDA_RETURN_IF_ERROR(launch_kernel_c(attention_kernel_, dim3(p.num_ctas),
                                              dim3(launch_.threads_per_cta), attn_args,
                                              launch_.smem_bytes, stream));
  if (merge_kernel_ == nullptr) return Status::ok();  // kStream merges in the same launch
  int g = c.num_q_heads / c.num_kv_heads;
  int d = c.head_dim;
  void* merge_args[] = {&p, &g, &d};
  VORTEX_CUDA_RETURN_IF_ERROR(
      launch_kernel_c(merge_kernel_, dim3(rows), dim3(128), merge_args, 0, stream));
  return Status::ok();
}

}  // namespace vortex::gpu
