// .epk reader and writer (docs/epk.md). The writer encodes the model into an in-memory
// graph section whose tensor records point at blobs in the data section (Plan: 3.0
// compact records, string table, deflate), then streams header, sections and blobs to a
// temp file. The reader maps the file, checks header, section table and every checksum,
// inflates compressed sections, decodes the graph section into plain records (validating
// as it goes), and only then builds the ir::Model: nodes are created before their inputs
// are resolved, so node order in the file never matters for resolution.
#include "formats/epk/epk.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <set>

#include "formats/epk/epk_dict.h"
#include "formats/epk/epk_sparse.h"
#include "ir/error.h"
#include "ir/file_util.h"

namespace edgepress::formats {
namespace {

using ir::Attribute;
using ir::DType;
using ir::Graph;
using ir::Tensor;
using ir::ValueType;

constexpr char kMagic[8] = {'\x89', 'E', 'P', 'K', '\r', '\n', '\x1a', '\n'};
constexpr uint64_t kHeaderSize = 32;
constexpr uint64_t kEntrySize = 32;
constexpr uint32_t kMaxSections = 64;
constexpr uint64_t kAlign = 64;
// 3.0: blobs smaller than this are packed at their element size (natural alignment, so
// typed reads stay aligned); larger ones keep 64 for SIMD kernels reading weights in the
// mapping.
constexpr uint64_t kPackedBlobMax = 1024;
// 3.0 section flag: the payload is varint(uncompressed size) + a zlib stream.
constexpr uint32_t kFlagZlib = 1;
// Deflate cannot expand by more than 1032:1; a larger claimed size is corrupt.
constexpr uint64_t kMaxInflateRatio = 1032;
// 3.0: the strings a graph section's indices refer to may add up to at most this many
// times the section's (uncompressed) size plus 1 MiB, so one-byte references to a long
// string cannot force a huge allocation. The writer refuses models beyond it.
constexpr uint64_t kStringExpansion = 64;
constexpr uint64_t kStringSlack = uint64_t{1} << 20;
constexpr int kMaxGraphDepth = 64;
constexpr int kMaxTypeDepth = 32;
enum SectionKind : uint32_t { kMetadata = 1, kGraphSection = 2, kTensorData = 3 };

constexpr uint8_t kMaxDType = static_cast<uint8_t>(DType::kString);
constexpr uint8_t kMaxAttrKind = static_cast<uint8_t>(Attribute::Kind::kTypeProtos);
constexpr uint8_t kMaxTypeKind = static_cast<uint8_t>(ValueType::Kind::kMap);

uint32_t Crc32(const void* p, uint64_t n, uint32_t crc = 0) {
  return static_cast<uint32_t>(crc32_z(crc, static_cast<const Bytef*>(p), n));
}
uint64_t AlignUp(uint64_t v, uint64_t a = kAlign) { return (v + a - 1) / a * a; }
// Data offset alignment a reader requires of a `dt` blob of `size` bytes in a file of
// `major`: 64, or in 3.0 the element size for a small blob (1 for packed 4/2-bit types).
uint64_t BlobAlign(uint16_t major, uint64_t size, DType dt) {
  if (major < 3 || size >= kPackedBlobMax) return kAlign;
  return std::max<uint64_t>(1, static_cast<uint64_t>(ir::DTypeBits(dt)) / 8);
}

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t u) { return static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1); }

// ------------------------------------------------------------------------- writing

class Encoder {
 public:
  struct Blob {
    const void* data;
    uint64_t size;
    uint64_t offset;
    bool small;  // 3.0: offset relative to small_base() until Finish()
  };
  // `major` 3: integers are varints and, with `interned`, strings are indices into a
  // table that Section() puts first; 2: the 2.0 fixed-width records.
  Encoder(uint16_t major, bool interned) : major_(major), interned_(interned) {}

  std::string out;
  std::vector<Blob> blobs;
  std::deque<std::string> encoded;  // sparse blobs (stable addresses)
  uint64_t data_size = 0, blob_bytes = 0;
  // Bytes of `out` by record kind, for EpkSizeBreakdown.
  uint64_t values_bytes = 0, nodes_bytes = 0, tensors_bytes = 0;
  uint64_t referenced = 0;  // bytes of the strings the records refer to

