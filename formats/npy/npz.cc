// .npz reading and writing: a zip archive of .npy members. Only the zip subset that
// numpy and Python's zipfile produce is accepted (one disk, stored or deflated, no
// encryption, zip64 extras), and every field is cross-checked before use: the central
// directory against the end record, each local header against its central entry, member
// data ranges against each other (overlapping members are how zip bombs multiply), the
// declared uncompressed size against the most deflate can expand, and the CRC32.
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "formats/npy/npy.h"
#include "ir/error.h"
#include "ir/file_util.h"

namespace edgepress::formats {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;
constexpr uint32_t kEnd64LocatorSig = 0x07064b50;
constexpr uint64_t kMax32 = 0xFFFFFFFFull;
// Deflate cannot expand input by more than about 1032:1 (258-byte matches coded in
// 2 bits); a declared size beyond that is a lie, and we refuse it before allocating.
constexpr uint64_t kMaxDeflateRatio = 1032;
// DOS date 1980-01-01, time 00:00:00: fixed so the same tensors give the same bytes.
constexpr uint16_t kDosDate = (0 << 9) | (1 << 5) | 1;
constexpr uint16_t kDosTime = 0;

class Reader {
 public:
  Reader(const std::string& b, const std::string& name) : b_(b), name_(name) {}
  void Need(uint64_t at, uint64_t n, const char* what) const {
    uint64_t end;
    if (AddOverflows(at, n, &end) || end > b_.size())
      ThrowInvalid(name_ + ": corrupt zip: " + what + " at offset " + std::to_string(at) +
                   " runs past the end of the file (" + std::to_string(b_.size()) + " bytes)");
  }
  uint64_t U(uint64_t at, int n) const {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(b_[at + static_cast<uint64_t>(i)])) << (8 * i);
    return v;
  }
  uint16_t U16(uint64_t at) const { return static_cast<uint16_t>(U(at, 2)); }
  uint32_t U32(uint64_t at) const { return static_cast<uint32_t>(U(at, 4)); }
  uint64_t U64(uint64_t at) const { return U(at, 8); }

 private:
  const std::string& b_;
  const std::string& name_;
};

struct Entry {
  std::string name;
  uint16_t flags = 0;
  uint16_t method = 0;
  uint32_t crc = 0;
  uint64_t csize = 0, usize = 0, local_offset = 0;
  uint64_t data_offset = 0;
};

std::string Inflate(const std::string& bytes, const Entry& e, const std::string& where) {
  std::string out(e.usize, '\0');
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) ThrowInvalid(where + ": zlib init failed");
  const uint8_t* in = reinterpret_cast<const uint8_t*>(bytes.data() + e.data_offset);
  uint64_t in_left = e.csize, out_done = 0;
  int rc = Z_OK;
  // zlib counts in 32-bit uInt, so large members go through in chunks.
  while (rc == Z_OK) {
    uInt in_chunk = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
    uInt out_chunk = static_cast<uInt>(std::min<uint64_t>(e.usize - out_done, 1u << 30));
    zs.next_in = const_cast<Bytef*>(in);
    zs.avail_in = in_chunk;
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_done);
    zs.avail_out = out_chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    uint64_t used_in = in_chunk - zs.avail_in, made = out_chunk - zs.avail_out;
    in += used_in;
    in_left -= used_in;
    out_done += made;
    if (rc == Z_OK && used_in == 0 && made == 0) rc = Z_BUF_ERROR;
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    if (rc == Z_BUF_ERROR && out_done == e.usize && in_left > 0)
      ThrowInvalid(where + ": deflated data expands past its declared size of " +
                   std::to_string(e.usize) + " bytes");
    ThrowInvalid(where + ": corrupt deflate stream" +
                 (zs.msg ? std::string(" (") + zs.msg + ")" : std::string()));
  }
  if (out_done != e.usize || in_left != 0)
    ThrowInvalid(where + ": deflated data gives " + std::to_string(out_done) + " bytes from " +
                 std::to_string(e.csize - in_left) + " compressed, but the zip declares " +
                 std::to_string(e.usize) + " from " + std::to_string(e.csize));
  return out;
}

// Where the central directory lies, from the end record (zip64's where the 32-bit fields
// saturate).
struct Directory {
  uint64_t count = 0, offset = 0, size = 0, end = 0;
};

