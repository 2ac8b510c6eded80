// CpuModel: the reference Llama / Qwen2 / Qwen3 forward pass over the paged KV cache. One step
// runs every chunk of the batch through embedding → layers → final norm → LM head; attention is
// causal for prefill chunks and paged (dense or over each row's selected pages) for decode tokens.
#include "vortex/model/cpu_model.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "cpu_model_plan.h"
#include "cpu_model_sparse.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex {
namespace {

/// Pointers into one layer's weights (fp32, [out, in] row-major); optional ones may be null.
struct LayerWeights {
  const float* attn_norm = nullptr;  // [hidden]
  const float* wq = nullptr;         // [Hq * D, hidden]
  const float* wk = nullptr;         // [Hkv * D, hidden]
  const float* wv = nullptr;         // [Hkv * D, hidden]
  const float* bq = nullptr;         // [Hq * D]   Qwen2
  const float* bk = nullptr;         // [Hkv * D]  Qwen2
  const float* bv = nullptr;         // [Hkv * D]  Qwen2
  const float* q_norm = nullptr;     // [D]        Qwen3
  const float* k_norm = nullptr;     // [D]        Qwen3
  const float* wo = nullptr;         // [hidden, Hq * D]
  const float* ffn_norm = nullptr;   // [hidden]
  const float* gate = nullptr;       // [ffn, hidden]
  const float* up = nullptr;         // [ffn, hidden]
  const float* down = nullptr;       // [hidden, ffn]
};

/// The fp32 data of tensor `name`, checked to have `shape`.
Expected<const float*> fetch(const WeightMap& weights, const std::string& name,
                             const Shape& shape) {
  VORTEX_ASSIGN_OR_RETURN(Tensor t, weights.get(name));
  if (t.dtype() != DType::kF32 || !t.device().is_cpu()) {
    return invalid_argument("tensor '" + name +
                            "' must be fp32 on the CPU for the CPU model, got " +
                            std::string(dtype_name(t.dtype())) + " on " + t.device().to_string());
  }
  if (!(t.shape() == shape)) {
    return invalid_argument("tensor '" + name + "' has shape " + t.shape().to_string() +
                            " but the model config needs " + shape.to_string());
  }
  return static_cast<const float*>(t.data());
}

}  // namespace

struct CpuModel::Impl {
  ModelConfig config;
  WeightMap weights;                // owns the tensors the pointers below refer to
  const float* embd = nullptr;      // [vocab, hidden]
  const float* out_norm = nullptr;  // [hidden]
  const float* lm_head = nullptr;   // [vocab, hidden] (token_embd when tied)
  std::vector<LayerWeights> layers;

  // Scratch reused across steps; T = tokens in the step.
  std::vector<float> residual, normed;  // [T, hidden]
  std::vector<float> q, attn;           // [T, Hq * D]
  std::vector<float> k, v;              // [T, Hkv * D]
  std::vector<float> proj, mlp_out;     // [T, hidden]
  std::vector<float> gate, up;          // [T, ffn]
  SelectionHook selection_hook;         // tests: sees (and may replace) sparse selections

  Status load_weights();
  Status run_cache_flows(int32_t layer, const detail::StepPlan& plan, const ForwardBatch& batch,
                         KVCache& cache);
  Status attention(int32_t layer, const detail::StepPlan& plan, const ForwardBatch& batch,
                   KVCache& cache, ForwardStats* stats);
  Status decode_group(int32_t layer, const std::vector<size_t>& chunks,
                      const flow::SparseConfig* sparse, const detail::StepPlan& plan,
                      const ForwardBatch& batch, KVCache& cache, ForwardStats* stats);
};

