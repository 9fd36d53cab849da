// TensorProto <-> ir::Tensor, external data files and the ONNX test-data .pb format.
// Every size read from a file is checked (overflow-safe) against the bytes actually
// present before anything is allocated, so a bit flip in `dims` cannot request gigabytes.
#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "formats/onnx/onnx.h"
#include "formats/onnx/onnx_internal.h"
#include "ir/error.h"
#include "ir/file_util.h"

namespace edgepress::formats {
namespace onnx_internal {

using ::onnx::TensorProto;
using ir::DType;

DType DTypeFromProto(int32_t t) {
  switch (t) {
    case TensorProto::FLOAT: return DType::kFloat32;
    case TensorProto::UINT8: return DType::kUInt8;
    case TensorProto::INT8: return DType::kInt8;
    case TensorProto::UINT16: return DType::kUInt16;
    case TensorProto::INT16: return DType::kInt16;
    case TensorProto::INT32: return DType::kInt32;
    case TensorProto::INT64: return DType::kInt64;
    case TensorProto::STRING: return DType::kString;
    case TensorProto::BOOL: return DType::kBool;
    case TensorProto::FLOAT16: return DType::kFloat16;
    case TensorProto::DOUBLE: return DType::kFloat64;
    case TensorProto::UINT32: return DType::kUInt32;
    case TensorProto::UINT64: return DType::kUInt64;
    case TensorProto::COMPLEX64: return DType::kComplex64;
    case TensorProto::COMPLEX128: return DType::kComplex128;
    case TensorProto::BFLOAT16: return DType::kBFloat16;
    // Codes added after ONNX 1.12 (IR v10); libonnx 1.12's enum lacks the names.
    case 21: return DType::kUInt4;
    case 22: return DType::kInt4;
    default: return DType::kUndefined;
  }
}

int32_t DTypeToProto(DType t) {
  switch (t) {
    case DType::kFloat32: return TensorProto::FLOAT;
    case DType::kUInt8: return TensorProto::UINT8;
    case DType::kInt8: return TensorProto::INT8;
    case DType::kUInt16: return TensorProto::UINT16;
    case DType::kInt16: return TensorProto::INT16;
    case DType::kInt32: return TensorProto::INT32;
    case DType::kInt64: return TensorProto::INT64;
    case DType::kString: return TensorProto::STRING;
    case DType::kBool: return TensorProto::BOOL;
    case DType::kFloat16: return TensorProto::FLOAT16;
    case DType::kFloat64: return TensorProto::DOUBLE;
    case DType::kUInt32: return TensorProto::UINT32;
    case DType::kUInt64: return TensorProto::UINT64;
    case DType::kComplex64: return TensorProto::COMPLEX64;
    case DType::kComplex128: return TensorProto::COMPLEX128;
    case DType::kBFloat16: return TensorProto::BFLOAT16;
    case DType::kUInt4: return 21;
    case DType::kInt4: return 22;
    default: return 0;
  }
}

void ParseProto(const std::string& bytes, google::protobuf::MessageLite* msg,
                const std::string& file, const char* kind) {
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    ThrowInvalid(file + ": " + std::to_string(bytes.size()) + " bytes is over protobuf's " +
                 "2 GiB limit for one " + kind + " (large models must use external data)");
  google::protobuf::io::ArrayInputStream ais(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream cis(&ais);
  cis.SetTotalBytesLimit(INT_MAX);
  if (!msg->ParseFromCodedStream(&cis) || !cis.ConsumedEntireMessage())
    ThrowInvalid(file + ": not a valid ONNX " + kind + " (protobuf parse failed; the file " +
                 "is truncated, corrupted or not ONNX)");
}

// --------------------------------------------------------------------------- external

struct ExternalData::Mapping {
  const uint8_t* addr = nullptr;
  uint64_t size = 0;
  ~Mapping() {
    if (addr) ::munmap(const_cast<uint8_t*>(addr), size);
  }
};

namespace {

bool ParseU64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    if (MulOverflows(v, 10, &v) || AddOverflows(v, static_cast<uint64_t>(c - '0'), &v))
      return false;
  }
  *out = v;
  return true;
}

std::string RealPath(const std::string& p) {
  char buf[PATH_MAX];
  if (!::realpath(p.c_str(), buf)) return {};
  return buf;
}

}  // namespace

std::shared_ptr<ir::Buffer> ExternalData::Read(const TensorProto& tp, uint64_t expected,
                                               const std::string& what) {
  std::string location;
  uint64_t offset = 0, length = 0;
  bool has_length = false;
  for (const auto& kv : tp.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset") {
      if (!ParseU64(kv.value(), &offset))
        ThrowInvalid(what + ": external data offset '" + kv.value() + "' is not a number");
    } else if (kv.key() == "length") {
      if (!ParseU64(kv.value(), &length))
        ThrowInvalid(what + ": external data length '" + kv.value() + "' is not a number");
      has_length = true;
    }
  }
  if (location.empty()) ThrowInvalid(what + ": external data without a 'location'");
  if (location.find('\0') != std::string::npos)
    ThrowInvalid(what + ": external data location contains a NUL byte");
  if (location[0] == '/')
    ThrowInvalid(what + ": external data location '" + location +
                 "' is an absolute path; it must be relative to the model's folder");
  size_t start = 0;
  for (;;) {
    size_t slash = location.find('/', start);
    std::string part = location.substr(start, slash == std::string::npos ? slash : slash - start);
    if (part == "..")
      ThrowInvalid(what + ": external data location '" + location +
                   "' contains '..'; it must stay inside the model's folder");
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (base_dir_.empty())
    ThrowInvalid(what + ": uses external data '" + location +
                 "' but the model was not loaded from a folder");
  std::string full = base_dir_ + "/" + location;
  std::string real = RealPath(full);
  if (real.empty())
    ThrowInvalid(what + ": external data file '" + full + "' is missing: " +
                 std::strerror(errno));
  std::string base = RealPath(base_dir_);
  bool inside = !base.empty() &&
                (base == "/" || real.compare(0, base.size() + 1, base + "/") == 0);
  if (!inside)
    ThrowInvalid(what + ": external data location '" + location + "' resolves to '" + real +
                 "', outside the model's folder '" + base_dir_ + "'");

  std::shared_ptr<Mapping>& map = maps_[real];
  if (!map) {
    int fd = ::open(real.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      ThrowInvalid(what + ": cannot open external data file '" + full +
                   "': " + std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      ThrowInvalid(what + ": external data '" + full + "' is not a regular file");
    }
    auto m = std::make_shared<Mapping>();
    m->size = static_cast<uint64_t>(st.st_size);
    if (m->size > 0) {
      void* p = ::mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        ThrowInvalid(what + ": cannot map external data file '" + full +
                     "': " + std::strerror(errno));
      }
      m->addr = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
    map = m;
  }
  if (offset > map->size)
    ThrowInvalid(what + ": external data offset " + std::to_string(offset) + " is past the end of '" +
                 full + "' (" + std::to_string(map->size) + " bytes)");
  if (!has_length) length = map->size - offset;
  uint64_t end;
  if (AddOverflows(offset, length, &end) || end > map->size)
    ThrowInvalid(what + ": external data [" + std::to_string(offset) + ", +" +
                 std::to_string(length) + ") runs past the end of '" + full + "' (" +
                 std::to_string(map->size) + " bytes)");
  if (length != expected)
    ThrowInvalid(what + ": external data holds " + std::to_string(length) +
                 " bytes but the tensor's dtype and dims need " + std::to_string(expected));
  // Aligned regions are used in place; others are copied so kernels get aligned data.
  if (offset % 64 == 0 && length > 0)
    return ir::Buffer::Wrap(map->addr + offset, length, map);
  auto buf = ir::Buffer::Allocate(length);
  if (length) std::memcpy(buf->mutable_data(), map->addr + offset, length);
  return buf;
}

// --------------------------------------------------------------------------- tensors

namespace {

template <typename Dst, typename Src>
void CopyConvert(const Src& src, ir::Tensor* t) {
  Dst* dst = t->mutable_data<Dst>();
  for (int i = 0; i < src.size(); ++i) dst[i] = static_cast<Dst>(src.Get(i));
}

}  // namespace

ir::Tensor TensorFromProto(const TensorProto& tp, ExternalData* ext, const std::string& what) {
  DType dt = DTypeFromProto(tp.data_type());
  if (dt == DType::kUndefined)
    ThrowInvalid(what + ": unknown or undefined data_type " + std::to_string(tp.data_type()));
  if (tp.has_segment()) ThrowUnsupported(what + ": segmented tensors are not supported");
  std::vector<int64_t> shape(tp.dims().begin(), tp.dims().end());
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) ThrowInvalid(what + ": negative dimension " + std::to_string(d));
    if (MulOverflows(numel, static_cast<uint64_t>(d), &numel))
      ThrowInvalid(what + ": element count overflows");
  }
  uint64_t bits;
  if (MulOverflows(numel, static_cast<uint64_t>(ir::DTypeBits(dt)), &bits) ||
      bits > (uint64_t{1} << 62))
    ThrowInvalid(what + ": " + std::to_string(numel) + " elements is too large");
  const uint64_t nbytes = ir::DTypeBytes(dt, numel);
  auto shape_str = [&] {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
  };

