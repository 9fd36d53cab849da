// Gradual N:M and channel pruning while distilling (distill/gradual_pattern.h) on the real
// digits CNN, the dense teacher's own copy as the student: the written student has the
// pattern (exactly m - n zeros in every N:M group, with prune-nm's annotation; channels
// removed for real, a smaller dense model that computes what the masked student did), its
// accuracy is compared with one-shot pruning then distillation for the same steps, and a
// stopped-and-resumed run ends bit-identical to an uninterrupted one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "distill/distill.h"
#include "distill/gradual_pattern.h"
#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "passes/prune/prune_util.h"
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

int64_t Params(const ir::Model& m) { return passes::prune::CountParams(m).params; }

DistillOptions Schedule(const std::string& pattern, double to) {
  DistillOptions o;
  o.steps = 180;
  o.lr = 2e-3;
  o.warmup_steps = 10;
  o.seed = 1;
  o.prune_pattern = pattern;
  o.prune_to = to;
  o.prune_end = 120;
  o.keep_best = false;  // the written weights are the last ones (the last evaluation)
  return o;
}

// Every group of m along the reduction of each weight prune-nm can lay out holds exactly
// m - n zeros; returns the weights checked.
int CheckNM(const ir::Model& m, int n, int mm) {
  std::unique_ptr<ir::Model> copy = m.Clone();
  int checked = 0;
  for (const auto& w : passes::prune::FindPrunable(*copy, passes::prune::FindOptions{})) {
    const ir::Tensor& t = *w.weight->initializer();
    passes::prune::ReductionView v = passes::prune::ViewOf(t.shape(), w.axis);
    if (v.reduction % mm != 0) continue;  // left dense, as prune-nm leaves it
    ++checked;
    EXPECT_TRUE(t.sparse.has_value()) << w.weight->name() << " has no N:M annotation";
    if (t.sparse) {
      EXPECT_EQ(t.sparse->n * 100 + t.sparse->m, n * 100 + mm);
    }
    int64_t bad = 0;
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.inner; ++i)
        for (int64_t g = 0; g < v.reduction; g += mm) {
          int zeros = 0;
          for (int r = 0; r < mm; ++r) zeros += t.data<float>()[v.Index(o, g + r, i)] == 0.f;
          bad += zeros != mm - n;
        }
    EXPECT_EQ(bad, 0) << w.weight->name() << ": groups without exactly " << mm - n << " zeros";
  }
  return checked;
}

TEST(GradualPattern, NMGroupsExactAndComparedWithOneShot) {
  std::shared_ptr<ir::Model> teacher = Prepared();
  for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}}) {
    const std::string pattern = std::to_string(n) + ":" + std::to_string(m);
    std::shared_ptr<ir::Model> student = teacher->Clone();
    DistillOptions o = Schedule(pattern, 0);  // prune-to implied: (m - n) / m
    // Keeping the best evaluated weights must not pick the dense start (or any weights
    // before the final sparsity): the written student has the full pattern.
    o.keep_best = true;
    o.eval_every = 30;
    DistillResult r = Distill(teacher, student, {kDigitsTrain}, {kDigitsEval}, o);
    EXPECT_GT(r.best.step, 120);
    // conv2, conv3 and both Gemms (conv1's 9 weights per channel are not a multiple of m).
    EXPECT_EQ(CheckNM(*student, n, m), 4) << pattern;
    EXPECT_GT(r.pruned_weights, 0);
    std::shared_ptr<ir::Model> once = Prepared("prune-nm{n=" + std::to_string(n) +
                                               ",m=" + std::to_string(m) + "}");
    DistillOptions p = Schedule("unstructured", 0);
    Distill(teacher, once, {kDigitsTrain}, {}, p);
    const double gradual = NativeTop1(*student), oneshot = NativeTop1(*once);
    std::printf("digits CNN %s: teacher %.4f, gradual while distilling %.4f, one-shot then "
                "distilled %.4f\n",
                pattern.c_str(), r.teacher.top1, gradual, oneshot);
    EXPECT_NEAR(gradual, r.best.top1, 1.5 / 360);  // the trainer measured the written weights
    EXPECT_GE(gradual, r.teacher.top1 - 0.02);
  }
}