Status CpuModel::Impl::load_weights() {
  const ModelConfig& c = config;
  const int64_t hidden = c.hidden_size, ffn = c.intermediate_size, dim = c.head_dim;
  const int64_t q_dim = int64_t{c.num_q_heads} * dim, kv_dim = int64_t{c.num_kv_heads} * dim;
  VORTEX_ASSIGN_OR_RETURN(embd, fetch(weights, "token_embd", Shape{c.vocab_size, hidden}));
  VORTEX_ASSIGN_OR_RETURN(out_norm, fetch(weights, "output_norm", Shape{hidden}));
  if (c.tie_embeddings) {
    lm_head = embd;
  } else {
    VORTEX_ASSIGN_OR_RETURN(lm_head, fetch(weights, "output", Shape{c.vocab_size, hidden}));
  }
  layers.resize(static_cast<size_t>(c.num_layers));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& w = layers[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    VORTEX_ASSIGN_OR_RETURN(w.attn_norm, fetch(weights, p + "attn_norm", Shape{hidden}));
    VORTEX_ASSIGN_OR_RETURN(w.wq, fetch(weights, p + "attn_q", Shape{q_dim, hidden}));
    VORTEX_ASSIGN_OR_RETURN(w.wk, fetch(weights, p + "attn_k", Shape{kv_dim, hidden}));
    VORTEX_ASSIGN_OR_RETURN(w.wv, fetch(weights, p + "attn_v", Shape{kv_dim, hidden}));
    if (c.qkv_bias) {
      VORTEX_ASSIGN_OR_RETURN(w.bq, fetch(weights, p + "attn_q.bias", Shape{q_dim}));
      VORTEX_ASSIGN_OR_RETURN(w.bk, fetch(weights, p + "attn_k.bias", Shape{kv_dim}));
      VORTEX_ASSIGN_OR_RETURN(w.bv, fetch(weights, p + "attn_v.bias", Shape{kv_dim}));
    }
    if (c.qk_norm) {
      VORTEX_ASSIGN_OR_RETURN(w.q_norm, fetch(weights, p + "attn_q_norm", Shape{dim}));
      VORTEX_ASSIGN_OR_RETURN(w.k_norm, fetch(weights, p + "attn_k_norm", Shape{dim}));
    }
    VORTEX_ASSIGN_OR_RETURN(w.wo, fetch(weights, p + "attn_output", Shape{hidden, q_dim}));
    VORTEX_ASSIGN_OR_RETURN(w.ffn_norm, fetch(weights, p + "ffn_norm", Shape{hidden}));
    VORTEX_ASSIGN_OR_RETURN(w.gate, fetch(weights, p + "ffn_gate", Shape{ffn, hidden}));
    VORTEX_ASSIGN_OR_RETURN(w.up, fetch(weights, p + "ffn_up", Shape{ffn, hidden}));
    VORTEX_ASSIGN_OR_RETURN(w.down, fetch(weights, p + "ffn_down", Shape{hidden, ffn}));
  }
  return Status::ok();
}

Status CpuModel::Impl::run_cache_flows(int32_t layer, const detail::StepPlan& plan,
                                       const ForwardBatch& batch, KVCache& cache) {
  if (plan.completed_pages.empty()) return Status::ok();
  // Each flow in use summarises every page completed this step (pages may later be shared with
  // any request through the prefix cache), once per flow.
  std::vector<const void*> done;
  for (const SequenceChunk& c : batch.seqs) {
    if (!detail::is_sparse(c.sparse) || detail::layer_is_dense(*c.sparse, layer)) continue;
    const void* program = c.sparse->program.get();
    if (std::find(done.begin(), done.end(), program) != done.end()) continue;
    done.push_back(program);
    VORTEX_RETURN_IF_ERROR(detail::run_cache_flow(*c.sparse, cache, layer, plan.completed_pages));
  }
  return Status::ok();
}

