// Session: planning errors, input validation, constants, and that buffer reuse (arena
// and in-place) gives the same values as a session that allocates every tensor afresh.
#include "runtime/session.h"

#include <gtest/gtest.h>

#include <random>

#include "ir/error.h"
#include "runtime/eager.h"
#include "tests/runtime/session_test_kernels.h"

#if __has_include("formats/epk/epk.h")
#include <unistd.h>

#include "formats/epk/epk.h"
#define EDGEPRESS_TEST_EPK 1
#endif

namespace edgepress::runtime {
namespace {

using testing::F32;
using testing::TestRegistry;
using testing::Values;

SessionOptions Opts(bool reuse) {
  SessionOptions o;
  o.registry = &TestRegistry();
  o.reuse_buffers = reuse;
  o.in_place = reuse;
  return o;
}

// A diamond-heavy chain where many intermediates die at different times, so a wrong
// liveness or an aliasing in-place write changes the result.
std::shared_ptr<ir::Model> ChainModel(int64_t n) {
  auto m = std::make_shared<ir::Model>();
  ir::Graph& g = *m->graph;
  ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32,
                                                      ir::Shape{ir::Dim::Symbol("batch"),
                                                                ir::Dim::Known(n)}));
  ir::Value* y = g.AddInput("y", ir::ValueType::Tensor(ir::DType::kFloat32,
                                                      ir::MakeShape({1, n})));
  ir::Value* half = g.AddInitializer("half", F32({}, {0.5f}));
  ir::Value* a = g.AddNode("Relu", {x}, {"a"})->output(0);
  ir::Value* b = g.AddNode("Sub", {x, half}, {"b"})->output(0);
  ir::Value* c = g.AddNode("Mul", {a, b}, {"c"})->output(0);
  ir::Value* d = g.AddNode("Relu", {c}, {"d"})->output(0);  // c dies here: in-place
  ir::Value* e = g.AddNode("Add", {d, a}, {"e"})->output(0);
  ir::Value* f = g.AddNode("Mul", {e, e}, {"f"})->output(0);
  ir::Value* h = g.AddNode("Sub", {f, b}, {"h"})->output(0);
  ir::Value* k = g.AddNode("Identity", {h}, {"k"})->output(0);  // a view of h
  ir::Value* l = g.AddNode("Relu", {k}, {"l"})->output(0);
  ir::Node* cn = g.AddNode("Constant", {}, {"two"});
  cn->set_attr(ir::Attribute::Float("value_float", 2.0f));
  ir::Value* o1 = g.AddNode("Mul", {l, cn->output(0)}, {"o1"})->output(0);
  g.AddOutput(o1);
  g.AddOutput(h);
  (void)y;
  return m;
}

std::vector<float> RandomVector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2, 2);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

TEST(SessionTest, ReuseMatchesFreshAllocation) {
  const int64_t n = 257;
  auto model = ChainModel(n);
  auto reuse = Session::Create(model, Opts(true));
  auto fresh = Session::Create(model, Opts(false));
  for (int64_t batch : {3, 1, 3, 5}) {
    NamedTensors in = {{"x", F32({batch, n}, RandomVector(batch * n, batch))},
                       {"y", F32({1, n}, RandomVector(n, 7))}};
    NamedTensors r = reuse->Run(in);
    NamedTensors f = fresh->Run(in);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0].first, "o1");
    EXPECT_EQ(r[1].first, "h");
    for (size_t i = 0; i < r.size(); ++i) EXPECT_EQ(Values(r[i].second), Values(f[i].second));
    // Independent check of one element: o1 = 2 * relu(h), h = (relu(x) + relu(relu(x)*(x-.5)))^2 - (x-.5)
    float x0 = in[0].second.data<float>()[0];
    float a = std::max(x0, 0.f), b = x0 - 0.5f, e = std::max(a * b, 0.f) + a;
    EXPECT_FLOAT_EQ(Values(r[1].second)[0], e * e - b);
    EXPECT_FLOAT_EQ(Values(r[0].second)[0], 2 * std::max(e * e - b, 0.f));
  }
  ArenaStats s = reuse->arena_stats();
  EXPECT_GT(s.reuses, 0u);
  EXPECT_GT(s.in_place, 0u);
  EXPECT_EQ(fresh->arena_stats().in_place, 0u);
}

