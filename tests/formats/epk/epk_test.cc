// .epk: round trips of a model that uses every IR feature the format carries (every
// dtype incl. packed and strings, quant params of each granularity, sparse encodings,
// symbolic dims, nested types, every attribute kind, nested subgraphs with outer-scope
// references), and corruption tests in the style of llama.cpp's test-gguf: bad magic,
// future version, counts of -1, offsets past the end, misaligned offsets, duplicate
// names, truncation at every header byte and a flipped bit in each section. Each corrupt
// file must be rejected with an edgepress::Error naming the file; none may crash.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <zlib.h>

#include "formats/epk/epk.h"
#include "ir/dump.h"
#include "ir/error.h"
#include "ir/file_util.h"

namespace edgepress::formats {
namespace {

using ir::Attribute;
using ir::DType;
using ir::Dim;
using ir::Graph;
using ir::Tensor;
using ir::ValueType;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/edgepress_epk_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string operator/(const std::string& f) const { return path_ + "/" + f; }

 private:
  std::string path_;
};

Tensor Filled(DType dt, std::vector<int64_t> shape, int seed) {
  Tensor t(dt, std::move(shape));
  auto* p = static_cast<uint8_t*>(t.mutable_raw());
  for (uint64_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(i * 31 + seed * 7 + 1);
  if (dt == DType::kBool)
    for (uint64_t i = 0; i < t.nbytes(); ++i) p[i] &= 1;
  return t;
}

std::shared_ptr<Graph> Body(const std::string& prefix, ir::Value* outer, int nest) {
  auto g = std::make_shared<Graph>();
  g->name = prefix + "_body";
  ir::Value* x = g->AddInput(prefix + "_x", ValueType::Tensor(DType::kFloat32, ir::MakeShape({4})));
  // Uses a value of the enclosing graph (ONNX outer-scope reference).
  ir::Node* n = g->AddNode("Add", {x, outer}, {prefix + "_y"}, prefix + "_add");
  n->output(0)->type = ValueType::Tensor(DType::kFloat32, ir::MakeShape({4}));
  ir::Value* out = n->output(0);
  if (nest > 0) {
    ir::Value* cond = g->AddInitializer(prefix + "_cond", Filled(DType::kBool, {}, 5));
    ir::Node* inner = g->AddNode("If", {cond}, {prefix + "_z"}, prefix + "_if");
    inner->set_attr(Attribute::GraphValue("then_branch", Body(prefix + "t", out, nest - 1)));
    inner->set_attr(Attribute::GraphValue("else_branch", Body(prefix + "e", x, nest - 1)));
    out = inner->output(0);
  }
  g->AddOutput(out);
  return g;
}

// A model touching every feature the format encodes.
std::unique_ptr<ir::Model> RichModel() {
  auto m = std::make_unique<ir::Model>();
  m->ir_version = 8;
  m->producer_name = "edgepress-test";
  m->producer_version = "0.1";
  m->domain = "ai.edgepress.test";
  m->model_version = 3;
  m->doc = "every feature";
  m->opsets = {{"", 17}, {"com.microsoft", 1}, {"edgepress", 1}, {"edgepresx", 2}};
  m->metadata = {{"author", "c"}, {"license", "mit"}};
  Graph& g = *m->graph;
  g.name = "main";
  g.doc = "root graph";
  ir::Shape sym = {Dim::Symbol("batch"), Dim::Known(4), Dim{}};
  ir::Value* x = g.AddInput("x", ValueType::Tensor(DType::kFloat32, sym));
  x->doc = "input x";
  ValueType seq;
  seq.kind = ValueType::Kind::kSequence;
  seq.elem = std::make_shared<ValueType>(ValueType::Tensor(DType::kInt64));
  seq.denotation = "TOKENS";
  g.AddInput("seq", seq);
  ValueType map;
  map.kind = ValueType::Kind::kMap;
  map.dtype = DType::kString;
  map.elem = std::make_shared<ValueType>(ValueType::Tensor(DType::kFloat32, ir::Shape{}));
  g.AddInput("map", map);
  // A graph input with a default value.
  g.AddInput("bias", ValueType::Tensor(DType::kFloat32, ir::MakeShape({4})));
  g.AddInitializer("bias", Filled(DType::kFloat32, {4}, 1));

  const DType all[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64,
                       DType::kInt64,   DType::kInt32,   DType::kInt16,    DType::kInt8,
                       DType::kUInt64,  DType::kUInt32,  DType::kUInt16,   DType::kUInt8,
                       DType::kBool,    DType::kInt4,    DType::kUInt4,    DType::kTernary,
                       DType::kComplex64, DType::kComplex128};
  int k = 0;
  for (DType dt : all) {
    ir::Value* v = g.AddInitializer(std::string("w_") + ir::DTypeName(dt), Filled(dt, {3, 5}, ++k));
    v->doc = "weights";
  }
  g.AddInitializer("empty", Tensor(DType::kFloat32, {0, 3}));
  g.AddInitializer("scalar", Filled(DType::kInt64, {}, 9))->synthesized = true;
  g.AddInitializer("labels", Tensor::Strings({2}, {"cat", std::string("d\0g", 3)}));

  Tensor q = Filled(DType::kInt8, {4, 6}, 2);
  ir::QuantParams pt;
  pt.scales = {0.5f};
  pt.zero_points = {3};
  q.quant = pt;
  g.AddInitializer("q_tensor", q);
  Tensor qc = Filled(DType::kInt4, {4, 6}, 3);
  ir::QuantParams pc;
  pc.granularity = ir::QuantParams::Granularity::kPerChannel;
  pc.axis = 0;
  pc.scales = {0.1f, 0.2f, 0.3f, 0.4f};
  qc.quant = pc;
  g.AddInitializer("q_channel", qc);
  Tensor qg = Filled(DType::kUInt4, {4, 8}, 4);
  ir::QuantParams pg;
  pg.granularity = ir::QuantParams::Granularity::kPerGroup;
  pg.axis = 1;
  pg.group_size = 4;
  pg.scales = std::vector<float>(8, 0.25f);
  pg.zero_points = std::vector<int32_t>(8, 8);
  qg.quant = pg;
  ir::SparseEncoding nm;
  nm.kind = ir::SparseEncoding::Kind::kNM;
  nm.n = 2;
  nm.m = 4;
  qg.sparse = nm;
  g.AddInitializer("q_group", qg);
  Tensor sb = Filled(DType::kFloat32, {8, 8}, 6);
  ir::SparseEncoding blk;
  blk.kind = ir::SparseEncoding::Kind::kBlock;
  blk.block = {4, 4};
  sb.sparse = blk;
  g.AddInitializer("sparse_block", sb);

  ir::Node* add = g.AddNode("Add", {x, g.FindValue("bias")}, {"sum"}, "add0");
  add->doc = "adds";
  add->output(0)->type = ValueType::Tensor(DType::kFloat32, sym);
  add->output(0)->doc = "the sum";
  // Omitted optional input and output.
  ir::Node* clip = g.AddNode("Clip", {add->output(0), nullptr, g.FindValue("w_f32")},
                             {"clipped", ""}, "clip0");
  ir::Node* custom =
      g.AddNode("MatMulNBits", {clip->output(0), g.FindValue("q_group")}, {"mm"}, "mm0",
                "com.microsoft");
  custom->set_attr(Attribute::Int("bits", 4));
  custom->set_attr(Attribute::Float("alpha", -1.5f));
  custom->set_attr(Attribute::String("mode", std::string("a\0b", 3)));
  custom->set_attr(Attribute::Ints("kernel_shape", {3, 3, -1}));
  custom->set_attr(Attribute::Floats("gains", {0.5f, 2.0f}));
  custom->set_attr(Attribute::TensorValue("table", Filled(DType::kUInt8, {7}, 8)));
  Attribute strs;
  strs.name = "names";
  strs.kind = Attribute::Kind::kStrings;
  strs.strings = {"a", "", "ccc"};
  strs.doc = "strings attr";
  custom->set_attr(strs);
  Attribute tens;
  tens.name = "tables";
  tens.kind = Attribute::Kind::kTensors;
  tens.tensors = {Filled(DType::kInt16, {2}, 10), Tensor::Strings({1}, {"s"}), Tensor()};
  custom->set_attr(tens);
  Attribute ty;
  ty.name = "type";
  ty.kind = Attribute::Kind::kTypeProto;
  ty.types = {seq};
  custom->set_attr(ty);
  Attribute tys;
  tys.name = "types";
  tys.kind = Attribute::Kind::kTypeProtos;
  tys.types = {map, ValueType::Tensor(DType::kInt4, ir::MakeShape({2, 2}))};
  custom->set_attr(tys);
  Attribute undef;
  undef.name = "ref";
  undef.ref_attr_name = "outer_ref";
  custom->set_attr(undef);

  ir::Value* cond = g.AddInitializer("cond", Filled(DType::kBool, {}, 0));
  ir::Node* iff = g.AddNode("If", {cond}, {"branch_out"}, "if0");
  iff->set_attr(Attribute::GraphValue("then_branch", Body("then", add->output(0), 2)));
  iff->set_attr(Attribute::GraphValue("else_branch", Body("else", x, 0)));
  Attribute gs;
  gs.name = "bodies";
  gs.kind = Attribute::Kind::kGraphs;
  gs.graphs = {Body("g1", x, 0), Body("g2", add->output(0), 1)};
  ir::Node* multi = g.AddNode("Multi", {}, {"multi_out"}, "multi0", "edgepress");
  multi->set_attr(gs);
  g.AddOutput(custom->output(0));
  g.AddOutput(iff->output(0));
  g.AddOutput(multi->output(0));
  return m;
}

EpkMetadata Meta() {
  EpkMetadata md;
  md.Set("producer", "edgepress");
  md.Set("tool_version", "0.1.0");
  md.Set("source_model_sha256", std::string(64, 'a'));
  md.Set("recipe", "x86-avx2");
  md.Set("pass_log", "fold-batchnorm: 3\nquantize: 12");
  return md;
}

// A plain write: the corruption tests write thousands of files, and the library's atomic
// write fsyncs each one.
std::string Write(const TempDir& dir, const std::string& name, const std::string& bytes) {
  std::string p = dir / name;
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
  return p;
}

// -------------------------------------------------------------- round trips

TEST(EpkTest, RoundTripIsStructurallyIdenticalAndByteStable) {
  TempDir dir;
  auto m = RichModel();
  SaveEpk(*m, dir / "a.epk", Meta());
  EpkMetadata md;
  auto back = LoadEpk(dir / "a.epk", &md);
  EXPECT_EQ(md, Meta());
  EXPECT_EQ(EpkGraphBytes(*back), EpkGraphBytes(*m));
  EXPECT_EQ(ir::DumpText(*back), ir::DumpText(*m));
  SaveEpk(*back, dir / "b.epk", md);
  EXPECT_EQ(ReadFileToString(dir / "a.epk"), ReadFileToString(dir / "b.epk"));

  // Spot checks on decoded values, beyond the canonical bytes.
  const Graph& g = *back->graph;
  ASSERT_EQ(g.inputs().size(), 4u);
  EXPECT_EQ(g.inputs()[0]->type.shape->at(0).symbol, "batch");
  EXPECT_EQ(g.inputs()[1]->type.elem->dtype, DType::kInt64);
  EXPECT_TRUE(g.FindValue("bias")->is_graph_input());
  EXPECT_TRUE(g.FindValue("bias")->is_initializer());
  const Tensor* qg = g.FindValue("q_group")->initializer();
  ASSERT_TRUE(qg->quant && qg->sparse);
  EXPECT_EQ(qg->quant->group_size, 4);
  EXPECT_EQ(*qg, *m->graph->FindValue("q_group")->initializer());
  EXPECT_EQ(g.FindValue("labels")->initializer()->strings()[1], std::string("d\0g", 3));
  const ir::Node* clip = g.FindNode("clip0");
  ASSERT_NE(clip, nullptr);
  EXPECT_EQ(clip->input(1), nullptr);
  EXPECT_EQ(clip->output(1), nullptr);
  const ir::Node* iff = g.FindNode("if0");
  Graph* then = iff->attr("then_branch")->g.get();
  EXPECT_EQ(then->parent(), &g);
  EXPECT_EQ(then->nodes()[0]->input(1), g.FindValue("sum")) << "outer-scope reference";
}

TEST(EpkTest, TensorsAreZeroCopyAlignedViewsThatOutliveTheModel) {
  TempDir dir;
  auto m = RichModel();
  SaveEpk(*m, dir / "z.epk");
  Tensor kept;
  {
    auto back = LoadEpk(dir / "z.epk");
    for (const ir::Value* v : back->graph->initializers()) {
      const Tensor* t = v->initializer();
      if (t->dtype() == DType::kString || t->nbytes() == 0) continue;
      // Tensors with enough zero elements are stored sparse and expanded on load.
      if (std::string(EpkStorageFor(*t).layout) != "dense") continue;
      EXPECT_FALSE(t->buffer()->owned()) << v->name() << " should view the mapping";
      // 3.0: weights of 1 KiB and more are 64-byte aligned for SIMD kernels; small blobs
      // are packed at their element size.
      const uint64_t align = t->nbytes() >= 1024 ? 64 : std::max<uint64_t>(1, ir::DTypeBits(t->dtype()) / 8);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t->raw()) % align, 0u) << v->name();
    }
    kept = *back->graph->FindValue("w_f64")->initializer();
  }
  // The mapping stays alive through the tensor's buffer owner.
  EXPECT_EQ(kept, *m->graph->FindValue("w_f64")->initializer());
  // Writing through a mapped tensor copies instead of touching the read-only mapping.
  Tensor copy = kept;
  static_cast<uint8_t*>(copy.mutable_raw())[0] ^= 0xFF;
  EXPECT_NE(copy, kept);
}

