// Malformed ONNX input: truncated and bit-flipped files, external-data escapes and
// inconsistencies, huge declared sizes, dangling names and wrong attribute types. Each
// must give an edgepress::Error that names the file (never a crash, never another
// exception type); CI runs this suite under ASan/UBSan.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "ir/file_util.h"
#include "tests/formats/onnx/proto_writer.h"

namespace fs = std::filesystem;
using namespace edgepress;
using namespace edgepress::test_util;

namespace {

fs::path WorkDir(const std::string& name) {
  fs::path d = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "onnx_bad" / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

Proto RawFloatTensor(const std::string& name, const std::vector<int64_t>& dims,
                     const std::vector<float>& v) {
  Proto t;
  for (int64_t d : dims) t.Varint(onnxf::kDims, static_cast<uint64_t>(d));
  t.Varint(onnxf::kDataType, 1).Bytes(onnxf::kTensorName, name);
  t.Bytes(onnxf::kRawData, std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
  return t;
}

// y = Relu(x + w), x and w f32[4]; `w` as given.
std::string AddReluModel(const Proto& w) {
  Proto g;
  g.Msg(onnxf::kNode, Proto()
                          .Bytes(onnxf::kNodeInput, "x")
                          .Bytes(onnxf::kNodeInput, "w")
                          .Bytes(onnxf::kNodeOutput, "s")
                          .Bytes(onnxf::kNodeName, "add0")
                          .Bytes(onnxf::kOpType, "Add"));
  g.Msg(onnxf::kNode, Proto()
                          .Bytes(onnxf::kNodeInput, "s")
                          .Bytes(onnxf::kNodeOutput, "y")
                          .Bytes(onnxf::kNodeName, "relu0")
                          .Bytes(onnxf::kOpType, "Relu"));
  g.Bytes(onnxf::kName, "g");
  g.Msg(onnxf::kInitializer, w);
  g.Msg(onnxf::kInput, ValueInfo("x", {4}));
  g.Msg(onnxf::kOutput, ValueInfo("y", {4}));
  return ModelBytes(g);
}

// Expects LoadOnnx(path) to throw an Error whose message names the file and contains
// `needle`.
void ExpectError(const std::string& path, const std::string& needle) {
  try {
    formats::LoadOnnx(path);
    ADD_FAILURE() << path << ": loaded, expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "message lacks '" << needle << "': " << msg;
  }
}

// Loads without crashing; Error is fine, anything else fails the test.
bool LoadsOrErrors(const std::string& bytes, const std::string& name) {
  try {
    auto m = formats::LoadOnnxFromBytes(bytes, name, "");
    try {
      formats::SerializeOnnx(*m);  // what loads must export too, or fail cleanly
    } catch (const Error&) {
    }
    return true;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    return false;
  } catch (const std::exception& e) {
    ADD_FAILURE() << name << ": non-edgepress exception: " << e.what();
    return false;
  }
}

// Small real models covering weights, Loop/If/Scan subgraphs and sequence types.
std::vector<std::string> SampleModels() {
  std::vector<std::string> out = {AddReluModel(RawFloatTensor("w", {4}, {1, 2, 3, 4}))};
  for (const char* m : {"pytorch-converted/test_Conv2d", "node/test_loop11", "node/test_if_seq",
                        "node/test_scan9_sum", "node/test_squeeze", "simple/test_sequence_model1"}) {
    std::string p = std::string("/usr/share/libonnx-testdata/data/") + m + "/model.onnx";
    if (FileExists(p)) out.push_back(ReadFileToString(p));
  }
  return out;
}

}  // namespace

TEST(OnnxBadInput, ValidBaselineLoads) {
  fs::path d = WorkDir("baseline");
  std::string p = (d / "m.onnx").string();
  WriteFileAtomic(p, AddReluModel(RawFloatTensor("w", {4}, {1, 2, 3, 4})));
  auto m = formats::LoadOnnx(p);
  ASSERT_EQ(m->graph->num_nodes(), 2u);
  EXPECT_EQ(m->graph->initializers()[0]->initializer()->ToDouble(),
            (std::vector<double>{1, 2, 3, 4}));
}

TEST(OnnxBadInput, TruncatedAtManyLengths) {
  int loaded = 0, errors = 0;
  for (const std::string& bytes : SampleModels()) {
    size_t step = std::max<size_t>(1, bytes.size() / 300);
    for (size_t len = 0; len < bytes.size(); len += step) {
      if (LoadsOrErrors(bytes.substr(0, len), "truncated.onnx")) ++loaded;
      else ++errors;
    }
    for (size_t len = bytes.size() - std::min<size_t>(bytes.size(), 64); len < bytes.size(); ++len)
      if (!LoadsOrErrors(bytes.substr(0, len), "truncated.onnx")) ++errors;
  }
  std::printf("[ summary  ] truncation: %d errors, %d prefixes still parsed\n", errors, loaded);
  EXPECT_GT(errors, 100);
}

TEST(OnnxBadInput, BitFlips) {
  std::mt19937_64 rng(20261126);
  int loaded = 0, errors = 0;
  std::vector<std::string> models = SampleModels();
  for (int i = 0; i < 3000; ++i) {
    const std::string& bytes = models[static_cast<size_t>(i) % models.size()];
    std::string b = bytes;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] ^= static_cast<char>(1u << (rng() % 8));
    if (LoadsOrErrors(b, "flipped.onnx")) ++loaded;
    else ++errors;
  }
  std::printf("[ summary  ] bit flips: %d errors, %d still loaded\n", errors, loaded);
  EXPECT_GT(errors, 0);
}

TEST(OnnxBadInput, NotProtobuf) {
  fs::path d = WorkDir("garbage");
  std::string p = (d / "garbage.onnx").string();
  WriteFileAtomic(p, std::string("\xff\xff\xff\xff this is not a model"));
  ExpectError(p, "not a valid ONNX model");
  ExpectError((d / "missing.onnx").string(), "missing.onnx");
}

TEST(OnnxBadInput, HugeDeclaredDims) {
  fs::path d = WorkDir("huge");
  std::string p = (d / "huge.onnx").string();
  // 2^40 x 2^40 floats would overflow; 2^31 x 4 floats fits 64 bits but not the 16 bytes.
  WriteFileAtomic(p, AddReluModel(RawFloatTensor("w", {int64_t{1} << 40, int64_t{1} << 40},
                                                 {1, 2, 3, 4})));
  ExpectError(p, "initializer 'w'");
  WriteFileAtomic(p, AddReluModel(RawFloatTensor("w", {int64_t{1} << 31, 4}, {1, 2, 3, 4})));
  ExpectError(p, "raw_data has 16 bytes");
  // Typed field count mismatch with a huge shape: no allocation before the check.
  Proto t;
  t.Varint(onnxf::kDims, uint64_t{1} << 33).Varint(onnxf::kDataType, 1).Bytes(onnxf::kTensorName, "w");
  t.Float(onnxf::kFloatData, 1.0f);
  WriteFileAtomic(p, AddReluModel(t));
  ExpectError(p, "float_data has 1 values");
  // A negative dim (varint of -1).
  WriteFileAtomic(p, AddReluModel(RawFloatTensor("w", {-1}, {1, 2, 3, 4})));
  ExpectError(p, "negative dimension");
}

TEST(OnnxBadInput, DanglingAndWrongTypedAttributes) {
  fs::path d = WorkDir("graph");
  std::string p = (d / "m.onnx").string();
  {
    Proto g;
    g.Msg(onnxf::kNode, Proto()
                            .Bytes(onnxf::kNodeInput, "nope")
                            .Bytes(onnxf::kNodeOutput, "y")
                            .Bytes(onnxf::kNodeName, "relu0")
                            .Bytes(onnxf::kOpType, "Relu"));
    g.Msg(onnxf::kInput, ValueInfo("x", {4}));
    g.Msg(onnxf::kOutput, ValueInfo("y", {4}));
    WriteFileAtomic(p, ModelBytes(g));
    ExpectError(p, "node 'relu0' (Relu) uses 'nope'");
  }
  {
    // Squeeze-11 with `axes` declared as a float: normalisation needs ints.
    Proto g;
    g.Msg(onnxf::kNode,
          Proto()
              .Bytes(onnxf::kNodeInput, "x")
              .Bytes(onnxf::kNodeOutput, "y")
              .Bytes(onnxf::kNodeName, "sq")
              .Bytes(onnxf::kOpType, "Squeeze")
              .Msg(onnxf::kAttribute, Proto()
                                          .Bytes(onnxf::kAttrName, "axes")
                                          .Float(onnxf::kAttrF, 0.5f)
                                          .Varint(onnxf::kAttrType, onnxf::kFloat)));
    g.Msg(onnxf::kInput, ValueInfo("x", {1, 4}));
    g.Msg(onnxf::kOutput, ValueInfo("y", {4}));
    WriteFileAtomic(p, ModelBytes(g, 11));
    ExpectError(p, "attribute 'axes' is float, expected ints");
  }
  {
    // An attribute with no value at all.
    Proto g;
    g.Msg(onnxf::kNode, Proto()
                            .Bytes(onnxf::kNodeInput, "x")
                            .Bytes(onnxf::kNodeOutput, "y")
                            .Bytes(onnxf::kNodeName, "r")
                            .Bytes(onnxf::kOpType, "Relu")
                            .Msg(onnxf::kAttribute, Proto().Bytes(onnxf::kAttrName, "alpha")));
    g.Msg(onnxf::kInput, ValueInfo("x", {4}));
    g.Msg(onnxf::kOutput, ValueInfo("y", {4}));
    WriteFileAtomic(p, ModelBytes(g));
    ExpectError(p, "attribute 'alpha'");
  }
  {
    // Two producers of one name.
    Proto g;
    for (const char* n : {"a", "b"})
      g.Msg(onnxf::kNode, Proto()
                              .Bytes(onnxf::kNodeInput, "x")
                              .Bytes(onnxf::kNodeOutput, "y")
                              .Bytes(onnxf::kNodeName, n)
                              .Bytes(onnxf::kOpType, "Relu"));
    g.Msg(onnxf::kInput, ValueInfo("x", {4}));
    g.Msg(onnxf::kOutput, ValueInfo("y", {4}));
    WriteFileAtomic(p, ModelBytes(g));
    ExpectError(p, "'y' is defined more than once");
  }
}

// A model whose initializer `w` lives in external data at `location`.
std::string ExternalModel(const std::string& location, const std::string& offset,
                          const std::string& length) {
  Proto t;
  t.Varint(onnxf::kDims, 4).Varint(onnxf::kDataType, 1).Bytes(onnxf::kTensorName, "w");
  t.Msg(onnxf::kExternalData, Proto().Bytes(onnxf::kKey, "location").Bytes(onnxf::kValue, location));
  if (!offset.empty())
    t.Msg(onnxf::kExternalData, Proto().Bytes(onnxf::kKey, "offset").Bytes(onnxf::kValue, offset));
  if (!length.empty())
    t.Msg(onnxf::kExternalData, Proto().Bytes(onnxf::kKey, "length").Bytes(onnxf::kValue, length));
  t.Varint(onnxf::kDataLocation, 1);
  return AddReluModel(t);
}

TEST(OnnxBadInput, ExternalData) {
  fs::path root = WorkDir("external");
  fs::path d = root / "model";
  fs::create_directories(d);
  const std::vector<float> w = {1, 2, 3, 4};
  WriteFileAtomic((d / "w.bin").string(), std::string(reinterpret_cast<const char*>(w.data()), 16));
  WriteFileAtomic((root / "outside.bin").string(),
                  std::string(reinterpret_cast<const char*>(w.data()), 16));
  std::string p = (d / "m.onnx").string();

  WriteFileAtomic(p, ExternalModel("w.bin", "0", "16"));
  auto m = formats::LoadOnnx(p);
  EXPECT_EQ(m->graph->initializers()[0]->initializer()->ToDouble(),
            (std::vector<double>{1, 2, 3, 4}));
  WriteFileAtomic(p, ExternalModel("./w.bin", "", ""));  // offset/length default to the file
  EXPECT_NO_THROW(formats::LoadOnnx(p));

  WriteFileAtomic(p, ExternalModel("../outside.bin", "0", "16"));
  ExpectError(p, "contains '..'");
  WriteFileAtomic(p, ExternalModel("sub/../../outside.bin", "0", "16"));
  ExpectError(p, "contains '..'");
  WriteFileAtomic(p, ExternalModel((root / "outside.bin").string(), "0", "16"));
  ExpectError(p, "absolute path");
  fs::create_symlink(root / "outside.bin", d / "link.bin");
  WriteFileAtomic(p, ExternalModel("link.bin", "0", "16"));
  ExpectError(p, "outside the model's folder");
  fs::create_directory_symlink(root, d / "up");
  WriteFileAtomic(p, ExternalModel("up/outside.bin", "0", "16"));
  ExpectError(p, "outside the model's folder");
  WriteFileAtomic(p, ExternalModel("gone.bin", "0", "16"));
  ExpectError(p, "is missing");
  WriteFileAtomic(p, ExternalModel("w.bin", "8", "16"));
  ExpectError(p, "runs past the end");
  WriteFileAtomic(p, ExternalModel("w.bin", "99999999999", "16"));
  ExpectError(p, "past the end");
  WriteFileAtomic(p, ExternalModel("w.bin", "0", "18446744073709551615"));
  ExpectError(p, "runs past the end");
  WriteFileAtomic(p, ExternalModel("w.bin", "0", "8"));
  ExpectError(p, "holds 8 bytes");
  WriteFileAtomic(p, ExternalModel("w.bin", "-4", "16"));
  ExpectError(p, "not a number");
  WriteFileAtomic(p, ExternalModel("", "0", "16"));
  ExpectError(p, "without a 'location'");
  // From bytes without a folder, external data is refused.
  EXPECT_THROW(formats::LoadOnnxFromBytes(ExternalModel("w.bin", "0", "16"), "mem.onnx", ""),
               Error);
}

TEST(OnnxBadInput, BadTensorProtoFiles) {
  fs::path d = WorkDir("pb");
  std::string p = (d / "t.pb").string();
  WriteFileAtomic(p, RawFloatTensor("t", {int64_t{1} << 62, 8}, {1}).str());
  EXPECT_THROW(formats::LoadTensorProtoFile(p), Error);
  WriteFileAtomic(p, std::string("\x0a\xff\xff\xff\xff\x0f", 6));
  EXPECT_THROW(formats::LoadTensorProtoFile(p), Error);
  // Unknown data_type.
  WriteFileAtomic(p, Proto().Varint(onnxf::kDims, 1).Varint(onnxf::kDataType, 99).str());
  EXPECT_THROW(formats::LoadTensorProtoFile(p), Error);
}