TEST(SessionTest, SteadyStateAllocatesOnlyOutputs) {
  auto model = ChainModel(64);
  auto s = Session::Create(model, Opts(true));
  NamedTensors in = {{"x", F32({2, 64}, RandomVector(128, 1))}, {"y", F32({1, 64}, RandomVector(64, 2))}};
  s->Run(in);
  uint64_t after_first = s->arena_stats().allocations;
  for (int i = 0; i < 5; ++i) s->Run(in);
  // Each run hands its two outputs to the caller; everything else comes from the free list.
  EXPECT_LE(s->arena_stats().allocations, after_first + 5 * 2);
}

TEST(SessionTest, OutputsHeldByCallerSurviveLaterRuns) {
  auto model = ChainModel(16);
  auto s = Session::Create(model, Opts(true));
  NamedTensors in1 = {{"x", F32({1, 16}, RandomVector(16, 3))}, {"y", F32({1, 16}, RandomVector(16, 4))}};
  NamedTensors in2 = {{"x", F32({1, 16}, RandomVector(16, 5))}, {"y", F32({1, 16}, RandomVector(16, 6))}};
  NamedTensors first = s->Run(in1);
  std::vector<float> kept = Values(first[0].second);
  for (int i = 0; i < 3; ++i) s->Run(in2);
  EXPECT_EQ(Values(first[0].second), kept);
  EXPECT_EQ(Values(s->Run(in1)[0].second), kept);
}

TEST(SessionTest, CallerInputsAreNeverWrittenInPlace) {
  auto model = ChainModel(8);
  auto s = Session::Create(model, Opts(true));
  std::vector<float> xv = RandomVector(8, 9);
  NamedTensors in = {{"x", F32({1, 8}, xv)}, {"y", F32({1, 8}, RandomVector(8, 10))}};
  s->Run(in);
  EXPECT_EQ(Values(in[0].second), xv);
}

void ExpectInvalid(Session& s, const NamedTensors& in, const std::string& fragment) {
  try {
    s.Run(in);
    FAIL() << "expected an error mentioning " << fragment;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(SessionTest, InputValidation) {
  auto s = Session::Create(ChainModel(4), Opts(true));
  ir::Tensor y = F32({1, 4}, {1, 2, 3, 4});
  // Symbolic batch accepts any size.
  EXPECT_NO_THROW(s->Run({{"x", F32({7, 4}, std::vector<float>(28, 1))}, {"y", y}}));
  ExpectInvalid(*s, {{"x", F32({1, 4}, {1, 2, 3, 4})}}, "missing input 'y'");
  ExpectInvalid(*s, {{"x", F32({1, 4}, {1, 2, 3, 4})}, {"y", y}, {"z", y}}, "unknown input 'z'");
  ExpectInvalid(*s, {{"x", F32({1, 5}, {1, 2, 3, 4, 5})}, {"y", y}},
                "input 'x': expected f32[batch,4], got f32[1,5]");
  ExpectInvalid(*s, {{"x", F32({4}, {1, 2, 3, 4})}, {"y", y}}, "input 'x'");
  ExpectInvalid(*s,
                {{"x", ir::Tensor::FromVector<double>(ir::DType::kFloat64, {1, 4}, {1, 2, 3, 4})},
                 {"y", y}},
                "got f64[1,4]");
  ExpectInvalid(*s, {{"x", y}, {"x", y}, {"y", y}}, "given twice");
}

// Shapes that come from data (ConstantOfShape's and Expand's shape inputs) are checked
// against SessionOptions::max_memory_bytes before anything is allocated.
std::shared_ptr<ir::Model> FillModel() {
  auto m = std::make_shared<ir::Model>();
  ir::Graph& g = *m->graph;
  ir::Value* shape = g.AddInput("shape", ir::ValueType::Tensor(ir::DType::kInt64, ir::MakeShape({2})));
  ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32, ir::MakeShape({1, 1})));
  g.AddOutput(g.AddNode("ConstantOfShape", {shape}, {"filled"}, "fill")->output(0));
  g.AddOutput(g.AddNode("Expand", {x, shape}, {"grown"}, "grow")->output(0));
  return m;
}

