// Test fixture for flow selection tests: a paged KV cache with a batch of requests whose pages have
// scrambled physical ids, K/V filled by a generator, unused slots and aux fields poisoned with NaN.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "vortex/core/dtype.h"
#include "vortex/flow/runtime.h"
#include "vortex/kvcache/kv_cache.h"
#include "vortex/kvcache/layout.h"

namespace vortex::flow::testing {

struct WorldSpec {
  int32_t page_size = 16;
  int32_t head_dim = 32;
  int32_t num_kv_heads = 2;
  int32_t group = 2;  // query heads per KV head
  int32_t num_layers = 2;
  DType kv_dtype = DType::kF32;
  DType aux_dtype = DType::kF32;
  std::vector<int64_t> lengths;  // tokens per request
  std::vector<int32_t> layers_skip;
  uint64_t seed = 1;
};

/// value(layer, request, kv head, token, channel, is_v) -> the K or V entry to store.
using KVGen = std::function<float(int32_t, int32_t, int32_t, int64_t, int32_t, bool)>;

struct World {
  WorldSpec spec;
  std::unique_ptr<KVCache> cache;
  std::vector<std::vector<int32_t>> pages;  // [B] physical ids in logical order
  std::vector<int32_t> page_indptr, page_indices, last_page_len;