  bool compact() const { return major_ >= 3; }
  void U8(uint8_t v) { out.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { compact() ? PutVarint(out, v) : Fixed(v, 4); }
  void I32(int32_t v) { compact() ? PutVarint(out, ZigZag(v)) : Fixed(static_cast<uint32_t>(v), 4); }
  void U64(uint64_t v) { compact() ? PutVarint(out, v) : Fixed(v, 8); }
  void I64(int64_t v) { compact() ? PutVarint(out, ZigZag(v)) : Fixed(static_cast<uint64_t>(v), 8); }
  void F32(float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    U32(u);
  }
  void Bool(bool b) { U8(b ? 1 : 0); }
  void Count(size_t n, const char* what) {
    if (n > UINT32_MAX) ThrowUnsupported(std::string(".epk: too many ") + what);
    U32(static_cast<uint32_t>(n));
  }
  void Str(const std::string& s) {
    if (!interned_) {
      Count(s.size(), "bytes in a string");
      out += s;
      return;
    }
    auto [it, added] = index_.emplace(s, static_cast<uint32_t>(table_.size()));
    if (added) {
      if (table_.size() >= UINT32_MAX) ThrowUnsupported(".epk: too many distinct strings");
      table_.push_back(&it->first);
    }
    U32(it->second);
    referenced += s.size();
  }
  // 3.0: where the small blobs start in the tensor data section.
  uint64_t small_base() const { return AlignUp(large_end_, 16); }
  // Makes blob offsets absolute and sets data_size (3.0; 2.0 offsets already are).
  void Finish() {
    if (!compact()) return;
    for (Blob& b : blobs)
      if (b.small) b.offset += small_base(), b.small = false;
    std::stable_sort(blobs.begin(), blobs.end(), [](const Blob& a, const Blob& b) { return a.offset < b.offset; });
    data_size = small_end_ ? small_base() + small_end_ : large_end_;
  }
  // The section's bytes: the string table and the small-blob base (3.0 graph section),
  // then the records.
  std::string Section() const {
    if (!interned_) return out;
    std::string s = StringTable();
    PutVarint(s, small_base());
    return s + out;
  }
  std::string StringTable() const {
    std::string s;
    if (!interned_) return s;
    PutVarint(s, table_.size());
    for (const std::string* t : table_) {
      PutVarint(s, t->size());
      s += *t;
    }
    return s;
  }

  void TensorRec(const Tensor& t) {
    U8(static_cast<uint8_t>(t.dtype()));
    if (t.empty()) return;
    Count(t.shape().size(), "dimensions");
    for (int64_t d : t.shape()) I64(d);
    if (t.dtype() == DType::kString) {
      Count(t.strings().size(), "strings");
      for (const auto& s : t.strings()) Str(s);
    } else {
      const epk_sparse::Layout l = epk_sparse::Choose(t);
      const void* bytes = t.raw();
      if (l.storage != epk_sparse::Storage::kDense) {
        encoded.push_back(epk_sparse::Encode(t, l));
        bytes = encoded.back().data();
      }
      const uint64_t n = l.bytes;
      U8(static_cast<uint8_t>(l.storage));
      if (compact()) {
        // 3.0: large blobs fill the section from 0 at 64-byte steps, small ones follow
        // from small_base() packed at their element size. A record holds the offset as a
        // step from the end of the previous blob of its class (usually 0), and no size
        // for dense data (dtype and dims give it). Small offsets are relative until
        // Finish() knows where the small region starts.
        const bool large = n >= kPackedBlobMax;
        uint64_t& end = large ? large_end_ : small_end_;
        const uint64_t off = n ? AlignUp(end, BlobAlign(major_, n, t.dtype())) : end;
        if (l.storage != epk_sparse::Storage::kDense) U64(n);
        U64(off - end);
        if (n) {
          blobs.push_back({bytes, n, off, !large});
          end = off + n;
          blob_bytes += n;
        }
      } else {
        const uint64_t off = n ? AlignUp(data_size) : 0;
        if (n) {
          blobs.push_back({bytes, n, off, false});
          data_size = off + n;
          blob_bytes += n;
        }
        U64(off);
        U64(n);
      }
      switch (l.storage) {
        case epk_sparse::Storage::kDense: break;
        case epk_sparse::Storage::kBitmask: U64(l.nnz); break;
        case epk_sparse::Storage::kCsr:
          U8(l.index_bytes);
          U64(l.nnz);
          break;
        case epk_sparse::Storage::kNM:
          I32(l.n);
          I32(l.m);
          I32(l.axis);
          break;
      }
    }
    U8((t.quant ? 1 : 0) | (t.sparse ? 2 : 0));
    if (t.quant) {
      const auto& q = *t.quant;
      U8(static_cast<uint8_t>(q.granularity));
      I32(q.axis);
      I64(q.group_size);
      Count(q.scales.size(), "scales");
      for (float s : q.scales) F32(s);
      Count(q.zero_points.size(), "zero points");
      for (int32_t z : q.zero_points) I32(z);
    }
    if (t.sparse) {
      const auto& s = *t.sparse;
      U8(static_cast<uint8_t>(s.kind));
      I32(s.n);
      I32(s.m);
      I32(s.axis);
      Count(s.block.size(), "block dims");
      for (int64_t b : s.block) I64(b);
    }
  }

  void Type(const ValueType& t) {
    U8(static_cast<uint8_t>(t.kind));
    U8(static_cast<uint8_t>(t.dtype));
    Bool(t.shape.has_value());
    if (t.shape) {
      Count(t.shape->size(), "dimensions");
      for (const auto& d : *t.shape) {
        I64(d.value);
        Str(d.symbol);
      }
    }
    Bool(t.elem != nullptr);
    if (t.elem) Type(*t.elem);
    Str(t.denotation);
  }

  void Attr(const Attribute& a, const ir::Node& n) {
    Str(a.name);
    U8(static_cast<uint8_t>(a.kind));
    Str(a.ref_attr_name);
    Str(a.doc);
    auto graph = [&](const std::shared_ptr<Graph>& g) {
      if (!g)
        ThrowInvalid(".epk: " + n.describe() + " attribute '" + a.name + "' holds no graph");
      GraphRec(*g);
    };
    using K = Attribute::Kind;
    switch (a.kind) {
      case K::kUndefined: break;
      case K::kFloat: F32(a.f); break;
      case K::kInt: I64(a.i); break;
      case K::kString: Str(a.s); break;
      case K::kTensor: TensorRec(a.t); break;
      case K::kGraph: graph(a.g); break;
      case K::kFloats:
        Count(a.floats.size(), "floats");
        for (float f : a.floats) F32(f);
        break;
      case K::kInts:
        Count(a.ints.size(), "ints");
        for (int64_t i : a.ints) I64(i);
        break;
      case K::kStrings:
        Count(a.strings.size(), "strings");
        for (const auto& s : a.strings) Str(s);
        break;
      case K::kTensors:
        Count(a.tensors.size(), "tensors");
        for (const auto& t : a.tensors) TensorRec(t);
        break;
      case K::kGraphs:
        Count(a.graphs.size(), "graphs");
        for (const auto& g : a.graphs) graph(g);
        break;
      case K::kTypeProto:
        if (a.types.size() != 1)
          ThrowInvalid(".epk: " + n.describe() + " attribute '" + a.name +
                       "' (type) must hold exactly one type");
        Type(a.types[0]);
        break;
      case K::kTypeProtos:
        Count(a.types.size(), "types");
        for (const auto& t : a.types) Type(t);
        break;
    }
  }

  void GraphRec(const Graph& g) {
    // Only the main graph's records are sorted into the breakdown's kinds; subgraphs count
    // as part of the node (If, Loop, Scan) that holds them.
    const bool top = depth_++ == 0;
    auto count = [&](uint64_t* kind, size_t start) {
      if (top) *kind += out.size() - start;
    };
    Str(g.name);
    Str(g.doc);
    Count(g.inputs().size(), "inputs");
    size_t at = out.size();
    for (const ir::Value* v : g.inputs()) {
      Str(v->name());
      Type(v->type);
      Str(v->doc);
      Bool(v->synthesized);
    }
    count(&values_bytes, at);
    Count(g.initializers().size(), "initializers");
    for (const ir::Value* v : g.initializers()) {
      at = out.size();
      Str(v->name());
      count(&values_bytes, at);
      at = out.size();
      TensorRec(*v->initializer());
      count(&tensors_bytes, at);
      at = out.size();
      const Tensor& t = *v->initializer();
      if (compact()) {
        // 3.0: a type that is just the tensor's dtype and dims is a single byte.
        const bool own = v->type == ValueType::Tensor(t.dtype(), ir::MakeShape(t.shape()));
        U8(own ? 1 : 0);
        if (!own) Type(v->type);
      } else {
        Type(v->type);
      }
      Str(v->doc);
      Bool(v->synthesized);
      count(&values_bytes, at);
    }
    std::vector<ir::Node*> nodes = g.nodes();
    Count(nodes.size(), "nodes");
    at = out.size();
    for (const ir::Node* n : nodes) {
      Str(n->op_type());
      Str(n->domain());
      Str(n->name);
      Str(n->doc);
      Count(n->inputs().size(), "node inputs");
      for (const ir::Value* v : n->inputs()) Str(v ? v->name() : std::string());
      Count(n->outputs().size(), "node outputs");
      for (const ir::Value* v : n->outputs()) {
        Str(v ? v->name() : std::string());
        if (!v) continue;
        // Output value records count as values, not node bytes.
        const size_t vt = out.size();
        Type(v->type);
        Str(v->doc);
        Bool(v->synthesized);
        if (top) {
          values_bytes += out.size() - vt;
          nodes_bytes -= out.size() - vt;
        }
      }
      Count(n->attributes().size(), "attributes");
      for (const Attribute& a : n->attributes()) Attr(a, *n);
    }
    count(&nodes_bytes, at);
    Count(g.outputs().size(), "outputs");
    for (const ir::Value* v : g.outputs()) {
      if (!v) ThrowInvalid(".epk: graph '" + g.name + "' has a null output");
      Str(v->name());
    }
    --depth_;
  }

  void ModelRec(const ir::Model& m) {
    I64(m.ir_version);
    Str(m.producer_name);
    Str(m.producer_version);
    Str(m.domain);
    I64(m.model_version);
    Str(m.doc);
    Count(m.opsets.size(), "opsets");
    for (const auto& o : m.opsets) {
      Str(o.domain);
      I64(o.version);
    }
    Pairs(m.metadata);
    if (!m.graph) ThrowInvalid(".epk: model has no graph");
    GraphRec(*m.graph);
  }

  void Pairs(const std::vector<std::pair<std::string, std::string>>& kv) {
    Count(kv.size(), "metadata entries");
    for (const auto& [k, v] : kv) {
      Str(k);
      Str(v);
    }
  }

 private:
  void Fixed(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }

  uint16_t major_;
  bool interned_;
  int depth_ = 0;
  uint64_t large_end_ = 0, small_end_ = 0;  // 3.0: end of each blob region so far
  std::map<std::string, uint32_t> index_;
  std::vector<const std::string*> table_;  // keys of index_ in first-use order
};

void PutFixed(std::string& s, uint64_t at, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

// ------------------------------------------------------------------------- reading

// Bounded little-endian reads over one section; every read checks the bytes left. In a
// compact (3.0) section integers are varints and, once SetStrings() is called, strings are
// indices into the section's string table.
class Cursor {
 public:
  Cursor(const uint8_t* p, uint64_t n, std::string where, bool compact = false)
      : p_(p), n_(n), where_(std::move(where)), compact_(compact) {}
  [[noreturn]] void Fail(const std::string& what) const {
    ThrowInvalid(where_ + ": " + what + " (at byte " + std::to_string(pos_) + ")");
  }
  uint64_t left() const { return n_ - pos_; }
  void Need(uint64_t k, const char* what) const {
    if (k > left())
      Fail(std::string("truncated: ") + what + " needs " + std::to_string(k) + " bytes, " +
           std::to_string(left()) + " left");
  }
  uint64_t Fixed(int k, const char* what) {
    Need(static_cast<uint64_t>(k), what);
    uint64_t v = 0;
    for (int i = 0; i < k; ++i) v |= static_cast<uint64_t>(p_[pos_ + static_cast<uint64_t>(i)]) << (8 * i);
    pos_ += static_cast<uint64_t>(k);
    return v;
  }
  // LEB128: 7 bits a byte, low first; at most 10 bytes, minimally encoded.
  uint64_t Varint(const char* what) {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      uint8_t b = static_cast<uint8_t>(Fixed(1, what));
      if (shift == 63 && b > 1) Fail(std::string(what) + " varint overflows 64 bits");
      if (shift > 0 && b == 0) Fail(std::string(what) + " varint is not minimally encoded");
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
  }
  uint8_t U8(const char* what) { return static_cast<uint8_t>(Fixed(1, what)); }
  uint32_t U32(const char* what) {
    if (!compact_) return static_cast<uint32_t>(Fixed(4, what));
    uint64_t v = Varint(what);
    if (v > UINT32_MAX) Fail(std::string(what) + " " + std::to_string(v) + " does not fit 32 bits");
    return static_cast<uint32_t>(v);
  }
  int32_t I32(const char* what) {
    if (!compact_) return static_cast<int32_t>(Fixed(4, what));
    int64_t v = UnZigZag(Varint(what));
    if (v < INT32_MIN || v > INT32_MAX)
      Fail(std::string(what) + " " + std::to_string(v) + " does not fit 32 bits");
    return static_cast<int32_t>(v);
  }
  uint64_t U64(const char* what) { return compact_ ? Varint(what) : Fixed(8, what); }
  int64_t I64(const char* what) {
    return compact_ ? UnZigZag(Varint(what)) : static_cast<int64_t>(Fixed(8, what));
  }
  float F32(const char* what) {
    uint32_t u = U32(what);
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  bool Bool(const char* what) {
    uint8_t b = U8(what);
    if (b > 1) Fail(std::string(what) + " is " + std::to_string(b) + ", not 0 or 1");
    return b == 1;
  }
  // A list count, checked against the bytes left: each element needs at least
  // `min_bytes`, so a count of 0xFFFFFFFF in a small file fails here.
  uint32_t Count(uint64_t min_bytes, const char* what) {
    if (compact_) min_bytes = 1;  // every compact record takes at least a byte
    uint32_t c = U32(what);
    uint64_t need;
    if (MulOverflows(c, min_bytes, &need) || need > left())
      Fail(std::string(what) + " count " + std::to_string(c) + " exceeds the " +
           std::to_string(left()) + " bytes left");
    return c;
  }
  std::string Str(const char* what) {
    if (strings_) {
      uint32_t i = U32(what);
      if (i >= strings_->size())
        Fail(std::string(what) + " string index " + std::to_string(i) + " is out of range (the table holds " +
             std::to_string(strings_->size()) + " strings)");
      const std::string& s = (*strings_)[i];
      // A long string referenced from many one-byte indices must not blow up memory.
      if (s.size() > string_budget_)
        Fail(std::string(what) + ": string references expand past " + std::to_string(kStringExpansion) +
             " x the section size + 1 MiB");
      string_budget_ -= s.size();
      return s;
    }
    uint32_t len = U32(what);
    if (len > left())
      Fail(std::string(what) + " length " + std::to_string(len) + " exceeds the " +
           std::to_string(left()) + " bytes left");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }
  void ExpectEnd() const {
    if (pos_ != n_) Fail(std::to_string(n_ - pos_) + " unexpected trailing bytes");
  }
  // Reads the 3.0 string table at the cursor; later Str() reads are indices into it.
  void ReadStrings(std::vector<std::string>* table) {
    table->resize(Count(1, "string table"));
    for (auto& s : *table) s = Str("string table entry");
    strings_ = table;
    string_budget_ = kStringExpansion * n_ + kStringSlack;
  }

 private:
  const uint8_t* p_;
  uint64_t n_;
  uint64_t pos_ = 0;
  std::string where_;
  bool compact_;
  const std::vector<std::string>* strings_ = nullptr;
  uint64_t string_budget_ = 0;
};

struct AttrRec;
struct OutputRec {
  std::string name;
  ValueType type;
  std::string doc;
  bool synthesized = false;
};
struct NodeRec {
  std::string op_type, domain, name, doc;
  std::vector<std::string> inputs;
  std::vector<OutputRec> outputs;
  std::vector<AttrRec> attrs;
};
struct InitRec {
  OutputRec value;
  Tensor tensor;
};
struct GraphRec {
  std::string name, doc;
  std::vector<OutputRec> inputs;
  std::vector<InitRec> inits;
  std::vector<NodeRec> nodes;
  std::vector<std::string> outputs;
};
struct AttrRec {
  Attribute attr;  // everything but subgraphs
  std::vector<GraphRec> graphs;
};

class Decoder {
 public:
  Decoder(Cursor& c, const uint8_t* data, uint64_t data_size, std::shared_ptr<const void> owner,
          uint16_t major)
      : c_(c), data_(data), data_size_(data_size), owner_(std::move(owner)), major_(major) {}

  DType DTypeField(const char* what) {
    uint8_t d = c_.U8(what);
    if (d > kMaxDType) c_.Fail(std::string(what) + " " + std::to_string(d) + " is not a known dtype");
    return static_cast<DType>(d);
  }

  Tensor TensorRec() {
    DType dt = DTypeField("tensor dtype");
    if (dt == DType::kUndefined) return Tensor();
    uint32_t rank = c_.Count(8, "tensor dims");
    std::vector<int64_t> dims(rank);
    uint64_t numel = 1;
    for (auto& d : dims) {
      d = c_.I64("tensor dim");
      if (d < 0) c_.Fail("negative tensor dim " + std::to_string(d));
      if (MulOverflows(numel, static_cast<uint64_t>(d), &numel))
        c_.Fail("tensor element count overflows 64 bits");
    }
    Tensor t;
    if (dt == DType::kString) {
      uint32_t n = c_.Count(4, "string tensor values");
      if (n != numel)
        c_.Fail("string tensor has " + std::to_string(n) + " values for " + std::to_string(numel) +
                " elements");
      std::vector<std::string> values(n);
      for (auto& s : values) s = c_.Str("string tensor value");
      t = Tensor::Strings(dims, std::move(values));
    } else {
      epk_sparse::Layout layout;
      if (major_ >= 2) {
        uint8_t st = c_.U8("tensor storage");
        if (st > epk_sparse::kMaxStorage)
          c_.Fail("tensor storage " + std::to_string(st) + " is not 0 (dense), 1 (bitmask), "
                  "2 (csr) or 3 (nm)" + Named());
        layout.storage = static_cast<epk_sparse::Storage>(st);
      }
      const bool dense = layout.storage == epk_sparse::Storage::kDense;
      uint64_t bits = static_cast<uint64_t>(ir::DTypeBits(dt)), want_bits;
      if (MulOverflows(numel, bits, &want_bits)) c_.Fail("tensor byte size overflows 64 bits");
      uint64_t want = want_bits / 8 + (want_bits % 8 ? 1 : 0);
      uint64_t offset, size;
      uint64_t* region_end = nullptr;  // 3.0: the end of the previous blob of this class
      if (major_ >= 3) {
        size = dense ? want : c_.U64("tensor data size");
        region_end = size >= kPackedBlobMax ? &large_end_ : &small_end_;
        const uint64_t step = c_.U64("tensor data offset step");
        if (AddOverflows(*region_end, step, &offset))
          c_.Fail("tensor data offset step " + std::to_string(step) + " overflows" + Named());
      } else {
        offset = c_.U64("tensor data offset");
        size = c_.U64("tensor data size");
      }
      switch (layout.storage) {
        case epk_sparse::Storage::kDense: break;
        case epk_sparse::Storage::kBitmask: layout.nnz = c_.U64("bitmask value count"); break;
        case epk_sparse::Storage::kCsr:
          layout.index_bytes = c_.U8("csr index width");
          layout.nnz = c_.U64("csr value count");
          break;
        case epk_sparse::Storage::kNM:
          layout.n = c_.I32("nm n");
          layout.m = c_.I32("nm m");
          layout.axis = c_.I32("nm axis");
          break;
      }
      auto fail = [&](const std::string& what) { c_.Fail(what + Named()); };
      if (dense && size != want)
        c_.Fail("tensor data size " + std::to_string(size) + " != " + std::to_string(want) +
                " bytes for " + std::to_string(numel) + " " + ir::DTypeName(dt) + " elements");
      if (!dense) epk_sparse::CheckLayout(layout, dt, dims, size, fail);
      if (const uint64_t align = BlobAlign(major_, size, dt);
          (size > 0 || major_ < 3) && offset % align != 0)
        c_.Fail("tensor data offset " + std::to_string(offset) + " is not " + std::to_string(align) +
                "-byte aligned");
      uint64_t end;
      if (AddOverflows(offset, size, &end) || end > data_size_)
        c_.Fail("tensor data (" + std::to_string(size) + " bytes at offset " + std::to_string(offset) +
                ") runs past the tensor data section (" + std::to_string(data_size_) + " bytes)");
      if (region_end && size > 0) *region_end = end;
      if (!dense) {
        // Sparse blobs expand into owned memory: the in-memory tensor is always dense.
        t = Tensor(dt, dims);
        epk_sparse::Decode(layout, dt, dims, data_ + offset, static_cast<uint8_t*>(t.mutable_raw()),
                           fail);
      } else if (size == 0) {
        t = Tensor(dt, dims);
      } else {
        t = Tensor(dt, dims, ir::Buffer::Wrap(data_ + offset, size, owner_));
      }
    }
    uint8_t ann = c_.U8("tensor annotations");
    if (ann & ~3u) c_.Fail("unknown tensor annotation bits " + std::to_string(ann));
    if (ann & 1) {
      ir::QuantParams q;
      uint8_t g = c_.U8("quant granularity");
      if (g > 2) c_.Fail("quant granularity " + std::to_string(g) + " is not 0, 1 or 2");
      q.granularity = static_cast<ir::QuantParams::Granularity>(g);
      q.axis = c_.I32("quant axis");
      q.group_size = c_.I64("quant group size");
      if (q.group_size < 0) c_.Fail("negative quant group size");
      q.scales.resize(c_.Count(4, "quant scales"));
      for (float& s : q.scales) s = c_.F32("quant scale");
      q.zero_points.resize(c_.Count(4, "quant zero points"));
      for (int32_t& z : q.zero_points) z = c_.I32("quant zero point");
      if (!q.zero_points.empty() && q.zero_points.size() != q.scales.size())
        c_.Fail(std::to_string(q.zero_points.size()) + " zero points for " +
                std::to_string(q.scales.size()) + " scales");
      t.quant = std::move(q);
    }
    if (ann & 2) {
      ir::SparseEncoding s;
      uint8_t k = c_.U8("sparse kind");
      if (k > 2) c_.Fail("sparse kind " + std::to_string(k) + " is not 0, 1 or 2");
      s.kind = static_cast<ir::SparseEncoding::Kind>(k);
      s.n = c_.I32("sparse n");
      s.m = c_.I32("sparse m");
      if (major_ >= 2) s.axis = c_.I32("sparse axis");
      s.block.resize(c_.Count(8, "sparse block dims"));
      for (int64_t& b : s.block) b = c_.I64("sparse block dim");
      t.sparse = std::move(s);
    }
    return t;
  }

  ValueType Type(int depth) {
    if (depth > kMaxTypeDepth) c_.Fail("value types nest deeper than " + std::to_string(kMaxTypeDepth));
    ValueType t;
    uint8_t k = c_.U8("value type kind");
    if (k > kMaxTypeKind) c_.Fail("value type kind " + std::to_string(k) + " is unknown");
    t.kind = static_cast<ValueType::Kind>(k);
    t.dtype = DTypeField("value type dtype");
    if (c_.Bool("has shape")) {
      uint32_t rank = c_.Count(12, "shape dims");
      ir::Shape s(rank);
      for (auto& d : s) {
        d.value = c_.I64("dim value");
        if (d.value < -1) c_.Fail("dim value " + std::to_string(d.value) + " is below -1");
        d.symbol = c_.Str("dim symbol");
      }
      t.shape = std::move(s);
    }
    if (c_.Bool("has element type")) t.elem = std::make_shared<ValueType>(Type(depth + 1));
    t.denotation = c_.Str("denotation");
    return t;
  }

  OutputRec Value(bool with_tensor, Tensor* tensor) {
    OutputRec v;
    v.name = c_.Str("value name");
    if (v.name.empty()) c_.Fail("a value has an empty name");
    if (with_tensor) {
      tensor_name_ = v.name;
      *tensor = TensorRec();
      tensor_name_.clear();
    }
    if (with_tensor && major_ >= 3) {
      const uint8_t form = c_.U8("initializer type form");
      if (form > 1) c_.Fail("initializer type form " + std::to_string(form) + " is not 0 or 1");
      v.type = form == 1 ? ValueType::Tensor(tensor->dtype(), ir::MakeShape(tensor->shape())) : Type(0);
    } else {
      v.type = Type(0);
    }
    v.doc = c_.Str("value doc");
    v.synthesized = c_.Bool("synthesized flag");
    return v;
  }

  AttrRec Attr(int depth, const std::string& node) {
    AttrRec r;
    Attribute& a = r.attr;
    a.name = c_.Str("attribute name");
    if (a.name.empty()) c_.Fail("node '" + node + "' has an attribute with an empty name");
    uint8_t k = c_.U8("attribute kind");
    if (k > kMaxAttrKind)
      c_.Fail("node '" + node + "' attribute '" + a.name + "' has unknown kind " + std::to_string(k));
    a.kind = static_cast<Attribute::Kind>(k);
    a.ref_attr_name = c_.Str("attribute ref name");
    a.doc = c_.Str("attribute doc");
    using K = Attribute::Kind;
    switch (a.kind) {
      case K::kUndefined: break;
      case K::kFloat: a.f = c_.F32("float attribute"); break;
      case K::kInt: a.i = c_.I64("int attribute"); break;
      case K::kString: a.s = c_.Str("string attribute"); break;
      case K::kTensor: a.t = TensorRec(); break;
      case K::kGraph: r.graphs.push_back(GraphRecord(depth + 1)); break;
      case K::kFloats:
        a.floats.resize(c_.Count(4, "float list"));
        for (float& f : a.floats) f = c_.F32("float");
        break;
      case K::kInts:
        a.ints.resize(c_.Count(8, "int list"));
        for (int64_t& i : a.ints) i = c_.I64("int");
        break;
      case K::kStrings:
        a.strings.resize(c_.Count(4, "string list"));
        for (auto& s : a.strings) s = c_.Str("string");
        break;
      case K::kTensors:
        a.tensors.resize(c_.Count(1, "tensor list"));
        for (auto& t : a.tensors) t = TensorRec();
        break;
      case K::kGraphs: {
        uint32_t n = c_.Count(20, "graph list");
        for (uint32_t i = 0; i < n; ++i) r.graphs.push_back(GraphRecord(depth + 1));
        break;
      }
      case K::kTypeProto: a.types.push_back(Type(0)); break;
      case K::kTypeProtos:
        a.types.resize(c_.Count(5, "type list"));
        for (auto& t : a.types) t = Type(0);
        break;
    }
    return r;
  }

  GraphRec GraphRecord(int depth) {
    if (depth > kMaxGraphDepth)
      c_.Fail("subgraphs nest deeper than " + std::to_string(kMaxGraphDepth));
    GraphRec g;
    g.name = c_.Str("graph name");
    g.doc = c_.Str("graph doc");
    // Minimum record sizes: an input is 4+3+1+1+4+4+1 bytes, an initializer and a node
    // at least 20, an output name 4.
    g.inputs.resize(c_.Count(18, "graph inputs"));
    for (auto& v : g.inputs) v = Value(false, nullptr);
    g.inits.resize(c_.Count(19, "initializers"));
    for (auto& i : g.inits) i.value = Value(true, &i.tensor);
    g.nodes.resize(c_.Count(28, "nodes"));
    for (auto& n : g.nodes) {
      n.op_type = c_.Str("op type");
      if (n.op_type.empty()) c_.Fail("a node in graph '" + g.name + "' has an empty op type");
      n.domain = c_.Str("op domain");
      n.name = c_.Str("node name");
      n.doc = c_.Str("node doc");
      n.inputs.resize(c_.Count(4, "node inputs"));
      for (auto& s : n.inputs) s = c_.Str("node input name");
      n.outputs.resize(c_.Count(4, "node outputs"));
      for (auto& o : n.outputs) {
        o.name = c_.Str("node output name");
        if (o.name.empty()) continue;
        o.type = Type(0);
        o.doc = c_.Str("value doc");
        o.synthesized = c_.Bool("synthesized flag");
      }
      uint32_t na = c_.Count(14, "attributes");
      std::set<std::string> names;
      for (uint32_t i = 0; i < na; ++i) {
        n.attrs.push_back(Attr(depth, n.name));
        if (!names.insert(n.attrs.back().attr.name).second)
          c_.Fail("node '" + n.name + "' (" + n.op_type + ") has attribute '" +
                  n.attrs.back().attr.name + "' twice");
      }
    }
    g.outputs.resize(c_.Count(4, "graph outputs"));
    for (auto& s : g.outputs) s = c_.Str("graph output name");
    return g;
  }

 private:
  // " in tensor 'w'" for the initializer being decoded ("" inside attributes).
  std::string Named() const {
    return tensor_name_.empty() ? std::string() : " in tensor '" + tensor_name_ + "'";
  }

  Cursor& c_;
  const uint8_t* data_;
  uint64_t data_size_;
  std::shared_ptr<const void> owner_;
  uint16_t major_;
  std::string tensor_name_;
  uint64_t large_end_ = 0, small_end_ = 0;  // 3.0: end of the last blob of each class
 public:
  void SetSmallBase(uint64_t b) { small_end_ = b; }
};

// Builds `g` from `r`; `g`'s parent is already set so outer names resolve.
void BuildGraph(const GraphRec& r, Graph* g, const std::string& where) {
  g->name = r.name;
  g->doc = r.doc;
  auto fail = [&](const std::string& what) {
    ThrowInvalid(where + ": graph '" + r.name + "': " + what);
  };
  for (const auto& in : r.inputs) {
    ir::Value* v = g->AddInput(in.name, in.type);
    v->doc = in.doc;
    v->synthesized = in.synthesized;
  }
  for (const auto& init : r.inits) {
    if (ir::Value* prev = g->FindValue(init.value.name);
        prev && prev->graph() == g && prev->is_graph_input() && prev->type != init.value.type)
      fail("initializer '" + init.value.name + "' disagrees with the type of its graph input");
    ir::Value* v = g->AddInitializer(init.value.name, init.tensor);
    v->type = init.value.type;
    v->doc = init.value.doc;
    v->synthesized = init.value.synthesized;
  }
  std::vector<ir::Node*> nodes;
  for (const auto& n : r.nodes) {
    std::vector<std::string> outs;
    for (const auto& o : n.outputs) outs.push_back(o.name);
    ir::Node* node = g->AddNode(n.op_type, {}, outs, n.name, n.domain);
    node->doc = n.doc;
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      if (!node->output(i)) continue;
      node->output(i)->type = n.outputs[i].type;
      node->output(i)->doc = n.outputs[i].doc;
      node->output(i)->synthesized = n.outputs[i].synthesized;
    }
    nodes.push_back(node);
  }
  for (size_t k = 0; k < nodes.size(); ++k) {
    const NodeRec& n = r.nodes[k];
    ir::Node* node = nodes[k];
    for (const auto& name : n.inputs) {
      ir::Value* v = nullptr;
      if (!name.empty() && !(v = g->FindValue(name)))
        fail(node->describe() + " uses undefined value '" + name + "'");
      node->add_input(v);
    }
    for (const auto& ar : n.attrs) {
      Attribute a = ar.attr;
      std::vector<std::shared_ptr<Graph>> subs;
      for (const auto& gr : ar.graphs) {
        auto sg = std::make_shared<Graph>();
        sg->SetParent(g, node);
        BuildGraph(gr, sg.get(), where);
        subs.push_back(std::move(sg));
      }
      if (a.kind == Attribute::Kind::kGraph) a.g = subs.at(0);
      if (a.kind == Attribute::Kind::kGraphs) a.graphs = std::move(subs);
      node->set_attr(std::move(a));
    }
  }
  for (const auto& name : r.outputs) {
    ir::Value* v = g->FindValue(name);
    if (!v) fail("output '" + name + "' is not defined");
    g->AddOutput(v);
  }
}

struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr && addr != MAP_FAILED) ::munmap(addr, size);
  }
};

