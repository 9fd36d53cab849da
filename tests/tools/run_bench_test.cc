// End-to-end `edgepress run` and `edgepress bench`: exit codes (0 ok, 1 invalid input or
// outputs out of tolerance, 2 usage), saved outputs, --compare, and bench's report fields.
// The model is y = relu(x + b) with x: f32[batch, 4] (symbolic batch), built with the IR
// and saved as ONNX.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include <string>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/graph.h"

namespace edgepress {
namespace {

struct RunResult {
  int rc = -1;
  std::string output;
};

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command; exit status and combined stdout/stderr.
RunResult Shell(const std::string& cmd) {
  RunResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string Cli() { return EDGEPRESS_CLI; }

ir::Tensor F32(std::vector<int64_t> shape, std::vector<float> v) {
  return ir::Tensor::FromVector<float>(ir::DType::kFloat32, std::move(shape), v);
}

class RunBenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Cli().empty() || access(Cli().c_str(), X_OK) != 0)
      GTEST_SKIP() << "the edgepress CLI was not built";
    char tmpl[] = "/tmp/edgepress_run_bench_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ir::Model m;
    m.SetOpsetVersion("", 17);
    ir::Graph& g = *m.graph;
    g.name = "addrelu";
    ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(
                                       ir::DType::kFloat32,
                                       ir::Shape{ir::Dim::Symbol("batch"), ir::Dim::Known(4)}));
    ir::Value* b = g.AddInitializer("b", F32({4}, {1, -1, 0.5f, -0.5f}));
    ir::Value* s = g.AddNode("Add", {x, b}, {"s"}, "add")->output(0);
    ir::Value* y = g.AddNode("Relu", {s}, {"y"}, "relu")->output(0);
    y->type = ir::ValueType::Tensor(ir::DType::kFloat32,
                                    ir::Shape{ir::Dim::Symbol("batch"), ir::Dim::Known(4)});
    g.AddOutput(y);
    model_ = dir_ + "/model.onnx";
    formats::SaveOnnx(m, model_);
    formats::SaveNpz({{"x", F32({2, 4}, {1, 2, 3, 4, -5, -6, -7, -8})}}, dir_ + "/in.npz");
  }
  void TearDown() override {
    if (!dir_.empty()) Shell("rm -rf " + ShellQuote(dir_));
  }
  RunResult Ep(const std::string& args) { return Shell(ShellQuote(Cli()) + " " + args); }
  std::string P(const std::string& name) { return ShellQuote(dir_ + "/" + name); }

  std::string dir_, model_;
};

TEST_F(RunBenchTest, RunWritesOutputs) {
  RunResult r = Ep("run " + P("model.onnx") + " --input " + P("in.npz") + " --output " +
                   P("out.npz"));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("y: f32[2,4]"), std::string::npos) << r.output;
  formats::NamedTensors out = formats::LoadNpz(dir_ + "/out.npz");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, "y");
  const float* p = out[0].second.data<float>();
  std::vector<float> got(p, p + out[0].second.numel());
  EXPECT_EQ(got, (std::vector<float>{2, 1, 3.5f, 3.5f, 0, 0, 0, 0}));
}

TEST_F(RunBenchTest, CompareWithinAndOutsideTolerance) {
  formats::SaveNpz({{"y", F32({2, 4}, {2, 1, 3.5f, 3.5f, 0, 0, 0, 0})}}, dir_ + "/ref.npz");
  formats::SaveNpz({{"y", F32({2, 4}, {2, 1, 3.5f, 3.6f, 0, 0, 0, 0})}}, dir_ + "/bad.npz");
  RunResult ok = Ep("run " + P("model.onnx") + " --input " + P("in.npz") + " --compare " +
                    P("ref.npz"));
  EXPECT_EQ(ok.rc, 0) << ok.output;
  EXPECT_NE(ok.output.find("max abs error 0"), std::string::npos) << ok.output;
  RunResult bad = Ep("run " + P("model.onnx") + " --input " + P("in.npz") + " --compare " +
                     P("bad.npz") + " --rtol 1e-3 --atol 1e-3");
  EXPECT_EQ(bad.rc, 1) << bad.output;
  EXPECT_NE(bad.output.find("1 of 8 outside tolerance"), std::string::npos) << bad.output;
  // A loose tolerance accepts the same difference.
  RunResult loose = Ep("run " + P("model.onnx") + " --input " + P("in.npz") + " --compare " +
                       P("bad.npz") + " --atol 0.2");
  EXPECT_EQ(loose.rc, 0) << loose.output;
}

