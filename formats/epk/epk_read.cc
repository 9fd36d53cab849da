// .epk reader (docs/epk.md). Maps the file, checks header, section table and every
// checksum, inflates compressed sections, decodes the graph section into plain records
// (validating as it goes), and only then builds the ir::Model: nodes are created before
// their inputs are resolved, so node order in the file never matters for resolution.
// Tensor data stays in the mapping (the model keeps it alive).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "formats/epk/epk.h"
#include "formats/epk/epk_dict.h"
#include "formats/epk/epk_format.h"
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
using namespace epk_internal;  // NOLINT: the format's constants and helpers


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
    Tensor t = dt == DType::kString ? StringValues(dims, numel) : DataBlob(dt, dims, numel);
    uint8_t ann = c_.U8("tensor annotations");
    if (ann & ~3u) c_.Fail("unknown tensor annotation bits " + std::to_string(ann));
    if (ann & 1) t.quant = QuantAnnotation();
    if (ann & 2) t.sparse = SparseAnnotation();
    return t;
  }

  Tensor StringValues(const std::vector<int64_t>& dims, uint64_t numel) {
    uint32_t n = c_.Count(4, "string tensor values");
    if (n != numel)
      c_.Fail("string tensor has " + std::to_string(n) + " values for " + std::to_string(numel) +
              " elements");
    std::vector<std::string> values(n);
    for (auto& s : values) s = c_.Str("string tensor value");
    return Tensor::Strings(dims, std::move(values));
  }

  // A numeric tensor's bytes in the tensor data section: dense (wrapped in place, no copy)
  // or sparse (bitmask, CSR, N:M; decoded into owned memory). Offsets and sizes are checked
  // against the section before any byte is read.
  Tensor DataBlob(DType dt, const std::vector<int64_t>& dims, uint64_t numel) {
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
    SparseLayoutFields(layout);
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
      Tensor t(dt, dims);
      epk_sparse::Decode(layout, dt, dims, data_ + offset, static_cast<uint8_t*>(t.mutable_raw()),
                         fail);
      return t;
    }
    if (size == 0) return Tensor(dt, dims);
    return Tensor(dt, dims, ir::Buffer::Wrap(data_ + offset, size, owner_));
  }

  // The fields that follow a blob's offset and size for its storage kind.
  void SparseLayoutFields(epk_sparse::Layout& layout) {
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
  }

  ir::QuantParams QuantAnnotation() {
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
    return q;
  }

  ir::SparseEncoding SparseAnnotation() {
    ir::SparseEncoding s;
    uint8_t k = c_.U8("sparse kind");
    if (k > 2) c_.Fail("sparse kind " + std::to_string(k) + " is not 0, 1 or 2");
    s.kind = static_cast<ir::SparseEncoding::Kind>(k);
    s.n = c_.I32("sparse n");
    s.m = c_.I32("sparse m");
    if (major_ >= 2) s.axis = c_.I32("sparse axis");
    s.block.resize(c_.Count(8, "sparse block dims"));
    for (int64_t& b : s.block) b = c_.I64("sparse block dim");
    return s;
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

// The file's header and section table, checked: magic, version, counts, header CRC, the
// declared size, every section's flags, alignment, bounds, order and CRC, and that the
// three required kinds are present. Returns the format major version.
uint16_t ReadSectionTable(const uint8_t* base, uint64_t size, const std::string& path,
                          std::vector<Section>* secs) {
  auto fail = [&](const std::string& what) { ThrowInvalid(path + ": " + what); };
  Cursor h(base, size, path + ": header");
  if (std::memcmp(base, kMagic, 8) != 0) fail("not an .epk file (bad magic bytes)");
  h.Fixed(8, "magic");
  uint16_t major = static_cast<uint16_t>(h.Fixed(2, "version")), minor = static_cast<uint16_t>(h.Fixed(2, "version"));
  const std::string readable = std::to_string(kEpkMinVersionMajor) + ".x to " + std::to_string(kEpkVersionMajor) + ".x";
  const std::string version = std::to_string(major) + "." + std::to_string(minor);
  if (major > kEpkVersionMajor)
    ThrowUnsupported(path + ": .epk format version " + version + " is newer than this reader (reads " +
                     readable +
                     "): the file was written by a newer edgepress; update edgepress to load "
                     "it, or re-export the model with this version");
  if (major < kEpkMinVersionMajor)
    ThrowUnsupported(path + ": .epk format version " + version + " is not supported (this reader reads " +
                     readable + ")");
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

  secs->assign(count, Section{});
  std::set<uint32_t> kinds;
  uint64_t prev_end = table_end;
  for (uint32_t i = 0; i < count; ++i) {
    Section& s = (*secs)[i];
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
  for (uint32_t k : {kMetadata, kGraphSection, kTensorData})
    if (!kinds.count(k)) fail("required section of kind " + std::to_string(k) + " is missing");
  return major;
}

// The metadata section: unique, non-empty keys.
EpkMetadata ReadMetadata(Cursor& mc) {
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
  return md;
}

// The model record that opens the graph section (after the 3.0 string table): versions,
// producer, opset imports and model metadata; the root graph record follows.
void ReadModelFields(Cursor& gc, ir::Model* m) {
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
}

}  // namespace

std::unique_ptr<ir::Model> LoadEpk(const std::string& path, EpkMetadata* meta) {
  uint64_t size = FileSize(path);
  if (size < kHeaderSize)
    ThrowInvalid(path + ": not an .epk file: " + std::to_string(size) +
                 " bytes is shorter than the 32-byte header");
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

  std::vector<Section> secs;
  const uint16_t major = ReadSectionTable(base, size, path, &secs);
  const Section* by_kind[4] = {};
  for (const auto& s : secs)
    if (s.kind >= kMetadata && s.kind <= kTensorData) by_kind[s.kind] = &s;
  const Section& data = *by_kind[kTensorData];

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
    EpkMetadata md = ReadMetadata(mc);

    Cursor gc = payload(kGraphSection, "graph");
    auto owner = std::static_pointer_cast<const void>(map);
    Decoder dec(gc, base + data.offset, data.size, owner, major);
    std::vector<std::string> strings;
    if (major >= 3) {
      gc.ReadStrings(&strings);
      const uint64_t small_base = gc.U64("small blob base");
      if (small_base > data.size)
        gc.Fail("small blob base " + std::to_string(small_base) + " is past the tensor data section (" +
                std::to_string(data.size) + " bytes)");
      dec.SetSmallBase(small_base);
    }
    auto m = std::make_unique<ir::Model>();
    ReadModelFields(gc, m.get());
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