NamedTensors FillInputs(int64_t rows, int64_t cols) {
  return {{"shape", ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {2}, {rows, cols})},
          {"x", F32({1, 1}, {3})}};
}

TEST(SessionTest, MemoryLimitNamesNodeAndSize) {
  // Default limit (half the physical memory): 2^40 floats are refused, not attempted.
  auto s = Session::Create(FillModel());
  ExpectInvalid(*s, FillInputs(int64_t{1} << 20, int64_t{1} << 20),
                "'fill' (ConstantOfShape): output 0 of shape [1048576,1048576] would take "
                "4398046511104 bytes, over the memory limit");
  SessionOptions o;
  o.max_memory_bytes = 4096;
  s = Session::Create(FillModel(), o);
  // Exactly at the limit: runs (the limit must not fire on what fits).
  NamedTensors out = s->Run(FillInputs(32, 32));
  EXPECT_EQ(out[0].second.shape(), (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(out[1].second.ToDouble()[1023], 3.0);
  ExpectInvalid(*s, FillInputs(33, 32), "'fill' (ConstantOfShape): output 0 of shape [33,32] "
                                        "would take 4224 bytes, over the memory limit of 4096");
  EXPECT_GT(DefaultMaxMemoryBytes(), uint64_t{0});
}

// --max-memory of compress/apply sets the process default: sessions created without a limit
// of their own and nodes run outside a session (constant folding) obey it; 0 restores it.
TEST(SessionTest, ProcessDefaultMemoryLimitCoversSessionsAndEagerNodes) {
  const uint64_t physical_half = DefaultMaxMemoryBytes();
  SetDefaultMaxMemoryBytes(4096);
  EXPECT_EQ(DefaultMaxMemoryBytes(), uint64_t{4096});
  auto s = Session::Create(FillModel());
  EXPECT_EQ(s->Run(FillInputs(32, 32))[0].second.shape(), (std::vector<int64_t>{32, 32}));
  ExpectInvalid(*s, FillInputs(33, 32), "over the memory limit of 4096");

  // The same ConstantOfShape run by itself, as fold-constants runs it.
  ir::Graph g;
  ir::Value* shape = g.AddInitializer(
      "shape", ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {2}, {33, 32}));
  ir::Node* fill = g.AddNode("ConstantOfShape", {shape}, {"filled"}, "fill");
  ThreadPool pool(1);
  ir::Tensor big = ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {2}, {33, 32});
  try {
    RunNode(*fill, {&big}, pool);
    ADD_FAILURE() << "a 4224-byte output passed a 4096-byte limit";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("'fill' (ConstantOfShape): output 0 of shape [33,32] "
                                         "would take 4224 bytes"),
              std::string::npos)
        << e.what();
  }
  ir::Tensor fits = ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {2}, {32, 32});
  EXPECT_EQ(RunNode(*fill, {&fits}, pool)[0].shape(), (std::vector<int64_t>{32, 32}));

  SetDefaultMaxMemoryBytes(0);
  EXPECT_EQ(DefaultMaxMemoryBytes(), physical_half);
}

TEST(SessionTest, UnsupportedOpsAreListedTogether) {
  auto m = std::make_shared<ir::Model>();
  ir::Graph& g = *m->graph;
  ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32, ir::MakeShape({2})));
  ir::Node* n1 = g.AddNode("FancyOp", {x}, {"a"}, "fancy1");
  ir::Node* n2 = g.AddNode("Relu", {n1->output(0)}, {"b"}, "relu1");
  ir::Node* n3 = g.AddNode("OtherOp", {n2->output(0)}, {"c"}, "other1");
  ir::Value* i64 = g.AddInput("i", ir::ValueType::Tensor(ir::DType::kInt64, ir::MakeShape({2})));
  ir::Node* n4 = g.AddNode("Relu", {i64}, {"d"}, "relu_int");
  g.AddOutput(n3->output(0));
  g.AddOutput(n4->output(0));
  try {
    Session::Create(m, Opts(true));
    FAIL() << "expected kUnsupported";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    std::string w = e.what();
    EXPECT_NE(w.find("3 node(s)"), std::string::npos) << w;
    EXPECT_NE(w.find("'fancy1' (FancyOp)"), std::string::npos) << w;
    EXPECT_NE(w.find("'other1' (OtherOp)"), std::string::npos) << w;
    EXPECT_NE(w.find("'relu_int' (Relu): no kernel for dtype i64"), std::string::npos) << w;
  }
}

