// Shared helpers of the GPU kernel tests: skip without a device, RAII device arrays with
// upload/download, NaN poisoning, bf16 host conversions, relative L2 error.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "vortex/core/allocator.h"
#include "vortex/core/check.h"
#include "vortex/core/cuda_allocator.h"
#include "vortex/core/cuda_check.h"
#include "vortex/core/dtype.h"

namespace vortex::gpu_test {

/// Skips the current test when no CUDA device is visible (CI builds the GPU tests but has no GPU).
#define VORTEX_REQUIRE_GPU()                                                       \
  do {                                                                             \
    if (::vortex::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device here"; \
  } while (0)

/// A typed device array (RAII over a Buffer from the CUDA allocator).
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) { resize(n); }
  explicit DeviceArray(const std::vector<T>& host) { upload(host); }

  void resize(size_t n) {
    n_ = n;
    if (n == 0) {
      buf_.reset();
      return;
    }
    auto alloc = cuda_allocator(0);
    VORTEX_CHECK_OK(alloc.status());
    auto b = Buffer::allocate(**alloc, n * sizeof(T));
    VORTEX_CHECK_OK(b.status());
    buf_ = std::move(*b);
  }
  void upload(const std::vector<T>& host) {
    if (host.size() != n_) resize(host.size());
    if (n_ > 0) {
      VORTEX_CUDA_CHECK(
          cudaMemcpy(buf_.data(), host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
    }
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    if (n_ > 0) {
      VORTEX_CUDA_CHECK(
          cudaMemcpy(host.data(), buf_.data(), n_ * sizeof(T), cudaMemcpyDeviceToHost));
    }
    return host;
  }
  /// Fills every byte with 0xFF: NaN for f32 and bf16, -1 for integers.
  void poison() {
    if (n_ > 0) VORTEX_CUDA_CHECK(cudaMemset(buf_.data(), 0xFF, n_ * sizeof(T)));
  }
  T* data() const { return static_cast<T*>(buf_.data()); }
  size_t size() const { return n_; }

 private:
  Buffer buf_;
  size_t n_ = 0;
};

inline uint16_t to_bf16(float f) { return f32_to_bf16(f); }
inline float from_bf16(uint16_t h) { return bf16_to_f32(h); }
inline uint16_t bf16_nan() { return 0x7fc0; }

/// A batch of page tables over a shuffled pool: request b has pages_per_request[b] pages with
/// distinct physical ids, its last page holding 1..P tokens.
struct HostPageTable {
  std::vector<int32_t> indptr{0};  // [B + 1]
  std::vector<int32_t> indices;    // [indptr[B]]
  std::vector<int32_t> last;       // [B]
  int32_t num_pages = 0;           // pool size
  int32_t batch() const { return static_cast<int32_t>(last.size()); }
  int32_t pages(int32_t b) const { return indptr[b + 1] - indptr[b]; }
};

inline HostPageTable random_page_table(const std::vector<int32_t>& pages_per_request,
                                       int32_t page_size, std::mt19937_64& rng) {
  HostPageTable t;
  int64_t used = 0;
  for (int32_t n : pages_per_request) used += n;
  t.num_pages = static_cast<int32_t>(used + used / 8 + 1);
  std::vector<int32_t> perm(t.num_pages);
  for (int32_t i = 0; i < t.num_pages; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  size_t next = 0;
  for (int32_t n : pages_per_request) {
    for (int32_t j = 0; j < n; ++j) t.indices.push_back(perm[next++]);
    t.indptr.push_back(static_cast<int32_t>(t.indices.size()));
    t.last.push_back(n == 0 ? 0 : 1 + static_cast<int32_t>(rng() % page_size));
  }
  return t;
}

/// Row page space offset of row (b, h) (the layout of scores, see row_topk.h).
inline int64_t row_space_offset(const HostPageTable& t, int32_t num_kv_heads, int32_t b,
                                int32_t h) {
  return static_cast<int64_t>(t.indptr[b]) * num_kv_heads + static_cast<int64_t>(h) * t.pages(b);
}

/// ‖a − b‖ / ‖b‖ (‖b‖ = 0: ‖a‖), NaN anywhere gives +inf.
inline double rel_l2(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace vortex::gpu_test
