// Internal to CudaModel: the device side of a step — every kernel of the forward pass enqueued on
// the model's stream over the preallocated buffers and the step's metadata block (so the same
// sequence can be captured once per decode bucket and replayed), and the graph cache.
#if defined(VORTEX_WITH_CUDA)

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_model_impl.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/activation.h"
#include "vortex/kernels/cuda/causal_attention.h"
#include "vortex/kernels/cuda/embedding.h"
#include "vortex/kernels/cuda/l2_prefetch.h"
#include "vortex/kernels/cuda/rmsnorm.h"
#include "vortex/kernels/cuda/rope_append.h"
#include "vortex/kernels/cuda/sampling.h"

namespace vortex {
namespace {

using detail::bf16;
using detail::Stage;

template <typename T>
T* as(const Buffer& b) {
  return static_cast<T*>(b.data());
}

}  // namespace

void CudaModel::Impl::mark(detail::InflightStep* timing, Stage stage) {
  if (timing == nullptr) return;
  const auto index = static_cast<int>(timing->stage_events.size());
  VORTEX_CHECK_MSG(index < static_cast<int>(timing_events.size()), "too many profile events");
  VORTEX_CUDA_CHECK(cudaEventRecord(timing_events[static_cast<size_t>(index)].get(), stream));
  timing->stage_events.emplace_back(static_cast<int>(stage), index);
}

Expected<gpu::PagedDecodeAttention*> CudaModel::Impl::decode_attention_for(int32_t page_size) {
  auto it = decode_attention.find(page_size);
  if (it != decode_attention.end()) return &it->second;
  gpu::DecodeAttentionConfig dc;
  dc.num_q_heads = config.num_q_heads;
  dc.num_kv_heads = config.num_kv_heads;
  dc.head_dim = config.head_dim;
  dc.page_size = page_size;
  dc.io_dtype = DType::kBF16;
  dc.max_batch = capacity.chunks;
  dc.device = options.device;
  auto op = gpu::PagedDecodeAttention::create(dc);
  if (!op.has_value()) {
    // Shapes the split-KV kernel does not cover (head_dim 256, G > 8, ...) run decode tokens
    // through the causal kernel instead.
    if (op.status().code() == StatusCode::kUnsupported)
      return static_cast<gpu::PagedDecodeAttention*>(nullptr);
    return op.status();
  }
  auto [pos, inserted] = decode_attention.emplace(page_size, std::move(*op));
  (void)inserted;
  return &pos->second;
}

Status CudaModel::Impl::prepare_gemms(const detail::StepShape& s) {
  // Plans (autotuned) every GEMM shape of the step on the real buffers, before a capture.
  const ModelConfig& c = config;
  const detail::CudaLayerWeights& w = weights.layers[0];
  const int64_t T = s.tokens, hidden = c.hidden_size, ffn = c.intermediate_size;
  const int64_t q_dim = int64_t{c.num_q_heads} * c.head_dim;
  VORTEX_RETURN_IF_ERROR(
      gemm->prepare(normed.data(), w.qkv, qkv.data(), DType::kBF16, T, qkv_width, hidden, stream));
  VORTEX_RETURN_IF_ERROR(
      gemm->prepare(attn.data(), w.o, proj.data(), DType::kBF16, T, hidden, q_dim, stream));
  VORTEX_RETURN_IF_ERROR(gemm->prepare(normed.data(), w.gate_up, gate_up.data(), DType::kBF16, T,
                                       2 * ffn, hidden, stream));
  VORTEX_RETURN_IF_ERROR(
      gemm->prepare(act.data(), w.down, proj.data(), DType::kBF16, T, hidden, ffn, stream));
  return gemm->prepare(final_in.data(), weights.lm_head, logits.data(), DType::kF32, s.logit_rows,
                       c.vocab_size, hidden, stream);
}

Expected<cudaStream_t> CudaModel::Impl::fork_prefetch() {
  cudaStream_t side = prefetch_stream.get();
  VORTEX_CUDA_RETURN_IF_ERROR(cudaEventRecord(prefetch_fork.get(), stream));
  VORTEX_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(side, prefetch_fork.get(), 0));
  prefetch_pending = true;
  return side;
}