TEST(SessionTest, ReportsKernelsAndProfiles) {
  SessionOptions o = Opts(true);
  o.profile = true;
  auto s = Session::Create(ChainModel(4), o);
  auto kernels = s->Kernels();
  ASSERT_EQ(kernels.size(), 10u);  // the Constant node is folded into a constant
  EXPECT_EQ(kernels[0].op, "Relu");
  EXPECT_EQ(kernels[0].kernel, "f32_relu__test");
  s->Run({{"x", F32({1, 4}, {1, 2, 3, 4})}, {"y", F32({1, 4}, {1, 2, 3, 4})}});
  s->Run({{"x", F32({1, 4}, {1, 2, 3, 4})}, {"y", F32({1, 4}, {1, 2, 3, 4})}});
  SessionProfile prof = s->Profile();
  EXPECT_EQ(prof.runs, 2u);
  ASSERT_EQ(prof.nodes.size(), kernels.size());
  for (const NodeProfile& p : prof.nodes) EXPECT_EQ(p.calls, 2u);
}

TEST(SessionTest, OutOfOrderNodesAndGraphInputAsOutput) {
  // Nodes appended consumer-first: the planner must order them itself.
  auto m = std::make_shared<ir::Model>();
  ir::Graph& g = *m->graph;
  ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32, ir::MakeShape({2})));
  ir::Value* one = g.AddInitializer("one", F32({2}, {1, 1}));
  ir::Node* late = g.AddNode("Relu", {one}, {"r"});  // placeholder input, rewired below
  ir::Node* early = g.AddNode("Add", {x, one}, {"s"});
  late->set_input(0, early->output(0));
  g.AddOutput(late->output(0));
  g.AddOutput(x);
  auto s = Session::Create(m, Opts(true));
  NamedTensors out = s->Run({{"x", F32({2}, {-3, 4})}});
  EXPECT_EQ(Values(out[0].second), (std::vector<float>{0, 5}));
  EXPECT_EQ(Values(out[1].second), (std::vector<float>{-3, 4}));
}

#ifdef EDGEPRESS_TEST_EPK
TEST(SessionTest, LoadsEpkNatively) {
  auto model = ChainModel(8);
  std::string path = "/tmp/edgepress_session_test_" + std::to_string(getpid()) + ".epk";
  formats::SaveEpk(*model, path);
  std::unique_ptr<Session> s;
  try {
    s = Session::Load(path, Opts(true));
  } catch (...) {
    unlink(path.c_str());
    throw;
  }
  NamedTensors in = {{"x", F32({2, 8}, RandomVector(16, 11))}, {"y", F32({1, 8}, RandomVector(8, 12))}};
  auto direct = Session::Create(model, Opts(false));
  EXPECT_EQ(Values(s->Run(in)[0].second), Values(direct->Run(in)[0].second));
  unlink(path.c_str());
}
#endif

TEST(SessionTest, LoadRejectsUnknownExtension) {
  EXPECT_THROW(Session::Load("/nonexistent/model.xyz"), Error);
}

}  // namespace
}  // namespace edgepress::runtime

namespace edgepress::runtime {
namespace {

// fuzz_epk_run found a Celu declaring a second output: an output the op does not define is
// the model's problem, named as such, not the session's internal error.
TEST(SessionTest, DeclaredOutputsAnOpDoesNotProduceAreNamed) {
  auto m = std::make_shared<ir::Model>();
  ir::Graph& g = *m->graph;
  ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32, ir::MakeShape({3})));
  ir::Node* n = g.AddNode("Celu", {x}, {"y", "extra"}, "celu");
  g.AddOutput(n->output(0));
  g.AddOutput(n->output(1));
  auto s = Session::Create(m);  // the real kernels
  try {
    s->Run({{"x", ir::Tensor::FromVector<float>(ir::DType::kFloat32, {3}, {-1, 0, 1})}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("declares output 1 ('extra')"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace edgepress::runtime
