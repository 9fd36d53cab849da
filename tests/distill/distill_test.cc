// Distillation on real data (issue 11, "Done when": loss falls, accuracy recovers, resume
// equals uninterrupted). The teacher is the trained digits CNN of examples/digits; the
// student is that CNN with 50% of every weight pruned by magnitude (prune-magnitude, as
// compress would), which costs it top-1 on the 360 held-out digits of eval.npz. Training
// runs on the other sklearn digits (digits_data.h). Accuracy is re-measured with the
// native runtime on the written-back IR, so the test checks the weights that leave
// Distill(), not the trainer's own bookkeeping.
#include "distill/distill.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "ir/file_util.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "tests/distill/digits_data.h"

namespace edgepress::distill {
namespace {

using test_util::kDigitsCnn;
using test_util::kDigitsEval;

std::shared_ptr<ir::Model> Prepared(const std::string& more = "") {
  return test_util::PrepareDigitsModel(kDigitsCnn, more);
}

double NativeTop1(const ir::Model& m) { return test_util::DigitsTop1(m); }

int64_t Zeros(const ir::Model& m) {
  int64_t z = 0;
  for (const ir::Value* v : m.graph->initializers()) {
    const ir::Tensor* t = v->initializer();
    if (t->dtype() != ir::DType::kFloat32 || t->rank() < 2) continue;
    for (uint64_t i = 0; i < t->numel(); ++i) z += t->data<float>()[i] == 0.0f;
  }
  return z;
}

std::vector<std::string> TrainFiles(int shards = 1) {
  std::string dir = ::testing::TempDir() + "/distill_digits_" + std::to_string(shards);
  std::filesystem::create_directories(dir);
  return test_util::WriteDigitsTrain(dir, shards);
}

TEST(Distill, PrunedDigitsCnnRecoversTowardTheTeacher) {
  std::vector<std::string> train = TrainFiles(3);
  if (train.empty())
    GTEST_SKIP() << test_util::kSklearnDigitsCsv << " is missing (python3-sklearn)";
  std::shared_ptr<ir::Model> teacher = Prepared();
  std::shared_ptr<ir::Model> student = Prepared("prune-magnitude{sparsity=0.5}");
  const double teacher_top1 = NativeTop1(*teacher), pruned_top1 = NativeTop1(*student);
  const int64_t zeros_before = Zeros(*student);
  ASSERT_GT(zeros_before, 20000);  // half of ~47k conv/gemm weights
  // The premise: pruning half of every layer costs real accuracy.
  ASSERT_LT(pruned_top1, teacher_top1 - 0.01);

  DistillOptions o;
  o.steps = 180;  // 4 epochs of the 1437 training digits at batch 32
  o.lr = 2e-3;
  o.warmup_steps = 10;
  o.eval_every = 60;
  o.seed = 1;
  o.shuffle_buffer = 256;
  // The folder of the three shards (expanded to its .npz files in name order).
  const std::string folder = train[0].substr(0, train[0].rfind('/'));
  DistillResult r = Distill(teacher, student, {folder}, {kDigitsEval}, o);
  EXPECT_EQ(r.train_samples, 1437);
  const double after = NativeTop1(*student);
  std::printf(
      "digits CNN: teacher %.4f, 50%%-pruned %.4f, distilled %.4f (best at step %lld); "
      "loss %.4f -> %.4f; %.0f samples/s\n",
      teacher_top1, pruned_top1, after, static_cast<long long>(r.best.step), r.curve.front().loss,
      r.curve.back().loss, r.samples_per_second);

  EXPECT_TRUE(r.finished);
  EXPECT_EQ(r.steps, 180);
  EXPECT_TRUE(r.has_labels);
  // The loss falls.
  ASSERT_GE(r.curve.size(), 10u);
  EXPECT_LT(r.curve.back().loss, 0.5 * r.curve.front().loss);
  // The torch-side evaluation agrees with the native runtime on both ends.
  ASSERT_EQ(r.evals.size(), 4u);  // before, steps 60 and 120, after
  EXPECT_NEAR(r.evals.front().top1, pruned_top1, 1e-9);
  EXPECT_NEAR(r.teacher.top1, teacher_top1, 1e-9);
  EXPECT_NEAR(r.best.top1, after, 1e-9);
  // Accuracy recovers: most of the lost points come back.
  EXPECT_GT(after, pruned_top1 + 0.5 * (teacher_top1 - pruned_top1));
  // Pruned weights stay zero.
  EXPECT_EQ(r.masked_weights, zeros_before);
  EXPECT_EQ(Zeros(*student), zeros_before);
}

// A run killed after 17 steps (checkpoint at 10, and at the stop) and resumed ends with
// bit-identical weights to an uninterrupted run with the same seed. Without --eval the
// written weights are the last ones; with it, the best (step 10 may win, so the
// evaluations after the resume are compared exactly too: they follow the trajectory).
struct Runs {
  std::shared_ptr<ir::Model> whole, resumed;
  DistillResult full, second;
};
Runs WholeAndResumed(const std::vector<std::string>& train, const std::vector<std::string>& eval,
                     DistillOptions o, const std::string& ckpt) {
  Runs r;
  std::shared_ptr<ir::Model> teacher = Prepared();
  r.whole = Prepared("prune-magnitude{sparsity=0.5}");
  r.full = Distill(teacher, r.whole, train, eval, o);
  std::remove(ckpt.c_str());
  o.checkpoint = ckpt;
  o.stop_after = 17;
  DistillResult first = Distill(teacher, Prepared("prune-magnitude{sparsity=0.5}"), train, eval, o);
  EXPECT_FALSE(first.finished);
  EXPECT_EQ(first.steps, 17);
  EXPECT_TRUE(FileExists(ckpt));
  r.resumed = Prepared("prune-magnitude{sparsity=0.5}");
  o.stop_after = 0;
  o.resume = ckpt;
  r.second = Distill(teacher, r.resumed, train, eval, o);
  EXPECT_TRUE(r.second.finished);
  EXPECT_EQ(r.second.resumed_from, 17);
  return r;
}

void ExpectSameWeights(const ir::Model& want, const ir::Model& got) {
  int compared = 0;
  for (const ir::Value* v : want.graph->initializers()) {
    const ir::Tensor* a = v->initializer();
    const ir::Tensor* b = got.graph->FindValue(v->name())->initializer();
    ASSERT_EQ(a->nbytes(), b->nbytes()) << v->name();
    EXPECT_EQ(std::memcmp(a->raw(), b->raw(), a->nbytes()), 0) << v->name();
    ++compared;
  }
  EXPECT_GT(compared, 8);
}

TEST(Distill, ResumeEqualsUninterrupted) {
  std::vector<std::string> train = TrainFiles(2);
  if (train.empty())
    GTEST_SKIP() << test_util::kSklearnDigitsCsv << " is missing (python3-sklearn)";
  DistillOptions o;
  o.steps = 30;
  o.batch_size = 16;
  o.shuffle_buffer = 64;
  o.warmup_steps = 5;
  o.save_every = 10;
  o.seed = 5;
  std::string ckpt = ::testing::TempDir() + "/distill_resume.ckpt";
  Runs plain = WholeAndResumed(train, {}, o, ckpt);
  ExpectSameWeights(*plain.whole, *plain.resumed);
  ASSERT_EQ(plain.second.curve.size(), plain.full.curve.size());
  EXPECT_EQ(plain.second.curve.back().loss, plain.full.curve.back().loss);
  // And the run did train: the last weights differ from the untrained student's.
  std::shared_ptr<ir::Model> untrained = Prepared("prune-magnitude{sparsity=0.5}");
  bool differs = false;
  for (const ir::Value* v : untrained->graph->initializers())
    differs =
        differs || !(*v->initializer() == *plain.whole->graph->FindValue(v->name())->initializer());
  EXPECT_TRUE(differs);

  o.eval_every = 10;
  Runs evaluated = WholeAndResumed(train, {kDigitsEval}, o, ckpt);
  ExpectSameWeights(*evaluated.whole, *evaluated.resumed);
  ASSERT_EQ(evaluated.second.evals.size(), evaluated.full.evals.size());
  for (size_t i = 0; i < evaluated.full.evals.size(); ++i) {
    EXPECT_EQ(evaluated.second.evals[i].step, evaluated.full.evals[i].step);
    EXPECT_EQ(evaluated.second.evals[i].kd_loss, evaluated.full.evals[i].kd_loss) << "eval " << i;
  }
  EXPECT_EQ(evaluated.second.best.step, evaluated.full.best.step);

  // A checkpoint of other options is refused, by name.
  std::shared_ptr<ir::Model> teacher = Prepared();
  o.resume = ckpt;
  o.lr = 5e-3;
  try {
    Distill(teacher, Prepared("prune-magnitude{sparsity=0.5}"), train, {kDigitsEval}, o);
    FAIL() << "a checkpoint of another run was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another run"), std::string::npos) << e.what();
  }
  // A corrupt one too.
  WriteFileAtomic(ckpt, "not a checkpoint");
  std::string what;
  try {
    Distill(teacher, Prepared(), train, {}, o);
  } catch (const Error& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("not a readable distill checkpoint"), std::string::npos) << what;
}