TEST_F(RunBenchTest, RunRejectsMismatchedInputs) {
  formats::SaveNpz({{"x", F32({2, 5}, std::vector<float>(10, 1))}}, dir_ + "/shape.npz");
  RunResult r = Ep("run " + P("model.onnx") + " --input " + P("shape.npz"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("input 'x': expected f32[batch,4], got f32[2,5]"), std::string::npos)
      << r.output;
  formats::SaveNpz({{"x", ir::Tensor::FromVector<double>(ir::DType::kFloat64, {1, 4}, {1, 2, 3, 4})}},
                   dir_ + "/dtype.npz");
  r = Ep("run " + P("model.onnx") + " --input " + P("dtype.npz"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("got f64[1,4]"), std::string::npos) << r.output;
  formats::SaveNpz({{"z", F32({1, 4}, {1, 2, 3, 4})}}, dir_ + "/name.npz");
  r = Ep("run " + P("model.onnx") + " --input " + P("name.npz"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("unknown input 'z'"), std::string::npos) << r.output;
  r = Ep("run " + P("model.onnx"));  // no inputs at all
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("missing input 'x'"), std::string::npos) << r.output;
  r = Ep("run " + P("missing.onnx") + " --input " + P("in.npz"));
  EXPECT_EQ(r.rc, 1) << r.output;
  r = Ep("run " + P("model.onnx") + " --threads -3");
  EXPECT_EQ(r.rc, 2) << r.output;
}

TEST_F(RunBenchTest, BenchReportsStatistics) {
  RunResult r = Ep("bench " + P("model.onnx") + " --dim batch=3 --iters 5 --warmup 1 --json");
  ASSERT_EQ(r.rc, 0) << r.output;
  for (const char* key : {"\"first_run_ms\"", "\"mean_ms\"", "\"p50_ms\"", "\"p90_ms\"",
                          "\"p99_ms\"", "\"stddev_ms\"", "\"throughput_per_s\"",
                          "\"peak_rss_mb\"", "\"threads\": 1", "\"cpu\"", "\"iterations\": 5"})
    EXPECT_NE(r.output.find(key), std::string::npos) << key << " in " << r.output;
  r = Ep("bench " + P("model.onnx") + " --input " + P("in.npz") + " --seconds 0.05 --threads 2");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("p50/p90/p99"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 thread(s)"), std::string::npos) << r.output;
}

// An evaluation file with a label next to the inputs: run and bench both take it and say
// which array they ignore.
TEST_F(RunBenchTest, RunAndBenchIgnoreExtraArraysAlike) {
  formats::SaveNpz({{"x", F32({2, 4}, {1, 2, 3, 4, -5, -6, -7, -8})},
                    {"label", ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {2}, {3, 1})}},
                   dir_ + "/labelled.npz");
  for (const char* cmd : {"run", "bench"}) {
    RunResult r = Ep(std::string(cmd) + " " + P("model.onnx") + " --input " + P("labelled.npz") +
                     (std::string(cmd) == "bench" ? " --iters 2" : ""));
    EXPECT_EQ(r.rc, 0) << cmd << ": " << r.output;
    EXPECT_NE(r.output.find("note: ignoring 'label'"), std::string::npos) << cmd << ": " << r.output;
  }
}

TEST_F(RunBenchTest, BenchUsageErrors) {
  // The symbolic batch needs a value for random inputs.
  RunResult r = Ep("bench " + P("model.onnx") + " --iters 2");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("--dim batch=N"), std::string::npos) << r.output;
  r = Ep("bench " + P("model.onnx") + " --dim batch --iters 2");
  EXPECT_EQ(r.rc, 2) << r.output;
  r = Ep("bench " + P("model.onnx") + " --dim batch=2 --iters 2 --seconds 1");
  EXPECT_EQ(r.rc, 2) << r.output;
}

}  // namespace
}  // namespace edgepress