TEST(EpkTest, EmptyModelAndNoMetadata) {
  TempDir dir;
  ir::Model m;
  SaveEpk(m, dir / "e.epk");
  EpkMetadata md;
  md.Set("stale", "x");
  auto back = LoadEpk(dir / "e.epk", &md);
  EXPECT_TRUE(md.entries.empty());
  EXPECT_EQ(EpkGraphBytes(*back), EpkGraphBytes(m));
  // Header, table, and a few bytes of records: no padding after the (empty) tensor data.
  EXPECT_LT(FileSize(dir / "e.epk"), 200u);
}

TEST(EpkTest, WriterRefusesBadMetadata) {
  TempDir dir;
  ir::Model m;
  EpkMetadata dup;
  dup.entries = {{"k", "1"}, {"k", "2"}};
  try {
    SaveEpk(m, dir / "d.epk", dup);
    FAIL() << "duplicate metadata keys accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'k' appears twice"), std::string::npos);
  }
  EXPECT_FALSE(FileExists(dir / "d.epk"));
}

// -------------------------------------------------------------- corruption

// Knows just enough of docs/epk.md to patch a file and re-seal its checksums, so that
// the structural checks behind the checksums are exercised too.
struct EpkFile {
  std::string b;
  uint32_t U32(size_t at) const {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(b[at + i])) << (8 * i);
    return v;
  }
  uint64_t U64(size_t at) const { return U32(at) | static_cast<uint64_t>(U32(at + 4)) << 32; }
  void Put(size_t at, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  }
  uint32_t sections() const { return U32(12); }
  size_t entry(int i) const { return 32 + 32 * static_cast<size_t>(i); }
  size_t offset(int i) const { return U64(entry(i) + 8); }
  size_t size(int i) const { return U64(entry(i) + 16); }
  // Byte position of `needle` inside section i (as a string record's bytes).
  size_t Find(int i, const std::string& needle) const {
    size_t p = b.find(needle, offset(i));
    EXPECT_NE(p, std::string::npos) << needle;
    return p;
  }
  void Seal() {
    for (uint32_t i = 0; i < sections() && entry(i) + 32 <= b.size(); ++i) {
      if (offset(i) <= b.size() && size(i) <= b.size() - offset(i))
        Put(entry(i) + 24, crc32_z(0, reinterpret_cast<const Bytef*>(b.data() + offset(i)), size(i)), 4);
    }
    std::string head = b.substr(0, 32 + 32 * static_cast<size_t>(sections()));
    std::memset(&head[24], 0, 4);
    Put(24, crc32_z(0, reinterpret_cast<const Bytef*>(head.data()), head.size()), 4);
  }
};