// An N:M student (prune-nm 2:4, the other pass --student-from-teacher names) trains with
// its zeros held, so the 2:4 pattern and its annotation survive WriteBack.
TEST(Distill, NmStudentKeepsItsPattern) {
  std::vector<std::string> train = TrainFiles(1);
  if (train.empty())
    GTEST_SKIP() << test_util::kSklearnDigitsCsv << " is missing (python3-sklearn)";
  std::shared_ptr<ir::Model> student = Prepared("prune-nm{n=2,m=4}");
  const int64_t zeros = Zeros(*student);
  int annotated = 0;
  for (const ir::Value* v : student->graph->initializers())
    annotated += v->initializer()->sparse.has_value();
  ASSERT_GT(zeros, 20000);
  ASSERT_GT(annotated, 2);
  DistillOptions o;
  o.steps = 20;
  DistillResult r = Distill(Prepared(), student, train, {}, o);
  EXPECT_EQ(r.masked_weights, zeros);
  EXPECT_EQ(Zeros(*student), zeros);
  int still = 0;
  for (const ir::Value* v : student->graph->initializers())
    still += v->initializer()->sparse.has_value();
  EXPECT_EQ(still, annotated);
  EXPECT_LT(r.curve.back().loss, r.curve.front().loss);
  // Without fixed masks the zeros train (the option a dense student with chosen zeros needs).
  std::shared_ptr<ir::Model> free = Prepared("prune-nm{n=2,m=4}");
  o.fixed_masks = false;
  EXPECT_EQ(Distill(Prepared(), free, train, {}, o).masked_weights, 0);
  EXPECT_LT(Zeros(*free), zeros / 10);
}

