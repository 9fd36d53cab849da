// IR invariants: use lists under every mutation helper, topological sorting, cloning with
// subgraphs and outer-scope references, unique names. Each test checks the verifier too,
// since the verifier is what passes rely on.
#include "ir/graph.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "ir/builder.h"
#include "ir/error.h"
#include "ir/verifier.h"

namespace edgepress::ir {
namespace {

bool HasUse(const Value* v, const Node* n, int index) {
  return std::any_of(v->uses().begin(), v->uses().end(),
                     [&](const Use& u) { return u.user == n && u.index == index; });
}

TEST(GraphTest, SetInputMaintainsUseLists) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* y = b.Input("y", DType::kFloat32, {2});
  Value* s = b.Op("Add", {x, x});
  Node* add = s->producer();
  ASSERT_EQ(x->uses().size(), 2u);
  add->set_input(1, y);
  EXPECT_EQ(x->uses().size(), 1u);
  EXPECT_TRUE(HasUse(x, add, 0));
  EXPECT_TRUE(HasUse(y, add, 1));
  add->set_input(0, nullptr);
  EXPECT_TRUE(x->uses().empty());
  add->set_input(0, x);
  b.Output(s);
  EXPECT_TRUE(VerifyAll(b.graph()).empty());
}

TEST(GraphTest, RemoveInputShiftsLaterUses) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* y = b.Input("y", DType::kFloat32, {2});
  Value* z = b.Input("z", DType::kFloat32, {2});
  Value* s = b.Op("Sum", {x, y, z});
  Node* n = s->producer();
  n->remove_input(0);
  ASSERT_EQ(n->num_inputs(), 2u);
  EXPECT_EQ(n->input(0), y);
  EXPECT_TRUE(HasUse(y, n, 0));
  EXPECT_TRUE(HasUse(z, n, 1));
  EXPECT_FALSE(HasUse(z, n, 2));
  EXPECT_TRUE(x->uses().empty());
  b.Output(s);
  EXPECT_TRUE(VerifyAll(b.graph()).empty());
}

TEST(GraphTest, ReplaceAllUsesWithUpdatesNodesSubgraphsAndOutputs) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* c = b.Input("c", DType::kBool, {});
  Value* r = b.Op("Relu", {x});
  Value* n = b.Op("Neg", {r});
  // An If whose then-branch reads `r` from the outer scope.
  auto then_g = std::make_shared<Graph>();
  then_g->name = "then";
  GraphBuilder tb(then_g.get());
  tb.Output(tb.Op("Abs", {r}));
  auto else_g = std::make_shared<Graph>();
  else_g->name = "else";
  GraphBuilder eb(else_g.get());
  eb.Output(eb.Op("Sqrt", {x}));
  Value* out = b.Op(
      "If", {c},
      {Attribute::GraphValue("then_branch", then_g), Attribute::GraphValue("else_branch", else_g)});
  b.Output(r);
  b.Output(n);
  b.Output(out);
  ASSERT_TRUE(VerifyAll(b.graph()).empty());
  Value* t = b.Op("Tanh", {x});
  b.graph().ReplaceAllUsesWith(r, t);
  EXPECT_TRUE(r->uses().empty());
  EXPECT_EQ(n->producer()->input(0), t);
  EXPECT_EQ(then_g->nodes()[0]->input(0), t);
  EXPECT_EQ(b.graph().outputs()[0], t);
  // The Tanh node was appended after its users: the verifier must notice, sorting fixes it.
  EXPECT_FALSE(VerifyAll(b.graph()).empty());
  b.graph().TopologicalSort();
  EXPECT_TRUE(VerifyAll(b.graph()).empty()) << VerifyAll(b.graph())[0];
}

TEST(GraphTest, RemoveNodeRefusesLiveOutputsAndDetachesInputs) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* r = b.Op("Relu", {x});
  Value* n = b.Op("Neg", {r});
  b.Output(n);
  EXPECT_THROW(b.graph().RemoveNode(r->producer()), std::logic_error);
  Node* neg = n->producer();
  b.graph().ReplaceAllUsesWith(n, r);
  b.graph().RemoveNode(neg);
  EXPECT_EQ(b.graph().num_nodes(), 1u);
  EXPECT_EQ(r->uses().size(), 0u);
  EXPECT_EQ(b.graph().FindValue("neg0"), nullptr);
  EXPECT_TRUE(VerifyAll(b.graph()).empty());
}

