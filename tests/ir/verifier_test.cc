// The verifier: one test per defect it must report (each message must name the graph,
// node or value involved), and valid graphs, including subgraphs with outer-scope
// references, that it must accept.
#include "ir/verifier.h"

#include <gtest/gtest.h>

#include "ir/builder.h"
#include "ir/error.h"
#include "ir/shape_inference.h"

namespace edgepress::ir {
namespace {

// Asserts that exactly the problems matching `needle` are reported and Verify throws.
void ExpectProblem(const Graph& g, const std::string& needle) {
  std::vector<std::string> problems = VerifyAll(g);
  ASSERT_FALSE(problems.empty()) << "expected a problem containing: " << needle;
  bool found = false;
  for (const auto& p : problems) found = found || p.find(needle) != std::string::npos;
  std::string all;
  for (const auto& p : problems) all += p + "\n";
  EXPECT_TRUE(found) << "no problem contains '" << needle << "':\n" << all;
  try {
    Verify(g);
    ADD_FAILURE() << "Verify did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("invalid graph"), std::string::npos);
  }
}

// A small valid model: Conv -> Relu -> If(then: Add outer value, else: Identity).
std::unique_ptr<Model> ValidModel() {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {1, 2, 4, 4});
  Value* c = b.Input("c", DType::kBool, {});
  Value* w = b.Const("w", Tensor(DType::kFloat32, {3, 2, 3, 3}));
  Value* y = b.Op("Conv", {x, w}, {Attribute::Ints("pads", {1, 1, 1, 1})});
  Value* r = b.Op("Relu", {y});
  auto then_g = std::make_shared<Graph>();
  then_g->name = "then";
  GraphBuilder tb(then_g.get());
  tb.Output(tb.Op("Add", {r, r}));
  auto else_g = std::make_shared<Graph>();
  else_g->name = "else";
  GraphBuilder eb(else_g.get());
  eb.Output(eb.Op("Identity", {y}));
  b.Output(b.Op("If", {c},
                {Attribute::GraphValue("then_branch", then_g),
                 Attribute::GraphValue("else_branch", else_g)}));
  return b.Build();
}

TEST(VerifierTest, AcceptsValidGraphWithSubgraphsBeforeAndAfterInference) {
  auto m = ValidModel();
  EXPECT_TRUE(VerifyAll(*m).empty()) << VerifyAll(*m)[0];
  EXPECT_NO_THROW(Verify(*m));
  InferShapes(*m);
  EXPECT_TRUE(VerifyAll(*m).empty()) << VerifyAll(*m)[0];
  // A subgraph verified on its own may still use outer values.
  Graph* then_g = m->graph->nodes().back()->subgraphs()[0];
  EXPECT_TRUE(VerifyAll(*then_g).empty());
}

TEST(VerifierTest, AcceptsOmittedOptionalInputsAndOutputs) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2, 3});
  Value* hi = b.Const("hi", FloatTensor({}, {6}));
  Node* n = b.graph().AddNode("Clip", {x, nullptr, hi}, {"y"}, "clip");
  Node* d = b.graph().AddNode("Dropout", {n->output(0)}, {"z", ""}, "drop");
  b.Output(d->output(0));
  EXPECT_TRUE(VerifyAll(b.graph()).empty());
}

TEST(VerifierTest, DanglingInputFromAnotherGraph) {
  GraphBuilder other;
  Value* foreign = other.Input("foreign", DType::kFloat32, {2});
  GraphBuilder b;
  b.Input("x", DType::kFloat32, {2});
  Value* y = b.Op("Relu", {foreign}, {}, "relu");
  b.Output(y);
  ExpectProblem(b.graph(), "node 'relu' (Relu) input 0 refers to a value that is not part");
  // Clean up the foreign use so `other` is destroyed without a stale use entry.
  b.last_node()->set_input(0, nullptr);
}

TEST(VerifierTest, DanglingValueOfASiblingSubgraph) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* c = b.Input("c", DType::kBool, {});
  auto then_g = std::make_shared<Graph>();
  then_g->name = "then";
  GraphBuilder tb(then_g.get());
  Value* inner = tb.Op("Abs", {x});
  tb.Output(inner);
  auto else_g = std::make_shared<Graph>();
  else_g->name = "else";
  GraphBuilder eb(else_g.get());
  eb.Output(eb.Op("Neg", {inner}, {}, "neg"));  // `inner` lives in the then-branch
  b.Output(b.Op("If", {c},
                {Attribute::GraphValue("then_branch", then_g),
                 Attribute::GraphValue("else_branch", else_g)}));
  ExpectProblem(b.graph(), "graph 'else' (subgraph of node 'If_0' (If))");
  ExpectProblem(b.graph(), "'abs0' is dangling");
}