// These tests patch fixed-width fields of 2.0 records, so they run on files the writer's
// 2.0 path produces (the reader's 1.x/2.x path); EpkCompactTest below corrupts 3.0 files.
EpkWriteOptions V2() {
  EpkWriteOptions o;
  o.version_major = 2;
  return o;
}

class EpkCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = RichModel();
    SaveEpk(*m, dir_ / "good.epk", Meta(), V2());
    good_.b = ReadFileToString(dir_ / "good.epk");
    ASSERT_EQ(good_.sections(), 3u);
  }
  // Loads `bytes`; expects an Error whose message names the file and contains `expect`.
  // `code` empty: any code (a flipped version bit is reported as an unsupported version).
  std::string Reject(const std::string& bytes, const std::string& expect,
                     std::optional<ErrorCode> code = ErrorCode::kInvalidInput) {
    std::string path = Write(dir_, "bad.epk", bytes);
    try {
      LoadEpk(path);
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(expect), std::string::npos) << "want '" << expect << "' in: " << msg;
      if (code) {
        EXPECT_EQ(e.code(), *code) << msg;
      }
      return msg;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not an edgepress::Error: " << e.what();
      return "";
    }
    ADD_FAILURE() << "corrupt file accepted; expected '" << expect << "'";
    return "";
  }
  EpkFile Patched(size_t at, uint64_t v, int n, bool seal = true) {
    EpkFile f = good_;
    f.Put(at, v, n);
    if (seal) f.Seal();
    return f;
  }

  TempDir dir_;
  EpkFile good_;
};

TEST_F(EpkCorruptionTest, SealHelperIsFaithful) {
  EpkFile f = good_;
  f.Seal();
  EXPECT_EQ(f.b, good_.b);
  // A patch that keeps the model valid loads after sealing (minor versions are accepted).
  EpkFile minor = Patched(10, 7, 2);
  std::string path = Write(dir_, "minor.epk", minor.b);
  EXPECT_EQ(EpkGraphBytes(*LoadEpk(path)), EpkGraphBytes(*RichModel()));
}

TEST_F(EpkCorruptionTest, BadMagic) {
  Reject(Patched(1, 'X', 1).b, "bad magic");
  Reject("GGUF" + good_.b.substr(4), "bad magic");
  Reject(std::string(100, '\0'), "bad magic");
}

TEST_F(EpkCorruptionTest, FutureAndUnknownVersions) {
  std::string msg = Reject(Patched(8, kEpkVersionMajor + 1, 2).b, "newer than this reader",
                           ErrorCode::kUnsupported);
  // The user learns why and what to do.
  EXPECT_NE(msg.find("written by a newer edgepress; update edgepress"), std::string::npos) << msg;
  Reject(Patched(8, 0xFFFF, 2).b, "65535.0 is newer", ErrorCode::kUnsupported);
  Reject(Patched(8, 0, 2).b, "not supported", ErrorCode::kUnsupported);
}

TEST_F(EpkCorruptionTest, SectionTableCounts) {
  Reject(Patched(12, 0xFFFFFFFFu, 4).b, "section count 4294967295");
  Reject(Patched(12, 0, 4).b, "section count 0");
  Reject(Patched(12, 64, 4).b, "overlaps the section table");
  // One section fewer: the tensor data section is missing.
  Reject(Patched(12, 2, 4).b, "kind 3 is missing");
  Reject(Patched(good_.entry(1), 1, 4).b, "appears twice");  // two metadata sections
  Reject(Patched(good_.entry(0) + 4, 1, 4).b, "must be zero");
  Reject(Patched(28, 1, 4).b, "reserved");
}

TEST_F(EpkCorruptionTest, SectionOffsetsAndSizes) {
  Reject(Patched(good_.entry(2) + 8, (good_.b.size() + 64) / 64 * 64, 8).b,
         "past the end of the file");
  Reject(Patched(good_.entry(2) + 16, UINT64_MAX, 8).b, "past the end of the file");
  Reject(Patched(good_.entry(1) + 8, good_.offset(1) + 8, 8).b, "not a multiple of 64");
  Reject(Patched(good_.entry(1) + 8, good_.offset(0), 8).b, "overlaps");
  Reject(Patched(good_.entry(0) + 8, 0, 8).b, "overlaps the section table");
  Reject(Patched(16, good_.b.size() + 1, 8).b, "header says");
  EpkFile longer = good_;
  longer.b += std::string(64, '\0');
  Reject(longer.b, "header says");
}

TEST_F(EpkCorruptionTest, TruncationAtEveryHeaderByte) {
  size_t table_end = 32 + 32 * good_.sections();
  for (size_t n = 0; n < table_end + 64; ++n) Reject(good_.b.substr(0, n), "");
  // And at a stride through the rest of the file (every cut changes the file size).
  for (size_t n = table_end + 64; n < good_.b.size(); n += 7) Reject(good_.b.substr(0, n), "");
}

TEST_F(EpkCorruptionTest, FlippedBitInEachSectionIsCaught) {
  for (size_t at = 0; at < 32 + 32 * good_.sections(); ++at) {
    EpkFile f = good_;
    f.b[at] ^= 0x10;
    Reject(f.b, "", std::nullopt);
  }
  for (uint32_t i = 0; i < good_.sections(); ++i) {
    ASSERT_GT(good_.size(i), 0u);
    for (size_t at : {good_.offset(i), good_.offset(i) + good_.size(i) / 2,
                      good_.offset(i) + good_.size(i) - 1}) {
      EpkFile f = good_;
      f.b[at] ^= 0x04;
      Reject(f.b, "section " + std::to_string(i) + " (kind " + std::to_string(i + 1) +
                      "): checksum mismatch");
    }
  }
}

