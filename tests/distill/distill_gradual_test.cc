// Gradual pruning during distillation (DistillOptions::prune_to; Zhu & Gupta's cubic
// schedule) on the real digits CNN: the dense teacher's own copy is pruned to 50% per layer
// while it trains, every layer ends at exactly that sparsity with its zeros held, it keeps
// the teacher's accuracy, and a killed-and-resumed run ends bit-identical to an
// uninterrupted one (the masks are rebuilt from the restored zeros).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "distill/distill.h"
#include "distill/fake_quant.h"
#include "distill/schedule.h"
#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "tests/distill/digits_data.h"

namespace edgepress::distill {
namespace {

using test_util::kDigitsCnn;
using test_util::kDigitsEval;
using test_util::kDigitsTrain;

std::shared_ptr<ir::Model> Prepared(const std::string& more = "") {
  return test_util::PrepareDigitsModel(kDigitsCnn, more);
}

double NativeTop1(const ir::Model& m) { return test_util::DigitsTop1(m); }

int64_t ZerosOf(const ir::Model& m, const std::string& name) {
  const ir::Tensor& t = *m.graph->FindValue(name)->initializer();
  int64_t z = 0;
  for (uint64_t i = 0; i < t.numel(); ++i) z += t.data<float>()[i] == 0.f;
  return z;
}

TEST(GradualPruning, CubicSchedule) {
  EXPECT_EQ(CubicSparsity(0.5, 10, 110, 0), 0);
  EXPECT_EQ(CubicSparsity(0.5, 10, 110, 10), 0);
  EXPECT_DOUBLE_EQ(CubicSparsity(0.5, 10, 110, 60), 0.5 * (1 - 0.125));  // p = 1/2
  EXPECT_EQ(CubicSparsity(0.5, 10, 110, 110), 0.5);
  EXPECT_EQ(CubicSparsity(0.5, 10, 110, 500), 0.5);
  double last = 0;
  for (int64_t t = 10; t <= 110; ++t) {  // grows, fastest first
    double s = CubicSparsity(0.5, 10, 110, t);
    EXPECT_GE(s, last);
    last = s;
  }
  EXPECT_GT(CubicSparsity(0.5, 10, 110, 20) - CubicSparsity(0.5, 10, 110, 10),
            CubicSparsity(0.5, 10, 110, 110) - CubicSparsity(0.5, 10, 110, 100));
}

TEST(GradualPruning, DenseStudentReachesTheSparsityAndKeepsTheTeachersAccuracy) {
  std::shared_ptr<ir::Model> teacher = Prepared();
  std::shared_ptr<ir::Model> student = teacher->Clone();
  DistillOptions o;
  o.steps = 180;
  o.lr = 2e-3;
  o.warmup_steps = 10;
  o.seed = 1;
  o.prune_to = 0.5;
  o.prune_end = 120;
  DistillResult r = Distill(teacher, student, {kDigitsTrain}, {}, o);
  int64_t expected = 0;
  for (const FakeQuantTarget& t : FindFakeQuantTargets(*student->graph)) {
    const int64_t n =
        static_cast<int64_t>(student->graph->FindValue(t.weight)->initializer()->numel());
    EXPECT_EQ(ZerosOf(*student, t.weight), n / 2) << t.weight;  // exactly, per layer
    expected += n / 2;
  }
  EXPECT_EQ(r.pruned_weights, expected);
  EXPECT_EQ(r.masked_weights, 0);  // the student started dense

  // The same steps after one-shot pruning (prune-magnitude, then distillation).
  std::shared_ptr<ir::Model> oneshot = Prepared("prune-magnitude{sparsity=0.5}");
  DistillOptions p = o;
  p.prune_to = 0;
  Distill(teacher, oneshot, {kDigitsTrain}, {}, p);
  const double t = NativeTop1(*teacher), gradual = NativeTop1(*student),
               once = NativeTop1(*oneshot);
  std::printf(
      "digits CNN 50%%: teacher %.4f, gradual pruning while distilling %.4f, one-shot then "
      "distilled %.4f\n",
      t, gradual, once);
  EXPECT_GE(gradual, t - 0.005);  // issue 11's target for 50% pruning: within 0.5 point
}

TEST(GradualPruning, ResumeEqualsUninterrupted) {
  std::shared_ptr<ir::Model> teacher = Prepared();
  DistillOptions o;
  o.steps = 40;
  o.lr = 2e-3;
  o.seed = 3;
  o.batch_size = 16;
  o.prune_to = 0.5;
  o.prune_end = 30;
  o.prune_every = 5;
  std::shared_ptr<ir::Model> whole = teacher->Clone();
  Distill(teacher, whole, {kDigitsTrain}, {}, o);

  const std::string ckpt = ::testing::TempDir() + "/gradual.ckpt";
  std::filesystem::remove(ckpt);
  DistillOptions first = o;
  first.checkpoint = ckpt;
  first.stop_after = 17;  // between two pruning steps (15 and 20)
  std::shared_ptr<ir::Model> resumed = teacher->Clone();
  EXPECT_FALSE(Distill(teacher, resumed, {kDigitsTrain}, {}, first).finished);
  DistillOptions second = o;
  second.resume = ckpt;
  second.checkpoint = ckpt;
  resumed = teacher->Clone();
  DistillResult r = Distill(teacher, resumed, {kDigitsTrain}, {}, second);
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(r.resumed_from, 17);
  for (const ir::Value* v : whole->graph->initializers()) {
    const ir::Tensor& a = *v->initializer();
    const ir::Tensor& b = *resumed->graph->FindValue(v->name())->initializer();
    EXPECT_EQ(a, b) << v->name() << " differs after the resume";
  }
  // Changing the schedule is a different run.
  DistillOptions other = o;
  other.resume = ckpt;
  other.prune_to = 0.6;
  EXPECT_THROW(Distill(teacher, teacher->Clone(), {kDigitsTrain}, {}, other), Error);
}

TEST(GradualPruning, BadScheduleIsAUsageError) {
  DistillOptions o;
  o.steps = 20;
  o.prune_to = 0.5;
  o.prune_end = 20;  // the last step is 19
  try {
    Distill(Prepared(), Prepared(), {kDigitsTrain}, {}, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("prune-end < steps"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace edgepress::distill
