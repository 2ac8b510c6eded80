// GPU vs CPU parity of a flow run through CudaFlowRunner: the same paged KV cache on both sides
// (tests/unit/flow/flow_world.h, scrambled page ids, NaN-poisoned unused slots, mirrored to the
// device), the cache flow on the completed pages (fields compared, then the CPU's fields copied to
// the device so both sides select on the same cache), then decode steps: GPU plan (generated
// policy) + indexer + top-k against select_pages_cpu, scores against the interpreter's, the
// GPU's top-k against an exact top-k of its own scores, and Save state after every step.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../../unit/flow/flow_world.h"
#include "../cuda/gpu_test_util.h"
#include "vortex/compiler/interpreter.h"
#include "vortex/compiler/program.h"
#include "vortex/compiler/selection.h"
#include "vortex/core/cuda_allocator.h"
#include "vortex/core/cuda_check.h"
#include "vortex/flow/runtime.h"
#include "vortex/kernels/cuda/flow_runtime.h"
#include "vortex/kernels/cuda/sparse_planner.h"

namespace vortex::flow_gpu_test {

using gpu_test::DeviceArray;

struct ParitySpec {
  int32_t page_size = 16;
  int32_t head_dim = 128;
  int32_t group = 4;
  int32_t num_kv_heads = 2;
  int32_t num_layers = 2;
  int32_t layer = 0;
  DType aux_dtype = DType::kBF16;
  std::vector<int64_t> lengths = {1, 40, 176, 177, 3207, 24003};  // tokens per request
  flow::BudgetParams budget;                                      // block_size is set to page_size
  int32_t steps = 2;  // decode steps (state of Save flows carries over)
  uint64_t seed = 1;
};

struct ParityStats {
  int64_t sparse_rows = 0;
  int64_t near_tie_rows = 0;  ///< rows whose selections differ only at a score tie (within tol)
  double max_score_err = 0;   ///< |gpu - cpu| / (scale of the row's scores)
};

/// Uniform in [-1, 1) from a hash of the coordinates (K/V entries, queries).
inline float hash_uniform(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return static_cast<float>(static_cast<double>(x >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

/// The device mirror of a World's cache.
struct DeviceCache {
  std::unique_ptr<KVCache> cache;

  explicit DeviceCache(const KVCache& host) {
    auto alloc = cuda_allocator(0);
    VORTEX_CHECK_OK(alloc.status());
    auto c = KVCache::create(host.config(), host.num_pages(), **alloc);
    VORTEX_CHECK_OK(c.status());
    cache = std::make_unique<KVCache>(std::move(c).value());
    const KVCacheConfig& cfg = host.config();
    const size_t kv_bytes = static_cast<size_t>(host.num_pages()) * cfg.num_kv_heads *
                            cfg.page_size * cfg.head_dim * dtype_size(cfg.kv_dtype);
    for (int32_t l = 0; l < cfg.num_layers; ++l) {
      VORTEX_CUDA_CHECK(
          cudaMemcpy(cache->layer(l).k, host.layer(l).k, kv_bytes, cudaMemcpyHostToDevice));
      VORTEX_CUDA_CHECK(
          cudaMemcpy(cache->layer(l).v, host.layer(l).v, kv_bytes, cudaMemcpyHostToDevice));
      for (int32_t f = 0; f < static_cast<int32_t>(cfg.aux_fields.size()); ++f) {
        if (cache->aux(l, f).data != nullptr) {
          VORTEX_CUDA_CHECK(cudaMemset(cache->aux(l, f).data, 0xFF, field_bytes(f)));
        }
      }
    }
  }
  size_t field_bytes(int32_t f) const {
    const KVCacheConfig& cfg = cache->config();
    const AuxFieldSpec& s = cfg.aux_fields[static_cast<size_t>(f)];
    return static_cast<size_t>(cache->num_pages()) * cfg.num_kv_heads * s.rows * s.cols *
           dtype_size(s.dtype);
  }
  /// Field f of layer l as fp32 (download).
  std::vector<float> field(int32_t l, int32_t f) const {
    const AuxFieldSpec& s = cache->config().aux_fields[static_cast<size_t>(f)];
    std::vector<uint8_t> raw(field_bytes(f));
    VORTEX_CUDA_CHECK(
        cudaMemcpy(raw.data(), cache->aux(l, f).data, raw.size(), cudaMemcpyDeviceToHost));
    std::vector<float> out(raw.size() / dtype_size(s.dtype));
    for (size_t i = 0; i < out.size(); ++i) out[i] = load_as_f32(raw.data(), s.dtype, i);
    return out;
  }
  void upload_field(const KVCache& host, int32_t l, int32_t f) {
    VORTEX_CUDA_CHECK(cudaMemcpy(cache->aux(l, f).data, host.aux(l, f).data, field_bytes(f),
                                 cudaMemcpyHostToDevice));
  }
};

/// Field f of layer l of a host cache as fp32.
inline std::vector<float> host_field(const KVCache& host, int32_t l, int32_t f) {
  const AuxFieldSpec& s = host.config().aux_fields[static_cast<size_t>(f)];
  const size_t n =
      static_cast<size_t>(host.num_pages()) * host.config().num_kv_heads * s.rows * s.cols;
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = load_as_f32(host.aux(l, f).data, s.dtype, i);
  return out;
}

/// Compares field values: equal within the storage precision (NaN must match NaN: unwritten).
inline void expect_fields_close(const std::vector<float>& gpu, const std::vector<float>& cpu,
                                DType dtype, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size());
  const double rel = dtype == DType::kBF16 ? 1.0 / 64 : 1e-4;
  int bad = 0;
  for (size_t i = 0; i < gpu.size() && bad < 5; ++i) {
    const bool ng = std::isnan(gpu[i]), nc = std::isnan(cpu[i]);
    const bool ok =
        ng || nc ? ng == nc : std::fabs(gpu[i] - cpu[i]) <= rel * std::fabs(cpu[i]) + 1e-4;
    if (!ok) {
      ++bad;
      ADD_FAILURE() << what << " element " << i << ": gpu " << gpu[i] << " cpu " << cpu[i];
    }
  }
}

/// Runs the parity check of `program` under `spec`.
ParityStats check_flow_parity(std::shared_ptr<const flow::FlowProgram> program, ParitySpec spec);

}  // namespace vortex::flow_gpu_test