TEST(VerifierTest, TwoProducers) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* y = b.Op("Relu", {x}, {}, "relu");
  b.Output(y);
  // A second node claiming the same output value.
  Node* n = b.graph().AddNode("Neg", {x}, {"tmp"}, "neg");
  const_cast<std::vector<Value*>&>(n->outputs())[0] = y;
  ExpectProblem(b.graph(),
                "value 'relu0' has two producers: node 'neg' (Neg) and node 'relu' (Relu)");
}

TEST(VerifierTest, NodeOutputThatIsAlsoAGraphInput) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Node* n = b.graph().AddNode("Relu", {x}, {"tmp"}, "relu");
  const_cast<std::vector<Value*>&>(n->outputs())[0] = x;
  b.Output(x);
  ExpectProblem(b.graph(), "value 'x' has two producers");
}

TEST(VerifierTest, SubgraphValueShadowingAnOuterName) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* c = b.Input("c", DType::kBool, {});
  auto body = std::make_shared<Graph>();
  body->name = "then";
  // Graph::AddInput would refuse the shadowing name once attached; a standalone graph
  // (as an importer might build) does not know its parent yet.
  Node* inner = body->AddNode("Abs", {x}, {"x2"});
  body->AddOutput(inner->output(0));
  auto else_g = std::make_shared<Graph>();
  Node* e = else_g->AddNode("Neg", {x}, {"x"});  // same name as the outer input
  else_g->AddOutput(e->output(0));
  b.Op("If", {c},
       {Attribute::GraphValue("then_branch", body), Attribute::GraphValue("else_branch", else_g)});
  b.Output(b.last_node()->output(0));
  ExpectProblem(b.graph(), "value 'x' shadows a value of an enclosing graph");
}

TEST(VerifierTest, CycleIsReportedAsACycle) {
  Graph g;
  g.name = "g";
  Value* x = g.AddInput("x", ValueType::Tensor(DType::kFloat32, MakeShape({2})));
  Node* a = g.AddNode("Add", {x, nullptr}, {"a"}, "a");
  Node* b = g.AddNode("Relu", {a->output(0)}, {"b"}, "b");
  a->set_input(1, b->output(0));
  g.AddOutput(b->output(0));
  ExpectProblem(g, "graph 'g': has a cycle through node 'a' (Add)");
}

TEST(VerifierTest, NonTopologicalOrder) {
  Graph g;
  g.name = "g";
  Value* x = g.AddInput("x", ValueType::Tensor(DType::kFloat32, MakeShape({2})));
  Node* second = g.AddNode("Neg", {nullptr}, {"b"}, "second");
  Node* first = g.AddNode("Relu", {x}, {"a"}, "first");
  second->set_input(0, first->output(0));
  g.AddOutput(second->output(0));
  ExpectProblem(g, "node 'second' (Neg) uses 'a' before node 'first' (Relu) defines it");
  g.TopologicalSort();
  EXPECT_TRUE(VerifyAll(g).empty());
}

TEST(VerifierTest, UseListMissingAnEntry) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* y = b.Op("Relu", {x}, {}, "relu");
  b.Output(y);
  // Forge a node input without registering the use (what a buggy pass would do).
  Node* n = y->producer();
  auto& uses = const_cast<std::vector<Use>&>(x->uses());
  uses.clear();
  ExpectProblem(b.graph(), "use list of 'x' has 0 entries for input 0 of node 'relu' (Relu)");
  uses.push_back(Use{n, 0});
  EXPECT_TRUE(VerifyAll(b.graph()).empty());
}

TEST(VerifierTest, UseListWithAStaleEntry) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* y = b.Input("y", DType::kFloat32, {2});
  Value* s = b.Op("Add", {x, y}, {}, "add");
  b.Output(s);
  auto& uses = const_cast<std::vector<Use>&>(x->uses());
  uses.push_back(Use{s->producer(), 1});  // input 1 is y, not x
  ExpectProblem(b.graph(),
                "use list of 'x' says input 1 of node 'add' (Add) uses it, but that input is 'y'");
}

