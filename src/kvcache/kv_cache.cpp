// KVCache storage and the per-page byte formula.
#include "vortex/kvcache/kv_cache.h"

#include <algorithm>

#include "vortex/core/check.h"

namespace vortex {

bool KVCacheConfig::layer_has_aux(int32_t layer) const {
  return std::find(layers_skip.begin(), layers_skip.end(), layer) == layers_skip.end();
}

int64_t KVCacheConfig::bytes_per_page() const {
  int64_t aux_bytes = 0;
  for (const auto& f : aux_fields) {
    aux_bytes += static_cast<int64_t>(f.rows) * f.cols * static_cast<int64_t>(dtype_size(f.dtype));
  }
  int64_t total = 0;
  for (int32_t l = 0; l < num_layers; ++l) {
    int64_t per_head = 2LL * page_size * head_dim * static_cast<int64_t>(dtype_size(kv_dtype));
    if (layer_has_aux(l)) per_head += aux_bytes;
    total += num_kv_heads * per_head;
  }
  return total;
}

int64_t KVCacheConfig::pages_for_budget(int64_t bytes) const {
  const int64_t per = bytes_per_page();
  return per > 0 && bytes > 0 ? bytes / per : 0;
}

Status KVCacheConfig::validate() const {
  if (num_layers <= 0 || num_kv_heads <= 0 || head_dim <= 0) {
    return invalid_argument("KV cache config needs positive layers, kv heads and head_dim");
  }
  if (page_size <= 0 || (page_size & (page_size - 1)) != 0) {
    return invalid_argument("page size must be a power of two, got " + std::to_string(page_size));
  }
  for (const auto& f : aux_fields) {
    if (f.rows <= 0 || f.cols <= 0) {
      return invalid_argument("aux field '" + f.name + "' must have positive rows and cols");
    }
  }
  for (int32_t l : layers_skip) {
    if (l < 0 || l >= num_layers) {
      return invalid_argument("layers_skip entry " + std::to_string(l) + " is outside 0.." +
                              std::to_string(num_layers - 1));
    }
  }
  return Status::ok();
}

Expected<KVCache> KVCache::create(const KVCacheConfig& config, int32_t num_pages,
                                  Allocator& alloc) {
  VORTEX_RETURN_IF_ERROR(config.validate());
  if (num_pages <= 0) {
    return invalid_argument(
        "KV cache needs at least one page; the memory budget is too small for "
        "one page of " +
        std::to_string(config.bytes_per_page()) + " bytes");
  }
  KVCache cache(config, num_pages);
  const size_t kv_bytes = static_cast<size_t>(num_pages) * config.num_kv_heads * config.page_size *
                          config.head_dim * dtype_size(config.kv_dtype);
  for (int32_t l = 0; l < config.num_layers; ++l) {
    VORTEX_ASSIGN_OR_RETURN(Buffer k, Buffer::allocate(alloc, kv_bytes));
    VORTEX_ASSIGN_OR_RETURN(Buffer v, Buffer::allocate(alloc, kv_bytes));
    cache.k_.push_back(std::move(k));
    cache.v_.push_back(std::move(v));
    std::vector<Buffer> fields;
    for (const auto& f : config.aux_fields) {
      if (!config.layer_has_aux(l)) {
        fields.emplace_back();
        continue;
      }
      const size_t bytes = static_cast<size_t>(num_pages) * config.num_kv_heads * f.rows * f.cols *
                           dtype_size(f.dtype);
      VORTEX_ASSIGN_OR_RETURN(Buffer b, Buffer::allocate(alloc, bytes));
      fields.push_back(std::move(b));
    }
    cache.aux_.push_back(std::move(fields));
  }
  return cache;
}

KVLayerView KVCache::layer(int32_t l) const {
  VORTEX_CHECK(l >= 0 && l < config_.num_layers);
  return KVLayerView{k_[static_cast<size_t>(l)].data(),
                     v_[static_cast<size_t>(l)].data(),
                     num_pages_,
                     config_.num_kv_heads,
                     config_.page_size,
                     config_.head_dim};
}

AuxFieldView KVCache::aux(int32_t l, int32_t field) const {
  VORTEX_CHECK(l >= 0 && l < config_.num_layers);
  VORTEX_CHECK(field >= 0 && field < static_cast<int32_t>(config_.aux_fields.size()));
  const auto& spec = config_.aux_fields[static_cast<size_t>(field)];
  return AuxFieldView{aux_[static_cast<size_t>(l)][static_cast<size_t>(field)].data(), spec.rows,
                      spec.cols};
}

int32_t KVCache::field_index(const std::string& name) const {
  for (size_t i = 0; i < config_.aux_fields.size(); ++i) {
    if (config_.aux_fields[i].name == name) return static_cast<int32_t>(i);
  }
  return -1;
}

}  // namespace vortex
