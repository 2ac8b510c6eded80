// Shape, TensorView and Tensor.
#include "vortex/core/tensor.h"

#include <cstring>

namespace vortex {

Shape::Shape(std::initializer_list<int64_t> dims) {
  VORTEX_CHECK(dims.size() <= static_cast<size_t>(kMaxRank));
  for (int64_t d : dims) dims_[rank_++] = d;
}

Shape::Shape(const std::vector<int64_t>& dims) {
  VORTEX_CHECK(dims.size() <= static_cast<size_t>(kMaxRank));
  for (int64_t d : dims) dims_[rank_++] = d;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i) {
    if (dims_[i] != o.dims_[i]) return false;
  }
  return true;
}

std::string Shape::to_string() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

Shape contiguous_strides(const Shape& shape) {
  Shape s = shape;
  int64_t acc = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

bool TensorView::is_contiguous() const { return strides == contiguous_strides(shape); }

int64_t TensorView::offset(std::initializer_list<int64_t> idx) const {
  VORTEX_CHECK(static_cast<int>(idx.size()) == shape.rank());
  int64_t off = 0;
  int i = 0;
  for (int64_t v : idx) off += v * strides[i++];
  return off;
}

Expected<Tensor> Tensor::empty(const Shape& shape, DType dtype, Allocator& alloc) {
  for (int i = 0; i < shape.rank(); ++i) {
    if (shape[i] < 0)
      return invalid_argument("negative extent in tensor shape " + shape.to_string());
  }
  VORTEX_ASSIGN_OR_RETURN(
      Buffer b, Buffer::allocate(alloc, static_cast<size_t>(shape.numel()) * dtype_size(dtype)));
  Tensor t;
  t.buffer_ = std::make_shared<Buffer>(std::move(b));
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

Expected<Tensor> Tensor::zeros(const Shape& shape, DType dtype) {
  VORTEX_ASSIGN_OR_RETURN(Tensor t, empty(shape, dtype));
  if (t.nbytes() > 0) std::memset(t.data(), 0, t.nbytes());
  return t;
}

TensorView Tensor::view() const {
  return TensorView{data(), dtype_, device(), shape_, contiguous_strides(shape_)};
}

Expected<Tensor> Tensor::reshape(const Shape& shape) const {
  if (shape.numel() != numel()) {
    return invalid_argument("cannot reshape " + shape_.to_string() + " to " + shape.to_string() +
                            ": element counts differ");
  }
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

}  // namespace vortex