TEST(GraphTest, RemoveDeadNodesRemovesChainsAndUnusedInitializers) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* w = b.Const("w", FloatTensor({2}, {1, 2}));
  Value* unused = b.Const("unused", FloatTensor({1}, {3}));
  Value* live = b.Op("Add", {x, w});
  Value* d1 = b.Op("Mul", {x, w});
  b.Op("Relu", {d1});  // dead chain: Mul -> Relu
  b.Output(live);
  (void)unused;
  EXPECT_EQ(b.graph().RemoveDeadNodes(), 2);
  EXPECT_EQ(b.graph().num_nodes(), 1u);
  ASSERT_EQ(b.graph().initializers().size(), 1u);
  EXPECT_EQ(b.graph().initializers()[0]->name(), "w");
  EXPECT_EQ(w->uses().size(), 1u);
  EXPECT_TRUE(VerifyAll(b.graph()).empty());
}

TEST(GraphTest, RemoveDeadNodesDetachesSubgraphUsesOfOuterValues) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* c = b.Input("c", DType::kBool, {});
  auto then_g = std::make_shared<Graph>();
  GraphBuilder tb(then_g.get());
  tb.Output(tb.Op("Abs", {x}));
  auto else_g = std::make_shared<Graph>();
  GraphBuilder eb(else_g.get());
  eb.Output(eb.Op("Neg", {x}));
  b.Op(
      "If", {c},
      {Attribute::GraphValue("then_branch", then_g), Attribute::GraphValue("else_branch", else_g)});
  b.Output(b.Op("Relu", {x}));
  ASSERT_EQ(x->uses().size(), 3u);
  EXPECT_EQ(b.graph().RemoveDeadNodes(), 1);
  EXPECT_EQ(x->uses().size(), 1u);  // only Relu remains
  EXPECT_TRUE(VerifyAll(b.graph()).empty());
}

TEST(GraphTest, TopologicalSortIsStableOnSortedGraphs) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* a = b.Op("Relu", {x});
  Value* c = b.Op("Neg", {x});  // independent of a
  Value* d = b.Op("Add", {a, c});
  b.Output(d);
  std::vector<Node*> before = b.graph().nodes();
  b.graph().TopologicalSort();
  EXPECT_EQ(b.graph().nodes(), before);
}

TEST(GraphTest, TopologicalSortReordersAndDetectsCycles) {
  Graph g;
  g.name = "g";
  Value* x = g.AddInput("x", ValueType::Tensor(DType::kFloat32, MakeShape({2})));
  // Build b = Neg(a) before a = Relu(x) exists as a producer, then wire it.
  Node* neg = g.AddNode("Neg", {nullptr}, {"b"}, "neg");
  Node* relu = g.AddNode("Relu", {x}, {"a"}, "relu");
  neg->set_input(0, relu->output(0));
  g.AddOutput(neg->output(0));
  g.TopologicalSort();
  EXPECT_EQ(g.nodes()[0], relu);
  EXPECT_EQ(g.nodes()[1], neg);
  EXPECT_TRUE(VerifyAll(g).empty());
  // Close a cycle: relu now reads neg's output.
  relu->set_input(0, neg->output(0));
  try {
    g.TopologicalSort();
    FAIL() << "cycle not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cycle"), std::string::npos);
  }
}

TEST(GraphTest, CloneCopiesSubgraphsAndRebindsOuterReferences) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* c = b.Input("c", DType::kBool, {});
  Value* w = b.Const("w", FloatTensor({2}, {1, 2}));
  auto then_g = std::make_shared<Graph>();
  then_g->name = "then";
  GraphBuilder tb(then_g.get());
  tb.Output(tb.Op("Mul", {x, w}));  // outer-scope references
  auto else_g = std::make_shared<Graph>();
  else_g->name = "else";
  GraphBuilder eb(else_g.get());
  eb.Output(eb.Op("Identity", {x}));
  b.Output(b.Op("If", {c},
                {Attribute::GraphValue("then_branch", then_g),
                 Attribute::GraphValue("else_branch", else_g)}));
  auto m = b.Build();
  auto copy = m->Clone();
  ASSERT_TRUE(VerifyAll(*copy).empty()) << VerifyAll(*copy)[0];
  Node* cif = copy->graph->nodes()[0];
  Graph* cthen = cif->subgraphs()[0];
  EXPECT_NE(cthen, then_g.get());
  EXPECT_EQ(cthen->parent(), copy->graph.get());
  EXPECT_EQ(cthen->owner(), cif);
  Node* mul = cthen->nodes()[0];
  // The copy's subgraph uses the copy's values, not the original's.
  EXPECT_EQ(mul->input(0), copy->graph->FindValue("x"));
  EXPECT_NE(mul->input(0), x);
  EXPECT_TRUE(HasUse(copy->graph->FindValue("w"), mul, 1));
  EXPECT_EQ(x->uses().size(), 2u);  // originals untouched
  EXPECT_EQ(*copy->graph->FindValue("w")->initializer(), *w->initializer());
  EXPECT_EQ(copy->OpsetVersion(""), 17);
}

