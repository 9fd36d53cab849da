// Training a model imported from TorchScript (issue 9, "Done when": the training smoke
// test, on the .pt path end to end). The digits CNN of tests/fixtures/make_torchscript.py
// (a scripted PyTorch module, digits_cnn/model.pt) is imported without fixed shapes, its
// classifier re-initialised so there is something to learn, and trained through the torch
// backend with AdamW on the real sklearn digits (sklearn_digits.h): the held-out
// cross-entropy must halve, WriteBack() must put exactly the trained values into the IR,
// and the IR exported again as .pt must give the trained network's logits in Python's
// torch.jit.load (Debian's /usr/bin/python3).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstring>

#include "formats/npy/npy.h"
#include "formats/torchscript/torchscript_export.h"
#include "formats/torchscript/torchscript_import.h"
#include "ir/verifier.h"
#include "runtime/torch/torch_session.h"
#include "tests/formats/torchscript/ts_fixtures.h"
#include "tests/runtime/torch/sklearn_digits.h"
#include "tests/runtime/torch/torch_test_util.h"
#include "tests/tools/cli_run.h"

using namespace edgepress;
using namespace edgepress::test_util;

namespace {

const std::string kRunPt = EDGEPRESS_SOURCE_DIR "/tests/runtime/torch/run_pt.py";
// The module's last nn.Linear (64 -> 10), imported as MatMul + Add.
const std::string kHeadWeight = "self.net.head.3.weight", kHeadBias = "self.net.head.3.bias";

double HeldOutLoss(runtime::TorchSession& s, const at::Tensor& x, const at::Tensor& y) {
  torch::NoGradGuard ng;
  return torch::nn::functional::cross_entropy(s.Forward({{"image", x}})[0], y).item<double>();
}

ir::Tensor ToIr(const at::Tensor& t) {
  at::Tensor c = t.detach().cpu().contiguous();
  ir::Tensor r(ir::DType::kFloat32, std::vector<int64_t>(c.sizes().begin(), c.sizes().end()));
  std::memcpy(r.mutable_raw(), c.data_ptr(), r.nbytes());
  return r;
}

TEST(TorchTrainingFromPt, AdamWOnImportedDigitsCnnLowersLossWritesBackAndExports) {
  std::string skip;
  ASSERT_EQ(EnsureTorchScriptFixture("digits_cnn", &skip), "");
  if (!skip.empty()) GTEST_SKIP() << skip;
  SklearnDigits raw = LoadSklearnDigits();
  if (raw.labels.empty()) GTEST_SKIP() << kSklearnDigitsCsv << " is missing (install python3-sklearn)";
  const int64_t count = static_cast<int64_t>(raw.labels.size());
  at::Tensor x = torch::from_blob(raw.pixels.data(), {count, 1, 8, 8}).clone();
  at::Tensor y = torch::from_blob(raw.labels.data(), {count}, torch::kLong).clone();

  // Symbolic batch: the same graph trains on 100 images and is measured on 297.
  formats::TorchScriptImportOptions o;
  o.input_dtypes["image"] = ir::DType::kFloat32;
  std::shared_ptr<ir::Model> model = formats::ImportTorchScript(kTsFixtureDir + "/digits_cnn/model.pt", o);
  ir::Verify(*model);
  torch::manual_seed(0);
  for (const std::string& name : {kHeadWeight, kHeadBias}) {
    ir::Value* v = model->graph->FindValue(name);
    ASSERT_TRUE(v && v->initializer()) << name << " is not an initializer of the imported graph";
    ir::Tensor* t = v->mutable_initializer();
    at::Tensor r = torch::randn(t->shape()) * 0.01;
    std::memcpy(t->mutable_raw(), r.data_ptr(), t->nbytes());
  }
  const ir::Tensor before = *model->graph->FindValue(kHeadWeight)->initializer();

  runtime::TorchSessionOptions so;
  so.train_all_float = true;
  so.threads = 1;
  auto s = runtime::TorchSession::Create(model, so);
  ASSERT_EQ(s->Parameters().size(), 10u);  // 3 conv + 2 linear layers, weight and bias each

  at::Tensor train_x = x.narrow(0, 0, 1500), train_y = y.narrow(0, 0, 1500);
  at::Tensor held_x = x.narrow(0, 1500, count - 1500), held_y = y.narrow(0, 1500, count - 1500);
  double loss0 = HeldOutLoss(*s, held_x, held_y);
  torch::optim::AdamW opt(s->Parameters(), torch::optim::AdamWOptions(1e-2));
  for (int step = 0; step < 30; ++step) {
    int64_t start = (step * 100) % 1500;
    at::Tensor logits = s->Forward({{"image", train_x.narrow(0, start, 100)}})[0];
    at::Tensor loss = torch::nn::functional::cross_entropy(logits, train_y.narrow(0, start, 100));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  double loss1 = HeldOutLoss(*s, held_x, held_y);
  std::printf("[ train ] digits_cnn.pt, AdamW: held-out cross-entropy %.4f -> %.4f after 30 steps\n", loss0, loss1);
  EXPECT_LT(loss1, loss0 * 0.5);

  // WriteBack puts exactly the trained values into the IR.
  EXPECT_EQ(s->WriteBack(), 10);
  const ir::Tensor& after = *model->graph->FindValue(kHeadWeight)->initializer();
  EXPECT_FALSE(after == before);
  std::vector<std::string> names = s->ParameterNames();
  size_t wi = std::find(names.begin(), names.end(), kHeadWeight) - names.begin();
  ASSERT_LT(wi, names.size());
  EXPECT_TRUE(ToIr(s->Parameters()[wi]) == after);

  // The trained IR exported as .pt: Python gives the trained network's logits.
  const std::string dir = ::testing::TempDir() + "/trained_from_pt";
  mkdir(dir.c_str(), 0755);
  ir::Tensor held = ToIr(held_x);
  runtime::TorchNamedTensors want = s->Run({{"image", held}});
  ASSERT_EQ(want.size(), 1u);
  if (!TorchPythonProblem().empty()) GTEST_SKIP() << TorchPythonProblem();
  formats::SaveTorchScript(*model, dir + "/trained.pt");
  formats::SaveNpz({{"image", held}}, dir + "/in.npz");
  RunResult r = RunCommand(ShellQuote(kSystemPython) + " " + ShellQuote(kRunPt) + " " +
                           ShellQuote(dir + "/trained.pt") + " " + ShellQuote(dir + "/in.npz") + " " +
                           ShellQuote(dir + "/out.npz") + " image");
  ASSERT_EQ(r.rc, 0) << r.output;
  formats::NamedTensors got = formats::LoadNpz(dir + "/out.npz");
  ASSERT_EQ(got.size(), 1u);
  Agreement a = CompareOutputs({{want[0].first, got[0].second}}, want);
  std::printf("[ train ] trained .pt in python vs torch backend: scaled max error %.3g\n", a.error);
  EXPECT_LE(a.error, 1e-4) << a.detail;
  // And the export differs from the untrained original's outputs (the weights travelled).
  RunResult orig = RunCommand(ShellQuote(kSystemPython) + " " + ShellQuote(kRunPt) + " " +
                              ShellQuote(kTsFixtureDir + "/digits_cnn/model.pt") + " " + ShellQuote(dir + "/in.npz") +
                              " " + ShellQuote(dir + "/orig.npz") + " image");
  ASSERT_EQ(orig.rc, 0) << orig.output;
  Agreement d = CompareOutputs({{want[0].first, formats::LoadNpz(dir + "/orig.npz")[0].second}}, want);
  EXPECT_GT(d.error, 1e-2);
}

}  // namespace
