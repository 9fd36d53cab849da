#include "ir/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "ir/error.h"

namespace edgepress::ir {

std::shared_ptr<Buffer> Buffer::Allocate(uint64_t bytes) {
  std::shared_ptr<Buffer> b(new Buffer());
  uint64_t padded = (bytes + 63) / 64 * 64;
  if (padded == 0) padded = 64;
  void* p = std::aligned_alloc(64, padded);
  if (!p) throw Error(ErrorCode::kInvalidInput, "out of memory allocating " +
                                                    std::to_string(bytes) + " bytes");
  std::memset(p, 0, padded);
  b->data_ = static_cast<uint8_t*>(p);
  b->size_ = bytes;
  return b;
}

std::shared_ptr<Buffer> Buffer::Wrap(const void* data, uint64_t bytes,
                                     std::shared_ptr<const void> owner) {
  std::shared_ptr<Buffer> b(new Buffer());
  b->data_ = static_cast<uint8_t*>(const_cast<void*>(data));
  b->size_ = bytes;
  b->owner_ = owner ? std::move(owner) : std::shared_ptr<const void>(data, [](const void*) {});
  return b;
}

Buffer::~Buffer() {
  if (!owner_) std::free(data_);
}

uint8_t* Buffer::mutable_data() {
  if (owner_) throw std::logic_error("Buffer::mutable_data on a wrapped buffer");
  return data_;
}

uint64_t ElementCount(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) ThrowInvalid("negative dimension " + std::to_string(d) + " in tensor shape");
    if (MulOverflows(n, static_cast<uint64_t>(d), &n))
      ThrowInvalid("tensor shape overflows 64-bit element count");
  }
  return n;
}

Tensor::Tensor(DType dtype, std::vector<int64_t> shape)
    : dtype_(dtype), shape_(std::move(shape)), numel_(ElementCount(shape_)) {
  // DTypeBytes would wrap around for more (128 bits per element at most); a buffer sized
  // by the wrapped count would be far smaller than what kernels then write.
  if (numel_ > (UINT64_MAX - 7) / 128)
    ThrowInvalid("tensor of " + std::to_string(numel_) + " elements is too large to be held "
                 "in memory");
  if (dtype_ == DType::kString) {
    strings_.resize(numel_);
    return;
  }
  buffer_ = Buffer::Allocate(nbytes());
}

Tensor::Tensor(DType dtype, std::vector<int64_t> shape, std::shared_ptr<Buffer> buffer,
               uint64_t offset)
    : dtype_(dtype), shape_(std::move(shape)), numel_(ElementCount(shape_)),
      buffer_(std::move(buffer)), offset_(offset) {
  uint64_t end;
  if (!buffer_ || AddOverflows(offset_, nbytes(), &end) || end > buffer_->size())
    ThrowInvalid("tensor data (" + std::to_string(nbytes()) + " bytes at offset " +
                 std::to_string(offset_) + ") exceeds its buffer");
}

Tensor Tensor::Strings(std::vector<int64_t> shape, std::vector<std::string> values) {
  Tensor t;
  t.dtype_ = DType::kString;
  t.shape_ = std::move(shape);
  t.numel_ = ElementCount(t.shape_);
  if (values.size() != t.numel_)
    ThrowInvalid("string tensor has " + std::to_string(values.size()) + " values for " +
                 std::to_string(t.numel_) + " elements");
  t.strings_ = std::move(values);
  return t;
}

void* Tensor::mutable_raw() {
  if (!buffer_) return nullptr;
  if (!buffer_->owned() || buffer_.use_count() > 1 || offset_ != 0) {
    auto copy = Buffer::Allocate(nbytes());
    std::memcpy(copy->mutable_data(), raw(), nbytes());
    buffer_ = std::move(copy);
    offset_ = 0;
  }
  return buffer_->mutable_data();
}

namespace {
template <typename F>
void ForEachValue(const Tensor& t, F&& f) {
  const void* p = t.raw();
  uint64_t n = t.numel();
  switch (t.dtype()) {
#define EP_CASE(DT, T) \
  case DType::DT:      \
    for (uint64_t i = 0; i < n; ++i) f(static_cast<double>(static_cast<const T*>(p)[i]), static_cast<int64_t>(static_cast<const T*>(p)[i])); \
    return;
    EP_CASE(kInt64, int64_t)
    EP_CASE(kInt32, int32_t)
    EP_CASE(kInt16, int16_t)
    EP_CASE(kInt8, int8_t)
    EP_CASE(kUInt64, uint64_t)
    EP_CASE(kUInt32, uint32_t)
    EP_CASE(kUInt16, uint16_t)
    EP_CASE(kUInt8, uint8_t)
    EP_CASE(kBool, uint8_t)
#undef EP_CASE
    case DType::kFloat32:
      for (uint64_t i = 0; i < n; ++i) {
        double v = static_cast<const float*>(p)[i];
        f(v, std::isfinite(v) ? static_cast<int64_t>(v) : 0);
      }
      return;
    case DType::kFloat64:
      for (uint64_t i = 0; i < n; ++i) {
        double v = static_cast<const double*>(p)[i];
        f(v, std::isfinite(v) ? static_cast<int64_t>(v) : 0);
      }
      return;
    case DType::kFloat16:
    case DType::kBFloat16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h = static_cast<const uint16_t*>(p)[i];
        double v = t.dtype() == DType::kFloat16 ? HalfToFloat(h) : BFloat16ToFloat(h);
        f(v, std::isfinite(v) ? static_cast<int64_t>(v) : 0);
      }
      return;
    default:
      ThrowUnsupported(std::string("cannot read values of dtype ") + DTypeName(t.dtype()));
  }
}
}  // namespace

std::vector<int64_t> Tensor::ToInt64() const {
  std::vector<int64_t> out;
  out.reserve(numel_);
  ForEachValue(*this, [&](double, int64_t i) { out.push_back(i); });
  return out;
}

std::vector<double> Tensor::ToDouble() const {
  std::vector<double> out;
  out.reserve(numel_);
  ForEachValue(*this, [&](double d, int64_t) { out.push_back(d); });
  return out;
}

bool Tensor::operator==(const Tensor& o) const {
  if (dtype_ != o.dtype_ || shape_ != o.shape_ || !(quant == o.quant) || !(sparse == o.sparse))
    return false;
  if (dtype_ == DType::kString) return strings_ == o.strings_;
  if (nbytes() == 0) return true;
  return std::memcmp(raw(), o.raw(), nbytes()) == 0;
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (absx < 0x38800000u) {  // subnormal or zero in half
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);
    uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    int shift = 113 - static_cast<int>(absx >> 23) + 13;
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = ((absx >> 13) - ((127 - 15) << 10));
  uint32_t rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;
  return static_cast<uint16_t>(sign | half);
}

float BFloat16ToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);
  uint32_t lsb = (x >> 16) & 1;
  x += 0x7fff + lsb;
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace edgepress::ir