// Structural checks behind the checksums: patch a field, re-seal, expect the right error.
TEST_F(EpkCorruptionTest, CountsOfMinusOne) {
  // The count before the first metadata entry, and the list count before graph input "x".
  Reject(Patched(good_.offset(0), 0xFFFFFFFFu, 4).b, "metadata entries count 4294967295");
  size_t x = good_.Find(1, std::string("\x01\0\0\0x", 5));
  Reject(Patched(x - 4, 0xFFFFFFFFu, 4).b, "graph inputs count 4294967295");
  size_t ks = good_.Find(1, "kernel_shape");
  Reject(Patched(ks + 12 + 1 + 4 + 4, 0xFFFFFFFFu, 4).b, "int list count 4294967295");
  // A string length of -1.
  Reject(Patched(x, 0xFFFFFFFFu, 4).b, "value name length 4294967295");
}

TEST_F(EpkCorruptionTest, TensorRecords) {
  // Initializer "w_f32": name, then u8 dtype, u32 rank, 2 x i64 dims, u8 storage (dense),
  // u64 offset, u64 size.
  size_t rec = good_.Find(1, "w_f32") + 5;
  size_t off_at = rec + 1 + 4 + 16 + 1;
  uint64_t off = good_.U64(off_at);
  Reject(Patched(off_at, off + 4, 8).b, "not 64-byte aligned");
  Reject(Patched(off_at, (good_.size(2) + 64) / 64 * 64, 8).b, "runs past the tensor data section");
  Reject(Patched(off_at, UINT64_MAX - 63, 8).b, "runs past the tensor data section");
  Reject(Patched(off_at + 8, 61, 8).b, "data size 61 != 60");
  Reject(Patched(rec, 200, 1).b, "200 is not a known dtype");
  Reject(Patched(rec + 1 + 4, static_cast<uint64_t>(-3), 8).b, "negative tensor dim");
  // Dims whose product overflows: 2^62 x 5.
  Reject(Patched(rec + 1 + 4, 1ull << 62, 8).b, "overflows 64 bits");
  Reject(Patched(off_at + 16, 0x80, 1).b, "unknown tensor annotation bits");
}

TEST_F(EpkCorruptionTest, EnumsAndFlags) {
  size_t bits = good_.Find(1, "bits");  // int attribute: name, u8 kind, ...
  Reject(Patched(bits + 4, 99, 1).b, "unknown kind 99");
  size_t sum = good_.Find(1, "sum");  // node output: name, ValueType (u8 kind first)
  Reject(Patched(sum + 3, 9, 1).b, "value type kind 9");
  Reject(Patched(sum + 4, 77, 1).b, "not a known dtype");
  Reject(Patched(sum + 5, 2, 1).b, "not 0 or 1");
}

TEST_F(EpkCorruptionTest, DuplicateAndUndefinedNames) {
  // Rename initializer "w_i64" to "w_f64" (same length): a value defined twice.
  Reject(Patched(good_.Find(1, "w_i64") + 2, 'f', 1).b, "'w_f64' is defined more than once");
  EpkFile f = good_;
  f.b.replace(f.Find(0, "pass_log"), 8, "producer");
  f.Seal();
  Reject(f.b, "metadata key 'producer' appears twice");
  // Rename attribute "gains" to "alpha".
  f = good_;
  f.b.replace(f.Find(1, "gains"), 5, "alpha");
  f.Seal();
  Reject(f.b, "attribute 'alpha' twice");
  f = good_;
  f.b[f.Find(1, "edgepresx") + 8] = 's';
  f.Seal();
  Reject(f.b, "opset domain 'edgepress' is imported twice");
  // Graph output refers to a name nobody defines.
  f = good_;
  size_t mm = f.b.rfind(std::string("\x02\0\0\0mm", 6));
  f.b[mm + 5] = 'q';
  f.Seal();
  Reject(f.b, "output 'mq' is not defined");
}

TEST_F(EpkCorruptionTest, SubgraphNestingIsBounded) {
  // A chain of 70 nested If bodies: writable, but deeper than a reader accepts.
  ir::Model m;
  ir::Value* x = m.graph->AddInput("x", ValueType::Tensor(DType::kBool, ir::Shape{}));
  Graph* g = m.graph.get();
  ir::Value* cond = x;
  for (int d = 0; d < 70; ++d) {
    ir::Node* n = g->AddNode("If", {cond}, {"o" + std::to_string(d)});
    auto body = std::make_shared<Graph>();
    n->set_attr(Attribute::GraphValue("then_branch", body));
    g = body.get();
  }
  SaveEpk(m, dir_ / "deep.epk");
  Reject(ReadFileToString(dir_ / "deep.epk"), "nest deeper than 64");
}

TEST_F(EpkCorruptionTest, RandomGraphSectionDamageNeverCrashes) {
  // Re-sealed random byte changes in the graph section: each file either loads or throws
  // an Error; under ASan/UBSan this is the crash check.
  std::mt19937 rng(1234);
  size_t off = good_.offset(1), size = good_.size(1);
  int rejected = 0, loaded = 0;
  for (int iter = 0; iter < 400; ++iter) {
    EpkFile f = good_;
    int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) f.b[off + rng() % size] = static_cast<char>(rng());
    f.Seal();
    std::string path = Write(dir_, "fuzz.epk", f.b);
    try {
      LoadEpk(path);
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 200);
  EXPECT_EQ(rejected + loaded, 400);
}

// -------------------------------------------------------------- sparse storage (2.0)

// A float tensor whose entries are zero with probability `zeros` (others in [0.5, 1.5)).
Tensor SparseFloat(std::vector<int64_t> shape, double zeros, uint32_t seed) {
  Tensor t(DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  float* p = t.mutable_data<float>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = u(rng) < zeros ? 0.f : 0.5f + static_cast<float>(u(rng));
  return t;
}

// Keeps `n` of every `m` entries along axis 0 of a 2-D tensor (MatMul weights reduce along
// K = axis 0) and annotates it the way prune-nm does.
Tensor NMFloat(int64_t k, int64_t cols, int n, int m, uint32_t seed) {
  Tensor t = SparseFloat({k, cols}, 0.0, seed);
  float* p = t.mutable_data<float>();
  std::mt19937 rng(seed);
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t g = 0; g < k; g += m) {
      const int start = static_cast<int>(rng() % m);
      for (int s = 0; s < m; ++s)
        if ((s - start + m) % m >= n) p[(g + s) * cols + j] = 0.f;
    }
  ir::SparseEncoding e;
  e.kind = ir::SparseEncoding::Kind::kNM;
  e.n = n;
  e.m = m;
  e.axis = 0;
  t.sparse = e;
  return t;
}