// A half-depth student (drop-blocks: the digits transformer's encoder layer 0 alone, as
// DistilBERT initialises from every other layer) starts far below the teacher and
// distillation brings it most of the way back.
TEST(Distill, HalfDepthTransformerStudentRecovers) {
  std::vector<std::string> train = TrainFiles(1);
  if (train.empty())
    GTEST_SKIP() << test_util::kSklearnDigitsCsv << " is missing (python3-sklearn)";
  auto load = [](const std::string& pipeline) {
    std::shared_ptr<ir::Model> m =
        formats::LoadOnnx(EDGEPRESS_SOURCE_DIR "/examples/digits/digits_transformer.onnx");
    passes::PassContext ctx;
    passes::RunPipeline(*m, passes::ParsePipeline(pipeline), ctx, /*verify=*/true);
    return m;
  };
  std::shared_ptr<ir::Model> teacher = load("fold-constants,eliminate-dead-nodes");
  std::shared_ptr<ir::Model> student = load("fold-constants,eliminate-dead-nodes,drop-blocks");
  ASSERT_LT(student->graph->num_nodes(), teacher->graph->num_nodes());
  DistillOptions o;
  o.steps = 60;
  o.warmup_steps = 5;
  o.seed = 2;
  DistillResult r = Distill(teacher, student, train, {kDigitsEval}, o);
  std::printf("digits transformer: teacher %.4f, half depth %.4f -> %.4f after 60 steps\n",
              r.teacher.top1, r.evals.front().top1, r.best.top1);
  EXPECT_LT(r.evals.front().top1, r.teacher.top1 - 0.1);
  EXPECT_GT(r.best.top1, r.evals.front().top1 + 0.15);
}

