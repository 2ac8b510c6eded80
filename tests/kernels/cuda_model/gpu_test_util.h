// Helpers of the CUDA model-kernel tests: device arrays that upload, download and poison, bf16
// rounding on the host, and the relative L2 error.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
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

namespace vortex::testing {

#define VORTEX_SKIP_WITHOUT_GPU()                                             \
  do {                                                                        \
    if (::vortex::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

/// A device array of T owned by a Buffer on CUDA device 0.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) : n_(n) {
    auto alloc = cuda_allocator(0);
    VORTEX_CHECK_OK(alloc.status());
    auto buf = Buffer::allocate(**alloc, std::max<size_t>(n, 1) * sizeof(T));
    VORTEX_CHECK_OK(buf.status());
    buf_ = std::move(*buf);
  }
  static DeviceArray upload(const std::vector<T>& host) {
    DeviceArray a(host.size());
    if (!host.empty()) {
      VORTEX_CUDA_CHECK(
          cudaMemcpy(a.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
    return a;
  }
  std::vector<T> download() const {
    VORTEX_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> host(n_);
    if (n_ > 0) {
      VORTEX_CUDA_CHECK(cudaMemcpy(host.data(), data(), n_ * sizeof(T), cudaMemcpyDeviceToHost));
    }
    return host;
  }
  /// Fills with 0xff bytes: NaN for f32 and bf16, -1 for integers.
  void poison() {
    VORTEX_CUDA_CHECK(cudaMemset(data(), 0xff, std::max<size_t>(n_, 1) * sizeof(T)));
  }
  T* data() const { return static_cast<T*>(buf_.data()); }
  size_t size() const { return n_; }

 private:
  Buffer buf_;
  size_t n_ = 0;
};

/// bf16 bits viewed as the device type.
inline __nv_bfloat16* as_bf16(uint16_t* p) { return reinterpret_cast<__nv_bfloat16*>(p); }
inline const __nv_bfloat16* as_bf16(const uint16_t* p) {
  return reinterpret_cast<const __nv_bfloat16*>(p);
}

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float stddev = 1.0f,
                                        float mean = 0.0f) {
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

inline std::vector<float> from_bf16(const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_to_f32(v[i]);
  return out;
}

/// Rounds every value to bf16 and back (so CPU references see the GPU's inputs exactly).
inline std::vector<float> round_bf16(const std::vector<float>& v) { return from_bf16(to_bf16(v)); }

/// ‖a − ref‖ / ‖ref‖; NaN anywhere in `a` gives infinity.
inline double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
  EXPECT_EQ(a.size(), ref.size());
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size() && i < ref.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    const double d = static_cast<double>(a[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

/// Tolerance of one bf16 rounding of the output (2^-8 relative), with headroom for fp32 order.
inline constexpr double kBf16Tol = 8e-3;

}  // namespace vortex::testing
