// .npy reading and writing. The header is a Python dict literal; instead of evaluating
// it, a small parser accepts exactly the literal forms numpy writes (strings, True/False,
// integers, tuples) and nothing else, so a crafted header cannot do more than fail.
#include <cstring>
#include <string_view>

#include "formats/npy/npy.h"
#include "ir/error.h"
#include "ir/file_util.h"

// gcc 12 reports -Wfree-nonheap-object on the index-counter vectors of the odometer loops
// once they are inlined ("nonzero offset [8, 2^63]"): a false positive, the vectors are
// ordinary heap ones. Silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#endif

namespace edgepress::formats {
namespace {

using ir::DType;

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
// numpy's own np.load refuses headers over 10000 bytes by default; files written with
// huge shapes stay far below this bound.
constexpr uint64_t kMaxHeaderLen = 1 << 20;

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// Parses the header dict {'descr': ..., 'fortran_order': ..., 'shape': (...), }.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& name) : s_(text), name_(name) {}

  NpyHeader Parse() {
    NpyHeader h;
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    Expect('{');
    for (;;) {
      SkipSpace();
      if (Peek() == '}') {
        ++pos_;
        break;
      }
      std::string key = ParseString();
      Expect(':');
      SkipSpace();
      if (key == "descr") {
        if (Peek() == '[')
          ThrowUnsupported(name_ + ": structured dtypes (descr is a list) are not supported");
        if (Peek() != '\'' && Peek() != '"') Fail("'descr' is not a string");
        h.descr = ParseString();
        Duplicate(seen_descr, key);
      } else if (key == "fortran_order") {
        h.fortran_order = ParseBool();
        Duplicate(seen_fortran, key);
      } else if (key == "shape") {
        h.shape = ParseTuple();
        Duplicate(seen_shape, key);
      } else {
        Fail("unexpected key '" + key + "'");
      }
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      Expect('}');
      break;
    }
    SkipSpace();
    if (pos_ != s_.size()) Fail("trailing characters after the header dict");
    if (!seen_descr || !seen_fortran || !seen_shape)
      Fail("header lacks one of 'descr', 'fortran_order', 'shape'");
    return h;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    ThrowInvalid(name_ + ": malformed .npy header: " + what);
  }
  void Duplicate(bool& seen, const std::string& key) const {
    if (seen) Fail("key '" + key + "' appears twice");
    seen = true;
  }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' ||
                                s_[pos_] == '\r'))
      ++pos_;
  }
  void Expect(char c) {
    SkipSpace();
    if (Peek() != c) Fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string ParseString() {
    SkipSpace();
    char q = Peek();
    if (q != '\'' && q != '"') Fail("expected a quoted string");
    ++pos_;
    size_t end = s_.find(q, pos_);
    if (end == std::string_view::npos) Fail("unterminated string");
    std::string out(s_.substr(pos_, end - pos_));
    if (out.find('\\') != std::string::npos) Fail("escapes in strings are not supported");
    pos_ = end + 1;
    return out;
  }
  bool ParseBool() {
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    Fail("'fortran_order' is not True or False");
  }
  int64_t ParseInt() {
    SkipSpace();
    if (Peek() < '0' || Peek() > '9') Fail("shape entries must be non-negative integers");
    uint64_t v = 0;
    while (Peek() >= '0' && Peek() <= '9') {
      if (MulOverflows(v, 10, &v) || AddOverflows(v, static_cast<uint64_t>(Peek() - '0'), &v) ||
          v > static_cast<uint64_t>(INT64_MAX))
        Fail("shape entry does not fit in 64 bits");
      ++pos_;
    }
    if (Peek() == 'L') ++pos_;  // Python 2 longs
    return static_cast<int64_t>(v);
  }
  std::vector<int64_t> ParseTuple() {
    std::vector<int64_t> dims;
    Expect('(');
    for (;;) {
      SkipSpace();
      if (Peek() == ')') {
        ++pos_;
        return dims;
      }
      if (dims.size() >= 64) Fail("shape has more than 64 dimensions");
      dims.push_back(ParseInt());
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      Expect(')');
      return dims;
    }
  }

  std::string_view s_;
  const std::string& name_;
  size_t pos_ = 0;
};

struct DescrInfo {
  DType dtype;
  size_t itemsize;
  bool swap;       // big-endian on disk
  size_t swap_unit;  // bytes per swapped component (complex: half the item)
};