// Intermediate matching through the layer map: an equal-width pair needs no projection,
// a narrower student value (the 10 logits against the teacher's 64 hidden units) is
// matched through a learned projection, and its loss falls.
TEST(Distill, LayerMapWithLearnedProjection) {
  std::vector<std::string> train = TrainFiles(1);
  if (train.empty())
    GTEST_SKIP() << test_util::kSklearnDigitsCsv << " is missing (python3-sklearn)";
  std::shared_ptr<ir::Model> teacher = Prepared();
  std::string hidden;
  for (const ir::Node* n : teacher->graph->nodes())
    if (n->op_type() == "Gemm" && hidden.empty()) hidden = n->output(0)->name();
  ASSERT_FALSE(hidden.empty());
  std::shared_ptr<ir::Model> student = Prepared("prune-magnitude{sparsity=0.7}");
  DistillOptions o;
  o.steps = 60;
  o.alpha_kd = 0;
  o.alpha_ce = 0;
  o.lr = 3e-3;
  o.layer_map = ParseLayerMap(hidden + ":" + hidden + "," + hidden + ":logits", "--layer-map");
  DistillResult r = Distill(teacher, student, train, {}, o);
  ASSERT_GE(r.curve.size(), 6u);
  EXPECT_GT(r.curve.front().hidden, 0);
  EXPECT_LT(r.curve.back().hidden, 0.7 * r.curve.front().hidden);
  EXPECT_EQ(r.curve.back().kd, r.curve.back().kd);  // computed (not NaN) even at weight 0

  EXPECT_THROW(ParseLayerMap("a:b,c", "--layer-map"), Error);
  EXPECT_THROW(ParseLayerMap("a:b:c", "--layer-map"), Error);
}

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Distill, BadInputGivesErrorsThatNameIt) {
  std::vector<std::string> train = TrainFiles(1);
  if (train.empty())
    GTEST_SKIP() << test_util::kSklearnDigitsCsv << " is missing (python3-sklearn)";
  std::shared_ptr<ir::Model> teacher = Prepared();
  DistillOptions o;
  o.steps = 2;
  o.teacher_name = "t.onnx";
  o.student_name = "s.onnx";
  auto msg = [&](std::shared_ptr<ir::Model> s, std::vector<std::string> data, DistillOptions opt) {
    return ErrorOf([&] { Distill(teacher, s, data, {}, opt); });
  };
  // The student has one output more than the teacher.
  std::shared_ptr<ir::Model> extra = Prepared();
  extra->graph->AddOutput(extra->graph->nodes()[0]->output(0));
  EXPECT_NE(msg(extra, train, o).find("t.onnx has 1 outputs, s.onnx 2"), std::string::npos)
      << msg(extra, train, o);
  // Its output is not the teacher's shape (a hidden layer instead of the logits).
  std::shared_ptr<ir::Model> wrong = Prepared();
  for (const ir::Node* n : wrong->graph->nodes())
    if (n->op_type() == "Gemm") {
      wrong->graph->SetOutput(0, n->output(0));
      break;
    }
  EXPECT_NE(msg(wrong, train, o).find("the logits must match"), std::string::npos)
      << msg(wrong, train, o);
  // Data without the model's input.
  std::string no_image = ::testing::TempDir() + "/distill_no_image.npz";
  formats::SaveNpz(
      {{"pixels", ir::Tensor::FromVector(ir::DType::kFloat32, {1, 64}, std::vector<float>(64))}},
      no_image);
  std::string m = msg(Prepared(), {no_image}, o);
  EXPECT_NE(m.find(no_image), std::string::npos) << m;
  EXPECT_NE(m.find("no array 'image'"), std::string::npos) << m;
  // A layer map naming a value the student lacks.
  DistillOptions lm = o;
  lm.layer_map = {{"logits", "no_such_value"}};
  EXPECT_NE(msg(Prepared(), train, lm).find("'no_such_value' is not a value of s.onnx"),
            std::string::npos);
  // Bad options are usage errors.
  DistillOptions bad = o;
  bad.temperature = 0;
  EXPECT_NE(msg(Prepared(), train, bad).find("--temperature"), std::string::npos);
  bad = o;
  bad.stop_after = 1;
  EXPECT_NE(msg(Prepared(), train, bad).find("--checkpoint"), std::string::npos);
  bad = o;
  bad.decay = "exp";
  EXPECT_NE(msg(Prepared(), train, bad).find("--decay"), std::string::npos);
}

}  // namespace
}  // namespace edgepress::distill
