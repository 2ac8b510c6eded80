// Internal to CudaModel: the host side of a step — checks a ForwardBatch, orders its chunks
// (decode tokens first, then prefill chunks), and writes every metadata array into a pinned
// staging slot: tokens, positions, KV slots, the chunks' page-table CSR, causal-attention tiles,
// logits rows, sampling rows and penalty lists. Decode-only steps are padded to a graph bucket.
#if defined(VORTEX_WITH_CUDA)

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "cuda_model_impl.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/causal_attention.h"

namespace vortex {
namespace {

/// VORTEX_CACHE_FLOW_GRAPHS=always keeps the cache-flow launches in every graph step (the
/// behaviour before steps without a completed page got their own graph), for A/B runs.
bool cache_flow_in_every_graph() {
  static const bool always = [] {
    const char* v = std::getenv("VORTEX_CACHE_FLOW_GRAPHS");
    return v != nullptr && std::string(v) == "always";
  }();
  return always;
}

Status bad_chunk(size_t i, const std::string& why) {
  return invalid_argument("forward batch chunk " + std::to_string(i) + ": " + why);
}

bool is_decode(const SequenceChunk& c) { return c.num_tokens == 1 && c.start_pos > 0; }

cuda::SamplingRow sampling_row(const CudaSampleSpec* spec) {
  cuda::SamplingRow row;
  if (spec == nullptr) return row;
  if (spec->params != nullptr) {
    const SamplingParams& p = *spec->params;
    row.temperature = p.temperature;
    row.top_k = p.top_k;
    row.top_p = p.top_p;
    row.min_p = p.min_p;
    row.repetition_penalty = p.repetition_penalty;
    row.frequency_penalty = p.frequency_penalty;
    row.presence_penalty = p.presence_penalty;
    row.seed = p.seed;
  }
  row.offset = static_cast<uint64_t>(
      spec->draw_index >= 0 ? spec->draw_index : static_cast<int64_t>(spec->generated.size()));
  return row;
}

bool has_penalties(const cuda::SamplingRow& r) {
  return r.repetition_penalty != 1.0f || r.frequency_penalty != 0.0f || r.presence_penalty != 0.0f;
}

}  // namespace

int32_t CudaModel::Impl::bucket_for(int32_t batch) const {
  for (int32_t b : buckets) {
    if (b >= batch) return b;
  }
  return -1;
}

Status CudaModel::Impl::plan_step(const ForwardBatch& batch,
                                  std::span<const CudaSampleSpec> samples,
                                  std::span<const int32_t> token_from_prev, bool logits_only) {
  if (planned.size() + inflight.size() >= 2) {
    return invalid_argument("CudaModel: two steps are already planned or in flight; call wait()");
  }
  const auto& seqs = batch.seqs;
  const size_t C = seqs.size();
  if (C == 0) return invalid_argument("forward batch has no chunks");
  if (!token_from_prev.empty() && token_from_prev.size() != C) {
    return invalid_argument("token_from_prev has " + std::to_string(token_from_prev.size()) +
                            " entries for " + std::to_string(C) + " chunks");
  }
  size_t want = 0;
  for (const SequenceChunk& c : seqs) want += c.want_logits ? 1 : 0;
  if (!samples.empty() && samples.size() != want) {
    return invalid_argument("plan: " + std::to_string(samples.size()) + " sample specs for " +
                            std::to_string(want) + " chunks with want_logits");
  }
  // Checks (as CpuModel's plan) and the order: decode chunks first, grouped into ranges by how
  // they are attended (dense, or one range per flow), then prefill chunks.
  int32_t P = 0;
  std::vector<detail::SparseFlow*> chunk_flow(C, nullptr);
  std::vector<detail::SparseFlow*> range_flows;
  std::vector<std::vector<size_t>> range_chunks;
  std::vector<size_t> prefill;
  int64_t T = 0, pages_total = 0;
  for (size_t i = 0; i < C; ++i) {
    const SequenceChunk& c = seqs[i];
    const bool from_prev = !token_from_prev.empty() && token_from_prev[i] >= 0;
    if (c.num_tokens <= 0 || (c.tokens == nullptr && !from_prev))
      return bad_chunk(i, "has no tokens");
    if (from_prev && c.num_tokens != 1) {
      return bad_chunk(i, "token_from_prev needs a chunk of one token");
    }
    if (from_prev && token_from_prev[i] >= capacity.chunks) {
      return bad_chunk(i, "token_from_prev row " + std::to_string(token_from_prev[i]) +
                              " is outside the previous step's samples");
    }
    if (c.pages == nullptr) return bad_chunk(i, "has no page table");
    if (P == 0) P = c.pages->page_size();
    if (c.pages->page_size() != P) return bad_chunk(i, "page sizes differ within the batch");
    if (c.start_pos != c.pages->num_tokens()) {
      return bad_chunk(i, "start_pos " + std::to_string(c.start_pos) +
                              " but the page table holds " + std::to_string(c.pages->num_tokens()) +
                              " tokens");
    }
    const int64_t end = c.start_pos + c.num_tokens;
    if (end > int64_t{c.pages->num_pages()} * P) {
      return bad_chunk(i, "pages are not reserved for " + std::to_string(end) +
                              " tokens; call PageTable::reserve first");
    }
    if (end > max_context) {
      return bad_chunk(i, "position " + std::to_string(end - 1) +
                              " exceeds the model's context of " + std::to_string(max_context) +
                              " tokens");
    }
    for (int32_t t = 0; !from_prev && t < c.num_tokens; ++t) {
      if (c.tokens[t] < 0 || c.tokens[t] >= config.vocab_size) {
        return bad_chunk(i, "token id " + std::to_string(c.tokens[t]) +
                                " is outside the vocabulary of " +
                                std::to_string(config.vocab_size));
      }
    }
    auto flow = flow_for(c.sparse);
    if (!flow.has_value()) return bad_chunk(i, flow.status().message());
    chunk_flow[i] = *flow;
    T += c.num_tokens;
    pages_total += (end + P - 1) / P;
    if (is_decode(c)) {
      auto it = std::find(range_flows.begin(), range_flows.end(), chunk_flow[i]);
      if (it == range_flows.end()) {
        range_flows.push_back(chunk_flow[i]);
        range_chunks.emplace_back();
        it = range_flows.end() - 1;
      }
      range_chunks[static_cast<size_t>(it - range_flows.begin())].push_back(i);
    } else {
      prefill.push_back(i);
    }
  }
  std::vector<size_t> order;
  for (const auto& r : range_chunks) order.insert(order.end(), r.begin(), r.end());
  const auto decode_rows = static_cast<int32_t>(order.size());
  // Graphs cover decode-only steps whose rows are all attended one way (the common steady
  // state); other steps run eagerly.
  const bool graph = use_graphs && !selection_hook && prefill.empty() && range_flows.size() == 1 &&
                     bucket_for(decode_rows) > 0;
  const int32_t rows_pad = graph ? bucket_for(decode_rows) : decode_rows;
  const int32_t pad = rows_pad - decode_rows;
  const int32_t tile_tokens = cuda::causal_tile_tokens(config.group_size());
  int64_t tiles = 0;
  for (size_t i : prefill) tiles += (seqs[i].num_tokens + tile_tokens - 1) / tile_tokens;
  tiles += rows_pad;
  if (T + pad > capacity.tokens) {
    return invalid_argument("step of " + std::to_string(T) + " tokens exceeds max_tokens " +
                            std::to_string(capacity.tokens) + "; split the prefill into chunks");
  }
  if (static_cast<int64_t>(C) + pad > capacity.chunks) {
    return invalid_argument("step of " + std::to_string(C) + " chunks exceeds max_batch " +
                            std::to_string(capacity.chunks));
  }
  if (pages_total + pad > capacity.pages || tiles > capacity.tiles) {
    return invalid_argument("step needs " + std::to_string(pages_total) +
                            " page ids, more than the staging holds (" +
                            std::to_string(capacity.pages) + "); lower the batch or context");
  }

  // Penalty entries first (they may need larger buffers).
  std::vector<cuda::SamplingRow> rows;
  std::vector<std::vector<std::pair<int32_t, int32_t>>> pen_lists;
  int64_t pen_total = 0;
  bool logprobs = false;
  for (size_t r = 0; r < want; ++r) {
    const CudaSampleSpec* spec = samples.empty() ? nullptr : &samples[r];
    rows.push_back(sampling_row(spec));
    std::vector<std::pair<int32_t, int32_t>> list;
    if (spec != nullptr && has_penalties(rows.back())) {
      std::map<int32_t, int32_t> counts;  // token -> occurrences in the output
      if (rows.back().repetition_penalty != 1.0f) {
        for (int32_t t : spec->prompt) counts.emplace(t, 0);
      }
      for (int32_t t : spec->generated) counts[t] += 1;
      for (const auto& [t, n] : counts) {
        if (t >= 0 && t < config.vocab_size) list.emplace_back(t, n);
      }
    }
    logprobs = logprobs || (spec != nullptr && spec->want_logprob);
    pen_total += static_cast<int64_t>(list.size());
    pen_lists.push_back(std::move(list));
  }
  if (pen_total > pen_capacity) VORTEX_RETURN_IF_ERROR(grow_penalties(pen_total));

  const int slot = next_slot;
  next_slot ^= 1;
  // The slot's pinned memory is free once its previous copies have run.
  VORTEX_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(staging_free[slot].get()));