Status CudaModel::Impl::prefetch_weights(const void* p, size_t bytes) {
  if (options.weight_prefetch_ctas <= 0) return Status::ok();
  static const size_t cap = [] {
    const char* v = std::getenv("VORTEX_L2_PREFETCH_MAX_MB");
    return (v != nullptr ? static_cast<size_t>(std::max(1, std::atoi(v))) : size_t{32}) << 20;
  }();
  VORTEX_ASSIGN_OR_RETURN(cudaStream_t side, fork_prefetch());
  return cuda_status(cuda::l2_prefetch(p, std::min(bytes, cap), options.weight_prefetch_ctas, side),
                     "weight prefetch");
}

Status CudaModel::Impl::prefetch_summaries(const detail::StepShape& s, const KVCache& cache,
                                           int32_t layer) {
  if (!(options.summary_prefetch_fraction > 0.0f)) return Status::ok();
  for (const detail::DecodeRange& r : s.ranges) {
    const detail::SparseFlow* f = r.flow;
    if (f == nullptr || r.count == 0 || f->dense_layer[static_cast<size_t>(layer)] != 0) continue;
    for (const std::string& name : f->aux_names) {
      const int32_t field = cache.field_index(name);
      if (field < 0) continue;
      const AuxFieldView a = cache.aux(layer, field);
      if (a.data == nullptr) continue;
      const AuxFieldSpec& spec = cache.config().aux_fields[static_cast<size_t>(field)];
      const size_t page_bytes =
          static_cast<size_t>(config.num_kv_heads) * a.rows * a.cols * dtype_size(spec.dtype);
      VORTEX_ASSIGN_OR_RETURN(cudaStream_t side, fork_prefetch());
      VORTEX_RETURN_IF_ERROR(
          cuda_status(cuda::l2_prefetch_pages(range_pages(r), a.data, page_bytes,
                                              options.summary_prefetch_fraction, num_sms, side),
                      "summary prefetch"));
    }
  }
  return Status::ok();
}

Status CudaModel::Impl::join_prefetch() {
  if (!prefetch_pending) return Status::ok();
  prefetch_pending = false;
  VORTEX_CUDA_RETURN_IF_ERROR(cudaEventRecord(prefetch_join.get(), prefetch_stream.get()));
  return cuda_status(cudaStreamWaitEvent(stream, prefetch_join.get(), 0), "join prefetch");
}

