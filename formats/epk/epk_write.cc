// .epk writer (docs/epk.md): encodes the model into an in-memory graph section whose
// tensor records point at blobs in the data section (Plan: 3.0 compact records, string
// table, deflate with the preset dictionary), then streams header, sections and blobs to
// a temp file that replaces the destination atomically. The reader is epk_read.cc.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <set>

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

}  // namespace edgepress::formats