  const detail::StepArrays& a = arrays;
  int32_t* tokens = staged_ptr<int32_t>(slot, a.tokens);
  int32_t* prev_index = staged_ptr<int32_t>(slot, a.prev_index);
  int32_t* positions = staged_ptr<int32_t>(slot, a.positions);
  int32_t* slots = staged_ptr<int32_t>(slot, a.slots);
  int32_t* q_start = staged_ptr<int32_t>(slot, a.q_start);
  int32_t* start_pos = staged_ptr<int32_t>(slot, a.start_pos);
  int32_t* page_indptr = staged_ptr<int32_t>(slot, a.page_indptr);
  int32_t* last_page_len = staged_ptr<int32_t>(slot, a.last_page_len);
  int32_t* page_indices = staged_ptr<int32_t>(slot, a.page_indices);
  int32_t* tile_chunk = staged_ptr<int32_t>(slot, a.tile_chunk);
  int32_t* tile_first = staged_ptr<int32_t>(slot, a.tile_first);
  int32_t* logit_rows = staged_ptr<int32_t>(slot, a.logit_rows);
  int32_t* pen_indptr = staged_ptr<int32_t>(slot, a.pen_indptr);
  int32_t* completed = staged_ptr<int32_t>(slot, a.completed);
  auto* sampling = staged_ptr<cuda::SamplingRow>(slot, a.sampling);