Status CpuModel::Impl::decode_group(int32_t layer, const std::vector<size_t>& chunks,
                                    const flow::SparseConfig* sparse, const detail::StepPlan& plan,
                                    const ForwardBatch& batch, KVCache& cache,
                                    ForwardStats* stats) {
  const int64_t q_row = int64_t{config.num_q_heads} * config.head_dim;
  const auto B = static_cast<int64_t>(chunks.size());
  BatchPageTable pt;
  pt.clear();
  std::vector<float> q_batch(static_cast<size_t>(B * q_row));    // [B, Hq, D]
  std::vector<float> out_batch(static_cast<size_t>(B * q_row));  // [B, Hq, D]
  for (int64_t b = 0; b < B; ++b) {
    const size_t i = chunks[static_cast<size_t>(b)];
    const SequenceChunk& c = batch.seqs[i];
    pt.add(*c.pages, c.start_pos + 1);
    std::copy_n(q.begin() + plan.offsets[i] * q_row, q_row, q_batch.begin() + b * q_row);
  }
  flow::Selection selection;
  SelectionView sel_view;
  if (sparse != nullptr) {
    VORTEX_RETURN_IF_ERROR(detail::select_pages(*sparse, cache, layer, q_batch.data(),
                                                config.num_q_heads, pt.view(), &selection));
    const int64_t rows = B * config.num_kv_heads;
    if (static_cast<int64_t>(selection.sel_indptr.size()) != rows + 1) {
      return internal_error("page selection returned " +
                            std::to_string(selection.sel_indptr.size()) + " offsets for " +
                            std::to_string(rows) + " rows");
    }
    if (stats != nullptr) {
      stats->selected_pages += selection.selected_pages;
      stats->candidate_pages += selection.candidate_pages;
    }
    if (selection_hook) {
      SelectionRecord record;
      record.layer = layer;
      record.chunks = chunks;
      record.q = q_batch;
      record.selection = std::move(selection);
      selection_hook(record);
      selection = std::move(record.selection);
      if (static_cast<int64_t>(selection.sel_indptr.size()) != rows + 1 ||
          selection.sel_indptr.front() != 0 ||
          selection.sel_indptr.back() != static_cast<int32_t>(selection.sel_indices.size())) {
        return invalid_argument("the selection hook left a malformed selection at layer " +
                                std::to_string(layer));
      }
      for (int64_t r = 0; r < rows; ++r) {
        if (selection.sel_indptr[r + 1] < selection.sel_indptr[r]) {
          return invalid_argument("the selection hook left a non-monotone sel_indptr");
        }
      }
      for (int32_t page : selection.sel_indices) {
        if (page < 0 || page >= cache.num_pages()) {
          return invalid_argument("the selection hook selected page " + std::to_string(page) +
                                  ", outside the cache");
        }
      }
    }
    sel_view = SelectionView{selection.sel_indptr.data(), selection.sel_indices.data(),
                             static_cast<int32_t>(rows)};
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(config.head_dim));
  cpu::paged_decode_attention(q_batch.data(), cache.layer(layer), cache.config().kv_dtype,
                              pt.view(), sparse != nullptr ? &sel_view : nullptr,
                              config.num_q_heads, scale, out_batch.data());
  for (int64_t b = 0; b < B; ++b) {
    const size_t i = chunks[static_cast<size_t>(b)];
    std::copy_n(out_batch.begin() + b * q_row, q_row, attn.begin() + plan.offsets[i] * q_row);
  }
  return Status::ok();
}

