// Shared pieces of vortex_kernel_bench: options, result records (JSON), device vectors, and the
// paged-cache fixture (a bf16 pool with random K/V/centroids and rotating page tables).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "gpu_bench.h"
#include "vortex/core/allocator.h"
#include "vortex/core/cuda_allocator.h"
#include "vortex/kvcache/layout.h"

namespace vortex::bench {

struct Options {
  bool quick = false;     ///< fewer groups and a smaller grid (a smoke run)
  bool with_gemm = true;  ///< measure the cuBLAS GEMM ceiling
  std::string json_path;  ///< write the JSON report here ("" = stdout only)
  std::string md_path;    ///< write the Markdown table here
  std::string only;       ///< run only groups whose name contains this
};

/// The report: ceilings plus one JSON object per measurement, appended by the benches.
struct Report {
  Ceilings ceilings;
  nlohmann::json results = nlohmann::json::array();
  /// Adds a timed measurement; `bytes` (0: none) gives GB/s and % of the read ceiling.
  nlohmann::json& add(const std::string& group, nlohmann::json params, const Stats& s,
                      double bytes);
};

/// A typed device vector over the project allocator (aborts on failure).
template <typename T>
class DeviceVec {
 public:
  DeviceVec() = default;
  explicit DeviceVec(size_t n) : n_(n) {
    if (n == 0) return;
    auto alloc = cuda_allocator(0);
    auto b = alloc.has_value() ? Buffer::allocate(**alloc, n * sizeof(T))
                               : Expected<Buffer>(alloc.status());
    if (!b.has_value()) {
      std::fprintf(stderr, "vortex bench: %s\n", b.status().to_string().c_str());
      std::exit(2);
    }
    buf_ = std::move(*b);
  }
  explicit DeviceVec(const std::vector<T>& host) : DeviceVec(host.size()) {
    if (n_ > 0) {
      cuda_ok(cudaMemcpy(buf_.data(), host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice),
              "upload");
    }
  }
  T* data() const { return static_cast<T*>(buf_.data()); }
  size_t size() const { return n_; }

 private:
  Buffer buf_;
  size_t n_ = 0;
};

/// A bf16 paged cache of `copies` disjoint batches of B requests x `pages` full pages each, pages
/// shuffled over the pool; copy c's page table is tables[c]. K, V random; centroids random.
struct PagedFixture {
  int32_t batch = 0, pages = 0, h_kv = 0, dim = 0, page = 0, copies = 0, num_pages = 0;
  DeviceVec<uint16_t> k, v, cent;   // [num_pages, H_kv, P, D] x2, [num_pages, H_kv, 1, D]
  DeviceVec<int32_t> indptr, last;  // shared by all copies
  std::vector<DeviceVec<int32_t>> indices;
  std::vector<int32_t> host_indices;  // [copies * B * pages]

  PagedFixture(int32_t batch, int32_t pages, int32_t h_kv, int32_t dim, int32_t page,
               int32_t copies, bool with_centroids, uint64_t seed);
  PageTableView table(int c) const {
    return {indptr.data(), indices[c % copies].data(), last.data(), batch};
  }
  KVLayerView kv() const { return {k.data(), v.data(), num_pages, h_kv, page, dim}; }
  /// Bytes of K and V one dense pass reads.
  double kv_bytes() const {
    return 2.0 * batch * pages * h_kv * static_cast<double>(page) * dim * 2;
  }
};

void run_attention_benches(const Options& o, Report& r);
void run_prefill_benches(const Options& o, Report& r);
void run_select_benches(const Options& o, Report& r);
void run_gemm_benches(const Options& o, Report& r);

}  // namespace vortex::bench