  if (tp.data_location() == TensorProto::EXTERNAL) {
    if (dt == DType::kString) ThrowInvalid(what + ": string tensors cannot use external data");
    if (!ext) ThrowInvalid(what + ": external data is not allowed here");
    auto buf = ext->Read(tp, nbytes, what);
    return ir::Tensor(dt, shape, std::move(buf), 0);
  }
  if (dt == DType::kString) {
    if (static_cast<uint64_t>(tp.string_data_size()) != numel)
      ThrowInvalid(what + ": " + std::to_string(tp.string_data_size()) +
                   " strings for shape " + shape_str());
    return ir::Tensor::Strings(shape, {tp.string_data().begin(), tp.string_data().end()});
  }
  if (tp.has_raw_data()) {
    if (tp.raw_data().size() != nbytes)
      ThrowInvalid(what + ": raw_data has " + std::to_string(tp.raw_data().size()) +
                   " bytes but " + ir::DTypeName(dt) + shape_str() + " needs " +
                   std::to_string(nbytes));
    ir::Tensor t(dt, shape);
    if (nbytes) std::memcpy(t.mutable_raw(), tp.raw_data().data(), nbytes);
    return t;
  }
  // Typed fields: the count must match before the tensor is allocated.
  uint64_t want = numel;
  uint64_t have = 0;
  const char* field = "";
  switch (dt) {
    case DType::kFloat32: have = tp.float_data_size(); field = "float_data"; break;
    case DType::kComplex64: have = tp.float_data_size(); field = "float_data"; want *= 2; break;
    case DType::kFloat64: have = tp.double_data_size(); field = "double_data"; break;
    case DType::kComplex128: have = tp.double_data_size(); field = "double_data"; want *= 2; break;
    case DType::kInt64: have = tp.int64_data_size(); field = "int64_data"; break;
    case DType::kUInt32:
    case DType::kUInt64: have = tp.uint64_data_size(); field = "uint64_data"; break;
    case DType::kInt32: case DType::kInt16: case DType::kInt8: case DType::kUInt16:
    case DType::kUInt8: case DType::kBool: case DType::kFloat16: case DType::kBFloat16:
      have = tp.int32_data_size(); field = "int32_data"; break;
    default:
      if (numel == 0) return ir::Tensor(dt, shape);
      ThrowUnsupported(what + ": " + ir::DTypeName(dt) + " data must be in raw_data");
  }
  if (have != want) {
    if (have == 0 && numel > 0)
      ThrowInvalid(what + ": " + ir::DTypeName(dt) + shape_str() + " has no data");
    ThrowInvalid(what + ": " + field + " has " + std::to_string(have) + " values but " +
                 ir::DTypeName(dt) + shape_str() + " needs " + std::to_string(want));
  }
  ir::Tensor t(dt, shape);
  if (numel == 0) return t;
  switch (dt) {
    case DType::kFloat32: case DType::kComplex64: CopyConvert<float>(tp.float_data(), &t); break;
    case DType::kFloat64: case DType::kComplex128: CopyConvert<double>(tp.double_data(), &t); break;
    case DType::kInt64: CopyConvert<int64_t>(tp.int64_data(), &t); break;
    case DType::kUInt32: CopyConvert<uint32_t>(tp.uint64_data(), &t); break;
    case DType::kUInt64: CopyConvert<uint64_t>(tp.uint64_data(), &t); break;
    case DType::kInt32: CopyConvert<int32_t>(tp.int32_data(), &t); break;
    case DType::kInt16: CopyConvert<int16_t>(tp.int32_data(), &t); break;
    case DType::kInt8: CopyConvert<int8_t>(tp.int32_data(), &t); break;
    // Half/bfloat16 values are stored as their 16-bit patterns in int32_data.
    case DType::kUInt16: case DType::kFloat16: case DType::kBFloat16:
      CopyConvert<uint16_t>(tp.int32_data(), &t); break;
    case DType::kUInt8: CopyConvert<uint8_t>(tp.int32_data(), &t); break;
    case DType::kBool: {
      uint8_t* dst = t.mutable_data<uint8_t>();
      for (int i = 0; i < tp.int32_data_size(); ++i) dst[i] = tp.int32_data(i) != 0;
      break;
    }
    default: break;
  }
  return t;
}