Status CpuModel::Impl::attention(int32_t layer, const detail::StepPlan& plan,
                                 const ForwardBatch& batch, KVCache& cache, ForwardStats* stats) {
  const int64_t q_row = int64_t{config.num_q_heads} * config.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(config.head_dim));
  const KVLayerView kv = cache.layer(layer);
  for (size_t i : plan.prefill_chunks) {
    const SequenceChunk& c = batch.seqs[i];
    const int64_t row = plan.offsets[i] * q_row;
    cpu::paged_prefill_attention(q.data() + row, kv, cache.config().kv_dtype,
                                 c.pages->pages().data(), c.start_pos, c.num_tokens,
                                 config.num_q_heads, scale, attn.data() + row);
  }
  // Decode tokens: one dense batch, and one batch per sparse configuration on its sparse layers.
  std::vector<size_t> dense;
  std::vector<std::pair<const flow::SparseConfig*, std::vector<size_t>>> sparse_groups;
  for (size_t i : plan.decode_chunks) {
    const flow::SparseConfig* s = batch.seqs[i].sparse;
    if (!detail::is_sparse(s) || detail::layer_is_dense(*s, layer)) {
      dense.push_back(i);
      continue;
    }
    auto it = std::find_if(sparse_groups.begin(), sparse_groups.end(),
                           [s](const auto& g) { return g.first == s; });
    if (it == sparse_groups.end()) {
      sparse_groups.push_back({s, {}});
      it = sparse_groups.end() - 1;
    }
    it->second.push_back(i);
  }
  if (!dense.empty()) {
    VORTEX_RETURN_IF_ERROR(decode_group(layer, dense, nullptr, plan, batch, cache, stats));
  }
  for (const auto& [s, chunks] : sparse_groups) {
    VORTEX_RETURN_IF_ERROR(decode_group(layer, chunks, s, plan, batch, cache, stats));
  }
  return Status::ok();
}

CpuModel::CpuModel() : impl_(std::make_unique<Impl>()) {}
CpuModel::~CpuModel() = default;

Expected<std::unique_ptr<CpuModel>> CpuModel::create(const ModelConfig& config, WeightMap weights) {
  VORTEX_RETURN_IF_ERROR(config.validate());
  std::unique_ptr<CpuModel> model(new CpuModel());
  model->impl_->config = config;
  model->impl_->weights = std::move(weights);
  VORTEX_RETURN_IF_ERROR(model->impl_->load_weights().with_context("model '" + config.name + "'"));
  return model;
}

const ModelConfig& CpuModel::config() const { return impl_->config; }

void CpuModel::set_selection_hook(SelectionHook hook) { impl_->selection_hook = std::move(hook); }

KVCacheConfig CpuModel::kv_cache_config(int32_t page_size, DType kv_dtype,
                                        const std::vector<const flow::SparseConfig*>& flows) const {
  const ModelConfig& c = impl_->config;
  KVCacheConfig kc;
  kc.num_layers = c.num_layers;
  kc.num_kv_heads = c.num_kv_heads;
  kc.head_dim = c.head_dim;
  kc.page_size = page_size;
  kc.kv_dtype = kv_dtype;
  kc.aux_fields = detail::union_aux_fields(flows, page_size, c.head_dim);
  if (kc.aux_fields.empty()) return kc;
  // Aux fields everywhere except the layers that every sparse flow runs dense.
  for (int32_t l = 0; l < c.num_layers; ++l) {
    bool all_dense = true;
    for (const flow::SparseConfig* f : flows) {
      if (detail::is_sparse(f) && !detail::layer_is_dense(*f, l)) all_dense = false;
    }
    if (all_dense) kc.layers_skip.push_back(l);
  }
  return kc;
}

