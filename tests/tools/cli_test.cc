// The edgepress CLI's contract for inspect/convert: --help/--version, exit codes
// (0 ok, 1 invalid input or unsupported, 2 usage) and error messages that name the file.
#include <gtest/gtest.h>

#include <filesystem>

#include "formats/onnx/onnx.h"
#include "formats/onnx/onnx_compare.h"
#include "ir/file_util.h"
#include "tests/tools/cli_run.h"

namespace fs = std::filesystem;
using namespace edgepress;
using namespace edgepress::test_util;

namespace {

const char* kConv = "/usr/share/libonnx-testdata/data/pytorch-converted/test_Conv2d/model.onnx";
// A model with a Loop subgraph and opset normalisation inside it.
const char* kLoop = "/usr/share/libonnx-testdata/data/node/test_range_float_type_positive_delta_expanded/model.onnx";

fs::path WorkDir(const std::string& name) {
  fs::path d = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "cli" / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test_util::CliPath().empty() || !FileExists(test_util::CliPath()))
      GTEST_SKIP() << "the edgepress binary is not built";
  }
  RunResult Ep(const std::string& args) { return RunCommand(ShellQuote(test_util::CliPath()) + " " + args); }
};

}  // namespace

TEST_F(Cli, HelpAndVersion) {
  RunResult r = Ep("--help");
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("inspect"), std::string::npos);
  EXPECT_NE(r.output.find("convert"), std::string::npos);
  r = Ep("--version");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.output.find("edgepress "), std::string::npos);
  r = Ep("inspect --help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.output.find("--json"), std::string::npos);
  r = Ep("convert --help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.output.find("--external-data"), std::string::npos);
}

TEST_F(Cli, UsageErrorsExit2) {
  EXPECT_EQ(Ep("").rc, 2);
  EXPECT_EQ(Ep("frobnicate").rc, 2);
  EXPECT_EQ(Ep("inspect").rc, 2);
  EXPECT_EQ(Ep("inspect a.onnx --no-such-flag").rc, 2);
  EXPECT_EQ(Ep("convert only_one.onnx").rc, 2);
  if (!FileExists(kConv)) return;
  fs::path d = WorkDir("usage");
  RunResult r = Ep(std::string(kConv) + " ");  // a path is not a subcommand
  EXPECT_EQ(r.rc, 2);
  r = Ep("convert " + std::string(kConv) + " " + (d / "out.weird").string());
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("out.weird"), std::string::npos) << r.output;
}

TEST_F(Cli, UnknownCommandNamesTheWordAndTheNearestCommand) {
  RunResult r = Ep("inspct model.onnx");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find("unknown command 'inspct' (did you mean 'inspect'?)"), std::string::npos)
      << r.output;
  r = Ep("frobnicate");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find("unknown command 'frobnicate'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("compress"), std::string::npos) << r.output;  // the list of commands
}

// paddle2onnx-style weights in Constant nodes are parameters; shape constants are not.
TEST_F(Cli, InspectCountsWeightsHeldInConstantNodes) {
  fs::path d = WorkDir("constant_weights");
  ir::Model m;
  m.SetOpsetVersion("", 13);
  ir::Graph& g = *m.graph;
  g.name = "constant_weights";
  ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32, ir::MakeShape({2, 4})));
  ir::Node* w = g.AddNode("Constant", {}, {"w"}, "w_const");
  w->set_attr(ir::Attribute::TensorValue("value", ir::Tensor(ir::DType::kFloat32, {4, 3})));
  ir::Node* shape = g.AddNode("Constant", {}, {"shape"}, "shape_const");
  shape->set_attr(ir::Attribute::TensorValue(
      "value", ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {2}, {3, 2})));
  ir::Value* y = g.AddNode("MatMul", {x, w->output(0)}, {"y"}, "mm")->output(0);
  ir::Value* z = g.AddNode("Reshape", {y, shape->output(0)}, {"z"}, "reshape")->output(0);
  z->type = ir::ValueType::Tensor(ir::DType::kFloat32, ir::MakeShape({3, 2}));
  g.AddOutput(z);
  std::string path = (d / "m.onnx").string();
  formats::SaveOnnx(m, path);
  RunResult r = Ep("inspect " + path);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("parameters: 12 "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("12 of them in Constant nodes"), std::string::npos) << r.output;
  r = Ep("inspect --json " + path);
  EXPECT_NE(r.output.find("\"parameters\":{\"count\":12,"), std::string::npos) << r.output;
}

