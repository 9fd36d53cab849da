// What the importer makes of particular TorchScript constructs: a data-dependent branch
// and a shape-driven loop become ONNX If/Loop; Python scalar arguments become rank-0
// inputs whose values take effect at run time (or are fixed at import); ops without a
// converter are all listed, each with its Python source line; a model that needs input
// shapes says which input.
#include <gtest/gtest.h>

#include "formats/npy/npy.h"
#include "formats/torchscript/torchscript_import.h"
#include "ir/error.h"
#include "ir/verifier.h"
#include "runtime/session.h"
#include "tests/formats/torchscript/ts_fixtures.h"

using namespace edgepress;
using namespace edgepress::test_util;

namespace {

std::string Fixture(const std::string& name) {
  std::string skip;
  std::string err = EnsureTorchScriptFixture(name, &skip);
  if (!skip.empty()) return "SKIP:" + skip;
  if (!err.empty()) ADD_FAILURE() << err;
  return kTsFixtureDir + "/" + name;
}

int Count(const ir::Graph& g, const std::string& op) {
  int n = 0;
  for (const ir::Node* node : g.nodes()) n += node->op_type() == op;
  return n;
}

ir::Tensor Get(const runtime::NamedTensors& t, const std::string& name) {
  for (const auto& [n, v] : t)
    if (n == name) return v;
  return {};
}

TEST(TorchScriptStructure, ControlFlowBecomesIfAndLoop) {
  std::string dir = Fixture("control_flow");
  if (dir.rfind("SKIP:", 0) == 0) GTEST_SKIP() << dir;
  std::unique_ptr<ir::Model> m = formats::ImportTorchScript(dir + "/model.pt");
  ir::Verify(*m);
  ASSERT_EQ(Count(*m->graph, "If"), 1);
  ASSERT_EQ(Count(*m->graph, "Loop"), 1);
  for (const ir::Node* n : m->graph->nodes()) {
    if (n->op_type() == "If") {
      // Both branches survive: relu(a(x)) and sigmoid(b(x)).
      EXPECT_EQ(Count(*n->attr("then_branch")->g, "Relu"), 1);
      EXPECT_EQ(Count(*n->attr("else_branch")->g, "Sigmoid"), 1);
    }
    if (n->op_type() == "Loop") {
      EXPECT_EQ(Count(*n->attr("body")->g, "Mul"), 1);
      // The trip count is x.size(0), computed at run time from the input's shape.
      ASSERT_NE(n->input(0)->producer(), nullptr);
    }
  }
  // Run time decides the branch: a negated input takes the other one, and both are the
  // bounded functions they should be after three halvings plus x.
  auto session = runtime::Session::Create(std::shared_ptr<const ir::Model>(std::move(m)));
  formats::NamedTensors in = formats::LoadNpz(dir + "/in.npz");
  ir::Tensor x = in[0].second;
  ir::Tensor neg = x;
  float sum = 0;
  for (uint64_t i = 0; i < neg.numel(); ++i) {
    neg.mutable_data<float>()[i] = -x.data<float>()[i];
    sum += x.data<float>()[i];
  }
  ASSERT_NE(sum, 0.f);
  ir::Tensor y_pos = Get(session->Run({{"x", x}}), "output");
  ir::Tensor y_neg = Get(session->Run({{"x", neg}}), "output");
  ir::Tensor ref = formats::LoadNpz(dir + "/ref.npz")[0].second;
  EXPECT_LE(MaxRelativeError(y_pos, ref), 1e-4);
  // With 3 rows the loop runs 3 times: y = y/8 + x * (1 + 1/2 + 1/4); the branch value
  // sigmoid(...) lies in (0, 1), so y - 1.75 x is in (0, 1/8) on the sigmoid side.
  const ir::Tensor& sig = sum > 0 ? y_neg : y_pos;
  const ir::Tensor& sig_x = sum > 0 ? neg : x;
  for (uint64_t i = 0; i < sig.numel(); ++i) {
    float rest = sig.data<float>()[i] - 1.75f * sig_x.data<float>()[i];
    EXPECT_GT(rest, 0.f);
    EXPECT_LT(rest, 0.125f + 1e-5f);
  }
}

TEST(TorchScriptStructure, ScalarArgumentsAreRankZeroInputs) {
  std::string dir = Fixture("nontensor");
  if (dir.rfind("SKIP:", 0) == 0) GTEST_SKIP() << dir;
  std::unique_ptr<ir::Model> m = formats::ImportTorchScript(dir + "/model.pt");
  ASSERT_EQ(m->graph->inputs().size(), 4u);
  EXPECT_EQ(m->graph->inputs()[1]->type.dtype, ir::DType::kFloat32);
  EXPECT_EQ(m->graph->inputs()[2]->type.dtype, ir::DType::kInt64);
  EXPECT_EQ(m->graph->inputs()[3]->type.dtype, ir::DType::kBool);
  for (int i = 1; i < 4; ++i) EXPECT_EQ(m->graph->inputs()[i]->type.shape->size(), 0u);
  EXPECT_EQ(Count(*m->graph, "If"), 1);  // `if flag:` decided at run time
  auto session = runtime::Session::Create(std::shared_ptr<const ir::Model>(std::move(m)));
  ir::Tensor x = formats::LoadNpz(dir + "/in.npz")[0].second;
  auto scalar = [](ir::DType dt, double v) {
    ir::Tensor t(dt, {});
    if (dt == ir::DType::kFloat32) *t.mutable_data<float>() = static_cast<float>(v);
    if (dt == ir::DType::kInt64) *t.mutable_data<int64_t>() = static_cast<int64_t>(v);
    if (dt == ir::DType::kBool) *t.mutable_data<uint8_t>() = v != 0;
    return t;
  };
  for (bool flag : {false, true}) {
    ir::Tensor y = Get(session->Run({{"x", x}, {"scale", scalar(ir::DType::kFloat32, 2.5)},
                                     {"offset", scalar(ir::DType::kInt64, 3)},
                                     {"flag", scalar(ir::DType::kBool, flag)}}),
                       "output");
    ASSERT_EQ(y.numel(), x.numel());
    for (uint64_t i = 0; i < x.numel(); ++i) {
      float want = x.data<float>()[i] * 2.5f + 3;
      if (flag) want = std::max(want, 0.f);
      EXPECT_FLOAT_EQ(y.data<float>()[i], want);
    }
  }
  // Fixed at import, the arguments are no inputs and the branch is settled.
  formats::TorchScriptImportOptions o;
  o.scalar_inputs = {{"scale", 2.5}, {"offset", 3}, {"flag", 0}};
  std::unique_ptr<ir::Model> fixed = formats::ImportTorchScript(dir + "/model.pt", o);
  EXPECT_EQ(fixed->graph->inputs().size(), 1u);
  EXPECT_EQ(Count(*fixed->graph, "If"), 0);
  EXPECT_EQ(Count(*fixed->graph, "Relu"), 0);
}

TEST(TorchScriptStructure, UnsupportedOpsAreAllListedWithTheirSourceLines) {
  std::string dir = Fixture("unsupported");
  if (dir.rfind("SKIP:", 0) == 0) GTEST_SKIP() << dir;
  formats::TorchScriptImportOptions o;
  o.input_shapes["x"] = {3, 3};
  try {
    formats::ImportTorchScript(dir + "/model.pt", o);
    FAIL() << "imported a model with ops that have no converter";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("3 TorchScript op(s) without a converter"), std::string::npos) << msg;
    // The einsum equation, cumprod and the atan2 inside the run-time branch, each at the
    // line of make_torchscript.py that calls it.
    for (const char* want : {"aten::cumprod at ", "aten::einsum at ", "aten::atan2 at "})
      EXPECT_NE(msg.find(want), std::string::npos) << want << " missing in: " << msg;
    const std::string script = ReadFileToString(EDGEPRESS_SOURCE_DIR "/tests/fixtures/make_torchscript.py");
    for (const char* call : {"torch.cumprod(", "torch.einsum(", "torch.atan2("}) {
      size_t at = script.find(call);
      ASSERT_NE(at, std::string::npos);
      int line = 1 + static_cast<int>(std::count(script.begin(), script.begin() + at, '\n'));
      EXPECT_NE(msg.find("make_torchscript.py:" + std::to_string(line)), std::string::npos)
          << call << " (line " << line << ") in: " << msg;
    }
  }
}

TEST(TorchScriptStructure, AModelThatNeedsShapesNamesTheInput) {
  std::string dir = Fixture("transformer_traced");
  if (dir.rfind("SKIP:", 0) == 0) GTEST_SKIP() << dir;
  try {
    formats::ImportTorchScript(dir + "/model.pt");
    FAIL() << "imported without the rank transpose needs";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'src'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("input shapes"), std::string::npos) << e.what();
  }
  // A symbolic batch (-1) is enough.
  formats::TorchScriptImportOptions o;
  o.input_shapes["src"] = {-1, 5, 32};
  std::unique_ptr<ir::Model> m = formats::ImportTorchScript(dir + "/model.pt", o);
  EXPECT_EQ((*m->graph->inputs()[0]->type.shape)[0].symbol, "src_d0");
  auto session = runtime::Session::Create(std::shared_ptr<const ir::Model>(std::move(m)));
  formats::NamedTensors in = formats::LoadNpz(dir + "/in.npz");
  EXPECT_LE(MaxRelativeError(Get(session->Run(in), "output"), formats::LoadNpz(dir + "/ref.npz")[0].second), 1e-4);
}

}  // namespace