Directory FindDirectory(const Reader& r, const std::string& b, const std::string& name) {
  if (b.size() < 22) ThrowInvalid(name + ": not a zip/.npz file (" + std::to_string(b.size()) + " bytes)");
  // The end record sits at the end, after an optional comment of up to 65535 bytes.
  uint64_t eocd = UINT64_MAX;
  uint64_t lowest = b.size() >= 22 + 65535 ? b.size() - 22 - 65535 : 0;
  for (uint64_t p = b.size() - 22 + 1; p-- > lowest;) {
    if (r.U32(p) == kEndSig && p + 22 + r.U16(p + 20) == b.size()) {
      eocd = p;
      break;
    }
  }
  if (eocd == UINT64_MAX) ThrowInvalid(name + ": corrupt zip: end of central directory not found");
  if (r.U16(eocd + 4) != 0 || r.U16(eocd + 6) != 0)
    ThrowUnsupported(name + ": multi-disk zip archives are not supported");
  Directory d;
  d.count = r.U16(eocd + 10);
  uint64_t count_disk = r.U16(eocd + 8);
  d.size = r.U32(eocd + 12);
  d.offset = r.U32(eocd + 16);
  uint64_t limit = eocd;  // the directory must end before this
  if (d.count == 0xFFFF || d.size == kMax32 || d.offset == kMax32) {
    if (eocd < 20 || r.U32(eocd - 20) != kEnd64LocatorSig)
      ThrowInvalid(name + ": corrupt zip: zip64 end record locator missing");
    uint64_t z64 = r.U64(eocd - 20 + 8);
    uint64_t z64_end;
    if (AddOverflows(z64, 56, &z64_end) || z64_end > eocd - 20)
      ThrowInvalid(name + ": corrupt zip: zip64 end record offset " + std::to_string(z64) +
                   " out of range");
    if (r.U32(z64) != kEnd64Sig) ThrowInvalid(name + ": corrupt zip: bad zip64 end record signature");
    if (r.U32(z64 + 16) != 0 || r.U32(z64 + 20) != 0)
      ThrowUnsupported(name + ": multi-disk zip archives are not supported");
    count_disk = r.U64(z64 + 24);
    d.count = r.U64(z64 + 32);
    d.size = r.U64(z64 + 40);
    d.offset = r.U64(z64 + 48);
    limit = z64;
  }
  if (d.count != count_disk)
    ThrowInvalid(name + ": corrupt zip: entry counts disagree (" + std::to_string(d.count) +
                 " vs " + std::to_string(count_disk) + ")");
  if (AddOverflows(d.offset, d.size, &d.end) || d.end > limit)
    ThrowInvalid(name + ": corrupt zip: central directory (offset " + std::to_string(d.offset) +
                 ", size " + std::to_string(d.size) + ") runs past its end record");
  if (d.count > d.size / 46)
    ThrowInvalid(name + ": corrupt zip: " + std::to_string(d.count) +
                 " entries cannot fit in a central directory of " + std::to_string(d.size) +
                 " bytes");
  return d;
}

// zip64 extra field of the entry whose extra fields span [x, x_end): the saturated 32-bit
// fields follow in a fixed order.
void ReadZip64Extra(const Reader& r, uint64_t x, uint64_t x_end, Entry& e,
                    const std::string& where) {
  bool need64 = e.usize == kMax32 || e.csize == kMax32 || e.local_offset == kMax32;
  bool found64 = false;
  while (x + 4 <= x_end) {
    uint16_t id = r.U16(x), sz = r.U16(x + 2);
    if (x + 4 + sz > x_end) ThrowInvalid(where + ": corrupt zip: extra field runs past its entry");
    if (id == 0x0001 && need64) {
      uint64_t q = x + 4, q_end = x + 4 + sz;
      auto take = [&](uint64_t* field) {
        if (*field != kMax32) return;
        if (q + 8 > q_end) ThrowInvalid(where + ": corrupt zip: zip64 extra field too short");
        *field = r.U64(q);
        q += 8;
      };
      take(&e.usize);
      take(&e.csize);
      take(&e.local_offset);
      found64 = true;
    }
    x += 4 + sz;
  }
  if (need64 && !found64) ThrowInvalid(where + ": corrupt zip: zip64 sizes missing");
}