struct Section {
  uint32_t kind;
  uint32_t flags;
  uint64_t offset, size;
  uint32_t crc;
};

// varint(raw size) + raw deflate stream (RFC 1951, no zlib wrapper: the section CRC
// already guards it) with the 3.0 preset dictionary, at the best level: deterministic for
// a given zlib version. Empty when deflate cannot take the section (over 4 GiB).
std::string Deflate(const std::string& raw) {
  if (raw.size() > UINT32_MAX / 2) return std::string();
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
    throw Error(ErrorCode::kInternal, ".epk: zlib failed to start compressing a section");
  std::string out;
  PutVarint(out, raw.size());
  const size_t head = out.size();
  out.resize(head + deflateBound(&z, raw.size()));
  deflateSetDictionary(&z, reinterpret_cast<const Bytef*>(epk_dict::kDictionary), epk_dict::kDictionarySize);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(&out[head]);
  z.avail_out = static_cast<uInt>(out.size() - head);
  const int rc = deflate(&z, Z_FINISH);
  out.resize(head + z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw Error(ErrorCode::kInternal, ".epk: zlib failed to compress a section");
  return out;
}

// A section payload, inflated when the zlib flag says so: the claimed size is checked
// against what deflate can produce before anything is allocated.
std::string Inflate(const uint8_t* p, uint64_t n, const std::string& where) {
  Cursor c(p, n, where, /*compact=*/true);
  const uint64_t raw = c.U64("uncompressed size");
  const uint64_t left = c.left();
  if (raw / kMaxInflateRatio > left || raw > UINT32_MAX / 2)
    c.Fail("uncompressed size " + std::to_string(raw) + " is more than deflate can expand " +
           std::to_string(left) + " bytes to");
  std::string out(raw, '\0');
  z_stream z{};
  if (inflateInit2(&z, -15) != Z_OK) c.Fail("zlib failed to start inflating");
  inflateSetDictionary(&z, reinterpret_cast<const Bytef*>(epk_dict::kDictionary), epk_dict::kDictionarySize);
  z.next_in = const_cast<Bytef*>(p + (n - left));
  z.avail_in = static_cast<uInt>(std::min<uint64_t>(left, UINT32_MAX));
  z.next_out = reinterpret_cast<Bytef*>(&out[0]);
  z.avail_out = static_cast<uInt>(raw);
  const int rc = inflate(&z, Z_FINISH);
  const uint64_t got = z.total_out, used = z.total_in;
  const char* msg = z.msg;
  inflateEnd(&z);
  if (rc == Z_BUF_ERROR && got == raw)
    c.Fail("deflate stream holds more than the " + std::to_string(raw) + " bytes the section says");
  if (rc != Z_STREAM_END)
    c.Fail(std::string("deflate stream is corrupt (") + (msg ? msg : zError(rc)) + ") after " +
           std::to_string(got) + " of " + std::to_string(raw) + " bytes");
  if (got != raw)
    c.Fail("deflate stream holds " + std::to_string(got) + " bytes, the section says " + std::to_string(raw));
  if (used != left) c.Fail(std::to_string(left - used) + " unexpected bytes after the deflate stream");
  return out;
}

// Everything SaveEpk writes, laid out; EpkSizeOf reads the breakdown from it.
struct Layout {
  explicit Layout(uint16_t major) : md(major, false), gr(major, major >= 3) {}
  Encoder md, gr;
  std::string payload[2];  // metadata and graph section bytes as stored
  Section secs[3];         // metadata, graph, tensor data
  int order[3] = {0, 1, 2};  // their order in the file and the section table
  uint64_t file_size = 0;
  EpkSizeBreakdown sizes;
};

std::unique_ptr<Layout> Plan(const ir::Model& m, const EpkMetadata& meta, const EpkWriteOptions& o,
                             const std::string& where) {
  if (o.version_major != 2 && o.version_major != kEpkVersionMajor)
    ThrowUnsupported(where + ": .epk writer writes version 2 or " + std::to_string(kEpkVersionMajor) +
                     ", not " + std::to_string(o.version_major));
  std::set<std::string> keys;
  for (const auto& [k, v] : meta.entries) {
    if (k.empty()) ThrowInvalid(where + ": .epk metadata key is empty");
    if (!keys.insert(k).second) ThrowInvalid(where + ": .epk metadata key '" + k + "' appears twice");
  }
  const bool v3 = o.version_major >= 3;
  auto l = std::make_unique<Layout>(o.version_major);
  l->md.Pairs(meta.entries);
  l->gr.ModelRec(m);
  l->gr.Finish();
  const std::string raw[2] = {l->md.Section(), l->gr.Section()};
  if (v3 && l->gr.referenced > kStringExpansion * raw[1].size() + kStringSlack)
    ThrowUnsupported(where + ": the model repeats long strings (names, docs) more often than .epk 3.0 "
                     "allows a reader to expand; write it as version 2");
  uint32_t flags[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    l->payload[i] = raw[i];
    if (!v3 || !o.compress) continue;
    std::string z = Deflate(raw[i]);
    if (!z.empty() && z.size() < raw[i].size()) {
      l->payload[i] = std::move(z);
      flags[i] = kFlagZlib;
    }
  }
  // 3.0 puts the tensor data section, the only one that must be 64-byte aligned (it is
  // mapped and used in place), first, at offset 128 right after the table; metadata and
  // graph follow unpadded. 2.0 aligns all three.
  l->secs[0] = {kMetadata, flags[0], 0, l->payload[0].size(), 0};
  l->secs[1] = {kGraphSection, flags[1], 0, l->payload[1].size(), 0};
  l->secs[2] = {kTensorData, 0, 0, l->gr.data_size, 0};
  if (v3) {
    l->order[0] = 2;
    l->order[1] = 0;
    l->order[2] = 1;
  }
  const uint64_t table_end = kHeaderSize + kEntrySize * 3;
  uint64_t end = table_end;
  for (int i : l->order) {
    l->secs[i].offset = v3 && i != 2 ? end : AlignUp(end);
    end = l->secs[i].offset + l->secs[i].size;
  }
  l->file_size = end;

  EpkSizeBreakdown& b = l->sizes;
  b.version_major = o.version_major;
  b.header = table_end;
  b.metadata_raw = raw[0].size();
  b.metadata_stored = l->payload[0].size();
  b.graph_raw = raw[1].size();
  b.graph_stored = l->payload[1].size();
  b.strings_raw = l->gr.StringTable().size();
  b.values_raw = l->gr.values_bytes;
  b.nodes_raw = l->gr.nodes_bytes;
  b.tensors_raw = l->gr.tensors_bytes;
  b.model_raw = b.graph_raw - b.strings_raw - b.values_raw - b.nodes_raw - b.tensors_raw;
  b.section_padding = end - table_end - b.metadata_stored - b.graph_stored - l->gr.data_size;
  b.blob_bytes = l->gr.blob_bytes;
  b.blob_padding = l->gr.data_size - l->gr.blob_bytes;
  b.total = l->file_size;
  return l;
}

}  // namespace

