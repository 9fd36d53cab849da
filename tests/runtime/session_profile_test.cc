// Session profiling (SessionOptions::profile) on a real model, the seeded torchvision
// MobileNetV3-small of tests/fixtures/make_models.py: every executed node is listed once per
// run with the op type the graph gives it and the kernel (a registry entry) that ran it, the
// shares sum to 100%, ResetProfile() drops warm-up runs, and profiling changes no output.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "runtime/profile.h"
#include "runtime/session.h"
#include "tests/fixtures/model_fixtures.h"

namespace edgepress::runtime {
namespace {

class SessionProfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string skip;
    ASSERT_EQ(test_util::EnsureModelFixture("mobilenet_v3_small", &skip), "");
    if (!skip.empty()) GTEST_SKIP() << skip;
    const std::string folder = test_util::kModelFixtureDir + "/mobilenet_v3_small";
    model_ = std::shared_ptr<const ir::Model>(formats::LoadOnnx(folder + "/model.onnx"));
    inputs_ = formats::LoadNpz(folder + "/in.npz");
  }
  std::shared_ptr<const ir::Model> model_;
  NamedTensors inputs_;
};

// The registry entry a profile's kernel string names ("name" or "name [variant]").
const KernelDef* RegistryEntry(const std::string& kernel) {
  const std::string name = kernel.substr(0, kernel.find(" ["));
  for (const KernelDef& d : GlobalKernelRegistry().defs())
    if (name == d.name) return &d;
  return nullptr;
}

TEST_F(SessionProfileTest, ListsEveryNodeOncePerRunWithItsRegistryKernel) {
  SessionOptions o;
  o.profile = true;
  auto s = Session::Create(model_, o);
  s->Run(inputs_);  // warm-up, dropped below
  s->ResetProfile();
  EXPECT_EQ(s->Profile().runs, 0u);
  for (int i = 0; i < 3; ++i) s->Run(inputs_);
  SessionProfile p = s->Profile();
  EXPECT_EQ(p.runs, 3u);

  // Constant nodes are folded at planning; every other node runs.
  std::map<std::string, std::string> graph_ops;  // node name -> op type
  std::multiset<std::string> graph_op_types;
  for (const ir::Node* n : model_->graph->nodes()) {
    if (n->op_type() == "Constant") continue;
    ASSERT_TRUE(graph_ops.emplace(n->name, n->qualified_op()).second) << "duplicate " << n->name;
    graph_op_types.insert(n->qualified_op());
  }
  ASSERT_EQ(p.nodes.size(), graph_ops.size());
  std::set<std::string> seen;
  double node_ms = 0;
  for (const NodeProfile& n : p.nodes) {
    SCOPED_TRACE(n.node + " (" + n.op + ") -> " + n.kernel);
    EXPECT_TRUE(seen.insert(n.node).second) << "listed twice";
    EXPECT_EQ(n.op, graph_ops[n.node]);
    EXPECT_EQ(n.calls, 3u);
    EXPECT_GT(n.total_ms, 0.0);
    const KernelDef* def = RegistryEntry(n.kernel);
    ASSERT_NE(def, nullptr) << "not a registry kernel name";
    EXPECT_EQ(def->isa, n.isa);
    EXPECT_EQ(n.op, std::string(def->domain).empty()
                        ? std::string(def->op_type)
                        : std::string(def->domain) + "::" + def->op_type);
    EXPECT_NE(n.shapes.find(" -> f32["), std::string::npos) << n.shapes;
    node_ms += n.total_ms;
  }
  // The stem conv reads the image.
  EXPECT_EQ(std::count_if(p.nodes.begin(), p.nodes.end(),
                          [](const NodeProfile& n) {
                            return n.op == "Conv" && n.shapes.rfind("f32[1,3,224,224], ", 0) == 0;
                          }),
            1);
  // The run's wall time holds every node's time.
  EXPECT_GE(p.run_ms, node_ms);

  ProfileSummary sum = SummarizeProfile(p);
  EXPECT_NEAR(sum.node_ms, node_ms / 3, 1e-9);
  double node_share = 0, op_share = 0;
  for (const NodeProfileRow& r : sum.nodes) node_share += r.share;
  std::multiset<std::string> profiled_op_types;
  for (const OpTypeProfile& op : sum.op_types) {
    op_share += op.share;
    EXPECT_EQ(op.calls, 3u * static_cast<uint64_t>(op.nodes)) << op.op;
    for (int k = 0; k < op.nodes; ++k) profiled_op_types.insert(op.op);
    EXPECT_FALSE(op.kernels.empty()) << op.op;
  }
  EXPECT_NEAR(node_share, 100.0, 1e-6);
  EXPECT_NEAR(op_share, 100.0, 1e-6);
  EXPECT_EQ(profiled_op_types, graph_op_types);
  for (size_t k = 1; k < sum.op_types.size(); ++k)
    EXPECT_GE(sum.op_types[k - 1].total_ms, sum.op_types[k].total_ms);
  ASSERT_EQ(sum.ranked.size(), p.nodes.size());
  for (size_t k = 1; k < sum.ranked.size(); ++k)
    EXPECT_GE(p.nodes[sum.ranked[k - 1]].total_ms, p.nodes[sum.ranked[k]].total_ms);
}

TEST_F(SessionProfileTest, ProfilingChangesNoOutputAndIsEmptyWhenOff) {
  SessionOptions on, off;
  on.profile = true;
  auto profiled = Session::Create(model_, on);
  auto plain = Session::Create(model_, off);
  NamedTensors a = profiled->Run(inputs_), b = plain->Run(inputs_);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    ASSERT_EQ(a[i].second.shape(), b[i].second.shape());
    // Bit-identical: same dtype, shape and bytes.
    EXPECT_TRUE(a[i].second == b[i].second) << "output " << a[i].first << " differs";
  }
  SessionProfile p = plain->Profile();
  EXPECT_EQ(p.runs, 0u);
  EXPECT_TRUE(p.nodes.empty());
}

}  // namespace
}  // namespace edgepress::runtime
