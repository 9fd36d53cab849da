// `edgepress distill` end to end on the digits models: an ONNX teacher with a pruned
// student made by --student-from-teacher, written as .onnx and .epk; the TorchScript
// teacher (tests/fixtures/make_torchscript.py's digits_cnn.pt) written back as .pt (checked
// in Python's torch.jit.load, as a LibTorch user would run it); the
// JSON summary; --stop-after/--resume through the CLI; and errors that name the file or
// option with the CLI's exit codes (1 input, 2 usage).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "formats/npy/npy.h"
#include "ir/file_util.h"
#include "runtime/session.h"
#include "tests/distill/digits_data.h"
#include "tests/formats/torchscript/ts_fixtures.h"
#include "tests/tools/cli_run.h"
#include "tools/model_io.h"

namespace edgepress {
namespace {

using test_util::CliPath;
using test_util::kDigitsCnn;
using test_util::kDigitsEval;
using test_util::RunCommand;
using test_util::ShellQuote;

struct Fixture {
  std::string dir, train;
};

Fixture Data() {
  Fixture f;
  f.dir = ::testing::TempDir() + "/distill_cli";
  std::filesystem::create_directories(f.dir);
  std::vector<std::string> files = test_util::WriteDigitsTrain(f.dir, 1, 640);
  if (!files.empty()) f.train = files[0];
  return f;
}

double Top1(const ir::Tensor& logits) {
  formats::NamedTensors eval = formats::LoadNpz(kDigitsEval);
  const int64_t* label = eval[1].second.data<int64_t>();
  int64_t n = logits.shape()[0], correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data<float>() + i * 10;
    correct += std::max_element(row, row + 10) - row == label[i];
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

double NativeTop1(const std::string& model_path) {
  auto s = runtime::Session::Create(std::shared_ptr<const ir::Model>(tools::LoadModel(model_path)));
  return Top1(s->Run({{"image", formats::LoadNpz(kDigitsEval)[0].second}})[0].second);
}

// Top-1 of a .pt as Python's torch.jit.load runs it (tests/runtime/torch/run_pt.py).
double PythonTop1(const std::string& pt, const std::string& dir) {
  test_util::RunResult r = RunCommand(
      ShellQuote(test_util::kSystemPython) + " " +
      ShellQuote(EDGEPRESS_SOURCE_DIR "/tests/runtime/torch/run_pt.py") + " " + ShellQuote(pt) +
      " " + ShellQuote(kDigitsEval) + " " + ShellQuote(dir + "/pt_logits.npz") + " image");
  EXPECT_EQ(r.rc, 0) << r.output;
  if (r.rc != 0) return -1;
  return Top1(formats::LoadNpz(dir + "/pt_logits.npz").at(0).second);
}

std::string Distill(const std::string& teacher, const std::string& args) {
  return CliPath() + " distill --teacher " + ShellQuote(teacher) + " " + args;
}

TEST(DistillCli, OnnxTeacherPrunedStudentToOnnxAndEpk) {
  Fixture f = Data();
  if (f.train.empty()) GTEST_SKIP() << test_util::kSklearnDigitsCsv << " is missing";
  for (const char* ext : {".onnx", ".epk"}) {
    std::string out = f.dir + "/student" + ext;
    test_util::RunResult r = RunCommand(Distill(
        kDigitsCnn, "--student-from-teacher 'prune-magnitude{sparsity=0.5}' --data " +
                        ShellQuote(f.train) + " --eval " + ShellQuote(kDigitsEval) +
                        " --steps 60 --lr 2e-3 --eval-every 30 --json -o " + ShellQuote(out)));
    ASSERT_EQ(r.rc, 0) << r.output;
    nlohmann::json j = nlohmann::json::parse(r.output);
    EXPECT_EQ(j["steps"], 60);
    EXPECT_TRUE(j["labels"].get<bool>());
    EXPECT_GT(j["masked_weights"].get<int64_t>(), 20000);
    ASSERT_EQ(j["evals"].size(), 3u);  // before, step 30, after
    double before = j["before"]["top1"], after = j["after"]["top1"];
    EXPECT_GT(after, before) << r.output;
    EXPECT_LT(j["loss_curve"].back()["loss"].get<double>(),
              j["loss_curve"][0]["loss"].get<double>());
    // The written student is the trained one: the native runtime measures the same top-1.
    EXPECT_NEAR(NativeTop1(out), after, 1e-9) << ext;
  }
  // An .epk student (the one just written) trains further from where it is.
  test_util::RunResult r = RunCommand(
      Distill(kDigitsCnn, "--student " + ShellQuote(f.dir + "/student.epk") + " --data " +
                              ShellQuote(f.train) + " --steps 5 --json -o " +
                              ShellQuote(f.dir + "/again.epk")));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_GT(nlohmann::json::parse(r.output)["masked_weights"].get<int64_t>(), 20000);
}

TEST(DistillCli, TorchScriptTeacherWritesATrainedPt) {
  Fixture f = Data();
  if (f.train.empty()) GTEST_SKIP() << test_util::kSklearnDigitsCsv << " is missing";
  std::string skip;
  ASSERT_EQ(test_util::EnsureTorchScriptFixture("digits_cnn", &skip), "");
  if (!skip.empty()) GTEST_SKIP() << skip;
  std::string pt = test_util::kTsFixtureDir + "/digits_cnn/model.pt";
  std::string out = f.dir + "/student.pt";
  test_util::RunResult r =
      RunCommand(Distill(pt, "--student-from-teacher 'prune-magnitude{sparsity=0.5}' --data " +
                                 ShellQuote(f.train) + " --eval " + ShellQuote(kDigitsEval) +
                                 " --steps 60 --lr 2e-3 --json -o " + ShellQuote(out)));
  ASSERT_EQ(r.rc, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  double teacher = j["teacher"]["top1"], before = j["before"]["top1"], after = j["after"]["top1"];
  EXPECT_GT(teacher, 0.95);
  EXPECT_GT(after, before);
  EXPECT_NEAR(PythonTop1(out, f.dir), after, 1e-9);
  // The teacher as a plain student (--student): the same file trains without pruning.
  r = RunCommand(Distill(pt, "--student " + ShellQuote(pt) + " --data " + ShellQuote(f.train) +
                                 " --steps 5 -q -o " + ShellQuote(f.dir + "/copy.onnx")));
  EXPECT_EQ(r.rc, 0) << r.output;
}

TEST(DistillCli, StopAndResumeThroughTheCli) {
  Fixture f = Data();
  if (f.train.empty()) GTEST_SKIP() << test_util::kSklearnDigitsCsv << " is missing";
  std::string common = "--student-from-teacher 'prune-magnitude{sparsity=0.5}' --data " +
                       ShellQuote(f.train) + " --steps 20 --batch-size 16 --seed 3 -q ";
  std::string ckpt = f.dir + "/run.ckpt", whole = f.dir + "/whole.onnx",
              part = f.dir + "/part.onnx";
  ASSERT_EQ(RunCommand(Distill(kDigitsCnn, common + "-o " + ShellQuote(whole))).rc, 0);
  test_util::RunResult r =
      RunCommand(Distill(kDigitsCnn, common + "--checkpoint " + ShellQuote(ckpt) +
                                         " --stop-after 9 -o " + ShellQuote(part)));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = RunCommand(
      Distill(kDigitsCnn, common + "--resume " + ShellQuote(ckpt) + " -o " + ShellQuote(part)));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(ReadFileToString(whole), ReadFileToString(part));  // same bytes, same weights
}

// Distillation-aware quantization and gradual pruning through the CLI: int8 weights and
// activations (ranges from quantize-static calibrated on --data) while the dense student is
// pruned to 50%; the summary counts what was quantized and pruned, and the written model
// has the zeros and weights on the int8 grid (quantize-weights leaves them unchanged).
TEST(DistillCli, FakeQuantAndGradualPruningFlags) {
  Fixture f = Data();
  if (f.train.empty()) GTEST_SKIP() << test_util::kSklearnDigitsCsv << " is missing";
  std::string out = f.dir + "/qat.onnx";
  test_util::RunResult r = RunCommand(Distill(
      kDigitsCnn, "--student " + ShellQuote(kDigitsCnn) + " --data " + ShellQuote(f.train) +
                      " --eval " + ShellQuote(kDigitsEval) +
                      " --steps 40 --fake-quant int8 --fake-quant-activations --prune-to 0.5 "
                      "--prune-end 30 --json -o " +
                      ShellQuote(out)));
  ASSERT_EQ(r.rc, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  const int64_t weights = 16 * 9 + 32 * 16 * 9 + 32 * 32 * 9 + 64 * 512 + 10 * 64;
  EXPECT_EQ(j["fake_quantized_weights"], weights);
  EXPECT_EQ(j["fake_quantized_activations"], 6);
  EXPECT_EQ(j["pruned_weights"], weights / 2);
  // The written student measures natively what the trainer measured fake-quantized (its
  // int8 weights are the model's float weights; only activations are simulated there).
  EXPECT_NEAR(NativeTop1(out), j["after"]["top1"].get<double>(), 3.5 / 360);
  r = RunCommand(Distill(kDigitsCnn, "--student " + ShellQuote(kDigitsCnn) + " --data " +
                                         ShellQuote(f.train) +
                                         " --steps 4 --fake-quant int3 -q -o " + ShellQuote(out)));
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("'int3'"), std::string::npos) << r.output;
}

TEST(DistillCli, ErrorsNameTheFileOrOption) {
  Fixture f = Data();
  if (f.train.empty()) GTEST_SKIP() << test_util::kSklearnDigitsCsv << " is missing";
  std::string out = " -o " + ShellQuote(f.dir + "/x.onnx");
  std::string f64 = f.dir + "/float64.npz";
  formats::SaveNpz({{"image", ir::Tensor(ir::DType::kFloat64, {4, 1, 8, 8})}}, f64);
  std::string flat = f.dir + "/flat.npz";
  formats::SaveNpz({{"image", ir::Tensor(ir::DType::kFloat32, {4, 64})}}, flat);
  struct Case {
    std::string args;
    int rc;
    std::string says;
  } cases[] = {
      {"--student-from-teacher 'prune-magnitude{sparsity=0.5}' --data " + f.dir + "/missing.npz", 1,
       "missing.npz"},
      {"--student-from-teacher 'prune-magnitud{sparsity=0.5}' --data " + f.train, 1,
       "prune-magnitude"},
      {"--student " + kDigitsCnn + " --student-from-teacher prune-magnitude --data " + f.train, 2,
       "excludes"},
      {"--data " + f.train, 2, "--student"},
      {"--student " + kDigitsCnn + " --data " + kDigitsEval + " --layer-map a:b:c", 2,
       "--layer-map"},
      {"--student " + kDigitsCnn + " --data " + f.train + " --temperature 0", 2, "--temperature"},
      {"--student " + kDigitsCnn + " --data " +
           EDGEPRESS_SOURCE_DIR "/examples/digits/expected.npz",
       1, "no array 'image'"},
      {"--student " + kDigitsCnn + " --data " + f64, 1,
       "float64.npz: array 'image' is f64, the model input is f32"},
      {"--student " + kDigitsCnn + " --data " + f.train + " --eval " + flat, 1,
       "flat.npz: array 'image' has samples of shape [N,64]"},
  };
  for (const Case& c : cases) {
    test_util::RunResult r = RunCommand(Distill(kDigitsCnn, c.args + " --steps 2" + out));
    EXPECT_EQ(r.rc, c.rc) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << c.args << "\n" << r.output;
  }
}

}  // namespace
}  // namespace edgepress
