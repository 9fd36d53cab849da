#include "formats/torchscript/pt_archive.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <set>

#include "ir/error.h"

namespace edgepress::formats {

namespace {

constexpr uint32_t kEocdSig = 0x06054b50, kZip64EocdSig = 0x06064b50,
                   kZip64LocatorSig = 0x07064b50, kCentralSig = 0x02014b50,
                   kLocalSig = 0x04034b50;

// Little-endian reads bounded by the whole file; every offset comes from the file, so
// every read checks before it touches memory.
class Bytes {
 public:
  Bytes(std::string_view b, const std::string& name) : b_(b), name_(name) {}
  uint64_t size() const { return b_.size(); }
  uint64_t U(uint64_t off, int n, const char* what) const {
    if (off > b_.size() || b_.size() - off < static_cast<uint64_t>(n))
      Fail(std::string(what) + " at offset " + std::to_string(off) + " lies past the end (" +
           std::to_string(b_.size()) + " bytes)");
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b_[off + i]);
    return v;
  }
  std::string_view Slice(uint64_t off, uint64_t n, const std::string& what) const {
    if (off > b_.size() || b_.size() - off < n)
      Fail(what + " (" + std::to_string(n) + " bytes at offset " + std::to_string(off) +
           ") lies past the end of the file (" + std::to_string(b_.size()) + " bytes)");
    return b_.substr(off, n);
  }
  [[noreturn]] void Fail(const std::string& why) const {
    ThrowInvalid(name_ + ": not a valid TorchScript archive: " + why);
  }

 private:
  std::string_view b_;
  const std::string& name_;
};

struct Directory {
  uint64_t entries = 0, size = 0, offset = 0;
};

Directory FindDirectory(const Bytes& f) {
  if (f.size() < 22) f.Fail("too short for a zip archive (truncated?)");
  // The record is 22 bytes plus a comment of at most 65535 bytes, at the end.
  uint64_t lowest = f.size() >= 22 + 65535 ? f.size() - 22 - 65535 : 0;
  uint64_t pos = f.size() - 22;
  while (f.U(pos, 4, "end-of-central-directory signature") != kEocdSig) {
    if (pos == lowest) f.Fail("no end-of-central-directory record (truncated?)");
    --pos;
  }
  if (pos + 22 + f.U(pos + 20, 2, "comment length") != f.size())
    f.Fail("the end-of-central-directory comment does not end at the end of the file");
  if (f.U(pos + 4, 2, "disk number") != 0 || f.U(pos + 6, 2, "directory disk") != 0)
    f.Fail("multi-disk archives are not supported");
  Directory d{f.U(pos + 10, 2, "entry count"), f.U(pos + 12, 4, "directory size"),
              f.U(pos + 16, 4, "directory offset")};
  uint64_t dir_end_limit = pos;
  if (d.entries == 0xffff || d.size == 0xffffffff || d.offset == 0xffffffff) {
    // Zip64: a locator right before the record points at the zip64 record.
    if (pos < 20 || f.U(pos - 20, 4, "zip64 locator") != kZip64LocatorSig)
      f.Fail("zip64 sizes without a zip64 locator");
    uint64_t rec = f.U(pos - 20 + 8, 8, "zip64 record offset");
    if (rec > pos - 20 || f.U(rec, 4, "zip64 record signature") != kZip64EocdSig)
      f.Fail("the zip64 end-of-central-directory record is missing or out of place");
    d.entries = f.U(rec + 32, 8, "zip64 entry count");
    d.size = f.U(rec + 40, 8, "zip64 directory size");
    d.offset = f.U(rec + 48, 8, "zip64 directory offset");
    dir_end_limit = rec;
  }
  uint64_t end;
  if (AddOverflows(d.offset, d.size, &end) || end > dir_end_limit)
    f.Fail("the central directory (offset " + std::to_string(d.offset) + ", " +
           std::to_string(d.size) + " bytes) does not fit before its end record");
  if (d.entries == 0) f.Fail("the archive has no entries");
  // Each entry needs at least 46 bytes: a count that cannot fit is a corrupt field.
  if (d.entries > d.size / 46) f.Fail("entry count " + std::to_string(d.entries) +
                                      " does not fit the directory's size");
  return d;
}

// Sizes of a zip64 entry come from its extra field, in a fixed order, only for the
// fields that are saturated in the header.
void ReadZip64Extra(const Bytes& f, uint64_t extra, uint64_t extra_len, uint64_t* usize,
                    uint64_t* csize, uint64_t* local, const std::string& entry) {
  uint64_t p = extra, end = extra + extra_len;
  while (p + 4 <= end) {
    uint64_t id = f.U(p, 2, "extra field id"), len = f.U(p + 2, 2, "extra field length");
    if (p + 4 + len > end) f.Fail("entry '" + entry + "': extra field overruns its header");
    if (id == 1) {
      uint64_t q = p + 4, qend = p + 4 + len;
      for (uint64_t* v : {usize, csize, local}) {
        if (*v != 0xffffffff) continue;
        if (q + 8 > qend) f.Fail("entry '" + entry + "': zip64 extra field too short");
        *v = f.U(q, 8, "zip64 size");
        q += 8;
      }
    }
    p += 4 + len;
  }
}

}  // namespace

