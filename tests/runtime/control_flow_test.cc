// If, Loop and Scan inside a Session: branch choice, outer-scope values (one and two
// levels up), loop-carried values, scan outputs (both directions, non-zero axes), zero
// trip counts, and early exit through the body's condition output.
#include <gtest/gtest.h>

#include "ir/error.h"
#include "runtime/session.h"
#include "tests/runtime/session_test_kernels.h"

namespace edgepress::runtime {
namespace {

using testing::F32;
using testing::TestRegistry;
using testing::Values;

ir::ValueType F32Type(std::vector<int64_t> dims) {
  return ir::ValueType::Tensor(ir::DType::kFloat32, ir::MakeShape(dims));
}

// An empty subgraph of `owner`, ready for values and nodes.
std::shared_ptr<ir::Graph> Body(ir::Node* owner, const std::string& name) {
  auto g = std::make_shared<ir::Graph>();
  g->name = name;
  g->SetParent(owner->graph(), owner);
  return g;
}

SessionOptions Opts() {
  SessionOptions o;
  o.registry = &TestRegistry();
  return o;
}

ir::Tensor Bool(bool b) {
  return ir::Tensor::FromVector<uint8_t>(ir::DType::kBool, {}, {uint8_t(b ? 1 : 0)});
}
ir::Tensor I64(int64_t v) { return ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {}, {v}); }

TEST(ControlFlowTest, IfPicksBranchAndSeesOuterValues) {
  auto m = std::make_shared<ir::Model>();
  ir::Graph& g = *m->graph;
  ir::Value* c = g.AddInput("c", ir::ValueType::Tensor(ir::DType::kBool, ir::MakeShape({})));
  ir::Value* x = g.AddInput("x", F32Type({3}));
  ir::Value* k = g.AddInitializer("k", F32({3}, {10, 20, 30}));
  ir::Node* n = g.AddNode("If", {c}, {"y"});
  auto then_g = Body(n, "then");
  then_g->AddOutput(then_g->AddNode("Add", {x, k}, {"t_out"})->output(0));
  auto else_g = Body(n, "else");
  else_g->AddOutput(else_g->AddNode("Sub", {x, k}, {"e_out"})->output(0));
  n->set_attr(ir::Attribute::GraphValue("then_branch", then_g));
  n->set_attr(ir::Attribute::GraphValue("else_branch", else_g));
  g.AddOutput(n->output(0));
  auto s = Session::Create(m, Opts());
  ir::Tensor xv = F32({3}, {1, 2, 3});
  EXPECT_EQ(Values(s->Run({{"c", Bool(true)}, {"x", xv}})[0].second),
            (std::vector<float>{11, 22, 33}));
  EXPECT_EQ(Values(s->Run({{"c", Bool(false)}, {"x", xv}})[0].second),
            (std::vector<float>{-9, -18, -27}));
}

// Loop(M, cond, v): v += x each iteration; scan output 2*v; optionally stops when an
// If inside the body (reading `limit` two scopes up) says so.
std::shared_ptr<ir::Model> LoopModel(bool with_exit) {
  auto m = std::make_shared<ir::Model>();
  ir::Graph& g = *m->graph;
  ir::Value* trip = g.AddInput("M", ir::ValueType::Tensor(ir::DType::kInt64, ir::MakeShape({})));
  ir::Value* x = g.AddInput("x", F32Type({2}));
  ir::Value* v0 = g.AddInput("v0", F32Type({2}));
  ir::Value* two = g.AddInitializer("two", F32({}, {2}));
  ir::Value* yes = g.AddInitializer("yes", Bool(true));
  ir::Value* no = g.AddInitializer("no", Bool(false));
  ir::Value* limit = g.AddInput("stop_now", ir::ValueType::Tensor(ir::DType::kBool, ir::MakeShape({})));
  ir::Node* loop = g.AddNode("Loop", {trip, yes, v0}, {"v_final", "v_scan"});
  auto body = Body(loop, "body");
  body->AddInput("iter", ir::ValueType::Tensor(ir::DType::kInt64, ir::MakeShape({})));
  ir::Value* cond_in = body->AddInput("cond_in", ir::ValueType::Tensor(ir::DType::kBool, ir::MakeShape({})));
  ir::Value* v_in = body->AddInput("v_in", F32Type({2}));
  ir::Value* v_out = body->AddNode("Add", {v_in, x}, {"v_out"})->output(0);
  ir::Value* scan = body->AddNode("Mul", {v_out, two}, {"scan_out"})->output(0);
  ir::Value* cond_out;
  if (with_exit) {
    // cond_out = stop_now ? false : true, decided by an If nested in the body.
    ir::Node* n_if = body->AddNode("If", {limit}, {"cond_out"});
    auto t = Body(n_if, "stop");
    t->AddOutput(t->AddNode("Identity", {no}, {"stop_val"})->output(0));
    auto e = Body(n_if, "go");
    e->AddOutput(e->AddNode("Identity", {yes}, {"go_val"})->output(0));
    n_if->set_attr(ir::Attribute::GraphValue("then_branch", t));
    n_if->set_attr(ir::Attribute::GraphValue("else_branch", e));
    cond_out = n_if->output(0);
    (void)cond_in;
  } else {
    cond_out = body->AddNode("Identity", {cond_in}, {"cond_out"})->output(0);
  }
  body->AddOutput(cond_out);
  body->AddOutput(v_out);
  scan->type = F32Type({2});
  body->AddOutput(scan);
  loop->set_attr(ir::Attribute::GraphValue("body", body));
  g.AddOutput(loop->output(0));
  g.AddOutput(loop->output(1));
  return m;
}

TEST(ControlFlowTest, LoopCarriesValuesAndStacksScanOutputs) {
  auto s = Session::Create(LoopModel(false), Opts());
  NamedTensors out = s->Run({{"M", I64(3)}, {"x", F32({2}, {1, 10})}, {"v0", F32({2}, {0, 5})},
                             {"stop_now", Bool(false)}});
  EXPECT_EQ(Values(out[0].second), (std::vector<float>{3, 35}));
  EXPECT_EQ(out[1].second.shape(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(Values(out[1].second), (std::vector<float>{2, 30, 4, 50, 6, 70}));
}

TEST(ControlFlowTest, LoopWithZeroTripsReturnsInitialValues) {
  auto s = Session::Create(LoopModel(false), Opts());
  NamedTensors out = s->Run({{"M", I64(0)}, {"x", F32({2}, {1, 10})}, {"v0", F32({2}, {4, 5})},
                             {"stop_now", Bool(false)}});
  EXPECT_EQ(Values(out[0].second), (std::vector<float>{4, 5}));
  EXPECT_EQ(out[1].second.shape(), (std::vector<int64_t>{0, 2}));
}

TEST(ControlFlowTest, LoopStopsOnBodyConditionFromNestedIf) {
  auto s = Session::Create(LoopModel(true), Opts());
  // The body runs once, then its condition output (false) ends the loop.
  NamedTensors out = s->Run({{"M", I64(100)}, {"x", F32({2}, {1, 10})}, {"v0", F32({2}, {0, 0})},
                             {"stop_now", Bool(true)}});
  EXPECT_EQ(Values(out[0].second), (std::vector<float>{1, 10}));
  EXPECT_EQ(out[1].second.shape(), (std::vector<int64_t>{1, 2}));
  out = s->Run({{"M", I64(4)}, {"x", F32({2}, {1, 10})}, {"v0", F32({2}, {0, 0})},
                {"stop_now", Bool(false)}});
  EXPECT_EQ(Values(out[0].second), (std::vector<float>{4, 40}));
}

// Scan (opset 9+): running sum over `axis` of X, in the given direction.
std::shared_ptr<ir::Model> ScanModel(int64_t in_axis, int64_t in_dir, int64_t out_axis,
                                     int64_t out_dir) {
  auto m = std::make_shared<ir::Model>();
  ir::Graph& g = *m->graph;
  ir::Value* s0 = g.AddInput("s0", F32Type({2}));
  ir::Value* x = g.AddInput("X", ir::ValueType::Tensor(ir::DType::kFloat32));
  ir::Node* n = g.AddNode("Scan", {s0, x}, {"s_final", "Y"});
  auto body = Body(n, "body");
  ir::Value* s_in = body->AddInput("s_in", F32Type({2}));
  ir::Value* x_t = body->AddInput("x_t", F32Type({2}));
  ir::Value* s_out = body->AddNode("Add", {s_in, x_t}, {"s_out"})->output(0);
  ir::Value* y = body->AddNode("Identity", {s_out}, {"y_t"})->output(0);
  body->AddOutput(s_out);
  body->AddOutput(y);
  n->set_attr(ir::Attribute::GraphValue("body", body));
  n->set_attr(ir::Attribute::Int("num_scan_inputs", 1));
  n->set_attr(ir::Attribute::Ints("scan_input_axes", {in_axis}));
  n->set_attr(ir::Attribute::Ints("scan_input_directions", {in_dir}));
  n->set_attr(ir::Attribute::Ints("scan_output_axes", {out_axis}));
  n->set_attr(ir::Attribute::Ints("scan_output_directions", {out_dir}));
  g.AddOutput(n->output(0));
  g.AddOutput(n->output(1));
  return m;
}

TEST(ControlFlowTest, ScanRunningSumForward) {
  auto s = Session::Create(ScanModel(0, 0, 0, 0), Opts());
  NamedTensors out = s->Run({{"s0", F32({2}, {0, 0})}, {"X", F32({3, 2}, {1, 2, 3, 4, 5, 6})}});
  EXPECT_EQ(Values(out[0].second), (std::vector<float>{9, 12}));
  EXPECT_EQ(out[1].second.shape(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(Values(out[1].second), (std::vector<float>{1, 2, 4, 6, 9, 12}));
}

TEST(ControlFlowTest, ScanReverseInputAxisOneOutputAxisOne) {
  // X is [2,3]: the sequence runs along axis 1 (length 3), backwards.
  auto s = Session::Create(ScanModel(1, 1, -1, 0), Opts());
  NamedTensors out = s->Run({{"s0", F32({2}, {0, 100})}, {"X", F32({2, 3}, {1, 2, 3, 4, 5, 6})}});
  EXPECT_EQ(Values(out[0].second), (std::vector<float>{6, 115}));
  // Steps: {3,106}, {5,111}, {6,115}; stacked along axis 1 -> [2,3].
  EXPECT_EQ(out[1].second.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(Values(out[1].second), (std::vector<float>{3, 5, 6, 106, 111, 115}));
}

TEST(ControlFlowTest, ScanReverseOutputDirection) {
  auto s = Session::Create(ScanModel(0, 0, 0, 1), Opts());
  NamedTensors out = s->Run({{"s0", F32({2}, {0, 0})}, {"X", F32({3, 2}, {1, 2, 3, 4, 5, 6})}});
  EXPECT_EQ(Values(out[1].second), (std::vector<float>{9, 12, 4, 6, 1, 2}));
}

TEST(ControlFlowTest, ScanRejectsMismatchedBody) {
  auto m = ScanModel(0, 0, 0, 0);
  ir::Node* n = m->graph->nodes()[0];
  n->set_attr(ir::Attribute::Int("num_scan_inputs", 2));  // body expects only one
  auto s = Session::Create(m, Opts());
  EXPECT_THROW(s->Run({{"s0", F32({2}, {0, 0})}, {"X", F32({3, 2}, {1, 2, 3, 4, 5, 6})}}), Error);
}

}  // namespace
}  // namespace edgepress::runtime
