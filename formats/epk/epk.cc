// .epk reader and writer (docs/epk.md). The writer encodes the model into an in-memory
// graph section whose tensor records point at blobs in the data section, then streams
// header, sections and blobs to a temp file. The reader maps the file, checks header,
// section table and every checksum, decodes the graph section into plain records
// (validating as it goes), and only then builds the ir::Model: nodes are created before
// their inputs are resolved, so node order in the file never matters for resolution.
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
#include <set>

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
constexpr int kMaxGraphDepth = 64;
constexpr int kMaxTypeDepth = 32;
enum SectionKind : uint32_t { kMetadata = 1, kGraphSection = 2, kTensorData = 3 };

constexpr uint8_t kMaxDType = static_cast<uint8_t>(DType::kString);
constexpr uint8_t kMaxAttrKind = static_cast<uint8_t>(Attribute::Kind::kTypeProtos);
constexpr uint8_t kMaxTypeKind = static_cast<uint8_t>(ValueType::Kind::kMap);

uint32_t Crc32(const void* p, uint64_t n, uint32_t crc = 0) {
  return static_cast<uint32_t>(crc32_z(crc, static_cast<const Bytef*>(p), n));
}
uint64_t AlignUp(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// ------------------------------------------------------------------------- writing

class Encoder {
 public:
  struct Blob {
    const void* data;
    uint64_t size;
    uint64_t offset;
  };
  std::string out;
  std::vector<Blob> blobs;
  std::deque<std::string> encoded;  // sparse blobs (stable addresses)
  uint64_t data_size = 0;

  void U8(uint8_t v) { out.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Fixed(v, 4); }
  void I32(int32_t v) { Fixed(static_cast<uint32_t>(v), 4); }
  void U64(uint64_t v) { Fixed(v, 8); }
  void I64(int64_t v) { Fixed(static_cast<uint64_t>(v), 8); }
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
    Count(s.size(), "bytes in a string");
    out += s;
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
      uint64_t n = l.bytes;
      uint64_t off = n ? AlignUp(data_size) : 0;
      if (n) {
        blobs.push_back({bytes, n, off});
        data_size = off + n;
      }
      U8(static_cast<uint8_t>(l.storage));
      U64(off);
      U64(n);
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
    Str(g.name);
    Str(g.doc);
    Count(g.inputs().size(), "inputs");
    for (const ir::Value* v : g.inputs()) {
      Str(v->name());
      Type(v->type);
      Str(v->doc);
      Bool(v->synthesized);
    }
    Count(g.initializers().size(), "initializers");
    for (const ir::Value* v : g.initializers()) {
      Str(v->name());
      TensorRec(*v->initializer());
      Type(v->type);
      Str(v->doc);
      Bool(v->synthesized);
    }
    std::vector<ir::Node*> nodes = g.nodes();
    Count(nodes.size(), "nodes");
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
        Type(v->type);
        Str(v->doc);
        Bool(v->synthesized);
      }
      Count(n->attributes().size(), "attributes");
      for (const Attribute& a : n->attributes()) Attr(a, *n);
    }
    Count(g.outputs().size(), "outputs");
    for (const ir::Value* v : g.outputs()) {
      if (!v) ThrowInvalid(".epk: graph '" + g.name + "' has a null output");
      Str(v->name());
    }
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
};

void PutFixed(std::string& s, uint64_t at, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

// ------------------------------------------------------------------------- reading

// Bounded little-endian reads over one section; every read checks the bytes left.
class Cursor {
 public:
  Cursor(const uint8_t* p, uint64_t n, std::string where) : p_(p), n_(n), where_(std::move(where)) {}
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
  uint8_t U8(const char* what) { return static_cast<uint8_t>(Fixed(1, what)); }
  uint32_t U32(const char* what) { return static_cast<uint32_t>(Fixed(4, what)); }
  int32_t I32(const char* what) { return static_cast<int32_t>(U32(what)); }
  uint64_t U64(const char* what) { return Fixed(8, what); }
  int64_t I64(const char* what) { return static_cast<int64_t>(U64(what)); }
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
    uint32_t c = U32(what);
    uint64_t need;
    if (MulOverflows(c, min_bytes, &need) || need > left())
      Fail(std::string(what) + " count " + std::to_string(c) + " exceeds the " +
           std::to_string(left()) + " bytes left");
    return c;
  }
  std::string Str(const char* what) {
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

 private:
  const uint8_t* p_;
  uint64_t n_;
  uint64_t pos_ = 0;
  std::string where_;
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
      uint64_t offset = c_.U64("tensor data offset");
      uint64_t size = c_.U64("tensor data size");
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
      uint64_t bits = static_cast<uint64_t>(ir::DTypeBits(dt)), want_bits;
      if (MulOverflows(numel, bits, &want_bits)) c_.Fail("tensor byte size overflows 64 bits");
      uint64_t want = want_bits / 8 + (want_bits % 8 ? 1 : 0);
      const bool dense = layout.storage == epk_sparse::Storage::kDense;
      auto fail = [&](const std::string& what) { c_.Fail(what + Named()); };
      if (dense && size != want)
        c_.Fail("tensor data size " + std::to_string(size) + " != " + std::to_string(want) +
                " bytes for " + std::to_string(numel) + " " + ir::DTypeName(dt) + " elements");
      if (!dense) epk_sparse::CheckLayout(layout, dt, dims, size, fail);
      if (offset % kAlign != 0)
        c_.Fail("tensor data offset " + std::to_string(offset) + " is not 64-byte aligned");
      uint64_t end;
      if (AddOverflows(offset, size, &end) || end > data_size_)
        c_.Fail("tensor data (" + std::to_string(size) + " bytes at offset " + std::to_string(offset) +
                ") runs past the tensor data section (" + std::to_string(data_size_) + " bytes)");
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
    v.type = Type(0);
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
  uint64_t offset, size;
  uint32_t crc;
};

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
  Encoder e;
  e.ModelRec(m);
  return e.out;
}

