// `edgepress bench --profile` end to end on a real model (the seeded torchvision
// MobileNetV3-small of tests/fixtures/make_models.py): the JSON lists every executed node
// once per timed run (warm-up runs excluded) with a registry kernel name, the op types are
// the graph's, the shares sum to 100%; the text table names op types and the top nodes;
// --profile with the torch backend is a usage error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "formats/onnx/onnx.h"
#include "runtime/kernel.h"
#include "tests/fixtures/model_fixtures.h"
#include "tests/tools/cli_run.h"

namespace edgepress {
namespace {

using test_util::RunCommand;
using test_util::ShellQuote;

class BenchProfileCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test_util::CliPath().empty() || access(test_util::CliPath().c_str(), X_OK) != 0)
      GTEST_SKIP() << "the edgepress CLI was not built";
    std::string skip;
    ASSERT_EQ(test_util::EnsureModelFixture("mobilenet_v3_small", &skip), "");
    if (!skip.empty()) GTEST_SKIP() << skip;
    model_ = test_util::kModelFixtureDir + "/mobilenet_v3_small/model.onnx";
    input_ = test_util::kModelFixtureDir + "/mobilenet_v3_small/in.npz";
  }
  test_util::RunResult Bench(const std::string& args) {
    return RunCommand(ShellQuote(test_util::CliPath()) + " bench " + ShellQuote(model_) +
                      " --input " + ShellQuote(input_) + " " + args);
  }
  std::string model_, input_;
};

TEST_F(BenchProfileCliTest, JsonListsEveryNodeOncePerTimedRun) {
  // --no-optimize: the profiled graph is the file's, so its op types can be compared.
  test_util::RunResult r = Bench("--no-optimize --profile --json --warmup 2 --iters 3");
  ASSERT_EQ(r.rc, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  ASSERT_TRUE(j.contains("profile")) << r.output;
  const nlohmann::json& p = j["profile"];
  EXPECT_EQ(p["runs"], 3);
  EXPECT_GT(p["node_ms"].get<double>(), 0.0);

  std::multiset<std::string> graph_ops;
  auto model = formats::LoadOnnx(model_);
  for (const ir::Node* n : model->graph->nodes())
    if (n->op_type() != "Constant") graph_ops.insert(n->qualified_op());
  std::set<std::string> registry_names;
  for (const runtime::KernelDef& d : runtime::GlobalKernelRegistry().defs())
    registry_names.insert(d.name);

  std::multiset<std::string> node_ops;
  std::set<std::string> names;
  double share = 0;
  for (const nlohmann::json& n : p["nodes"]) {
    SCOPED_TRACE(n.dump());
    EXPECT_EQ(n["calls"], 3);
    EXPECT_TRUE(names.insert(n["node"].get<std::string>()).second) << "node listed twice";
    node_ops.insert(n["op"].get<std::string>());
    const std::string kernel = n["kernel"];
    EXPECT_EQ(registry_names.count(kernel.substr(0, kernel.find(" ["))), 1u);
    share += n["share"].get<double>();
  }
  EXPECT_EQ(node_ops, graph_ops);
  EXPECT_NEAR(share, 100.0, 0.01);

  double op_share = 0;
  int op_nodes = 0;
  for (const nlohmann::json& op : p["op_types"]) {
    op_share += op["share"].get<double>();
    op_nodes += op["nodes"].get<int>();
    EXPECT_FALSE(op["kernels"].empty()) << op.dump();
  }
  EXPECT_NEAR(op_share, 100.0, 0.01);
  EXPECT_EQ(op_nodes, static_cast<int>(graph_ops.size()));
}

TEST_F(BenchProfileCliTest, TablePrintsOpTypesAndTopNodes) {
  test_util::RunResult r = Bench("--profile --profile-top 5 --warmup 1 --iters 2");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("profile: 2 run(s)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("op type"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("top 5 of "), std::string::npos) << r.output;
  // mobilenet_v3_small's slowest nodes are convs, plain or (HardSwish/Relu fused) FusedConv.
  EXPECT_NE(r.output.find("Conv)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("conv__"), std::string::npos) << r.output;
}

TEST_F(BenchProfileCliTest, NoProfileWithoutTheFlag) {
  test_util::RunResult r = Bench("--json --warmup 0 --iters 1");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_FALSE(nlohmann::json::parse(r.output).contains("profile")) << r.output;
}

TEST_F(BenchProfileCliTest, TorchBackendIsAUsageError) {
  test_util::RunResult r = Bench("--profile --backend torch --iters 1");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("--profile"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace edgepress