// Encryption, method and the sizes a member declares.
void CheckMethodAndSizes(const Entry& e, const std::string& where) {
  if (e.flags & 0x1) ThrowUnsupported(where + ": encrypted zip members are not supported");
  if (e.method != 0 && e.method != 8)
    ThrowUnsupported(where + ": zip compression method " + std::to_string(e.method) +
                     " is not supported (stored or deflated only)");
  if (e.method == 0 && e.csize != e.usize)
    ThrowInvalid(where + ": corrupt zip: stored member has compressed size " +
                 std::to_string(e.csize) + " != size " + std::to_string(e.usize));
  uint64_t max_usize;
  if (e.method == 8 &&
      (MulOverflows(e.csize, kMaxDeflateRatio, &max_usize) || e.usize > max_usize + 64))
    ThrowInvalid(where + ": declares " + std::to_string(e.usize) + " bytes from " +
                 std::to_string(e.csize) + " compressed, more than deflate can produce");
}

// The local header must agree with the central entry; sets where the data starts.
void ReadLocalHeader(const Reader& r, const std::string& b, uint64_t cd_offset, Entry& e,
                     const std::string& where) {
  uint64_t l = e.local_offset;
  r.Need(l, 30, "local header");
  if (l + 30 > cd_offset) ThrowInvalid(where + ": corrupt zip: local header overlaps the central directory");
  if (r.U32(l) != kLocalSig) ThrowInvalid(where + ": corrupt zip: bad local header signature at offset " + std::to_string(l));
  if (r.U16(l + 8) != e.method) ThrowInvalid(where + ": corrupt zip: local and central compression methods differ");
  uint64_t lname = r.U16(l + 26), lextra = r.U16(l + 28);
  r.Need(l + 30, lname + lextra, "local header name");
  if (b.compare(l + 30, lname, e.name) != 0)
    ThrowInvalid(where + ": corrupt zip: local header names '" + b.substr(l + 30, lname) + "'");
  if (!(e.flags & 0x8)) {
    uint64_t lcrc = r.U32(l + 14), lcs = r.U32(l + 18), lus = r.U32(l + 22);
    if (lcrc != e.crc || (lcs != kMax32 && lcs != e.csize) || (lus != kMax32 && lus != e.usize))
      ThrowInvalid(where + ": corrupt zip: local header sizes or CRC differ from the central directory");
  }
  e.data_offset = l + 30 + lname + lextra;
  uint64_t data_end;
  if (AddOverflows(e.data_offset, e.csize, &data_end) || data_end > cd_offset)
    ThrowInvalid(where + ": corrupt zip: " + std::to_string(e.csize) + " bytes of data at offset " +
                 std::to_string(e.data_offset) + " run past the member area");
}

// Entry `i` of the directory at `*p`; moves `*p` past it.
Entry ReadCentralEntry(const Reader& r, const std::string& b, const Directory& d, uint64_t i,
                       uint64_t* p, const std::string& name) {
  const uint64_t at = *p;
  if (at + 46 > d.end) ThrowInvalid(name + ": corrupt zip: central directory entry " + std::to_string(i) + " truncated");
  if (r.U32(at) != kCentralSig)
    ThrowInvalid(name + ": corrupt zip: bad central directory signature at offset " + std::to_string(at));
  Entry e;
  e.flags = r.U16(at + 8);
  e.method = r.U16(at + 10);
  e.crc = r.U32(at + 16);
  e.csize = r.U32(at + 20);
  e.usize = r.U32(at + 24);
  uint64_t name_len = r.U16(at + 28), extra_len = r.U16(at + 30), comment_len = r.U16(at + 32);
  uint64_t disk = r.U16(at + 34);
  e.local_offset = r.U32(at + 42);
  uint64_t var_end = at + 46 + name_len + extra_len + comment_len;
  if (var_end > d.end)
    ThrowInvalid(name + ": corrupt zip: central directory entry " + std::to_string(i) +
                 " runs past the directory");
  e.name = b.substr(at + 46, name_len);
  std::string where = name + ": member '" + e.name + "'";
  if (disk != 0 && disk != 0xFFFF) ThrowUnsupported(where + ": multi-disk zip archives are not supported");
  ReadZip64Extra(r, at + 46 + name_len, at + 46 + name_len + extra_len, e, where);
  *p = var_end;
  CheckMethodAndSizes(e, where);
  ReadLocalHeader(r, b, d.offset, e, where);
  return e;
}

// Members may not share bytes: overlapping entries multiply a zip bomb's output.
void CheckNoOverlap(const std::vector<Entry>& entries, const std::string& name) {
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Entry* a, const Entry* b) { return a->local_offset < b->local_offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i - 1]->data_offset + by_offset[i - 1]->csize > by_offset[i]->local_offset)
      ThrowInvalid(name + ": corrupt zip: members '" + by_offset[i - 1]->name + "' and '" +
                   by_offset[i]->name + "' overlap");
  }
}