  detail::PlannedStep step;
  step.slot = slot;
  step.page_size = P;
  step.logits_only = logits_only;
  std::vector<int32_t> row_of_chunk(C, 0);  // token row of each chunk's last token
  int32_t row = 0, page_pos = 0, ntiles = 0, ncompleted = 0;
  auto add_chunk = [&](int32_t o, const SequenceChunk* c, size_t batch_index) {
    q_start[o] = row;
    page_indptr[o] = page_pos;
    if (c == nullptr) {  // graph padding: one token at position 0 of page 0, never written
      start_pos[o] = 0;
      last_page_len[o] = 1;
      page_indices[page_pos++] = 0;
      tokens[row] = 0;
      prev_index[row] = -1;
      positions[row] = 0;
      slots[row] = -1;
      tile_chunk[ntiles] = o;
      tile_first[ntiles++] = 0;
      ++row;
      return;
    }
    const int64_t end = c->start_pos + c->num_tokens;
    start_pos[o] = static_cast<int32_t>(c->start_pos);
    last_page_len[o] = static_cast<int32_t>((end - 1) % P + 1);
    const auto& pages = c->pages->pages();
    const auto needed = static_cast<int32_t>((end + P - 1) / P);
    std::copy_n(pages.begin(), needed, page_indices + page_pos);
    page_pos += needed;
    const bool from_prev = !token_from_prev.empty() && token_from_prev[batch_index] >= 0;
    for (int32_t t = 0; t < c->num_tokens; ++t) {
      const int64_t pos = c->start_pos + t;
      tokens[row] = from_prev ? 0 : c->tokens[t];
      prev_index[row] = from_prev ? token_from_prev[batch_index] : -1;
      positions[row] = static_cast<int32_t>(pos);
      const int32_t page = pages[static_cast<size_t>(pos / P)];
      slots[row] = page * P + static_cast<int32_t>(pos % P);
      if (pos % P == P - 1) completed[ncompleted++] = page;
      ++row;
    }
    for (int32_t f = 0; f < c->num_tokens; f += tile_tokens) {
      tile_chunk[ntiles] = o;
      tile_first[ntiles++] = f;
    }
    row_of_chunk[batch_index] = row - 1;
    step.commits.emplace_back(c->pages, c->num_tokens);
  };
  int32_t o = 0;
  for (; o < decode_rows; ++o)
    add_chunk(o, &seqs[order[static_cast<size_t>(o)]], order[static_cast<size_t>(o)]);
  for (int32_t j = 0; j < pad; ++j, ++o) add_chunk(o, nullptr, 0);
  for (size_t i : prefill) add_chunk(o++, &seqs[i], i);
  const int32_t num_chunks = o;
  q_start[num_chunks] = row;
  page_indptr[num_chunks] = page_pos;
  *staged_ptr<int32_t>(slot, a.completed_count) = ncompleted;