void TensorToProto(const ir::Tensor& t, TensorProto* tp, const std::string& what) {
  int32_t code = DTypeToProto(t.dtype());
  if (code == 0)
    ThrowUnsupported(what + ": dtype " + ir::DTypeName(t.dtype()) + " has no ONNX equivalent" +
                     (t.dtype() == DType::kTernary
                          ? " (packed 2-bit weights of pack-ternary are stored in .epk only; "
                            "for ONNX, export the int8 QDQ form with quantize-weights {bits: 8})"
                          : ""));
  tp->clear_dims();
  for (int64_t d : t.shape()) tp->add_dims(d);
  tp->set_data_type(code);
  if (t.dtype() == DType::kString) {
    for (const auto& s : t.strings()) tp->add_string_data(s);
  } else {
    const char* p = static_cast<const char*>(t.raw());
    tp->set_raw_data(p ? std::string(p, t.nbytes()) : std::string());
  }
}

}  // namespace onnx_internal

ir::Tensor LoadTensorProtoFile(const std::string& path, std::string* name) {
  std::string bytes = ReadFileToString(path);
  ::onnx::TensorProto tp;
  onnx_internal::ParseProto(bytes, &tp, path, "TensorProto");
  std::string what = path + ": tensor '" + tp.name() + "'";
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  onnx_internal::ExternalData ext(path, dir);
  ir::Tensor t = onnx_internal::TensorFromProto(tp, &ext, what);
  if (name) *name = tp.name();
  return t;
}

void SaveTensorProtoFile(const ir::Tensor& t, const std::string& name, const std::string& path) {
  ::onnx::TensorProto tp;
  tp.set_name(name);
  onnx_internal::TensorToProto(t, &tp, path + ": tensor '" + name + "'");
  std::string bytes;
  if (!tp.SerializeToString(&bytes))
    ThrowInvalid(path + ": tensor '" + name + "' is too large for a TensorProto file");
  WriteFileAtomic(path, bytes);
}

}  // namespace edgepress::formats
