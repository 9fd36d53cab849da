// Training through the torch backend on real data (issue 9, "Done when": a few optimizer
// steps lower the loss on the sklearn digits and the updated weights land in the IR and in
// the export). The digits CNN of examples/digits gets its classifier re-initialised, so
// there is something to learn; AdamW and SGD steps on the 1797 real digit images
// (Debian's python3-sklearn digits.csv.gz, pixels / 16 as examples/digits/make_example.py)
// must cut the cross-entropy, WriteBack() must put exactly the trained values into the
// model, the native runtime must then reproduce the trained network, and a TorchScript
// export of the trained model must too.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>

#include "formats/onnx/onnx.h"
#include "formats/torchscript/torchscript_export.h"
#include "ir/error.h"
#include "runtime/session.h"
#include "runtime/torch/torch_session.h"
#include "tests/runtime/torch/sklearn_digits.h"
#include "tests/runtime/torch/torch_test_util.h"

namespace edgepress::runtime {
namespace {

const char* kDigitsCsv = test_util::kSklearnDigitsCsv;
const std::string kModel = EDGEPRESS_SOURCE_DIR "/examples/digits/digits_cnn.onnx";

struct Digits {
  at::Tensor x, y;  // [N,1,8,8] float, [N] long
};

Digits LoadDigits() {
  test_util::SklearnDigits raw = test_util::LoadSklearnDigits();
  if (raw.labels.empty()) return {};
  Digits d;
  int64_t count = static_cast<int64_t>(raw.labels.size());
  d.x = torch::from_blob(raw.pixels.data(), {count, 1, 8, 8}).clone();
  d.y = torch::from_blob(raw.labels.data(), {count}, torch::kLong).clone();
  return d;
}

std::string Device() {
  const char* cuda = std::getenv("EDGEPRESS_TEST_CUDA");
  return cuda && std::string(cuda) == "1" ? "cuda" : "cpu";
}

// The model with its last Gemm's weight and bias replaced by small seeded values.
std::shared_ptr<ir::Model> WithFreshClassifier(std::string* weight_name) {
  std::shared_ptr<ir::Model> m = formats::LoadOnnx(kModel);
  ir::Node* gemm = nullptr;
  for (ir::Node* n : m->graph->nodes())
    if (n->op_type() == "Gemm") gemm = n;
  EXPECT_NE(gemm, nullptr);
  torch::manual_seed(0);
  for (size_t i : {size_t{1}, size_t{2}}) {
    ir::Tensor* t = gemm->input(i)->mutable_initializer();
    at::Tensor r = torch::randn(t->shape()) * 0.01;
    std::memcpy(t->mutable_raw(), r.data_ptr(), t->nbytes());
  }
  *weight_name = gemm->input(1)->name();
  return m;
}

double Loss(TorchSession& s, const Digits& d) {
  torch::NoGradGuard ng;
  at::Tensor logits = s.Forward({{"image", d.x}})[0];
  return torch::nn::functional::cross_entropy(logits, d.y.to(logits.device())).item<double>();
}

template <typename Optimizer, typename Options>
void Train(const char* name, Options opts, double max_ratio) {
  Digits d = LoadDigits();
  if (!d.x.defined()) GTEST_SKIP() << kDigitsCsv << " is missing (install python3-sklearn)";
  std::string weight;
  std::shared_ptr<ir::Model> model = WithFreshClassifier(&weight);
  ir::Tensor before = *model->graph->FindValue(weight)->initializer();
  TorchSessionOptions so;
  so.device = Device();
  so.train_all_float = true;
  auto s = TorchSession::Create(model, so);
  ASSERT_GE(s->Parameters().size(), 4u);  // conv and gemm weights and biases
  for (const at::Tensor& p : s->Parameters()) ASSERT_TRUE(p.requires_grad());

  // Train on the first 1500 images, measure on the other 297.
  Digits train{d.x.narrow(0, 0, 1500), d.y.narrow(0, 0, 1500)};
  Digits held{d.x.narrow(0, 1500, d.x.size(0) - 1500), d.y.narrow(0, 1500, d.y.size(0) - 1500)};
  double loss0 = Loss(*s, held);
  Optimizer opt(s->Parameters(), opts);
  for (int step = 0; step < 30; ++step) {
    int64_t start = (step * 100) % 1500;
    at::Tensor logits = s->Forward({{"image", train.x.narrow(0, start, 100)}})[0];
    at::Tensor loss = torch::nn::functional::cross_entropy(
        logits, train.y.narrow(0, start, 100).to(logits.device()));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  double loss1 = Loss(*s, held);
  std::printf("%s on %s: held-out cross-entropy %.4f -> %.4f after 30 steps\n", name,
              s->device().c_str(), loss0, loss1);
  EXPECT_LT(loss1, loss0 * max_ratio);

  // The trained values land in the IR, exactly.
  EXPECT_EQ(s->WriteBack(), static_cast<int>(s->Parameters().size()));
  const ir::Tensor& after = *model->graph->FindValue(weight)->initializer();
  EXPECT_FALSE(after == before);
  std::vector<std::string> names = s->ParameterNames();
  size_t wi = std::find(names.begin(), names.end(), weight) - names.begin();
  ASSERT_LT(wi, names.size());
  at::Tensor trained = s->Parameters()[wi].detach().cpu().contiguous();
  EXPECT_EQ(std::memcmp(trained.data_ptr(), after.raw(), after.nbytes()), 0);

  // The native runtime runs the updated IR as the torch backend does.
  ir::Tensor batch(ir::DType::kFloat32, {64, 1, 8, 8});
  std::memcpy(batch.mutable_raw(), held.x.contiguous().data_ptr(), batch.nbytes());
  auto native = Session::Create(std::shared_ptr<const ir::Model>(model->Clone()));
  NamedTensors want = native->Run({{"image", batch}});
  test_util::Agreement a = test_util::CompareOutputs(s->Run({{"image", batch}}), want);
  EXPECT_LE(a.error, 1e-4) << a.detail;

  // And a TorchScript export of the trained model gives the same logits.
  std::string pt = ::testing::TempDir() + "/trained_" + name + ".pt";
  formats::SaveTorchScript(*model, pt);
  torch::jit::Module m = torch::jit::load(pt);
  at::Tensor got = m.forward({held.x.narrow(0, 0, 64)}).toTensor();
  ir::Tensor got_ir(ir::DType::kFloat32, {64, 10});
  std::memcpy(got_ir.mutable_raw(), got.contiguous().data_ptr(), got_ir.nbytes());
  a = test_util::CompareOutputs({{want[0].first, got_ir}}, want);
  EXPECT_LE(a.error, 1e-4) << a.detail;
  std::remove(pt.c_str());
}

TEST(TorchTraining, AdamWLowersTheLossAndWritesBack) {
  Train<torch::optim::AdamW>("adamw", torch::optim::AdamWOptions(1e-2), 0.5);
}

TEST(TorchTraining, SgdLowersTheLossAndWritesBack) {
  Train<torch::optim::SGD>("sgd", torch::optim::SGDOptions(0.1).momentum(0.9), 0.5);
}

// Gradients reach exactly the parameters chosen by name, through an intermediate fetched
// by name (distillation's feature losses use this).
TEST(TorchTraining, NamedParametersAndIntermediateFetch) {
  std::shared_ptr<ir::Model> model = formats::LoadOnnx(kModel);
  const ir::Node* first_conv = nullptr;
  for (const ir::Node* n : model->graph->nodes())
    if (n->op_type() == "Conv" && !first_conv) first_conv = n;
  ASSERT_NE(first_conv, nullptr);
  TorchSessionOptions so;
  so.trainable = {first_conv->input(1)->name()};
  auto s = TorchSession::Create(model, so);
  ASSERT_EQ(s->ParameterNames(), so.trainable);
  at::Tensor x = torch::rand({4, 1, 8, 8});
  std::vector<at::Tensor> out =
      s->Forward({{"image", x}}, {first_conv->output(0)->name(), "logits"});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].size(1), 16);
  out[0].pow(2).mean().backward();
  at::Tensor g = s->Parameters()[0].grad();
  ASSERT_TRUE(g.defined());
  EXPECT_GT(g.abs().sum().item<double>(), 0);
  EXPECT_THROW(s->Forward({{"image", x}}, {"no_such_value"}), Error);
  // Non-float initializers cannot be trained.
  so.trainable = {};
  for (const ir::Value* v : model->graph->initializers())
    if (!ir::IsFloat(v->initializer()->dtype())) so.trainable = {v->name()};
  if (!so.trainable.empty()) {
    EXPECT_THROW(TorchSession::Create(model, so), Error);
  }
}

}  // namespace
}  // namespace edgepress::runtime