const std::string* EpkMetadata::Find(const std::string& key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

void EpkMetadata::Set(const std::string& key, std::string value) {
  for (auto& [k, v] : entries) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(key, std::move(value));
}

EpkTensorStorage EpkStorageFor(const ir::Tensor& t) {
  const epk_sparse::Layout l = epk_sparse::Choose(t);
  EpkTensorStorage s;
  s.layout = epk_sparse::StorageName(l.storage);
  s.dense_bytes = t.dtype() == DType::kString ? 0 : t.nbytes();
  s.stored_bytes = l.bytes;
  return s;
}

std::string EpkGraphBytes(const ir::Model& m) {
  Encoder e(kEpkVersionMajor, true);
  e.ModelRec(m);
  return e.Section();
}

EpkSizeBreakdown EpkSizeOf(const ir::Model& m, const EpkMetadata& meta, const EpkWriteOptions& opts) {
  return Plan(m, meta, opts, "(size estimate)")->sizes;
}

void SaveEpk(const ir::Model& m, const std::string& path, const EpkMetadata& meta,
             const EpkWriteOptions& opts) {
  std::unique_ptr<Layout> l = Plan(m, meta, opts, path);
  const uint32_t n = 3;
  Section* secs = l->secs;
  for (int i = 0; i < 2; ++i) secs[i].crc = Crc32(l->payload[i].data(), l->payload[i].size());
  static const char kZeros[kAlign] = {};
  {
    uint32_t crc = 0;
    uint64_t at = 0;
    for (const auto& b : l->gr.blobs) {
      for (; at < b.offset; at += std::min<uint64_t>(kAlign, b.offset - at))
        crc = Crc32(kZeros, std::min<uint64_t>(kAlign, b.offset - at), crc);
      crc = Crc32(b.data, b.size, crc);
      at += b.size;
    }
    secs[2].crc = crc;
  }
  const uint64_t file_size = l->file_size;

  std::string head(kHeaderSize + kEntrySize * n, '\0');
  std::memcpy(&head[0], kMagic, 8);
  PutFixed(head, 8, opts.version_major, 2);
  PutFixed(head, 10, 0, 2);
  PutFixed(head, 12, n, 4);
  PutFixed(head, 16, file_size, 8);
  for (uint32_t k = 0; k < n; ++k) {
    const Section& s = secs[l->order[k]];
    uint64_t at = kHeaderSize + kEntrySize * k;
    PutFixed(head, at, s.kind, 4);
    PutFixed(head, at + 4, s.flags, 4);
    PutFixed(head, at + 8, s.offset, 8);
    PutFixed(head, at + 16, s.size, 8);
    PutFixed(head, at + 24, s.crc, 4);
  }
  PutFixed(head, 24, Crc32(head.data(), head.size()), 4);

  WriteFileAtomicWith(path, [&](const std::string& tmp) {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(ErrorCode::kIo, "cannot write '" + path + "': " + std::strerror(errno));
    uint64_t pos = 0;
    bool ok = true;
    auto write = [&](const void* p, uint64_t k) {
      if (k && std::fwrite(p, 1, k, f) != k) ok = false;
      pos += k;
    };
    auto pad_to = [&](uint64_t target) {
      while (pos < target) write(kZeros, std::min<uint64_t>(kAlign, target - pos));
    };
    write(head.data(), head.size());
    for (int i : l->order) {
      pad_to(secs[i].offset);
      if (i < 2) {
        write(l->payload[i].data(), l->payload[i].size());
        continue;
      }
      for (const auto& b : l->gr.blobs) {
        pad_to(secs[2].offset + b.offset);
        write(b.data, b.size);
      }
      pad_to(secs[2].offset + secs[2].size);
    }
    if (std::fclose(f) != 0) ok = false;
    if (!ok || pos != file_size)
      throw Error(ErrorCode::kIo, "cannot write '" + path + "': " + std::strerror(errno));
  });
}

std::unique_ptr<ir::Model> LoadEpk(const std::string& path, EpkMetadata* meta) {
  uint64_t size = FileSize(path);
  auto fail = [&](const std::string& what) { ThrowInvalid(path + ": " + what); };
  if (size < kHeaderSize)
    fail("not an .epk file: " + std::to_string(size) + " bytes is shorter than the 32-byte header");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorCode::kIo, "cannot open '" + path + "': " + std::strerror(errno));
  auto map = std::make_shared<Mapping>();
  map->size = static_cast<size_t>(size);
  map->addr = ::mmap(nullptr, map->size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);
  if (map->addr == MAP_FAILED)
    throw Error(ErrorCode::kIo, "cannot map '" + path + "': " + std::strerror(map_errno));
  const auto* base = static_cast<const uint8_t*>(map->addr);

  Cursor h(base, size, path + ": header");
  if (std::memcmp(base, kMagic, 8) != 0) fail("not an .epk file (bad magic bytes)");
  h.Fixed(8, "magic");
  uint16_t major = static_cast<uint16_t>(h.Fixed(2, "version")), minor = static_cast<uint16_t>(h.Fixed(2, "version"));
  if (major > kEpkVersionMajor)
    ThrowUnsupported(path + ": .epk format version " + std::to_string(major) + "." +
                     std::to_string(minor) + " is newer than this reader (reads " +
                     std::to_string(kEpkMinVersionMajor) + ".x to " +
                     std::to_string(kEpkVersionMajor) +
                     ".x): the file was written by a newer edgepress; update edgepress to load "
                     "it, or re-export the model with this version");
  if (major < kEpkMinVersionMajor)
    ThrowUnsupported(path + ": .epk format version " + std::to_string(major) + "." +
                     std::to_string(minor) + " is not supported (this reader reads " +
                     std::to_string(kEpkMinVersionMajor) + ".x to " +
                     std::to_string(kEpkVersionMajor) + ".x)");
  uint32_t count = h.U32("section count");
  if (count == 0 || count > kMaxSections)
    fail("section count " + std::to_string(count) + " is not in 1.." + std::to_string(kMaxSections));
  uint64_t table_end = kHeaderSize + kEntrySize * count;
  if (table_end > size)
    fail("truncated: the section table needs " + std::to_string(table_end) + " bytes, the file has " +
         std::to_string(size));
  uint64_t declared_size = h.U64("file size");
  uint32_t header_crc = h.U32("header checksum");
  uint32_t reserved = h.U32("reserved");
  {
    std::string head(reinterpret_cast<const char*>(base), table_end);
    std::memset(&head[24], 0, 4);
    if (Crc32(head.data(), head.size()) != header_crc) fail("header checksum mismatch (corrupt header)");
  }
  if (declared_size != size)
    fail("file is " + std::to_string(size) + " bytes but its header says " +
         std::to_string(declared_size) + (size < declared_size ? " (truncated)" : ""));
  if (reserved != 0) fail("reserved header field is not zero");

  std::vector<Section> secs(count);
  std::set<uint32_t> kinds;
  uint64_t prev_end = table_end;
  for (uint32_t i = 0; i < count; ++i) {
    Section& s = secs[i];
    std::string which = "section " + std::to_string(i);
    s.kind = h.U32("section kind");
    s.flags = h.U32("section flags");
    s.offset = h.U64("section offset");
    s.size = h.U64("section size");
    s.crc = h.U32("section checksum");
    uint32_t res = h.U32("section reserved");
    which += " (kind " + std::to_string(s.kind) + ")";
    // 3.0: metadata and graph may be zlib-compressed; the mapped tensor data may not.
    const uint32_t allowed = major >= 3 && (s.kind == kMetadata || s.kind == kGraphSection) ? kFlagZlib : 0;
    if ((s.flags & ~allowed) != 0 || res != 0)
      fail(which + ": flags " + std::to_string(s.flags) + " and reserved fields must be zero" +
           (allowed ? " but for bit 0 (zlib)" : ""));
    if (!kinds.insert(s.kind).second) fail(which + ": kind appears twice in the section table");
    // 3.0 aligns only the tensor data section (the part that is mapped and used in place).
    if ((major < 3 || s.kind == kTensorData) && s.offset % kAlign != 0)
      fail(which + ": offset " + std::to_string(s.offset) + " is not a multiple of 64");
    uint64_t end;
    if (AddOverflows(s.offset, s.size, &end) || end > size)
      fail(which + ": " + std::to_string(s.size) + " bytes at offset " + std::to_string(s.offset) +
           " run past the end of the file (" + std::to_string(size) + " bytes)");
    if (s.offset < prev_end)
      fail(which + ": offset " + std::to_string(s.offset) +
           " overlaps the section table or the previous section");
    prev_end = end;
    if (Crc32(base + s.offset, s.size) != s.crc)
      fail(which + ": checksum mismatch (corrupt section)");
  }
  const Section* by_kind[4] = {};
  for (const auto& s : secs)
    if (s.kind >= kMetadata && s.kind <= kTensorData) by_kind[s.kind] = &s;
  for (uint32_t k : {kMetadata, kGraphSection, kTensorData})
    if (!by_kind[k]) fail("required section of kind " + std::to_string(k) + " is missing");

  try {
    // Compressed sections inflate into owned bytes; tensor data stays in the mapping.
    std::string inflated[3];
    auto payload = [&](uint32_t kind, const char* name) {
      const Section& s = *by_kind[kind];
      if (!(s.flags & kFlagZlib)) return Cursor(base + s.offset, s.size, path + ": " + name, major >= 3);
      inflated[kind - 1] = Inflate(base + s.offset, s.size, path + ": " + name + " section");
      const std::string& raw = inflated[kind - 1];
      return Cursor(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), path + ": " + name, true);
    };
    Cursor mc = payload(kMetadata, "metadata");
    EpkMetadata md;
    uint32_t nmd = mc.Count(8, "metadata entries");
    std::set<std::string> keys;
    for (uint32_t i = 0; i < nmd; ++i) {
      std::string k = mc.Str("metadata key");
      if (k.empty()) mc.Fail("empty metadata key");
      if (!keys.insert(k).second) mc.Fail("metadata key '" + k + "' appears twice");
      md.entries.emplace_back(std::move(k), mc.Str("metadata value"));
    }
    mc.ExpectEnd();

    Cursor gc = payload(kGraphSection, "graph");
    auto owner = std::static_pointer_cast<const void>(map);
    Decoder dec(gc, base + by_kind[kTensorData]->offset, by_kind[kTensorData]->size, owner, major);
    std::vector<std::string> strings;
    if (major >= 3) {
      gc.ReadStrings(&strings);
      const uint64_t small_base = gc.U64("small blob base");
      if (small_base > by_kind[kTensorData]->size)
        gc.Fail("small blob base " + std::to_string(small_base) + " is past the tensor data section (" +
                std::to_string(by_kind[kTensorData]->size) + " bytes)");
      dec.SetSmallBase(small_base);
    }
    auto m = std::make_unique<ir::Model>();
    m->ir_version = gc.I64("ir version");
    m->producer_name = gc.Str("producer name");
    m->producer_version = gc.Str("producer version");
    m->domain = gc.Str("model domain");
    m->model_version = gc.I64("model version");
    m->doc = gc.Str("model doc");
    uint32_t nops = gc.Count(12, "opsets");
    std::set<std::string> domains;
    for (uint32_t i = 0; i < nops; ++i) {
      ir::OpsetImport o;
      o.domain = gc.Str("opset domain");
      o.version = gc.I64("opset version");
      if (!domains.insert(o.domain == "ai.onnx" ? "" : o.domain).second)
        gc.Fail("opset domain '" + o.domain + "' is imported twice");
      m->opsets.push_back(o);
    }
    uint32_t nprops = gc.Count(8, "model metadata");
    std::set<std::string> prop_keys;
    for (uint32_t i = 0; i < nprops; ++i) {
      std::string k = gc.Str("model metadata key");
      if (!prop_keys.insert(k).second) gc.Fail("model metadata key '" + k + "' appears twice");
      m->metadata.emplace_back(std::move(k), gc.Str("model metadata value"));
    }
    GraphRec root = dec.GraphRecord(0);
    gc.ExpectEnd();
    BuildGraph(root, m->graph.get(), path);
    if (meta) *meta = std::move(md);
    return m;
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) throw;
    throw Error(e.code(), path + ": " + msg);
  }
}

}  // namespace edgepress::formats