TEST(GraphTest, UniqueNameAvoidsNamesInSubgraphsAndAncestors) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* c = b.Input("c", DType::kBool, {});
  auto then_g = std::make_shared<Graph>();
  GraphBuilder tb(then_g.get());
  Node* inner = then_g->AddNode("Abs", {x}, {"inner"});
  tb.Output(inner->output(0));
  auto else_g = std::make_shared<Graph>();
  GraphBuilder eb(else_g.get());
  eb.Output(eb.Op("Neg", {x}));
  b.Op(
      "If", {c},
      {Attribute::GraphValue("then_branch", then_g), Attribute::GraphValue("else_branch", else_g)});
  EXPECT_EQ(b.graph().UniqueName("fresh"), "fresh");
  std::string n1 = b.graph().UniqueName("inner");
  EXPECT_NE(n1, "inner");
  EXPECT_NE(b.graph().UniqueName("x"), "x");
  EXPECT_NE(then_g->UniqueName("x"), "x");  // defined in the enclosing graph
  EXPECT_EQ(b.graph().UniqueName(""), "v");
}

TEST(GraphTest, AddInputRejectsDuplicatesAndShadowing) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  EXPECT_THROW(b.Input("x", DType::kFloat32, {2}), Error);
  auto sub = std::make_shared<Graph>();
  Value* cond = b.Input("c", DType::kBool, {});
  GraphBuilder sb(sub.get());
  sb.Output(sb.Op("Abs", {x}));
  Node* n = b.graph().AddNode("If", {cond}, {"o"});
  n->set_attr(Attribute::GraphValue("then_branch", sub));
  EXPECT_THROW(sub->AddInput("x", ValueType{}), Error);
}

TEST(GraphTest, TypedAttributeGettersRejectWrongKinds) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  b.Op("Softmax", {x}, {Attribute::Ints("axis", {1})});
  Node* n = b.last_node();
  EXPECT_THROW(n->attr_int("axis", 0), Error);
  EXPECT_EQ(n->attr_int("missing", 7), 7);
  EXPECT_EQ(n->attr_ints("axis"), (std::vector<int64_t>{1}));
  n->set_attr(Attribute::Int("axis", 2));
  EXPECT_EQ(n->attr_int("axis", 0), 2);
  EXPECT_EQ(n->attributes().size(), 1u);
  EXPECT_TRUE(n->remove_attr("axis"));
  EXPECT_FALSE(n->has_attr("axis"));
}

TEST(GraphTest, BuilderNamesAreDeterministicAndModelHasOpset17) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {2});
  Value* r1 = b.Op("Relu", {x});
  Value* r2 = b.Op("Relu", {r1});
  auto outs = b.OpN("Split", {r2}, 2, {Attribute::Int("axis", 0)});
  EXPECT_EQ(r1->name(), "relu0");
  EXPECT_EQ(r2->name(), "relu1");
  EXPECT_EQ(outs[0]->name(), "split0");
  EXPECT_EQ(outs[1]->name(), "split1");
  EXPECT_EQ(r2->producer()->name, "Relu_1");
  b.Output(outs[0]);
  b.Output(outs[1]);
  auto m = b.Build();
  EXPECT_EQ(m->OpsetVersion(""), 17);
  EXPECT_EQ(m->OpsetVersion("ai.onnx"), 17);
  EXPECT_TRUE(VerifyAll(*m).empty());
}

}  // namespace
}  // namespace edgepress::ir