std::unique_ptr<ir::Model> SparseModel() {
  auto m = std::make_unique<ir::Model>();
  Graph& g = *m->graph;
  g.name = "sparse";
  g.AddInitializer("w_bitmask", SparseFloat({64, 64}, 0.9, 1));
  g.AddInitializer("w_csr", SparseFloat({64, 64}, 0.99, 2));
  g.AddInitializer("w_nm", NMFloat(16, 8, 2, 4, 3));
  g.AddInitializer("w_nm3", NMFloat(6, 4, 1, 3, 4));
  Tensor i8(DType::kInt8, {32, 48});
  for (uint64_t i = 0; i < i8.numel(); i += 3) i8.mutable_data<int8_t>()[i] = static_cast<int8_t>(i % 200 - 100);
  g.AddInitializer("w_int8", i8);
  Tensor neg = SparseFloat({100}, 0.8, 5);
  neg.mutable_data<float>()[1] = -0.0f;  // not all-zero bytes: must survive as -0.0
  g.AddInitializer("w_negzero", neg);
  g.AddInitializer("w_dense", SparseFloat({16, 16}, 0.05, 6));
  ir::Value* x = g.AddInput("x", ValueType::Tensor(DType::kFloat32, ir::MakeShape({1, 64})));
  ir::Node* mm = g.AddNode("MatMul", {x, g.FindValue("w_bitmask")}, {"y"}, "mm");
  g.AddOutput(mm->output(0));
  return m;
}

TEST(EpkSparseTest, StorageIsChosenFromTheDataAndRoundTripsExactly) {
  TempDir dir;
  auto m = SparseModel();
  const Graph& g = *m->graph;
  auto layout = [&](const char* name) {
    return std::string(EpkStorageFor(*g.FindValue(name)->initializer()).layout);
  };
  EXPECT_EQ(layout("w_bitmask"), "bitmask");
  EXPECT_EQ(layout("w_csr"), "csr");
  EXPECT_EQ(layout("w_nm"), "nm");
  EXPECT_EQ(layout("w_nm3"), "nm");
  EXPECT_EQ(layout("w_int8"), "bitmask");
  EXPECT_EQ(layout("w_dense"), "dense") << "5% zeros must not be stored sparse";
  SaveEpk(*m, dir / "s.epk");
  auto back = LoadEpk(dir / "s.epk");
  for (const ir::Value* v : g.initializers()) {
    const Tensor* t = back->graph->FindValue(v->name())->initializer();
    EXPECT_EQ(*t, *v->initializer()) << v->name();  // bytes and annotations (incl. axis)
  }
  const Tensor* nm = back->graph->FindValue("w_nm")->initializer();
  ASSERT_TRUE(nm->sparse);
  EXPECT_EQ(nm->sparse->axis, 0);
  EXPECT_TRUE(nm->buffer()->owned()) << "sparse blobs expand into owned dense memory";
  EXPECT_TRUE(std::signbit(back->graph->FindValue("w_negzero")->initializer()->data<float>()[1]));
  EXPECT_EQ(EpkGraphBytes(*back), EpkGraphBytes(*m));
  SaveEpk(*back, dir / "t.epk");
  EXPECT_EQ(ReadFileToString(dir / "s.epk"), ReadFileToString(dir / "t.epk"));
}

TEST(EpkSparseTest, TwoFourAndNinetyPercentStorageSizes) {
  // The numbers docs/sparse.md reports: a 1024 x 1024 fp32 linear weight.
  const Tensor nm = NMFloat(1024, 1024, 2, 4, 11);
  const EpkTensorStorage s24 = EpkStorageFor(nm);
  EXPECT_STREQ(s24.layout, "nm");
  EXPECT_LE(static_cast<double>(s24.stored_bytes), 0.6 * s24.dense_bytes);
  const EpkTensorStorage s90 = EpkStorageFor(SparseFloat({1024, 1024}, 0.9, 12));
  EXPECT_LE(static_cast<double>(s90.stored_bytes), 0.2 * s90.dense_bytes);
  // Without the annotation a 2:4 weight is still stored compactly (bitmask).
  Tensor plain = nm;
  plain.sparse.reset();
  EXPECT_STREQ(EpkStorageFor(plain).layout, "bitmask");
  // Whole files: the same model with the weight dense vs 2:4.
  TempDir dir;
  ir::Model a, b;
  a.graph->AddInitializer("w", SparseFloat({1024, 1024}, 0.0, 13));
  b.graph->AddInitializer("w", nm);
  SaveEpk(a, dir / "dense.epk");
  SaveEpk(b, dir / "nm.epk");
  EXPECT_LE(static_cast<double>(FileSize(dir / "nm.epk")), 0.6 * FileSize(dir / "dense.epk"));
}

TEST(EpkSparseTest, ReadsVersion1Files) {
  // Written by the 1.0 writer (before sparse storage and SparseEncoding::axis) from
  // RichModel(); the 2.0 reader must load it unchanged.
  const std::string path = std::string(EDGEPRESS_SOURCE_DIR) + "/tests/formats/epk/rich_v1.epk";
  const std::string bytes = ReadFileToString(path);
  ASSERT_EQ(bytes[8], 1) << "fixture is not a version 1 file";
  EpkMetadata md;
  auto m = LoadEpk(path, &md);
  EXPECT_EQ(md, Meta());
  EXPECT_EQ(EpkGraphBytes(*m), EpkGraphBytes(*RichModel()));
  EXPECT_EQ(m->graph->FindValue("q_group")->initializer()->sparse->axis, -1);
}

class EpkSparseCorruptionTest : public EpkCorruptionTest {
 protected:
  void SetUp() override {
    SaveEpk(*SparseModel(), dir_ / "sparse.epk", {}, V2());
    good_.b = ReadFileToString(dir_ / "sparse.epk");
  }
  // Byte position of the storage field of initializer `name` (rank-2 unless said).
  size_t Storage(const std::string& name, int rank = 2) const {
    std::string rec = std::string(1, static_cast<char>(name.size())) + std::string(3, '\0') + name;
    return good_.Find(1, rec) + rec.size() + 1 + 4 + 8 * static_cast<size_t>(rank);
  }
  // Byte position, in the file, of initializer `name`'s blob.
  size_t Blob(const std::string& name) const {
    return good_.offset(2) + good_.U64(Storage(name) + 1);
  }
};

TEST_F(EpkSparseCorruptionTest, StorageField) {
  Reject(Patched(Storage("w_csr"), 9, 1).b, "tensor storage 9 is not 0 (dense)");
  // Dense storage where the data size is that of the sparse blob.
  Reject(Patched(Storage("w_csr"), 0, 1).b, "tensor data size");
}

TEST_F(EpkSparseCorruptionTest, BitmaskCountsAndMask) {
  const size_t st = Storage("w_bitmask"), nnz_at = st + 17;
  const uint64_t nnz = good_.U64(nnz_at);
  // A value count that disagrees with the data size, and a truncated mask.
  Reject(Patched(nnz_at, nnz + 1, 8).b, "bitmask storage: data size");
  Reject(Patched(st + 9, good_.U64(st + 9) - 1, 8).b, "truncated mask");
  Reject(Patched(nnz_at, UINT64_MAX, 8).b, "value count 18446744073709551615 exceeds");
  // Mask popcount != value count: clear a set bit in the mask (then re-seal).
  EpkFile f = good_;
  size_t at = Blob("w_bitmask");
  while (f.b[at] == 0) ++at;
  f.b[at] = static_cast<char>(f.b[at] & (f.b[at] - 1));
  f.Seal();
  std::string msg = Reject(f.b, "set bits but " + std::to_string(nnz) + " values are stored");
  EXPECT_NE(msg.find("tensor 'w_bitmask'"), std::string::npos) << msg;
}