DescrInfo ParseDescr(const std::string& descr, const std::string& name) {
  if (descr.empty()) ThrowInvalid(name + ": empty dtype descr");
  char order = '=';
  std::string rest = descr;
  if (descr[0] == '<' || descr[0] == '>' || descr[0] == '|' || descr[0] == '=') {
    order = descr[0];
    rest = descr.substr(1);
  }
  if (rest == "O" || rest == "O8" || rest == "O4")
    ThrowUnsupported(name + ": object arrays are stored as Python pickles, which edgepress "
                            "refuses to load (numpy's allow_pickle); save a numeric array");
  if (rest == "?") rest = "b1";
  DescrInfo d{DType::kUndefined, 0, false, 0};
  if (rest.size() >= 2 && rest.size() <= 3) {
    char kind = rest[0];
    std::string digits = rest.substr(1);
    int size = (digits == "1" || digits == "2" || digits == "4" || digits == "8" ||
                digits == "16")
                   ? std::stoi(digits)
                   : 0;
    struct Entry {
      char kind;
      int size;
      DType dtype;
    };
    static constexpr Entry kTable[] = {
        {'f', 2, DType::kFloat16},    {'f', 4, DType::kFloat32},    {'f', 8, DType::kFloat64},
        {'i', 1, DType::kInt8},       {'i', 2, DType::kInt16},      {'i', 4, DType::kInt32},
        {'i', 8, DType::kInt64},      {'u', 1, DType::kUInt8},      {'u', 2, DType::kUInt16},
        {'u', 4, DType::kUInt32},     {'u', 8, DType::kUInt64},     {'b', 1, DType::kBool},
        {'c', 8, DType::kComplex64},  {'c', 16, DType::kComplex128},
    };
    for (const Entry& e : kTable) {
      if (e.kind == kind && e.size == size) {
        d.dtype = e.dtype;
        d.itemsize = static_cast<size_t>(size);
      }
    }
  }
  if (d.dtype == DType::kUndefined)
    ThrowUnsupported(name + ": dtype '" + descr +
                     "' is not supported (numeric f2/f4/f8, i1..i8, u1..u8, b1, c8/c16 only)");
  d.swap_unit = d.dtype == DType::kComplex64 || d.dtype == DType::kComplex128 ? d.itemsize / 2
                                                                                : d.itemsize;
  d.swap = order == '>' && d.swap_unit > 1;
  return d;
}

const char* DescrOf(DType t) {
  switch (t) {
    case DType::kFloat16: return "<f2";
    case DType::kFloat32: return "<f4";
    case DType::kFloat64: return "<f8";
    case DType::kInt8: return "|i1";
    case DType::kInt16: return "<i2";
    case DType::kInt32: return "<i4";
    case DType::kInt64: return "<i8";
    case DType::kUInt8: return "|u1";
    case DType::kUInt16: return "<u2";
    case DType::kUInt32: return "<u4";
    case DType::kUInt64: return "<u8";
    case DType::kBool: return "|b1";
    case DType::kComplex64: return "<c8";
    case DType::kComplex128: return "<c16";
    default: return nullptr;
  }
}

uint32_t ReadLE(const std::string& b, size_t at, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(b[at + i])) << (8 * i);
  return v;
}

// Reorders column-major (Fortran) bytes into row-major order.
void FortranToC(const uint8_t* src, uint8_t* dst, const std::vector<int64_t>& shape,
                size_t itemsize, uint64_t numel) {
  size_t rank = shape.size();
  std::vector<uint64_t> cstride(rank, 1);
  for (size_t k = rank; k-- > 1;) cstride[k - 1] = cstride[k] * static_cast<uint64_t>(shape[k]);
  std::vector<int64_t> idx(rank, 0);
  uint64_t c_off = 0;
  for (uint64_t i = 0; i < numel; ++i) {
    std::memcpy(dst + c_off * itemsize, src + i * itemsize, itemsize);
    for (size_t k = 0; k < rank; ++k) {
      c_off += cstride[k];
      if (++idx[k] < shape[k]) break;
      c_off -= cstride[k] * static_cast<uint64_t>(shape[k]);
      idx[k] = 0;
    }
  }
}

}  // namespace

