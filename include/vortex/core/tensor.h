// Tensor (owning, contiguous at creation) and TensorView (non-owning, strided). Shapes are at most
// rank 8; strides are in elements.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "vortex/core/allocator.h"
#include "vortex/core/check.h"
#include "vortex/core/dtype.h"

namespace vortex {

inline constexpr int kMaxRank = 8;

/// A shape: up to kMaxRank extents.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);
  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  int64_t numel() const;
  std::vector<int64_t> to_vector() const { return {dims_.begin(), dims_.begin() + rank_}; }
  bool operator==(const Shape& o) const;
  /// "[2, 3, 4]"
  std::string to_string() const;

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

/// Row-major strides of a shape.
Shape contiguous_strides(const Shape& shape);

/// A non-owning strided view of device or host memory.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Device device = Device::cpu();
  Shape shape;
  Shape strides;

  int64_t numel() const { return shape.numel(); }
  bool is_contiguous() const;
  template <typename T>
  T* data_as() const {
    return static_cast<T*>(data);
  }
  /// Element offset of a multi-index.
  int64_t offset(std::initializer_list<int64_t> idx) const;
};

/// An owning tensor: a Buffer plus shape. Always contiguous.
class Tensor {
 public:
  Tensor() = default;
  /// Allocates an uninitialised tensor.
  static Expected<Tensor> empty(const Shape& shape, DType dtype,
                                Allocator& alloc = cpu_allocator());
  /// Allocates and zero-fills (CPU only).
  static Expected<Tensor> zeros(const Shape& shape, DType dtype);

  void* data() const { return buffer_ ? buffer_->data() : nullptr; }
  template <typename T>
  T* data_as() const {
    return static_cast<T*>(data());
  }
  DType dtype() const { return dtype_; }
  Device device() const { return buffer_ ? buffer_->device() : Device::cpu(); }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  int64_t dim(int i) const { return shape_[i]; }
  bool defined() const { return buffer_ != nullptr; }

  TensorView view() const;
  /// The same storage with another contiguous shape of equal numel.
  Expected<Tensor> reshape(const Shape& shape) const;

 private:
  std::shared_ptr<Buffer> buffer_;
  Shape shape_;
  DType dtype_ = DType::kF32;
};

}  // namespace vortex