TEST_F(EpkSparseCorruptionTest, CsrIndicesAndRowPointers) {
  const size_t st = Storage("w_csr");
  const uint64_t nnz = good_.U64(st + 18);
  Reject(Patched(st + 17, 3, 1).b, "index width 3 is not 2 or 4");
  Reject(Patched(st + 18, nnz + 1, 8).b, "csr storage: data size");
  const size_t blob = Blob("w_csr"), idx = blob + 65 * 4;
  // Row pointers: first not 0, decreasing, past nnz, last != nnz.
  Reject(Patched(blob, 1, 4).b, "first row pointer is 1");
  ASSERT_LT(good_.U32(blob + 8), nnz);
  Reject(Patched(blob + 4, nnz, 4).b, "row pointers decrease at row 1");
  Reject(Patched(blob + 4, nnz + 5, 4).b, "exceeds the value count");
  // Rows from the first pointer that reaches nnz onwards lose their values: pointers stay
  // monotonic and in range, but the last one no longer equals the value count.
  size_t full = 1;
  while (good_.U32(blob + 4 * full) != nnz) ++full;
  const uint32_t keep = good_.U32(blob + 4 * (full - 1));
  EpkFile f = good_;
  for (size_t q = full; q <= 64; ++q) f.Put(blob + 4 * q, keep, 4);
  f.Seal();
  Reject(f.b, "last row pointer is " + std::to_string(keep) + " but " + std::to_string(nnz));
  // Column index out of range, and a duplicate (not strictly increasing) index.
  std::string msg = Reject(Patched(idx, 64, 2).b, "column index 64 in row");
  EXPECT_NE(msg.find("out of range (64 columns)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tensor 'w_csr'"), std::string::npos) << msg;
  size_t row = 0;
  while (good_.U32(blob + 4 * (row + 1)) - good_.U32(blob + 4 * row) < 2) ++row;  // 2+ values
  const size_t first = good_.U32(blob + 4 * row);
  Reject(Patched(idx + 2 * (first + 1), good_.U32(idx + 2 * first) & 0xFFFF, 2).b,
         "not strictly increasing");
}

TEST_F(EpkSparseCorruptionTest, NMPatternAndIndices) {
  const size_t st = Storage("w_nm");
  Reject(Patched(st + 17, 4, 4).b, "4:4 is not a valid N:M pattern");
  Reject(Patched(st + 21, 3, 4).b, "dimension 16 of axis 0 is not a multiple of m = 3");
  Reject(Patched(st + 25, 5, 4).b, "axis 5 is out of range for rank 2");
  Reject(Patched(st + 21, 8, 4).b, "nm storage: data size");
  // Indices follow 16 x 8 / 2 = 64 values; slots 0 and 1 of the first group get the same
  // index.
  const size_t bits = Blob("w_nm") + 64 * 4;
  const uint8_t b0 = static_cast<uint8_t>(good_.b[bits]);
  std::string msg = Reject(Patched(bits, (b0 & 0xF0) | (b0 & 3) | ((b0 & 3) << 2), 1).b,
                           "appears twice in group 0");
  EXPECT_NE(msg.find("tensor 'w_nm'"), std::string::npos) << msg;
  // 1:3 stores 2-bit indices: 3 is representable but not below m.
  const size_t bits3 = good_.offset(2) + good_.U64(Storage("w_nm3") + 1) + 8 * 4;
  Reject(Patched(bits3, (static_cast<uint8_t>(good_.b[bits3]) & 0xFC) | 3, 1).b,
         "index 3 of group 0 is not below m = 3");
}

TEST_F(EpkSparseCorruptionTest, ExpansionIsBounded) {
  // w_csr's dims become [1, 2^40]: a few hundred stored bytes claiming 4 TiB of floats.
  const size_t dims = Storage("w_csr") - 16;
  EpkFile f = good_;
  f.Put(dims, 1, 8);
  f.Put(dims + 8, uint64_t{1} << 40, 8);
  f.Seal();
  Reject(f.b, "would expand to 4398046511104");
}

TEST_F(EpkSparseCorruptionTest, RandomDataSectionDamageNeverCrashes) {
  std::mt19937 rng(99);
  size_t off = good_.offset(2), size = good_.size(2);
  int rejected = 0;
  for (int iter = 0; iter < 300; ++iter) {
    EpkFile f = good_;
    f.b[off + rng() % size] = static_cast<char>(rng());
    f.Seal();
    try {
      LoadEpk(Write(dir_, "fz.epk", f.b));
    } catch (const Error&) {
      ++rejected;
    }
  }
  // Values are free-form; only mask, pointer and index damage is detectable.
  EXPECT_GT(rejected, 0);
}

// -------------------------------------------------------------- compact records (3.0)

uint64_t GetVarint(const std::string& s, size_t at, size_t* len) {
  uint64_t v = 0;
  size_t i = 0;
  for (;; ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(s[at + i]) & 0x7F) << (7 * i);
    if (!(static_cast<uint8_t>(s[at + i]) & 0x80)) break;
  }
  *len = i + 1;
  return v;
}
std::string Varint(uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>((v & 0x7F) | 0x80));
  out.push_back(static_cast<char>(v));
  return out;
}

EpkWriteOptions Uncompressed() {
  EpkWriteOptions o;
  o.compress = false;
  return o;
}

// Initializers whose 3.0 records are easy to find by dtype and dims: "a" f32[3,5] and
// "c" i8[3] (small blobs), "d" f32[2] (small, after a byte of alignment padding) and
// "big" f32[16,32] (2 KiB: a large, 64-byte aligned blob).
std::unique_ptr<ir::Model> CompactModel() {
  auto m = std::make_unique<ir::Model>();
  Graph& g = *m->graph;
  g.name = "compact";
  g.AddInitializer("a", Filled(DType::kFloat32, {3, 5}, 1));
  g.AddInitializer("c", Filled(DType::kInt8, {3}, 2));
  g.AddInitializer("d", Filled(DType::kFloat32, {2}, 3));
  g.AddInitializer("big", Filled(DType::kFloat32, {16, 32}, 4));
  ir::Value* x = g.AddInput("x", ValueType::Tensor(DType::kFloat32, ir::MakeShape({3, 5})));
  ir::Node* add = g.AddNode("Add", {x, g.FindValue("a")}, {"y"}, "add");
  g.AddOutput(add->output(0));
  return m;
}