std::vector<Entry> ReadCentralDirectory(const std::string& b, const std::string& name) {
  Reader r(b, name);
  const Directory d = FindDirectory(r, b, name);
  std::vector<Entry> entries;
  entries.reserve(d.count);
  uint64_t p = d.offset;
  for (uint64_t i = 0; i < d.count; ++i) entries.push_back(ReadCentralEntry(r, b, d, i, &p, name));
  CheckNoOverlap(entries, name);
  return entries;
}

void PutU(std::string& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

std::string Deflate(const std::string& in) {
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  // Python's zipfile uses exactly these parameters for ZIP_DEFLATED.
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw Error(ErrorCode::kInternal, "zlib deflateInit2 failed");
  std::string out;
  const uint8_t* src = reinterpret_cast<const uint8_t*>(in.data());
  uint64_t left = in.size();
  char buf[1 << 16];
  int rc;
  do {
    uInt chunk = static_cast<uInt>(std::min<uint64_t>(left, 1u << 30));
    zs.next_in = const_cast<Bytef*>(src);
    zs.avail_in = chunk;
    int flush = chunk == left ? Z_FINISH : Z_NO_FLUSH;
    do {
      zs.next_out = reinterpret_cast<Bytef*>(buf);
      zs.avail_out = sizeof(buf);
      rc = deflate(&zs, flush);
      out.append(buf, sizeof(buf) - zs.avail_out);
    } while (zs.avail_out == 0);
    src += chunk;
    left -= chunk;
  } while (rc != Z_STREAM_END);
  deflateEnd(&zs);
  return out;
}

uint32_t Crc32(const std::string& s) {
  return static_cast<uint32_t>(
      crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(s.data()), s.size()));
}

}  // namespace

NamedTensors ParseNpz(const std::string& bytes, const std::string& name) {
  std::vector<Entry> entries = ReadCentralDirectory(bytes, name);
  NamedTensors out;
  std::set<std::string> seen;
  for (const Entry& e : entries) {
    std::string where = name + ": member '" + e.name + "'";
    if (e.name.size() < 5 || e.name.compare(e.name.size() - 4, 4, ".npy") != 0)
      ThrowUnsupported(where + " is not a .npy array (numpy stores pickled objects that way; "
                               "only numeric arrays are supported)");
    if (e.name.find('\0') != std::string::npos) ThrowInvalid(where + ": name contains a NUL byte");
    std::string tensor_name = e.name.substr(0, e.name.size() - 4);
    if (!seen.insert(tensor_name).second) ThrowInvalid(where + " appears more than once");
    std::string data = e.method == 0 ? bytes.substr(e.data_offset, e.csize) : Inflate(bytes, e, where);
    if (Crc32(data) != e.crc) ThrowInvalid(where + ": CRC32 mismatch (corrupt data)");
    out.emplace_back(tensor_name, ParseNpy(data, name + ":" + e.name));
  }
  return out;
}

NamedTensors LoadNpz(const std::string& path) { return ParseNpz(ReadFileToString(path), path); }