ir::Tensor ParseNpy(const std::string& bytes, const std::string& name) {
  if (bytes.size() < kMagicLen + 2 || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
    ThrowInvalid(name + ": not a .npy file (missing \\x93NUMPY magic)");
  int major = static_cast<uint8_t>(bytes[6]);
  int minor = static_cast<uint8_t>(bytes[7]);
  size_t len_bytes;
  if (major == 1 && minor == 0) {
    len_bytes = 2;
  } else if ((major == 2 || major == 3) && minor == 0) {
    len_bytes = 4;
  } else {
    ThrowUnsupported(name + ": .npy format version " + std::to_string(major) + "." +
                     std::to_string(minor) + " is not supported (1.0, 2.0, 3.0)");
  }
  size_t prefix = kMagicLen + 2 + len_bytes;
  if (bytes.size() < prefix)
    ThrowInvalid(name + ": truncated .npy file (" + std::to_string(bytes.size()) +
                 " bytes, header length field incomplete)");
  uint64_t header_len = ReadLE(bytes, kMagicLen + 2, len_bytes);
  if (header_len > kMaxHeaderLen)
    ThrowInvalid(name + ": .npy header length " + std::to_string(header_len) +
                 " exceeds the " + std::to_string(kMaxHeaderLen) + "-byte limit");
  if (header_len > bytes.size() - prefix)
    ThrowInvalid(name + ": .npy header length " + std::to_string(header_len) +
                 " runs past the end of the file (" + std::to_string(bytes.size()) + " bytes)");
  std::string_view header(bytes.data() + prefix, header_len);
  NpyHeader h = HeaderParser(header, name).Parse();
  DescrInfo d = ParseDescr(h.descr, name);

  uint64_t numel = 1, nbytes;
  for (int64_t dim : h.shape)
    if (MulOverflows(numel, static_cast<uint64_t>(dim), &numel))
      ThrowInvalid(name + ": shape element count overflows 64 bits");
  if (MulOverflows(numel, d.itemsize, &nbytes))
    ThrowInvalid(name + ": array byte size overflows 64 bits");
  uint64_t data_at = prefix + header_len;
  uint64_t available = bytes.size() - data_at;
  if (nbytes != available)
    ThrowInvalid(name + ": shape and dtype need " + std::to_string(nbytes) +
                 " data bytes but the file holds " + std::to_string(available) +
                 (nbytes > available ? " (truncated)" : " (trailing bytes)"));

  ir::Tensor t(d.dtype, h.shape);
  auto* dst = static_cast<uint8_t*>(t.mutable_raw());
  const auto* src = reinterpret_cast<const uint8_t*>(bytes.data() + data_at);
  if (nbytes == 0) return t;
  if (h.fortran_order && h.shape.size() > 1) {
    FortranToC(src, dst, h.shape, d.itemsize, numel);
  } else {
    std::memcpy(dst, src, nbytes);
  }
  if (d.swap) {
    for (uint64_t off = 0; off < nbytes; off += d.swap_unit) {
      uint8_t* p = dst + off;
      for (size_t a = 0, b = d.swap_unit - 1; a < b; ++a, --b) std::swap(p[a], p[b]);
    }
  }
  if (d.dtype == DType::kBool) {
    for (uint64_t i = 0; i < nbytes; ++i) dst[i] = dst[i] != 0;
  }
  return t;
}

ir::Tensor LoadNpy(const std::string& path) { return ParseNpy(ReadFileToString(path), path); }

std::string SerializeNpy(const ir::Tensor& t) {
  const char* descr = DescrOf(t.dtype());
  if (!descr)
    ThrowUnsupported(std::string("cannot write dtype ") + ir::DTypeName(t.dtype()) +
                     " to .npy: numpy has no such dtype");
  // The dict text matches numpy's _write_array_header byte for byte (sorted keys, repr
  // values, room for the first axis to grow to 21 digits), so np.save and SerializeNpy
  // give identical files.
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i) {
    if (i) shape += ", ";
    shape += std::to_string(t.shape()[i]);
  }
  if (t.shape().size() == 1) shape += ",";
  shape += ")";
  std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " +
                     shape + ", }";
  if (!t.shape().empty()) {
    size_t digits = std::to_string(t.shape()[0]).size();
    if (digits < 21) dict.append(21 - digits, ' ');
  }
  uint64_t hlen = dict.size() + 1;  // + '\n'
  size_t len_bytes = 2;
  uint64_t padlen = 64 - ((kMagicLen + 2 + len_bytes + hlen) % 64);
  if (hlen + padlen > 0xFFFF) {
    len_bytes = 4;
    padlen = 64 - ((kMagicLen + 2 + len_bytes + hlen) % 64);
  }
  uint64_t total_header = hlen + padlen;
  if (total_header > 0xFFFFFFFFull) ThrowUnsupported("npy header too large");
  std::string out(kMagic, kMagicLen);
  out.push_back(static_cast<char>(len_bytes == 2 ? 1 : 2));
  out.push_back(0);
  for (size_t i = 0; i < len_bytes; ++i) out.push_back(static_cast<char>((total_header >> (8 * i)) & 0xFF));
  out += dict;
  out.append(padlen, ' ');
  out.push_back('\n');
  out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

void SaveNpy(const ir::Tensor& t, const std::string& path) {
  WriteFileAtomic(path, SerializeNpy(t));
}

}  // namespace edgepress::formats

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