TEST(VerifierTest, UndefinedAndNullGraphOutputs) {
  GraphBuilder other;
  Value* foreign = other.Input("foreign", DType::kFloat32, {2});
  GraphBuilder b;
  b.Input("x", DType::kFloat32, {2});
  b.Output(foreign);
  ExpectProblem(b.graph(), "graph output 0 is not defined");
  b.graph().SetOutput(0, nullptr);
  ExpectProblem(b.graph(), "graph output 0 is null");
}

TEST(VerifierTest, InitializerTypeMismatch) {
  GraphBuilder b;
  Value* w = b.Const("w", FloatTensor({2, 2}, {1, 2, 3, 4}));
  b.Output(w);
  w->type.dtype = DType::kFloat16;
  ExpectProblem(b.graph(), "initializer 'w' holds f32 data but its value is typed f16[2,2]");
  w->type = ValueType::Tensor(DType::kFloat32, MakeShape({4}));
  ExpectProblem(b.graph(), "initializer 'w' has shape [2,2] but its value is typed f32[4]");
  w->type = ValueType::Tensor(DType::kFloat32, Shape{Dim::Symbol("n"), Dim::Known(2)});
  EXPECT_TRUE(VerifyAll(b.graph()).empty());
}

TEST(VerifierTest, KnownOpArity) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  b.Output(b.Op("Relu", {x, x}, {}, "relu"));
  ExpectProblem(b.graph(), "node 'relu' (Relu) has 2 inputs, expected 1..1");
  GraphBuilder b2;
  Value* x2 = b2.Input("x", DType::kFloat32, {2});
  b2.Output(b2.Op("MatMul", {x2}, {}, "mm"));
  ExpectProblem(b2.graph(), "node 'mm' (MatMul) has 1 inputs, expected 2..2");
  // Custom domains are not checked.
  GraphBuilder b3;
  Value* x3 = b3.Input("x", DType::kFloat32, {2});
  Node* n = b3.graph().AddNode("Relu", {x3, x3, x3}, {"y"}, "custom", "com.example");
  b3.Output(n->output(0));
  EXPECT_TRUE(VerifyAll(b3.graph()).empty());
}

TEST(VerifierTest, ElementwiseDtypeAndBroadcastMismatch) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2, 3});
  Value* i = b.Input("i", DType::kInt64, {2, 3});
  b.Output(b.Op("Add", {x, i}, {}, "add"));
  ExpectProblem(b.graph(), "node 'add' (Add): input 1 'i' is i64 but input 0 is f32");
  GraphBuilder b2;
  Value* p = b2.Input("p", DType::kFloat32, {2, 3});
  Value* q = b2.Input("q", DType::kFloat32, {4});
  b2.Output(b2.Op("Mul", {p, q}, {}, "mul"));
  ExpectProblem(b2.graph(), "node 'mul' (Mul): shapes [2,3] and [4] do not broadcast");
}

TEST(VerifierTest, WhereConditionMustBeBool) {
  GraphBuilder b;
  Value* c = b.Input("c", DType::kFloat32, {2});
  Value* x = b.Input("x", DType::kFloat32, {2});
  b.Output(b.Op("Where", {c, x, x}, {}, "where"));
  ExpectProblem(b.graph(), "node 'where' (Where): condition 'c' is f32, expected bool");
}

TEST(VerifierTest, OutputDtypeContradictsInput) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* y = b.Op("Relu", {x}, {}, "relu");
  y->type = ValueType::Tensor(DType::kInt8, MakeShape({2}));
  b.Output(y);
  ExpectProblem(b.graph(), "node 'relu' (Relu): output 'relu0' is i8 but input 0 is f32");
}

TEST(VerifierTest, SubgraphWithWrongParent) {
  auto m = ValidModel();
  Node* if_node = m->graph->nodes().back();
  Graph* then_g = if_node->subgraphs()[0];
  then_g->SetParent(nullptr, nullptr);
  ExpectProblem(*m->graph, "does not name that node and graph as its parent");
  then_g->SetParent(m->graph.get(), if_node);
  EXPECT_TRUE(VerifyAll(*m).empty());
}

TEST(VerifierTest, ReportsEveryProblem) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  b.Op("Relu", {x, x}, {}, "r1");
  b.Op("MatMul", {x}, {}, "r2");
  b.graph().AddOutput(nullptr);
  EXPECT_EQ(VerifyAll(b.graph()).size(), 3u);
  try {
    Verify(b.graph());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(and 2 more problems)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace edgepress::ir