  // Decode ranges; the padding rows join the last one. Ranges after the first get a CSR rebased
  // to 0 (the attention schedule and the row page space assume page_indptr[0] == 0).
  int32_t* group_indptr = staged_ptr<int32_t>(slot, a.group_indptr);
  int32_t first = 0, group_words = 0;
  for (size_t k = 0; k < range_flows.size(); ++k) {
    detail::DecodeRange range;
    range.flow = range_flows[k];
    range.first = first;
    range.count =
        static_cast<int32_t>(range_chunks[k].size()) + (k + 1 == range_flows.size() ? pad : 0);
    range.page_offset = page_indptr[first];
    range.chunks = range_chunks[k];
    if (k == 0) {
      range.indptr_offset = a.page_indptr;
    } else {
      range.indptr_offset = a.group_indptr + static_cast<size_t>(group_words);
      for (int32_t j = 0; j <= range.count; ++j) {
        group_indptr[group_words++] = page_indptr[first + j] - range.page_offset;
      }
    }
    if (range.flow != nullptr) {
      const int64_t layers = range.flow->sparse_layers;
      for (size_t i : range_chunks[k]) {
        const SequenceChunk& c = seqs[i];
        step.candidate_pages += (c.start_pos + 1 + P - 1) / P * config.num_kv_heads * layers;
      }
      if (k + 1 == range_flows.size())
        step.padding_selected = int64_t{pad} * config.num_kv_heads * layers;
    }
    step.shape.ranges.push_back(range);
    first += range.count;
  }
  for (size_t i = 0; i < C; ++i) {
    if (chunk_flow[i] != nullptr && std::find(step.shape.flows.begin(), step.shape.flows.end(),
                                              chunk_flow[i]) == step.shape.flows.end()) {
      step.shape.flows.push_back(chunk_flow[i]);
    }
  }

  // Logits rows in batch order, sampling rows and penalty lists.
  auto* pen_tokens = static_cast<int32_t*>(staged_pen[slot].data());
  int32_t* pen_counts = pen_tokens + pen_capacity;
  int32_t r = 0, pen_pos = 0;
  for (size_t i = 0; i < C; ++i) {
    if (!seqs[i].want_logits) continue;
    logit_rows[r] = row_of_chunk[i];
    sampling[r] = rows[static_cast<size_t>(r)];
    pen_indptr[r] = pen_pos;
    for (const auto& [t, n] : pen_lists[static_cast<size_t>(r)]) {
      pen_tokens[pen_pos] = t;
      pen_counts[pen_pos++] = n;
    }
    ++r;
  }
  step.real_samples = r;
  const int32_t logit_count = graph ? rows_pad : r;
  for (int32_t j = r; j < logit_count; ++j) {  // graph padding rows: greedy, no penalties
    logit_rows[j] = std::min(j, rows_pad - 1);
    sampling[j] = cuda::SamplingRow{};
    pen_indptr[j] = pen_pos;
  }
  pen_indptr[logit_count] = pen_pos;