Status CudaModel::Impl::enqueue_forward(const detail::StepShape& s, const KVCache& cache,
                                        detail::InflightStep* timing) {
  const ModelConfig& c = config;
  const detail::StepArrays& a = arrays;
  const int64_t T = s.tokens, hidden = c.hidden_size, ffn = c.intermediate_size;
  const int64_t q_dim = int64_t{c.num_q_heads} * c.head_dim;
  const float eps = c.rms_norm_eps;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const int32_t P = cache.config().page_size;

  float* residual_p = as<float>(residual);
  bf16* normed_p = as<bf16>(normed);
  bf16* qkv_p = as<bf16>(qkv);
  bf16* q_p = as<bf16>(q);
  bf16* attn_p = as<bf16>(attn);
  bf16* proj_p = as<bf16>(proj);
  bf16* gate_up_p = as<bf16>(gate_up);
  bf16* act_p = as<bf16>(act);

  gpu::PagedDecodeAttention* decode_op = nullptr;
  if (s.decode_rows > 0) {
    // launch() created it when the split-KV kernel supports the shape; else the causal kernel
    // takes the decode rows too.
    auto it = decode_attention.find(P);
    if (it != decode_attention.end()) decode_op = &it->second;
  }
  const int32_t causal_first = decode_op != nullptr ? s.decode_rows : 0;
  cuda::CausalAttentionBatch causal;
  causal.q_start = meta_ptr<int32_t>(a.q_start);
  causal.start_pos = meta_ptr<int32_t>(a.start_pos);
  causal.page_indptr = meta_ptr<int32_t>(a.page_indptr);
  causal.page_indices = meta_ptr<int32_t>(a.page_indices);
  causal.tile_chunk = meta_ptr<int32_t>(a.tile_chunk) + causal_first;
  causal.tile_first = meta_ptr<int32_t>(a.tile_first) + causal_first;
  causal.num_tiles = s.tiles - causal_first;
  causal.tile_tokens = cuda::causal_tile_tokens(c.group_size());

  cuda::RopeAppendParams rp;
  rp.qkv = qkv_p;
  rp.qkv_stride = qkv_width;
  rp.norm_eps = eps;
  rp.positions = meta_ptr<int32_t>(a.positions);
  rp.slots = meta_ptr<int32_t>(a.slots);
  rp.rope_table = as<float2>(rope_table);
  rp.max_positions = max_context;
  rp.style = c.rope.style;
  rp.q_out = q_p;
  rp.n = T;
  rp.num_q_heads = c.num_q_heads;

  const bool any_sparse =
      std::any_of(s.ranges.begin(), s.ranges.end(),
                  [](const detail::DecodeRange& r) { return r.flow != nullptr; });
  if (any_sparse) {
    VORTEX_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(selected_acc.data(), 0, selected_acc.size(), stream));
  }
  const size_t wbytes = sizeof(bf16) * static_cast<size_t>(hidden);  // one weight row
  VORTEX_RETURN_IF_ERROR(prefetch_weights(weights.layers[0].qkv, qkv_width * wbytes));
  mark(timing, Stage::kEmbedding);
  cuda::embedding_lookup(weights.embd, c.vocab_size, c.hidden_size, meta_ptr<int32_t>(a.tokens),
                         as<int32_t>(sampled), meta_ptr<int32_t>(a.prev_index), T, residual_p,
                         stream);
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const detail::CudaLayerWeights& w = weights.layers[static_cast<size_t>(l)];
    const KVLayerView kv = cache.layer(l);
    mark(timing, Stage::kElementwise);
    if (l == 0) {
      cuda::rms_norm(residual_p, w.attn_norm, T, c.hidden_size, eps, normed_p, stream);
    } else {
      cuda::add_rms_norm(residual_p, proj_p, w.attn_norm, T, c.hidden_size, eps, normed_p, stream);
    }
    VORTEX_RETURN_IF_ERROR(prefetch_summaries(s, cache, l));  // read after the qkv GEMM + RoPE
    mark(timing, Stage::kGemm);
    VORTEX_RETURN_IF_ERROR(
        gemm->matmul(normed_p, w.qkv, qkv_p, DType::kBF16, T, qkv_width, hidden, 0.0f, stream));
    mark(timing, Stage::kRopeAppend);
    rp.bias = w.qkv_bias;
    rp.q_norm = w.q_norm;
    rp.k_norm = w.k_norm;
    rp.kv = kv;
    cuda::rope_append(rp, stream);
    for (detail::SparseFlow* f : s.flows) {  // summaries of the pages this step completed
      if (f->dense_layer[static_cast<size_t>(l)] != 0 || s.completed_max == 0) continue;
      mark(timing, Stage::kCacheFlow);
      VORTEX_RETURN_IF_ERROR(f->kernels->cache_flow(cache, l, meta_ptr<int32_t>(a.completed),
                                                    meta_ptr<int32_t>(a.completed_count),
                                                    s.completed_max, stream));
    }
    const size_t o_bytes = static_cast<size_t>(q_dim) * wbytes;
    const cuda::L2Range o_by_attention =
        options.weight_prefetch_ctas > 0 && options.attention_prefetches_o && decode_op != nullptr
            ? cuda::L2Range{w.o, o_bytes}
            : cuda::L2Range{};
    mark(timing, Stage::kAttention);
    if (decode_op != nullptr) {
      VORTEX_RETURN_IF_ERROR(sparse_attention(s, cache, l, decode_op, o_by_attention, timing));
      mark(timing, Stage::kAttention);
    }
    if (causal.num_tiles > 0) {
      cuda::causal_attention(q_p, kv, causal, c.num_q_heads, scale, attn_p, stream);
    }
    // Weight prefetches (when on) are forked before the kernel that precedes each GEMM; the o
    // projection's by the attention CTAs as they finish, or beside the GEMM itself (attention
    // streams far more than the L2 holds, a prefetch at its start would be evicted).
    if (o_by_attention.p == nullptr) VORTEX_RETURN_IF_ERROR(prefetch_weights(w.o, o_bytes));
    mark(timing, Stage::kGemm);
    VORTEX_RETURN_IF_ERROR(
        gemm->matmul(attn_p, w.o, proj_p, DType::kBF16, T, hidden, q_dim, 0.0f, stream));
    VORTEX_RETURN_IF_ERROR(prefetch_weights(w.gate_up, static_cast<size_t>(2 * ffn) * wbytes));
    mark(timing, Stage::kElementwise);
    cuda::add_rms_norm(residual_p, proj_p, w.ffn_norm, T, c.hidden_size, eps, normed_p, stream);
    mark(timing, Stage::kGemm);
    VORTEX_RETURN_IF_ERROR(gemm->matmul(normed_p, w.gate_up, gate_up_p, DType::kBF16, T, 2 * ffn,
                                        hidden, 0.0f, stream));
    VORTEX_RETURN_IF_ERROR(prefetch_weights(w.down, static_cast<size_t>(ffn) * wbytes));
    mark(timing, Stage::kElementwise);
    cuda::silu_mul(gate_up_p, T, c.intermediate_size, act_p, stream);
    mark(timing, Stage::kGemm);
    VORTEX_RETURN_IF_ERROR(
        gemm->matmul(act_p, w.down, proj_p, DType::kBF16, T, hidden, ffn, 0.0f, stream));
    if (l + 1 < c.num_layers) {
      VORTEX_RETURN_IF_ERROR(
          prefetch_weights(weights.layers[static_cast<size_t>(l) + 1].qkv, qkv_width * wbytes));
    } else {
      VORTEX_RETURN_IF_ERROR(
          prefetch_weights(weights.lm_head, static_cast<size_t>(c.vocab_size) * wbytes));
    }
  }
  mark(timing, Stage::kElementwise);
  // The last MLP output joins the residual; only the logits rows are normalised for the head.
  cuda::add_rms_norm(residual_p, proj_p, weights.out_norm, T, c.hidden_size, eps, normed_p, stream);
  cuda::rms_norm_rows(residual_p, meta_ptr<int32_t>(a.logit_rows), weights.out_norm, s.logit_rows,
                      c.hidden_size, eps, as<bf16>(final_in), stream);
  mark(timing, Stage::kLmHead);
  VORTEX_RETURN_IF_ERROR(gemm->matmul(as<bf16>(final_in), weights.lm_head, logits.data(),
                                      DType::kF32, s.logit_rows, c.vocab_size, hidden, 0.0f,
                                      stream));
  VORTEX_RETURN_IF_ERROR(join_prefetch());
  if (s.sample) {
    mark(timing, Stage::kSampling);
    const int32_t* pen = as<int32_t>(penalties);
    cuda::PenaltyView pv{meta_ptr<int32_t>(a.pen_indptr), pen, pen + pen_capacity};
    cuda::sample_tokens(as<float>(logits), s.logit_rows, c.vocab_size,
                        meta_ptr<cuda::SamplingRow>(a.sampling), pv, as<int32_t>(sampled),
                        s.logprobs ? as<float>(logprobs) : nullptr, stream);
  }
  mark(timing, Stage::kEnd);
  return Status::ok();
}