const PtArchiveEntry* PtArchive::Find(const std::string& relative) const {
  for (const PtArchiveEntry& e : entries)
    if (e.name == root + "/" + relative) return &e;
  return nullptr;
}

PtArchive CheckPtArchiveBytes(std::string_view bytes, const std::string& name) {
  Bytes f(bytes, name);
  Directory d = FindDirectory(f);
  PtArchive ar;
  std::set<std::string> seen;
  uint64_t p = d.offset, dir_end = d.offset + d.size;
  for (uint64_t i = 0; i < d.entries; ++i) {
    const std::string at = "central directory entry " + std::to_string(i);
    if (p + 46 > dir_end) f.Fail(at + " lies past the end of the directory");
    if (f.U(p, 4, "entry signature") != kCentralSig) f.Fail(at + ": bad signature");
    if (f.U(p + 8, 2, "flags") & 1) f.Fail(at + ": encrypted entries are not supported");
    PtArchiveEntry e;
    e.method = static_cast<uint16_t>(f.U(p + 10, 2, "compression method"));
    uint64_t csize = f.U(p + 20, 4, "compressed size"), usize = f.U(p + 24, 4, "size");
    uint64_t nlen = f.U(p + 28, 2, "name length"), xlen = f.U(p + 30, 2, "extra length"),
             clen = f.U(p + 32, 2, "comment length"), local = f.U(p + 42, 4, "local offset");
    if (p + 46 + nlen + xlen + clen > dir_end) f.Fail(at + ": its name or extra field overruns the directory");
    e.name = std::string(f.Slice(p + 46, nlen, at + " name"));
    ReadZip64Extra(f, p + 46 + nlen, xlen, &usize, &csize, &local, e.name);
    if (e.method != 0 && e.method != 8)
      f.Fail("entry '" + e.name + "': compression method " + std::to_string(e.method) +
             " (only stored and deflate are read)");
    if (e.method == 0 && csize != usize)
      f.Fail("entry '" + e.name + "': stored entry with compressed size " +
             std::to_string(csize) + " != size " + std::to_string(usize));
    if (e.name.empty() || !seen.insert(e.name).second)
      f.Fail("entry '" + e.name + "': empty or duplicate name");
    // The local header repeats the name; the data follows it and must end before the
    // central directory.
    if (local >= d.offset || f.U(local, 4, "local header signature") != kLocalSig)
      f.Fail("entry '" + e.name + "': no local header at offset " + std::to_string(local));
    uint64_t lname = f.U(local + 26, 2, "local name length"),
             lextra = f.U(local + 28, 2, "local extra length");
    e.data_offset = local + 30 + lname + lextra;
    e.size = csize;
    e.uncompressed_size = usize;
    uint64_t data_end;
    if (AddOverflows(e.data_offset, e.size, &data_end) || data_end > d.offset)
      f.Fail("entry '" + e.name + "': its " + std::to_string(e.size) + " bytes at offset " +
             std::to_string(e.data_offset) + " run into the central directory (truncated or corrupt)");
    size_t slash = e.name.find('/');
    std::string root = slash == std::string::npos ? "" : e.name.substr(0, slash);
    if (root.empty()) f.Fail("entry '" + e.name + "' is not inside a root folder");
    if (ar.entries.empty()) ar.root = root;
    else if (root != ar.root)
      f.Fail("entries in two root folders ('" + ar.root + "' and '" + root + "')");
    ar.entries.push_back(std::move(e));
    p += 46 + nlen + xlen + clen;
  }
  for (const char* required : {"data.pkl", "constants.pkl"})
    if (!ar.Find(required))
      f.Fail("missing '" + ar.root + "/" + required + "'" +
             (std::string(required) == "data.pkl" ? " (is this a state_dict or a plain zip rather than torch.jit.save output?)" : ""));
  if (!ar.Find("version") && !ar.Find(".data/version"))
    f.Fail("missing the version record '" + ar.root + "/version'");
  bool code = false;
  for (const PtArchiveEntry& e : ar.entries) code = code || e.name.rfind(ar.root + "/code/", 0) == 0;
  if (!code) f.Fail("no TorchScript code ('" + ar.root + "/code/...'): not a scripted or traced module");
  for (const char* pkl : {"data.pkl", "constants.pkl"}) {
    const PtArchiveEntry* e = ar.Find(pkl);
    if (e->method == 0) CheckPickle(f.Slice(e->data_offset, e->size, e->name), name + ": " + e->name);
  }
  return ar;
}