  int32_t batch() const { return static_cast<int32_t>(spec.lengths.size()); }
  int32_t num_q_heads() const { return spec.num_kv_heads * spec.group; }
  PageTableView view() const {
    return PageTableView{page_indptr.data(), page_indices.data(), last_page_len.data(), batch()};
  }
  /// Pages whose last token is written (every page of request b except a partial last one).
  std::vector<int32_t> completed_pages() const {
    std::vector<int32_t> out;
    for (int32_t b = 0; b < batch(); ++b) {
      const int64_t full = spec.lengths[static_cast<size_t>(b)] / spec.page_size;
      for (int64_t i = 0; i < full; ++i)
        out.push_back(pages[static_cast<size_t>(b)][static_cast<size_t>(i)]);
    }
    return out;
  }
  /// K (or V) tile [P, D] of (physical page, head) at `layer`, as stored, in fp32.
  std::vector<float> tile(int32_t layer, int32_t page, int32_t head, bool is_v) const {
    const KVLayerView lv = cache->layer(layer);
    const int64_t elems = int64_t{spec.page_size} * spec.head_dim;
    const int64_t off = page_block_offset(page, head, spec.num_kv_heads, elems);
    std::vector<float> t(static_cast<size_t>(elems));
    for (int64_t e = 0; e < elems; ++e) {
      t[static_cast<size_t>(e)] =
          load_as_f32(is_v ? lv.v : lv.k, spec.kv_dtype, static_cast<size_t>(off + e));
    }
    return t;
  }
  /// Rounds x the way the aux field storage does.
  float round_aux(float x) const {
    uint32_t buf = 0;
    store_from_f32(&buf, spec.aux_dtype, 0, x);
    return load_as_f32(&buf, spec.aux_dtype, 0);
  }
};

/// Builds the cache (fields of `program`), scrambles page ids, fills K/V with `gen`, poisons the
/// rest with NaN.
inline World make_world(const WorldSpec& spec, const FlowProgram& program, const KVGen& gen) {
  World w;
  w.spec = spec;
  KVCacheConfig cfg;
  cfg.num_layers = spec.num_layers;
  cfg.num_kv_heads = spec.num_kv_heads;
  cfg.head_dim = spec.head_dim;
  cfg.page_size = spec.page_size;
  cfg.kv_dtype = spec.kv_dtype;
  cfg.aux_fields = flow_aux_fields(program, spec.page_size, spec.head_dim, spec.aux_dtype);
  cfg.layers_skip = spec.layers_skip;
  int32_t total = 3;  // a few spare pages stay unused
  for (int64_t len : spec.lengths)
    total += static_cast<int32_t>((len + spec.page_size - 1) / spec.page_size);
  auto cache = KVCache::create(cfg, total);
  if (!cache) std::abort();
  w.cache = std::make_unique<KVCache>(std::move(cache).value());

  std::mt19937_64 rng(spec.seed);
  std::vector<int32_t> ids(static_cast<size_t>(total));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  size_t next = 0;
  w.page_indptr.push_back(0);
  for (int64_t len : spec.lengths) {
    std::vector<int32_t> p;
    for (int64_t i = 0; i < (len + spec.page_size - 1) / spec.page_size; ++i)
      p.push_back(ids[next++]);
    w.page_indices.insert(w.page_indices.end(), p.begin(), p.end());
    w.page_indptr.push_back(static_cast<int32_t>(w.page_indices.size()));
    w.last_page_len.push_back(len == 0 ? 0 : static_cast<int32_t>((len - 1) % spec.page_size + 1));
    w.pages.push_back(std::move(p));
  }

  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t tile = int64_t{spec.page_size} * spec.head_dim;
  for (int32_t l = 0; l < spec.num_layers; ++l) {
    const KVLayerView lv = w.cache->layer(l);
    const size_t kv_elems = static_cast<size_t>(total) * spec.num_kv_heads * tile;
    for (size_t e = 0; e < kv_elems; ++e) {
      store_from_f32(lv.k, spec.kv_dtype, e, nan);
      store_from_f32(lv.v, spec.kv_dtype, e, nan);
    }
    for (int32_t f = 0; f < static_cast<int32_t>(cfg.aux_fields.size()); ++f) {
      const AuxFieldView av = w.cache->aux(l, f);
      if (av.data == nullptr) continue;
      const size_t n = static_cast<size_t>(total) * spec.num_kv_heads * av.rows * av.cols;
      for (size_t e = 0; e < n; ++e) store_from_f32(av.data, spec.aux_dtype, e, nan);
    }
    for (int32_t b = 0; b < w.batch(); ++b) {
      for (int32_t h = 0; h < spec.num_kv_heads; ++h) {
        for (int64_t t = 0; t < spec.lengths[static_cast<size_t>(b)]; ++t) {
          const int32_t page =
              w.pages[static_cast<size_t>(b)][static_cast<size_t>(t / spec.page_size)];
          const int64_t base = page_block_offset(page, h, spec.num_kv_heads, tile) +
                               (t % spec.page_size) * spec.head_dim;
          for (int32_t d = 0; d < spec.head_dim; ++d) {
            store_from_f32(lv.k, spec.kv_dtype, static_cast<size_t>(base + d),
                           gen(l, b, h, t, d, false));
            store_from_f32(lv.v, spec.kv_dtype, static_cast<size_t>(base + d),
                           gen(l, b, h, t, d, true));
          }
        }
      }
    }
  }
  return w;
}

/// The reference selection contract, from scratch: logical pages of one row.
inline std::vector<int64_t> reference_select(int64_t n, int64_t m, int32_t bos, int32_t eos,
                                             const std::vector<double>& cand_scores) {
  std::vector<int64_t> out;
  if (n <= m) {
    for (int64_t p = 0; p < n; ++p) out.push_back(p);
    return out;
  }
  const int64_t eos_eff = std::max(eos, 1);
  const int64_t k = m - bos - eos_eff;
  std::vector<int64_t> order(cand_scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return cand_scores[static_cast<size_t>(a)] > cand_scores[static_cast<size_t>(b)];
  });
  std::vector<int64_t> mid(order.begin(), order.begin() + k);
  std::sort(mid.begin(), mid.end());
  for (int64_t p = 0; p < bos; ++p) out.push_back(p);
  for (int64_t s : mid) out.push_back(bos + s);
  for (int64_t p = n - eos_eff; p < n; ++p) out.push_back(p);
  return out;
}

}  // namespace vortex::flow::testing