class EpkCompactTest : public EpkCorruptionTest {
 protected:
  void SetUp() override {
    SaveEpk(*CompactModel(), dir_ / "c.epk", Meta(), Uncompressed());
    good_.b = ReadFileToString(dir_ / "c.epk");
    SaveEpk(*RichModel(), dir_ / "z.epk", Meta());
    z_.b = ReadFileToString(dir_ / "z.epk");
    for (const EpkFile* f : {&good_, &z_}) {
      ASSERT_EQ(f->b[8], 3);
      // 3.0 order: tensor data (64-aligned, right after the table), metadata, graph.
      ASSERT_EQ(f->U32(f->entry(0)), 3u);
      ASSERT_EQ(f->offset(0), 128u);
      ASSERT_EQ(f->U32(f->entry(2)), 2u);
      ASSERT_EQ(f->offset(2) + f->size(2), f->b.size());
    }
    ASSERT_EQ(good_.U32(good_.entry(2) + 4), 0u) << "written uncompressed";
    ASSERT_EQ(z_.U32(z_.entry(2) + 4), 1u) << "graph section compressed";
    ASSERT_EQ(z_.U32(z_.entry(1) + 4), 1u) << "metadata section compressed";
  }
  std::string Graph(const EpkFile& f) const { return f.b.substr(f.offset(2), f.size(2)); }
  // `f` with its graph section (the last one) replaced by `payload`, re-sealed.
  static EpkFile WithGraph(const EpkFile& f, const std::string& payload, uint32_t flags) {
    EpkFile out = f;
    out.b = f.b.substr(0, f.offset(2)) + payload;
    out.Put(out.entry(2) + 4, flags, 4);
    out.Put(out.entry(2) + 16, payload.size(), 8);
    out.Put(16, out.b.size(), 8);
    out.Seal();
    return out;
  }
  // The uncompressed graph section with bytes [at, at + n) replaced by `with`.
  EpkFile Spliced(size_t at, size_t n, const std::string& with) const {
    std::string g = Graph(good_);
    g.replace(at, n, with);
    return WithGraph(good_, g, 0);
  }
  // End of the string table; the small-blob base varint starts there.
  size_t TableEnd() const {
    const std::string g = Graph(good_);
    size_t len, at = 0;
    uint64_t n = GetVarint(g, at, &len);
    at += len;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t k = GetVarint(g, at, &len);
      at += len + k;
    }
    return at;
  }
  // Position in the graph section of the storage byte of the dense tensor record with
  // this dtype and rank/dims prefix (after the table, so names cannot match).
  size_t Storage(const std::string& dtype_and_dims) const {
    size_t p = Graph(good_).find(dtype_and_dims + std::string(1, '\0'), TableEnd());
    EXPECT_NE(p, std::string::npos);
    return p + dtype_and_dims.size();
  }
  size_t At(size_t graph_pos) const { return good_.offset(2) + graph_pos; }

  EpkFile z_;  // RichModel, compressed sections
};

const std::string kA("\x01\x02\x06\x0a", 4);         // f32, rank 2, dims 3 x 5 (zigzag)
const std::string kD("\x01\x01\x04", 3);             // f32, rank 1, dim 2
const std::string kBig("\x01\x02\x20\x40", 4);       // f32, rank 2, dims 16 x 32

TEST_F(EpkCompactTest, UncompressedAndCompressedFilesLoadTheSameModel) {
  auto c = LoadEpk(dir_ / "c.epk");
  EXPECT_EQ(EpkGraphBytes(*c), EpkGraphBytes(*CompactModel()));
  // Every blob is a zero-copy view of the mapping: the 2 KiB weight 64-byte aligned (for
  // SIMD kernels), the small ones at their element size.
  for (const auto& [name, align] : std::vector<std::pair<std::string, uintptr_t>>{{"big", 64}, {"a", 4}, {"c", 1}, {"d", 4}}) {
    const Tensor* t = c->graph->FindValue(name)->initializer();
    EXPECT_FALSE(t->buffer()->owned()) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->raw()) % align, 0u) << name;
    EXPECT_EQ(*t, *CompactModel()->graph->FindValue(name)->initializer()) << name;
  }
  // "d" follows "c" (3 bytes) after one byte of padding, in the small group after "big".
  EXPECT_EQ(static_cast<const uint8_t*>(c->graph->FindValue("d")->initializer()->raw()) -
                static_cast<const uint8_t*>(c->graph->FindValue("big")->initializer()->raw()),
            2048 + 60 + 3 + 1);
  EpkMetadata md;
  EXPECT_EQ(EpkGraphBytes(*LoadEpk(dir_ / "z.epk", &md)), EpkGraphBytes(*RichModel()));
  EXPECT_EQ(md, Meta());
  // Record layout the tests below rely on: "d" sits one byte past "c"'s end.
  size_t len;
  EXPECT_EQ(GetVarint(Graph(good_), Storage(kD) + 1, &len), 1u);
  EXPECT_EQ(GetVarint(Graph(good_), Storage(kA) + 1, &len), 0u);
}

TEST_F(EpkCompactTest, SectionFlagsAndAlignment) {
  // The mapped tensor data section may not be compressed; unknown flag bits are errors.
  EpkFile f = z_;
  f.Put(f.entry(0) + 4, 1, 4);
  f.Seal();
  Reject(f.b, "section 0 (kind 3): flags 1 and reserved fields must be zero");
  f = z_;
  f.Put(f.entry(2) + 4, 3, 4);
  f.Seal();
  Reject(f.b, "but for bit 0 (zlib)");
  // A compressed section read as plain records, and plain records read as deflate.
  f = z_;
  f.Put(f.entry(1) + 4, 0, 4);
  f.Seal();
  Reject(f.b, "metadata");
  Reject(WithGraph(good_, Graph(good_), 1).b, "graph section");
  // Only the tensor data section must be 64-byte aligned.
  EXPECT_NE(good_.offset(1) % 64, 0u) << "metadata packed right after the tensor data";
  Reject(Patched(good_.entry(0) + 8, 144, 8).b, "offset 144 is not a multiple of 64");
}

TEST_F(EpkCompactTest, DeflatedSectionSizesAndStream) {
  const std::string g = Graph(z_);
  size_t len;
  const uint64_t raw = GetVarint(g, 0, &len);
  const std::string stream = g.substr(len);
  Reject(WithGraph(z_, Varint(raw + 1) + stream, 1).b,
         "holds " + std::to_string(raw) + " bytes, the section says " + std::to_string(raw + 1));
  Reject(WithGraph(z_, Varint(raw - 1) + stream, 1).b, "holds more than the " + std::to_string(raw - 1));
  Reject(WithGraph(z_, Varint(uint64_t{1} << 40) + stream, 1).b, "more than deflate can expand");
  Reject(WithGraph(z_, Varint(raw) + stream + "x", 1).b, "1 unexpected bytes after the deflate stream");
  Reject(WithGraph(z_, Varint(raw) + stream.substr(0, stream.size() / 2), 1).b, "deflate stream");
  std::string bad = stream;
  bad[0] = static_cast<char>(bad[0] ^ 0x06);  // block type 3 does not exist
  Reject(WithGraph(z_, Varint(raw) + bad, 1).b, "deflate stream is corrupt");
}

TEST_F(EpkCompactTest, StringTable) {
  size_t len;
  const uint64_t count = GetVarint(Graph(good_), 0, &len);
  Reject(Spliced(0, len, Varint(0xFFFFFFFFu)).b, "string table count 4294967295 exceeds");
  Reject(Spliced(0, len, Varint(uint64_t{1} << 32)).b, "string table 4294967296 does not fit 32 bits");
  // First entry's length runs past the section.
  size_t count_len;
  GetVarint(Graph(good_), 0, &count_len);
  GetVarint(Graph(good_), count_len, &len);
  Reject(Spliced(count_len, len, Varint(100000)).b, "string table entry length 100000 exceeds");
  // Initializer "a"'s name, the index just before its tensor record, points past the table.
  const size_t name = Storage(kA) - kA.size() - 1;
  ASSERT_LT(count, 0x7Fu);
  Reject(Patched(At(name), 0x7F, 1).b, "string index 127 is out of range (the table holds " +
                                          std::to_string(count) + " strings)");
}