std::string SerializeNpz(const NamedTensors& tensors, bool compress) {
  std::string out, central;
  std::set<std::string> seen;
  for (const auto& [tname, tensor] : tensors) {
    if (tname.empty()) ThrowInvalid("npz: a tensor has an empty name");
    if (tname.find('\0') != std::string::npos) ThrowInvalid("npz: tensor name '" + tname + "' contains a NUL byte");
    if (!seen.insert(tname).second) ThrowInvalid("npz: tensor name '" + tname + "' appears twice");
    std::string member = tname + ".npy";
    if (member.size() > 0xFFFF) ThrowInvalid("npz: tensor name '" + tname.substr(0, 64) + "...' is too long");
    std::string data = SerializeNpy(tensor);
    uint32_t crc = Crc32(data);
    std::string stored = compress ? Deflate(data) : std::string();
    const std::string& payload = compress ? stored : data;
    uint64_t usize = data.size(), csize = payload.size(), offset = out.size();
    bool utf8 = std::any_of(member.begin(), member.end(), [](char c) { return c & 0x80; });
    uint16_t flags = utf8 ? 0x800 : 0;
    uint16_t method = compress ? 8 : 0;
    bool local64 = usize >= kMax32 || csize >= kMax32;

    PutU(out, kLocalSig, 4);
    PutU(out, local64 ? 45 : 20, 2);
    PutU(out, flags, 2);
    PutU(out, method, 2);
    PutU(out, kDosTime, 2);
    PutU(out, kDosDate, 2);
    PutU(out, crc, 4);
    PutU(out, local64 ? kMax32 : csize, 4);
    PutU(out, local64 ? kMax32 : usize, 4);
    PutU(out, member.size(), 2);
    PutU(out, local64 ? 20 : 0, 2);
    out += member;
    if (local64) {
      PutU(out, 1, 2);
      PutU(out, 16, 2);
      PutU(out, usize, 8);
      PutU(out, csize, 8);
    }
    out += payload;

    std::string extra;
    if (usize >= kMax32) PutU(extra, usize, 8);
    if (csize >= kMax32) PutU(extra, csize, 8);
    if (offset >= kMax32) PutU(extra, offset, 8);
    if (!extra.empty()) {
      std::string head;
      PutU(head, 1, 2);
      PutU(head, extra.size(), 2);
      extra = head + extra;
    }
    PutU(central, kCentralSig, 4);
    PutU(central, extra.empty() ? 20 : 45, 2);  // made by: MS-DOS, spec 2.0/4.5
    PutU(central, extra.empty() ? 20 : 45, 2);
    PutU(central, flags, 2);
    PutU(central, method, 2);
    PutU(central, kDosTime, 2);
    PutU(central, kDosDate, 2);
    PutU(central, crc, 4);
    PutU(central, std::min(csize, kMax32), 4);
    PutU(central, std::min(usize, kMax32), 4);
    PutU(central, member.size(), 2);
    PutU(central, extra.size(), 2);
    PutU(central, 0, 2);  // comment
    PutU(central, 0, 2);  // disk
    PutU(central, 0, 2);  // internal attributes
    PutU(central, 0, 4);  // external attributes
    PutU(central, std::min(offset, kMax32), 4);
    central += member;
    central += extra;
  }
  uint64_t cd_offset = out.size(), cd_size = central.size(), count = tensors.size();
  out += central;
  if (count >= 0xFFFF || cd_offset >= kMax32 || cd_size >= kMax32) {
    uint64_t z64 = out.size();
    PutU(out, kEnd64Sig, 4);
    PutU(out, 44, 8);
    PutU(out, 45, 2);
    PutU(out, 45, 2);
    PutU(out, 0, 4);
    PutU(out, 0, 4);
    PutU(out, count, 8);
    PutU(out, count, 8);
    PutU(out, cd_size, 8);
    PutU(out, cd_offset, 8);
    PutU(out, kEnd64LocatorSig, 4);
    PutU(out, 0, 4);
    PutU(out, z64, 8);
    PutU(out, 1, 4);
  }
  PutU(out, kEndSig, 4);
  PutU(out, 0, 2);
  PutU(out, 0, 2);
  PutU(out, std::min<uint64_t>(count, 0xFFFF), 2);
  PutU(out, std::min<uint64_t>(count, 0xFFFF), 2);
  PutU(out, std::min(cd_size, kMax32), 4);
  PutU(out, std::min(cd_offset, kMax32), 4);
  PutU(out, 0, 2);
  return out;
}

void SaveNpz(const NamedTensors& tensors, const std::string& path, bool compress) {
  WriteFileAtomic(path, SerializeNpz(tensors, compress));
}

NamedTensors LoadTensorFile(const std::string& path) {
  std::string bytes = ReadFileToString(path);
  if (bytes.size() >= 4 && bytes.compare(0, 4, "PK\x03\x04") == 0) return ParseNpz(bytes, path);
  if (bytes.size() >= 4 && bytes.compare(0, 4, "PK\x05\x06") == 0) return ParseNpz(bytes, path);
  if (bytes.size() >= 6 && bytes.compare(0, 6, "\x93NUMPY") == 0) {
    std::string stem = path.substr(path.find_last_of('/') + 1);
    size_t dot = stem.find_last_of('.');
    if (dot != std::string::npos && dot > 0) stem = stem.substr(0, dot);
    NamedTensors out;
    out.emplace_back(stem, ParseNpy(bytes, path));
    return out;
  }
  ThrowInvalid(path + ": not a .npy or .npz file (unrecognised magic bytes)");
}

}  // namespace edgepress::formats