PtArchive CheckPtArchiveFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorCode::kIo, "cannot open '" + path + "': " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorCode::kIo, "'" + path + "' is not a readable regular file");
  }
  if (st.st_size == 0) {
    ::close(fd);
    ThrowInvalid(path + ": not a valid TorchScript archive: the file is empty");
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) throw Error(ErrorCode::kIo, "cannot map '" + path + "': " + std::strerror(errno));
  std::unique_ptr<void, std::function<void(void*)>> unmap(
      map, [n = static_cast<size_t>(st.st_size)](void* m) { ::munmap(m, n); });
  return CheckPtArchiveBytes(std::string_view(static_cast<const char*>(map), st.st_size), path);
}

void CheckPickle(std::string_view b, const std::string& what) {
  auto fail = [&](uint64_t at, const std::string& why) {
    ThrowInvalid(what + ": malformed pickle at byte " + std::to_string(at) + ": " + why);
  };
  uint64_t p = 0, depth = 0;
  std::vector<uint64_t> marks;  // stack depth at each MARK
  std::set<uint64_t> memo;
  auto need = [&](uint64_t at, uint64_t n) {
    if (depth < n || (!marks.empty() && depth - marks.back() < n)) fail(at, "stack underflow");
  };
  auto arg = [&](uint64_t at, int n) -> uint64_t {
    if (b.size() - p < static_cast<uint64_t>(n)) fail(at, "argument past the end");
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[p + i]);
    p += n;
    return v;
  };
  auto skip = [&](uint64_t at, uint64_t n) {
    if (b.size() - p < n) fail(at, "a " + std::to_string(n) + "-byte argument runs past the end");
    p += n;
  };
  auto line = [&](uint64_t at) {
    size_t nl = b.find('\n', p);
    if (nl == std::string_view::npos) fail(at, "unterminated text argument");
    p = nl + 1;
  };
  auto pop_mark = [&](uint64_t at) -> uint64_t {
    if (marks.empty()) fail(at, "no MARK to pop to");
    uint64_t n = depth - marks.back();
    depth = marks.back();
    marks.pop_back();
    return n;
  };
  if (b.size() < 3 || static_cast<uint8_t>(b[0]) != 0x80)
    fail(0, "no PROTO header (not a pickle)");
  while (p < b.size()) {
    const uint64_t at = p;
    const uint8_t op = static_cast<uint8_t>(b[p++]);
    switch (op) {
      case 0x80: {  // PROTO
        uint64_t v = arg(at, 1);
        if (v < 2 || v > 5) fail(at, "protocol " + std::to_string(v));
        break;
      }
      case 0x95: arg(at, 8); break;  // FRAME: a length hint
      case '.':                      // STOP
        if (depth != 1 || !marks.empty()) fail(at, "STOP with " + std::to_string(depth) + " values on the stack");
        if (p != b.size()) fail(at, "bytes after STOP");
        return;
      case '(': marks.push_back(depth); break;
      case 'N': case 0x88: case 0x89: case ')': case ']': case '}': case 0x8f: ++depth; break;
      case 'K': arg(at, 1); ++depth; break;
      case 'M': arg(at, 2); ++depth; break;
      case 'J': arg(at, 4); ++depth; break;
      case 'G': arg(at, 8); ++depth; break;
      case 0x8a: skip(at, arg(at, 1)); ++depth; break;                    // LONG1
      case 0x8b: case 'X': case 'B': case 'T': skip(at, arg(at, 4)); ++depth; break;
      case 'U': case 'C': case 0x8c: skip(at, arg(at, 1)); ++depth; break;
      case 0x8d: case 0x8e: case 0x96: skip(at, arg(at, 8)); ++depth; break;
      case 'c': line(at); line(at); ++depth; break;                        // GLOBAL
      case 0x93: need(at, 2); --depth; break;                              // STACK_GLOBAL
      case 'q': case 'r': {                                                // BINPUT
        need(at, 1);
        memo.insert(arg(at, op == 'q' ? 1 : 4));
        break;
      }
      case 0x94: need(at, 1); memo.insert(memo.size()); break;             // MEMOIZE
      case 'h': case 'j': {                                                // BINGET
        uint64_t k = arg(at, op == 'h' ? 1 : 4);
        if (!memo.count(k)) fail(at, "memo slot " + std::to_string(k) + " read before it was written");
        ++depth;
        break;
      }
      case 'a': need(at, 2); --depth; break;                               // APPEND
      case 's': need(at, 3); depth -= 2; break;                            // SETITEM
      case 'b': need(at, 2); --depth; break;                               // BUILD
      case 'R': case 0x81: need(at, 2); --depth; break;                    // REDUCE, NEWOBJ
      case 'Q': need(at, 1); break;                                        // BINPERSID
      case '0': need(at, 1); --depth; break;                               // POP
      case '2': need(at, 1); ++depth; break;                               // DUP
      case 0x85: need(at, 1); break;                                       // TUPLE1
      case 0x86: need(at, 2); --depth; break;
      case 0x87: need(at, 3); depth -= 2; break;
      case 't': case 'l': case 'd': case 0x91: pop_mark(at); ++depth; break;  // TUPLE, LIST, DICT, FROZENSET
      case '1': pop_mark(at); break;                                       // POP_MARK
      case 'e': case 'u': case 0x90: {                                     // APPENDS, SETITEMS, ADDITEMS
        uint64_t n = pop_mark(at);
        if (op == 'u' && n % 2) fail(at, "SETITEMS with an odd number of values");
        need(at, 1);
        break;
      }
      default: {
        static const char* hex = "0123456789abcdef";
        fail(at, std::string("unknown opcode 0x") + hex[op >> 4] + hex[op & 15]);
      }
    }
  }
  fail(p, "no STOP opcode (truncated)");
}

}  // namespace edgepress::formats
