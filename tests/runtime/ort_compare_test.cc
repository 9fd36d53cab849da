// edgepress's runtime against onnxruntime on real exported models (issue 3, item 5).
//
// tests/fixtures/make_models.py exports seeded fp32 models (mlp, resnet18, mobilenet_v2,
// mobilenet_v3_small, a DB-style text detector, a BERT-style encoder, a GPT-style decoder)
// with torch.onnx.export and records onnxruntime's
// outputs for one input. This test runs each model through the `edgepress run` CLI and
// compares its outputs with onnxruntime's.
//
// Error measure (per output tensor): max_i |a_i - b_i| / max(max_i |b_i|, 1e-6), with a =
// edgepress, b = onnxruntime. Scaling by the output's largest magnitude rather than each
// element's keeps elements near zero (where any two correct fp32 implementations differ in
// relative terms) from dominating, while still bounding every element's error by 1e-4 of
// the output's range. Shapes, dtypes and output names must match exactly, and every value
// must be finite.
//
// The fixtures are generated once into EDGEPRESS_BINARY_DIR/fixtures and reused while the
// script is unchanged (a hash of the script is stored next to each model). Each model has
// its own lock file, so ctest running the cases in parallel processes never races.
// The test skips when the project venv (with torch, torchvision, onnx and onnxruntime)
// or the CLI binary is missing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "formats/npy/npy.h"
#include "ir/file_util.h"
#include "ir/tensor.h"
#include "tests/fixtures/model_fixtures.h"

namespace edgepress {
namespace {

constexpr double kMaxScaledError = 1e-4;
constexpr double kScaleFloor = 1e-6;

const std::string& kFixtureDir = test_util::kModelFixtureDir;
const std::string kCli = EDGEPRESS_CLI;

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command, returns its exit status (-1 if it did not exit normally) and its
// combined stdout/stderr in `*output`.
int RunCommand(const std::string& cmd, std::string* output) {
  output->clear();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool IsExecutable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// Per-output error of `got` against `want` (see the top of the file); fails the test on
// any structural mismatch.
double ScaledMaxError(const std::string& name, const ir::Tensor& got,
                      const ir::Tensor& want) {
  EXPECT_EQ(got.dtype(), want.dtype()) << "output " << name;
  EXPECT_EQ(got.shape(), want.shape()) << "output " << name;
  if (got.dtype() != want.dtype() || got.shape() != want.shape()) return INFINITY;
  std::vector<double> a = got.ToDouble(), b = want.ToDouble();
  double max_diff = 0, max_ref = 0;
  size_t non_finite = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) {
      ++non_finite;
      continue;
    }
    max_diff = std::max(max_diff, std::fabs(a[i] - b[i]));
    max_ref = std::max(max_ref, std::fabs(b[i]));
  }
  EXPECT_EQ(non_finite, 0u) << "output " << name << " has non-finite values";
  return non_finite ? INFINITY : max_diff / std::max(max_ref, kScaleFloor);
}

struct Case {
  std::string model;
  // EDGEPRESS_FORCE_SCALAR=1: the reference kernels, which every SIMD kernel is tested
  // against, must match onnxruntime on real models too.
  bool scalar = false;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.model << (c.scalar ? " (scalar)" : ""); }

class OrtCompare : public ::testing::TestWithParam<Case> {};

TEST_P(OrtCompare, MatchesOnnxruntime) {
  const std::string& name = GetParam().model;
  const bool scalar = GetParam().scalar;
  if (kCli.empty() || !IsExecutable(kCli))
    GTEST_SKIP() << "the edgepress CLI was not built (" << kCli << ")";
  std::string skip;
  std::string problem = test_util::EnsureModelFixture(name, &skip);
  ASSERT_EQ(problem, "");
  if (!skip.empty()) GTEST_SKIP() << skip;

  const std::string folder = kFixtureDir + "/" + name;
  const std::string out_path =
      folder + (scalar ? "/edgepress.scalar.out.npz" : "/edgepress.out.npz");
  std::remove(out_path.c_str());
  // Two threads exercise the thread pool's partitioning; CI machines have two cores.
  std::string log;
  int rc = RunCommand(std::string(scalar ? "EDGEPRESS_FORCE_SCALAR=1 " : "") + Quote(kCli) +
                          " run " + Quote(folder + "/model.onnx") + " --input " +
                          Quote(folder + "/in.npz") + " --output " + Quote(out_path) +
                          " --threads 2",
                      &log);
  ASSERT_EQ(rc, 0) << "edgepress run failed on " << name << ":\n" << log;

  formats::NamedTensors got = formats::LoadNpz(out_path);
  formats::NamedTensors want = formats::LoadNpz(folder + "/ort.npz");
  std::map<std::string, ir::Tensor> got_by_name(got.begin(), got.end());
  ASSERT_EQ(got_by_name.size(), got.size()) << "duplicate output names in " << out_path;
  for (const auto& [out_name, ref] : want) {
    auto it = got_by_name.find(out_name);
    ASSERT_NE(it, got_by_name.end()) << "edgepress did not write output '" << out_name << "'";
    double err = ScaledMaxError(out_name, it->second, ref);
    std::printf("%s%s/%s: scaled max error %.3g\n", name.c_str(), scalar ? " (scalar)" : "",
                out_name.c_str(), err);
    EXPECT_LE(err, kMaxScaledError) << name << " output '" << out_name << "'";
  }
  EXPECT_EQ(got.size(), want.size()) << "edgepress wrote extra outputs";
}

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  for (bool scalar : {false, true})
    for (const char* m :
         {"mlp", "resnet18", "mobilenet_v2", "mobilenet_v3_small", "detector", "bert", "gpt"})
      cases.push_back({m, scalar});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Models, OrtCompare, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.model + (info.param.scalar ? "_scalar" : "");
                         });

}  // namespace
}  // namespace edgepress