void SaveEpk(const ir::Model& m, const std::string& path, const EpkMetadata& meta) {
  std::set<std::string> keys;
  for (const auto& [k, v] : meta.entries) {
    if (k.empty()) ThrowInvalid(path + ": .epk metadata key is empty");
    if (!keys.insert(k).second) ThrowInvalid(path + ": .epk metadata key '" + k + "' appears twice");
  }
  Encoder md;
  md.Pairs(meta.entries);
  Encoder gr;
  gr.ModelRec(m);

  const uint32_t n = 3;
  uint64_t table_end = kHeaderSize + kEntrySize * n;
  Section secs[3] = {{kMetadata, AlignUp(table_end), md.out.size(), 0}, {}, {}};
  secs[1] = {kGraphSection, AlignUp(secs[0].offset + secs[0].size), gr.out.size(), 0};
  secs[2] = {kTensorData, AlignUp(secs[1].offset + secs[1].size), gr.data_size, 0};
  secs[0].crc = Crc32(md.out.data(), md.out.size());
  secs[1].crc = Crc32(gr.out.data(), gr.out.size());
  static const char kZeros[kAlign] = {};
  {
    uint32_t crc = 0;
    uint64_t at = 0;
    for (const auto& b : gr.blobs) {
      for (; at < b.offset; at += std::min<uint64_t>(kAlign, b.offset - at))
        crc = Crc32(kZeros, std::min<uint64_t>(kAlign, b.offset - at), crc);
      crc = Crc32(b.data, b.size, crc);
      at += b.size;
    }
    secs[2].crc = crc;
  }
  uint64_t file_size = secs[2].offset + secs[2].size;

  std::string head(kHeaderSize + kEntrySize * n, '\0');
  std::memcpy(&head[0], kMagic, 8);
  PutFixed(head, 8, kEpkVersionMajor, 2);
  PutFixed(head, 10, kEpkVersionMinor, 2);
  PutFixed(head, 12, n, 4);
  PutFixed(head, 16, file_size, 8);
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t at = kHeaderSize + kEntrySize * i;
    PutFixed(head, at, secs[i].kind, 4);
    PutFixed(head, at + 8, secs[i].offset, 8);
    PutFixed(head, at + 16, secs[i].size, 8);
    PutFixed(head, at + 24, secs[i].crc, 4);
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
    pad_to(secs[0].offset);
    write(md.out.data(), md.out.size());
    pad_to(secs[1].offset);
    write(gr.out.data(), gr.out.size());
    pad_to(secs[2].offset);
    for (const auto& b : gr.blobs) {
      pad_to(secs[2].offset + b.offset);
      write(b.data, b.size);
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
    uint32_t flags = h.U32("section flags");
    s.offset = h.U64("section offset");
    s.size = h.U64("section size");
    s.crc = h.U32("section checksum");
    uint32_t res = h.U32("section reserved");
    which += " (kind " + std::to_string(s.kind) + ")";
    if (flags != 0 || res != 0) fail(which + ": flags and reserved fields must be zero");
    if (!kinds.insert(s.kind).second) fail(which + ": kind appears twice in the section table");
    if (s.offset % kAlign != 0)
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
    Cursor mc(base + by_kind[kMetadata]->offset, by_kind[kMetadata]->size, path + ": metadata");
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

    Cursor gc(base + by_kind[kGraphSection]->offset, by_kind[kGraphSection]->size, path + ": graph");
    auto owner = std::static_pointer_cast<const void>(map);
    Decoder dec(gc, base + by_kind[kTensorData]->offset, by_kind[kTensorData]->size, owner, major);
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