TEST_F(Cli, MissingAndInvalidFilesExit1) {
  fs::path d = WorkDir("invalid");
  RunResult r = Ep("inspect " + (d / "missing.onnx").string());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("missing.onnx"), std::string::npos) << r.output;
  r = Ep("convert " + (d / "missing.onnx").string() + " " + (d / "o.onnx").string());
  EXPECT_EQ(r.rc, 1);
  EXPECT_FALSE(FileExists((d / "o.onnx").string()));
  std::string junk = (d / "junk.onnx").string();
  WriteFileAtomic(junk, "\x08\x07\x12\xff\xff\xff\xff\x0f garbage");
  r = Ep("inspect " + junk);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find(junk), std::string::npos) << r.output;
  std::string txt = (d / "model.txt").string();
  WriteFileAtomic(txt, "hello");
  r = Ep("inspect " + txt);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("unknown model format"), std::string::npos) << r.output;
}

TEST_F(Cli, TruncatedModelsExit1ViaCli) {
  if (!FileExists(kConv)) GTEST_SKIP() << "libonnx-testdata is not installed";
  fs::path d = WorkDir("truncated");
  std::string bytes = ReadFileToString(kConv);
  for (size_t len : {size_t{0}, size_t{1}, size_t{7}, bytes.size() / 3, bytes.size() / 2,
                     bytes.size() - 5}) {
    std::string p = (d / ("t" + std::to_string(len) + ".onnx")).string();
    WriteFileAtomic(p, bytes.substr(0, len));
    RunResult r = Ep("inspect " + p);
    EXPECT_EQ(r.rc, 1) << len << ": " << r.output;
    EXPECT_NE(r.output.find(p), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
  }
}

TEST_F(Cli, InspectSummary) {
  if (!FileExists(kConv)) GTEST_SKIP() << "libonnx-testdata is not installed";
  RunResult r = Ep(std::string("inspect ") + kConv);
  ASSERT_EQ(r.rc, 0) << r.output;
  // test_Conv2d: Conv(x f32[2,3,..], W f32[...]); count against the library's own import.
  auto m = formats::LoadOnnx(kConv);
  uint64_t params = 0;
  for (ir::Value* v : m->graph->initializers()) params += v->initializer()->numel();
  EXPECT_NE(r.output.find("parameters: " + std::to_string(params) + " "), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("Conv"), std::string::npos);
  EXPECT_NE(r.output.find("ai.onnx"), std::string::npos);
  r = Ep(std::string("inspect --json ") + kConv);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(r.output.front(), '{');
  EXPECT_NE(r.output.find("\"parameters\":{\"count\":" + std::to_string(params)), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("\"ops\":{\"Conv\":1}"), std::string::npos) << r.output;
  r = Ep(std::string("inspect --graph ") + kConv);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("Conv("), std::string::npos) << r.output;
}

TEST_F(Cli, ConvertRoundTripsWithAndWithoutExternalData) {
  for (const char* src : {kConv, kLoop}) {
    if (!FileExists(src)) GTEST_SKIP() << "libonnx-testdata is not installed";
    fs::path d = WorkDir("convert");
    std::string out = (d / "out.onnx").string();
    RunResult r = Ep(std::string("convert ") + src + " " + out);
    ASSERT_EQ(r.rc, 0) << r.output;
    std::string diff;
    EXPECT_TRUE(formats::OnnxFilesEquivalent(src, out, &diff)) << diff;
    fs::create_directories(d / "ext");
    std::string ext = (d / "ext" / "m.onnx").string();
    r = Ep(std::string("convert --external-data ") + src + " " + ext);
    ASSERT_EQ(r.rc, 0) << r.output;
    EXPECT_TRUE(formats::OnnxFilesEquivalent(src, ext, &diff)) << diff;
    EXPECT_NO_THROW(formats::CheckOnnxFile(ext));
  }
}