Status CudaModel::Impl::run_graph(const detail::StepShape& s, const KVCache& cache,
                                  int32_t page_size, bool* replayed) {
  std::vector<const void*> pools;
  for (int32_t l = 0; l < cache.config().num_layers; ++l) {
    pools.push_back(cache.layer(l).k);
    pools.push_back(cache.layer(l).v);
    for (size_t f = 0; f < cache.config().aux_fields.size(); ++f) {
      pools.push_back(cache.aux(l, static_cast<int32_t>(f)).data);
    }
  }
  std::vector<std::pair<const void*, int32_t>> ranges;
  for (const detail::DecodeRange& r : s.ranges) ranges.emplace_back(r.flow, r.count);
  GraphKey key{s.decode_rows,       page_size,        s.logprobs,
               s.completed_max > 0, std::move(pools), std::move(ranges)};
  auto it = graphs.find(key);
  if (it != graphs.end()) {
    *replayed = true;
    return cuda_status(cudaGraphLaunch(it->second.exec(), stream), "cudaGraphLaunch");
  }
  // First step of this shape: run it eagerly (which also loads every kernel module, lazily loaded
  // code must not first run inside a capture), then capture the same sequence for the next ones.
  *replayed = false;
  VORTEX_RETURN_IF_ERROR(prepare_gemms(s));
  VORTEX_RETURN_IF_ERROR(enqueue_forward(s, cache, nullptr));
  VORTEX_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  const Status captured = enqueue_forward(s, cache, nullptr);
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  if (!captured.is_ok()) {
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    return captured.with_context("capturing the decode graph for batch " +
                                 std::to_string(s.decode_rows));
  }
  VORTEX_RETURN_IF_ERROR(cuda_status(end, "cudaStreamEndCapture"));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
  if (inst != cudaSuccess) {
    (void)cudaGraphDestroy(graph);
    return cuda_status(inst, "cudaGraphInstantiate");
  }
  graphs.emplace(std::move(key), detail::CudaGraph(graph, exec));
  return Status::ok();
}

}  // namespace vortex

#endif  // VORTEX_WITH_CUDA