Status CpuModel::forward(const ForwardBatch& batch, KVCache& cache, float* logits,
                         ForwardStats* stats) {
  Impl& m = *impl_;
  const ModelConfig& c = m.config;
  VORTEX_ASSIGN_OR_RETURN(detail::StepPlan plan, detail::plan_step(c, batch, cache));
  const int64_t T = plan.num_tokens;
  if (T == 0) return Status::ok();
  if (!plan.logit_rows.empty() && logits == nullptr) {
    return invalid_argument("forward: chunks want logits but the logits buffer is null");
  }
  const int64_t hidden = c.hidden_size, ffn = c.intermediate_size, dim = c.head_dim;
  const int64_t q_dim = int64_t{c.num_q_heads} * dim, kv_dim = int64_t{c.num_kv_heads} * dim;
  const auto sz = [T](int64_t width) { return static_cast<size_t>(T * width); };
  m.residual.resize(sz(hidden));
  m.normed.resize(sz(hidden));
  m.proj.resize(sz(hidden));
  m.mlp_out.resize(sz(hidden));
  m.q.resize(sz(q_dim));
  m.attn.resize(sz(q_dim));
  m.k.resize(sz(kv_dim));
  m.v.resize(sz(kv_dim));
  m.gate.resize(sz(ffn));
  m.up.resize(sz(ffn));

  cpu::embedding(m.embd, plan.tokens.data(), T, hidden, m.residual.data());
  int64_t rows = T;  // rows still carried; the last layer keeps only the logit rows
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = m.layers[static_cast<size_t>(l)];
    if (l == 0) {
      cpu::rms_norm(m.residual.data(), w.attn_norm, T, hidden, c.rms_norm_eps, m.normed.data());
    } else {
      cpu::add_rms_norm(m.residual.data(), m.mlp_out.data(), w.attn_norm, T, hidden, c.rms_norm_eps,
                        m.normed.data());
    }
    cpu::matmul(m.normed.data(), w.wq, w.bq, T, q_dim, hidden, m.q.data());
    cpu::matmul(m.normed.data(), w.wk, w.bk, T, kv_dim, hidden, m.k.data());
    cpu::matmul(m.normed.data(), w.wv, w.bv, T, kv_dim, hidden, m.v.data());
    if (c.qk_norm) {  // per-head RMSNorm over D, in place
      cpu::rms_norm(m.q.data(), w.q_norm, T * c.num_q_heads, dim, c.rms_norm_eps, m.q.data());
      cpu::rms_norm(m.k.data(), w.k_norm, T * c.num_kv_heads, dim, c.rms_norm_eps, m.k.data());
    }
    cpu::rope(m.q.data(), plan.positions.data(), T, c.num_q_heads, c.head_dim, c.rope);
    cpu::rope(m.k.data(), plan.positions.data(), T, c.num_kv_heads, c.head_dim, c.rope);
    cpu::append_kv(cache.layer(l), cache.config().kv_dtype, m.k.data(), m.v.data(),
                   plan.slots.data(), T);
    VORTEX_RETURN_IF_ERROR(m.run_cache_flows(l, plan, batch, cache));
    VORTEX_RETURN_IF_ERROR(m.attention(l, plan, batch, cache, stats));

    if (l == c.num_layers - 1) {
      // Only the logit rows matter past the last attention: compact them to the front (rows are
      // ascending, so in-place forward copies never clobber a later source).
      rows = static_cast<int64_t>(plan.logit_rows.size());
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t src = plan.logit_rows[static_cast<size_t>(i)];
        std::copy_n(m.attn.begin() + src * q_dim, q_dim, m.attn.begin() + i * q_dim);
        std::copy_n(m.residual.begin() + src * hidden, hidden, m.residual.begin() + i * hidden);
      }
      if (rows == 0) break;
    }
    cpu::matmul(m.attn.data(), w.wo, nullptr, rows, hidden, q_dim, m.proj.data());
    cpu::add_rms_norm(m.residual.data(), m.proj.data(), w.ffn_norm, rows, hidden, c.rms_norm_eps,
                      m.normed.data());
    cpu::matmul(m.normed.data(), w.gate, nullptr, rows, ffn, hidden, m.gate.data());
    cpu::matmul(m.normed.data(), w.up, nullptr, rows, ffn, hidden, m.up.data());
    cpu::silu_mul(m.gate.data(), m.up.data(), rows * ffn, m.gate.data());
    cpu::matmul(m.gate.data(), w.down, nullptr, rows, hidden, ffn, m.mlp_out.data());
  }
  if (rows > 0) {
    cpu::add_rms_norm(m.residual.data(), m.mlp_out.data(), m.out_norm, rows, hidden, c.rms_norm_eps,
                      m.normed.data());
    cpu::matmul(m.normed.data(), m.lm_head, nullptr, rows, c.vocab_size, hidden, logits);
  }
  for (const SequenceChunk& chunk : batch.seqs) chunk.pages->commit(chunk.num_tokens);
  if (stats != nullptr) stats->tokens += T;
  return Status::ok();
}

}  // namespace vortex
