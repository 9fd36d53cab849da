// A Tensor is an n-dimensional array with a dtype, a concrete shape and bytes that it
// owns or maps (a shared Buffer, so copies are cheap and views of an mmap'd file stay
// alive as long as any tensor uses them). Quantization parameters and a sparse encoding
// are optional annotations that passes fill in and .epk stores.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/dtype.h"

namespace edgepress::ir {

// Bytes shared between tensors: either an owned heap block or a region of a mapped file
// (the owner keeps the mapping alive).
class Buffer {
 public:
  static std::shared_ptr<Buffer> Allocate(uint64_t bytes);  // zero-filled, 64-byte aligned
  static std::shared_ptr<Buffer> Wrap(const void* data, uint64_t bytes,
                                      std::shared_ptr<const void> owner);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  const uint8_t* data() const { return data_; }
  uint8_t* mutable_data();  // only for owned buffers
  uint64_t size() const { return size_; }
  bool owned() const { return owner_ == nullptr; }

 private:
  Buffer() = default;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  std::shared_ptr<const void> owner_;  // null when data_ is our own allocation
};

struct QuantParams {
  enum class Granularity : uint8_t { kPerTensor, kPerChannel, kPerGroup };
  Granularity granularity = Granularity::kPerTensor;
  int axis = 0;            // channel axis (kPerChannel) or grouped axis (kPerGroup)
  int64_t group_size = 0;  // kPerGroup only
  std::vector<float> scales;
  std::vector<int32_t> zero_points;  // empty means symmetric (all zero)
  bool operator==(const QuantParams& o) const {
    return granularity == o.granularity && axis == o.axis && group_size == o.group_size &&
           scales == o.scales && zero_points == o.zero_points;
  }
};

// Sparse layouts that pruning passes will produce. The dense bytes stay authoritative
// until a kernel that understands the encoding is chosen.
struct SparseEncoding {
  enum class Kind : uint8_t { kNone, kNM, kBlock };
  Kind kind = Kind::kNone;
  int n = 0, m = 0;                 // kNM: at most n non-zeros in every m along `axis`
  int axis = -1;                    // kNM: the reduction axis the groups run along (-1: last)
  std::vector<int64_t> block;       // kBlock: block shape
  bool operator==(const SparseEncoding& o) const {
    return kind == o.kind && n == o.n && m == o.m && axis == o.axis && block == o.block;
  }
};

// Number of elements; throws Error on negative dims or overflow.
uint64_t ElementCount(const std::vector<int64_t>& shape);

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensor of the given dtype and shape (not for kString).
  Tensor(DType dtype, std::vector<int64_t> shape);
  // View of existing bytes; `buffer` must hold at least the needed bytes from `offset`.
  Tensor(DType dtype, std::vector<int64_t> shape, std::shared_ptr<Buffer> buffer,
         uint64_t offset = 0);
  static Tensor Strings(std::vector<int64_t> shape, std::vector<std::string> values);
  template <typename T>
  static Tensor FromVector(DType dtype, std::vector<int64_t> shape, const std::vector<T>& v);

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  uint64_t numel() const { return numel_; }
  uint64_t nbytes() const { return DTypeBytes(dtype_, numel_); }
  bool empty() const { return dtype_ == DType::kUndefined; }

  const void* raw() const { return buffer_ ? buffer_->data() + offset_ : nullptr; }
  void* mutable_raw();  // copies on write if the buffer is shared or mapped
  template <typename T> const T* data() const { return static_cast<const T*>(raw()); }
  template <typename T> T* mutable_data() { return static_cast<T*>(mutable_raw()); }
  const std::vector<std::string>& strings() const { return strings_; }
  const std::shared_ptr<Buffer>& buffer() const { return buffer_; }
  uint64_t offset() const { return offset_; }

  // Values as double/int64 regardless of dtype (for small tensors: shapes, axes, scalars).
  std::vector<int64_t> ToInt64() const;
  std::vector<double> ToDouble() const;

  std::optional<QuantParams> quant;
  std::optional<SparseEncoding> sparse;

  // Same dtype, shape and bytes (or strings); annotations are compared too.
  bool operator==(const Tensor& o) const;
  bool operator!=(const Tensor& o) const { return !(*this == o); }

 private:
  DType dtype_ = DType::kUndefined;
  std::vector<int64_t> shape_;
  uint64_t numel_ = 0;
  std::shared_ptr<Buffer> buffer_;
  uint64_t offset_ = 0;
  std::vector<std::string> strings_;
};

template <typename T>
Tensor Tensor::FromVector(DType dtype, std::vector<int64_t> shape, const std::vector<T>& v) {
  Tensor t(dtype, std::move(shape));
  // Packed types take their packed bytes; a short vector must never be over-read.
  if ((DTypeBytes(dtype, t.numel()) != v.size() * sizeof(T) && !IsPacked(dtype)) ||
      v.size() * sizeof(T) < t.nbytes())
    throw std::logic_error("Tensor::FromVector: size mismatch");
  if (!v.empty()) std::memcpy(t.mutable_raw(), v.data(), t.nbytes());
  return t;
}

// Half/bfloat16 conversions used by importers, kernels and passes.
float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);
float BFloat16ToFloat(uint16_t b);
uint16_t FloatToBFloat16(float f);  // round to nearest even

}  // namespace edgepress::ir