  step.real_tokens = T;
  step.shape.tokens = row;
  step.shape.decode_rows = rows_pad;
  step.shape.chunks = num_chunks;
  step.shape.tiles = ntiles;
  step.shape.logit_rows = logit_count;
  step.shape.completed = ncompleted;
  // A graph step launches the cache flow for up to rows_pad pages (it reads the real count on the
  // device), but only when a page completed: steps without one (15 of 16 at page size 16) replay
  // a graph without the per-layer cache-flow launches.
  const bool cache_flow = ncompleted > 0 || cache_flow_in_every_graph();
  step.shape.completed_max = graph ? (cache_flow ? rows_pad : 0) : ncompleted;
  step.shape.sample = graph || !samples.empty();
  step.shape.logprobs = logprobs;
  step.shape.graph = graph;
  step.extents.tokens = row;
  step.extents.chunks = num_chunks;
  step.extents.pages = page_pos;
  step.extents.tiles = ntiles;
  step.extents.penalties = pen_pos;
  step.extents.group_indptr = group_words;
  planned.push_back(std::move(step));
  return Status::ok();
}

Status CudaModel::Impl::stage_copies(const detail::PlannedStep& step) {
  const detail::StepArrays& a = arrays;
  const int slot = step.slot;
  auto copy = [&](size_t offset, int64_t words) -> Status {
    if (words <= 0) return Status::ok();
    return cuda_status(cudaMemcpyAsync(meta_ptr<int32_t>(offset), staged_ptr<int32_t>(slot, offset),
                                       static_cast<size_t>(words) * sizeof(int32_t),
                                       cudaMemcpyHostToDevice, stream),
                       "staging copy");
  };
  const int64_t T = step.extents.tokens, C = step.extents.chunks;
  const int64_t R = step.shape.logit_rows;
  constexpr int64_t kRowWords = sizeof(cuda::SamplingRow) / sizeof(int32_t);
  VORTEX_RETURN_IF_ERROR(copy(a.tokens, T));
  VORTEX_RETURN_IF_ERROR(copy(a.prev_index, T));
  VORTEX_RETURN_IF_ERROR(copy(a.positions, T));
  VORTEX_RETURN_IF_ERROR(copy(a.slots, T));
  VORTEX_RETURN_IF_ERROR(copy(a.q_start, C + 1));
  VORTEX_RETURN_IF_ERROR(copy(a.page_indptr, C + 1));
  VORTEX_RETURN_IF_ERROR(copy(a.start_pos, C));
  VORTEX_RETURN_IF_ERROR(copy(a.last_page_len, C));
  VORTEX_RETURN_IF_ERROR(copy(a.page_indices, step.extents.pages));
  VORTEX_RETURN_IF_ERROR(copy(a.tile_chunk, step.extents.tiles));
  VORTEX_RETURN_IF_ERROR(copy(a.tile_first, step.extents.tiles));
  VORTEX_RETURN_IF_ERROR(copy(a.logit_rows, R));
  VORTEX_RETURN_IF_ERROR(copy(a.pen_indptr, R + 1));
  VORTEX_RETURN_IF_ERROR(copy(a.sampling, R * kRowWords));
  VORTEX_RETURN_IF_ERROR(copy(a.completed, step.shape.completed));
  VORTEX_RETURN_IF_ERROR(copy(a.completed_count, 1));
  VORTEX_RETURN_IF_ERROR(copy(a.group_indptr, step.extents.group_indptr));
  if (step.extents.penalties > 0) {
    const auto bytes = static_cast<size_t>(step.extents.penalties) * sizeof(int32_t);
    auto* host = static_cast<int32_t*>(staged_pen[slot].data());
    auto* dev = static_cast<int32_t*>(penalties.data());
    VORTEX_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, stream));
    VORTEX_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dev + pen_capacity, host + pen_capacity, bytes,
                                                cudaMemcpyHostToDevice, stream));
  }
  return cuda_status(cudaEventRecord(staging_free[slot].get(), stream), "staging event");
}

}  // namespace vortex

#endif  // VORTEX_WITH_CUDA