TEST_F(EpkCompactTest, VarintsAndSmallBlobBase) {
  const size_t base = TableEnd();
  size_t len;
  const uint64_t small = GetVarint(Graph(good_), base, &len);
  EXPECT_EQ(small, 2048u) << "small blobs follow the 2 KiB blob";
  Reject(Spliced(base, len, Varint(good_.size(0) + 1)).b, "small blob base");
  Reject(Spliced(base, len, std::string("\x80\x90\x00", 3)).b, "not minimally encoded");
  Reject(Spliced(base, len, std::string(10, '\xFF') + "\x01").b, "overflows 64 bits");
  Reject(Spliced(base, len, std::string(9, '\xFF') + "\x02").b, "overflows 64 bits");
}

TEST_F(EpkCompactTest, TensorOffsetStepsAndTypeForm) {
  // Steps are from the end of the previous blob of the same class (small or large).
  Reject(Patched(At(Storage(kA) + 1), 0x7C, 1).b, "runs past the tensor data section");
  Reject(Patched(At(Storage(kD) + 1), 0, 1).b, "is not 4-byte aligned");
  Reject(Patched(At(Storage(kBig) + 1), 1, 1).b, "is not 64-byte aligned");
  Reject(Spliced(Storage(kA) + 1, 1, Varint(UINT64_MAX)).b, "tensor data");
  // After the step: annotations (0), then the type form (1: the tensor's own type).
  const size_t form = Storage(kA) + 3;
  ASSERT_EQ(Graph(good_)[form], 1);
  Reject(Patched(At(form), 2, 1).b, "initializer type form 2 is not 0 or 1");
  // Form 0: an explicit type follows, so the next bytes are misread.
  Reject(Patched(At(form), 0, 1).b, "");
}

TEST_F(EpkCompactTest, SparseDataSizeField) {
  SaveEpk(*SparseModel(), dir_ / "s.epk", {}, Uncompressed());
  EpkFile f;
  f.b = ReadFileToString(dir_ / "s.epk");
  // w_csr: f32, rank 2, dims 64 x 64 (zigzag 128: two bytes each), storage 2, data size.
  const std::string rec("\x01\x02\x80\x01\x80\x01\x02", 7);
  const size_t at = f.b.find(rec, f.offset(2));
  ASSERT_NE(at, std::string::npos);
  size_t len;
  const uint64_t size = GetVarint(f.b, at + rec.size(), &len);
  std::string g = f.b.substr(f.offset(2));
  g.replace(at - f.offset(2) + rec.size(), len, Varint(size + 2));
  Reject(WithGraph(f, g, 0).b, "csr storage: data size");
}

TEST_F(EpkCompactTest, TruncationAndRandomDamageNeverCrash) {
  const std::string g = Graph(good_);
  for (size_t n = 0; n < g.size(); ++n) Reject(WithGraph(good_, g.substr(0, n), 0).b, "");
  std::mt19937 rng(77);
  int rejected = 0;
  for (const EpkFile* f : {&good_, &z_}) {
    const std::string gz = Graph(*f);
    for (int iter = 0; iter < 200; ++iter) {
      std::string d = gz;
      d[rng() % d.size()] = static_cast<char>(rng());
      try {
        LoadEpk(Write(dir_, "fz.epk", WithGraph(*f, d, f->U32(f->entry(2) + 4)).b));
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 200);
}

TEST_F(EpkCompactTest, StringReferencesAreBounded) {
  // 200 nodes whose doc is the same 256 KiB string: one table entry, 50 MiB of references.
  // The writer refuses (a reader would); version 2 spells every string out and takes it.
  ir::Model m;
  ir::Value* x = m.graph->AddInput("x", ValueType::Tensor(DType::kFloat32, ir::MakeShape({1})));
  const std::string doc(256 << 10, 'd');
  for (int i = 0; i < 200; ++i) {
    ir::Node* n = m.graph->AddNode("Relu", {x}, {"r" + std::to_string(i)});
    n->doc = doc;
  }
  try {
    SaveEpk(m, dir_ / "long.epk");
    ADD_FAILURE() << "writer accepted 50 MiB of string references";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("write it as version 2"), std::string::npos) << e.what();
  }
  EpkWriteOptions v2;
  v2.version_major = 2;
  SaveEpk(m, dir_ / "long.epk", {}, v2);
  EXPECT_EQ(LoadEpk(dir_ / "long.epk")->graph->nodes()[199]->doc, doc);
}

// -------------------------------------------------------------- old versions

TEST(EpkVersionTest, ReadsVersion2FilesAndWritesThemByteForByte) {
  // rich_v2.epk was written by the 2.0 writer (before 3.0's compact records) from
  // RichModel() and Meta(); the 3.0 reader loads it, and the writer's 2.0 path still
  // produces exactly those bytes.
  const std::string path = std::string(EDGEPRESS_SOURCE_DIR) + "/tests/formats/epk/rich_v2.epk";
  const std::string bytes = ReadFileToString(path);
  ASSERT_EQ(bytes[8], 2) << "fixture is not a version 2 file";
  EpkMetadata md;
  auto m = LoadEpk(path, &md);
  EXPECT_EQ(md, Meta());
  EXPECT_EQ(EpkGraphBytes(*m), EpkGraphBytes(*RichModel()));
  TempDir dir;
  EpkWriteOptions v2;
  v2.version_major = 2;
  SaveEpk(*RichModel(), dir / "v2.epk", Meta(), v2);
  EXPECT_EQ(ReadFileToString(dir / "v2.epk"), bytes);
}

TEST(EpkVersionTest, EveryFixtureRoundTripsBitExactThroughVersion3) {
  TempDir dir;
  for (const char* name : {"rich_v1.epk", "rich_v2.epk"}) {
    EpkMetadata md;
    auto m = LoadEpk(std::string(EDGEPRESS_SOURCE_DIR) + "/tests/formats/epk/" + name, &md);
    SaveEpk(*m, dir / "a.epk", md);
    ASSERT_EQ(ReadFileToString(dir / "a.epk")[8], 3);
    EpkMetadata md2;
    auto back = LoadEpk(dir / "a.epk", &md2);
    EXPECT_EQ(md2, md) << name;
    EXPECT_EQ(EpkGraphBytes(*back), EpkGraphBytes(*m)) << name;
    EXPECT_EQ(ir::DumpText(*back), ir::DumpText(*m)) << name;
    for (const ir::Value* v : m->graph->initializers())
      EXPECT_EQ(*back->graph->FindValue(v->name())->initializer(), *v->initializer()) << name << " " << v->name();
    SaveEpk(*back, dir / "b.epk", md2);
    EXPECT_EQ(ReadFileToString(dir / "a.epk"), ReadFileToString(dir / "b.epk")) << name;
  }
  // Sparse storage through both writer paths.
  auto s = SparseModel();
  for (uint16_t major : {2, 3}) {
    EpkWriteOptions o;
    o.version_major = major;
    SaveEpk(*s, dir / "s.epk", {}, o);
    auto back = LoadEpk(dir / "s.epk");
    for (const ir::Value* v : s->graph->initializers())
      EXPECT_EQ(*back->graph->FindValue(v->name())->initializer(), *v->initializer()) << major << " " << v->name();
  }
  EpkWriteOptions v1;
  v1.version_major = 1;
  EXPECT_THROW(SaveEpk(*s, dir / "x.epk", {}, v1), Error);
}

}  // namespace
}  // namespace edgepress::formats