TEST(GradualPattern, ChannelsAreRemovedIntoASmallerDenseModel) {
  std::shared_ptr<ir::Model> teacher = Prepared();
  std::shared_ptr<ir::Model> student = teacher->Clone();
  DistillResult r =
      Distill(teacher, student, {kDigitsTrain}, {kDigitsEval}, Schedule("channels", 0.5));
  const int64_t before = Params(*teacher), after = Params(*student);
  EXPECT_EQ(before - after, r.removed_params);
  EXPECT_LT(after, before * 0.4) << "half the channels of every layer but the logits";
  // The exported model is dense (no weight has a zero left from the masks of its groups)
  // and computes what the masked student computed.
  const double exported = NativeTop1(*student);
  EXPECT_NEAR(exported, r.best.top1, 1.5 / 360);
  ir::Value* conv1 = nullptr;
  for (ir::Node* node : student->graph->nodes())
    if (node->op_type() == "Conv") {
      conv1 = node->input(1);
      break;
    }
  ASSERT_NE(conv1, nullptr);
  EXPECT_EQ(conv1->initializer()->shape()[0], 8) << "conv1: 16 -> 8 output channels";

  std::shared_ptr<ir::Model> once = Prepared("prune-structured{sparsity=0.5,criterion=l2}");
  EXPECT_EQ(Params(*once), after);  // the same architecture
  Distill(teacher, once, {kDigitsTrain}, {}, Schedule("unstructured", 0));
  const double oneshot = NativeTop1(*once);
  std::printf("digits CNN channels 50%%: teacher %.4f, gradual while distilling %.4f, one-shot "
              "then distilled %.4f; params %lld -> %lld\n",
              r.teacher.top1, exported, oneshot, static_cast<long long>(before),
              static_cast<long long>(after));
}

TEST(GradualPattern, ResumeEqualsUninterrupted) {
  std::shared_ptr<ir::Model> teacher = Prepared();
  for (const std::string pattern : {"2:4", "channels"}) {
    DistillOptions o;
    o.steps = 40;
    o.lr = 2e-3;
    o.seed = 3;
    o.batch_size = 16;
    o.prune_pattern = pattern;
    o.prune_to = pattern == "channels" ? 0.5 : 0;
    o.prune_end = 30;
    o.prune_every = 5;
    std::shared_ptr<ir::Model> whole = teacher->Clone();
    Distill(teacher, whole, {kDigitsTrain}, {}, o);

    const std::string ckpt = ::testing::TempDir() + "/gradual_pattern.ckpt";
    std::filesystem::remove(ckpt);
    DistillOptions first = o;
    first.checkpoint = ckpt;
    first.stop_after = 17;  // between two pruning steps (15 and 20)
    EXPECT_FALSE(Distill(teacher, teacher->Clone(), {kDigitsTrain}, {}, first).finished);
    DistillOptions second = o;
    second.resume = ckpt;
    second.checkpoint = ckpt;
    std::shared_ptr<ir::Model> resumed = teacher->Clone();
    DistillResult r = Distill(teacher, resumed, {kDigitsTrain}, {}, second);
    EXPECT_EQ(r.resumed_from, 17);
    ASSERT_EQ(whole->graph->initializers().size(), resumed->graph->initializers().size());
    for (const ir::Value* v : whole->graph->initializers()) {
      const ir::Value* b = resumed->graph->FindValue(v->name());
      ASSERT_NE(b, nullptr) << v->name();
      EXPECT_EQ(*v->initializer(), *b->initializer()) << pattern << ": " << v->name();
    }
  }
}

TEST(GradualPattern, BadPatternsAreUsageErrors) {
  EXPECT_THROW(ParsePrunePattern("4:2"), Error);
  EXPECT_THROW(ParsePrunePattern("2:4x"), Error);
  EXPECT_THROW(ParsePrunePattern("rows"), Error);
  EXPECT_EQ(ParsePrunePattern("4:8").m, 8);
  DistillOptions o = Schedule("2:4", 0.3);  // 2:4 means 50%
  try {
    Distill(Prepared(), Prepared(), {kDigitsTrain}, {}, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("2:4"), std::string::npos) << e.what();
  }
  o = Schedule("channels", 0);  // how many channels is not implied
  EXPECT_THROW(Distill(Prepared(), Prepared(), {kDigitsTrain}, {}, o), Error);
}

}  // namespace
}  // namespace edgepress::distill
