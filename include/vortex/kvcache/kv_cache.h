// KVCache: the storage behind the page pool — per layer K/V pools and the flow's aux fields —
// plus the per-page byte formula used to size the pool from a memory budget.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vortex/core/allocator.h"
#include "vortex/core/dtype.h"
#include "vortex/core/status.h"
#include "vortex/core/tensor.h"
#include "vortex/kvcache/layout.h"
#include "vortex/kvcache/page_pool.h"

namespace vortex {

/// An aux per-page field declared by a flow: stored as [num_pages, H_kv, rows, cols].
struct AuxFieldSpec {
  std::string name;
  int32_t rows = 1;
  int32_t cols = 1;
  DType dtype = DType::kBF16;
};

struct KVCacheConfig {
  int32_t num_layers = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t page_size = 16;  ///< P, a power of two
  DType kv_dtype = DType::kBF16;
  std::vector<AuxFieldSpec> aux_fields;
  std::vector<int32_t> layers_skip;  ///< dense layers: no aux fields stored

  bool layer_has_aux(int32_t layer) const;
  /// Σ_layers H_kv · (2·P·D·elt_kv + Σ_fields r·c·elt_aux), aux only on non-skipped layers.
  int64_t bytes_per_page() const;
  /// How many pages fit in `bytes`.
  int64_t pages_for_budget(int64_t bytes) const;
  Status validate() const;
};

class KVCache {
 public:
  /// Allocates `num_pages` pages of every layer's K/V and aux pools on `alloc`'s device.
  static Expected<KVCache> create(const KVCacheConfig& config, int32_t num_pages,
                                  Allocator& alloc = cpu_allocator());

  const KVCacheConfig& config() const { return config_; }
  int32_t num_pages() const { return num_pages_; }
  PagePool& pool() { return pool_; }
  const PagePool& pool() const { return pool_; }

  KVLayerView layer(int32_t l) const;
  /// Aux field `field` (index into config().aux_fields) of layer `l`; data is null on skipped
  /// layers.
  AuxFieldView aux(int32_t l, int32_t field) const;
  /// Index of a field by name, or -1.
  int32_t field_index(const std::string& name) const;

 private:
  KVCache(KVCacheConfig config, int32_t num_pages)
      : config_(std::move(config)), num_pages_(num_pages), pool_(num_pages) {}
  KVCacheConfig config_;
  int32_t num_pages_ = 0;
  PagePool pool_;
  std::vector<Buffer> k_, v_;             // [layers] each [num_pages, H_kv, P, D]
  std::vector<std::vector<Buffer>> aux_;  // [layers][fields] each [num_pages, H_kv, r, c]
};

}  // namespace vortex
