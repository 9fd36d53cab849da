// prune-structured on tiny builder graphs, one per coupling rule: a Conv-BN-Relu chain, a
// residual Add, a Concat, a depthwise and a grouped conv, an MLP, attention heads. Each
// graph is built with some units *dead* (their producing weights, biases or BN gammas
// are zero), so removing exactly those units must give the same function: the pruned
// model is compared with the original within 1e-5 relative, which checks that every
// coupled tensor was sliced at the right indices, not just that the shapes fit. Then
// the must-not-fire cases (graph output, an unknown op, a LayerNorm over the channels),
// options (round-to, targets, exclude, global scope, the activation criterion) and the
// Details() table. The verifier runs after every pass (testing::Apply).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "formats/npy/npy.h"
#include "ir/error.h"
#include "ir/shape_inference.h"
#include "pass_test_util.h"
#include "quant_test_util.h"

namespace edgepress::passes {
namespace {

using ir::Attribute;
using ir::DType;
using ir::GraphBuilder;
using testing::Apply;
using testing::Evaluate;
using testing::MaxRelError;
using testing::RandomTensor;
using json = nlohmann::json;

// Zeroes the given indices along `axis` of `t`.
ir::Tensor Dead(ir::Tensor t, int axis, const std::vector<int64_t>& idx) {
  int64_t dim = t.shape()[axis], inner = 1;
  for (int a = axis + 1; a < t.rank(); ++a) inner *= t.shape()[a];
  std::set<int64_t> s(idx.begin(), idx.end());
  for (uint64_t i = 0; i < t.numel(); ++i)
    if (s.count((static_cast<int64_t>(i) / inner) % dim)) t.mutable_data<float>()[i] = 0;
  return t;
}

int64_t Params(const ir::Model& m) {
  int64_t n = 0;
  for (const ir::Value* v : m.graph->initializers())
    if (v->initializer()->dtype() == DType::kFloat32) n += v->initializer()->numel();
  return n;
}

std::vector<int64_t> ShapeOf(const ir::Model& m, const std::string& name) {
  const ir::Value* v = m.graph->FindValue(name);
  return v && v->initializer() ? v->initializer()->shape() : std::vector<int64_t>{};
}

Attribute Ints(const std::string& n, std::vector<int64_t> v) {
  return Attribute::Ints(n, std::move(v));
}
Attribute Pads1() { return Attribute::Ints("pads", {1, 1, 1, 1}); }

// Prunes, checks the verifier (Apply), the changed flag and that the function is kept.
std::unique_ptr<ir::Model> PruneExact(const ir::Model& m, const std::string& pipeline,
                                      const std::map<std::string, ir::Tensor>& feeds,
                                      PassRun* run_out = nullptr) {
  std::vector<PassRun> runs;
  auto p = Apply(m, pipeline, &runs);
  EXPECT_TRUE(runs[0].changed) << pipeline;
  EXPECT_LT(MaxRelError(Evaluate(*p, feeds), Evaluate(m, feeds)), 1e-5) << pipeline;
  if (run_out) *run_out = runs[0];
  return p;
}

// x -> Conv(3->16) -> BN -> Relu -> Conv(16->8) -> y; channels 1,4,6,9,11,12,14,15 dead
// through gamma = 0 and beta = 0 (BN output exactly 0, Relu keeps it 0).
std::unique_ptr<ir::Model> ConvBnChain() {
  std::vector<int64_t> dead = {1, 4, 6, 9, 11, 12, 14, 15};
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 3, 8, 8});
  auto* c1 =
      b.Op("Conv",
           {x, b.Const("w1", RandomTensor({16, 3, 3, 3}, 1)), b.Const("b1", RandomTensor({16}, 2))},
           {Pads1()}, "conv1");
  auto* bn = b.Op(
      "BatchNormalization",
      {c1, b.Const("gamma", Dead(RandomTensor({16}, 3, 0.5f, 1.5f), 0, dead)),
       b.Const("beta", Dead(RandomTensor({16}, 4), 0, dead)),
       b.Const("mean", RandomTensor({16}, 5)), b.Const("var", RandomTensor({16}, 6, 0.5f, 1.5f))},
      {}, "bn1");
  auto* r = b.Op("Relu", {bn});
  b.Output(b.Op("Conv", {r, b.Const("w2", RandomTensor({8, 16, 3, 3}, 7))}, {Pads1()}, "conv2"));
  return b.Build();
}

TEST(PruneStructured, ConvBatchNormReluChain) {
  auto m = ConvBnChain();
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 3, 8, 8}, 9)}};
  PassRun run;
  auto p = PruneExact(*m, "prune-structured{sparsity=0.5,criterion=bn-gamma}", feeds, &run);
  EXPECT_EQ(ShapeOf(*p, "w1"), (std::vector<int64_t>{8, 3, 3, 3}));
  EXPECT_EQ(ShapeOf(*p, "b1"), (std::vector<int64_t>{8}));
  for (const char* n : {"gamma", "beta", "mean", "var"})
    EXPECT_EQ(ShapeOf(*p, n), (std::vector<int64_t>{8})) << n;
  EXPECT_EQ(ShapeOf(*p, "w2"), (std::vector<int64_t>{8, 8, 3, 3}));
  // conv2's output feeds the graph output: that group is found but not prunable.
  EXPECT_EQ(run.stats["groups-found"], 2);
  EXPECT_EQ(run.stats["groups-pruned"], 1);
  EXPECT_EQ(run.stats["groups-not-prunable"], 1);
  EXPECT_EQ(run.stats["channels-removed"], 8);
  EXPECT_EQ(run.stats["params-before"], Params(*m));
  EXPECT_EQ(run.stats["params-after"], Params(*p));
  EXPECT_EQ(Params(*m) - Params(*p), 8 * 27 + 8 + 4 * 8 + 8 * 8 * 9);
  EXPECT_EQ(testing::CountOps(*p, "Conv"), 2);
}

TEST(PruneStructured, DoesNotFireAtSparsityZeroOrWhenRoundingKeepsAll) {
  auto m = ConvBnChain();
  std::vector<PassRun> runs;
  auto p = Apply(*m, "prune-structured{sparsity=0}", &runs);
  EXPECT_FALSE(runs[0].changed);
  EXPECT_EQ(Params(*p), Params(*m));
  // 25% of 16 keeps 12, rounded up to 16 by round-to=8: nothing to remove.
  p = Apply(*m, "prune-structured{sparsity=0.25,round-to=8}", &runs);
  EXPECT_FALSE(runs[0].changed);
  // 16 - 6 = 10 kept at 40%, rounded up to 16; at 50% 8 are kept.
  p = Apply(*m, "prune-structured{sparsity=0.4,round-to=8}", &runs);
  EXPECT_FALSE(runs[0].changed);
  p = Apply(*m, "prune-structured{sparsity=0.5,round-to=8}", &runs);
  EXPECT_TRUE(runs[0].changed);
  EXPECT_EQ(ShapeOf(*p, "w1")[0], 8);
}

// x -> convA -> Relu -> convB -> Add(relu, convB) -> Relu -> convC -> y: the Add couples
// convA's and convB's outputs into one group (so convB loses input and output channels).
TEST(PruneStructured, ResidualAddSharesOneChannelSet) {
  std::vector<int64_t> dead = {0, 3, 5, 6, 8, 10, 13, 14};
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 4, 6, 6});
  auto* a = b.Op("Relu", {b.Op("Conv",
                               {x, b.Const("wa", Dead(RandomTensor({16, 4, 3, 3}, 1), 0, dead)),
                                b.Const("ba", Dead(RandomTensor({16}, 2), 0, dead))},
                               {Pads1()}, "convA")});
  auto* c = b.Op("Conv",
                 {a, b.Const("wb", Dead(RandomTensor({16, 16, 3, 3}, 3), 0, dead)),
                  b.Const("bb", Dead(RandomTensor({16}, 4), 0, dead))},
                 {Pads1()}, "convB");
  auto* s = b.Op("Relu", {b.Op("Add", {a, c}, {}, "add")});
  b.Output(b.Op("Conv", {s, b.Const("wc", RandomTensor({4, 16, 1, 1}, 5))}, {}, "convC"));
  auto m = b.Build();
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 4, 6, 6}, 9)}};
  PassRun run;
  auto p = PruneExact(*m, "prune-structured{sparsity=0.5}", feeds, &run);
  EXPECT_EQ(ShapeOf(*p, "wa"), (std::vector<int64_t>{8, 4, 3, 3}));
  EXPECT_EQ(ShapeOf(*p, "wb"), (std::vector<int64_t>{8, 8, 3, 3}));
  EXPECT_EQ(ShapeOf(*p, "wc"), (std::vector<int64_t>{4, 8, 1, 1}));
  EXPECT_EQ(run.stats["groups-pruned"], 1);
  json d = json::parse(run.details);
  bool found = false;
  for (const json& g : d["groups"]) {
    if (g["units_before"] != 16) continue;
    found = true;
    EXPECT_EQ(g["anchors"].size(), 2u);
    EXPECT_EQ(g["units_after"], 8);
    std::string why = g["coupled_by"].dump();
    EXPECT_NE(why.find("residual Add 'add'"), std::string::npos) << why;
  }
  EXPECT_TRUE(found);
}

// Two convs (8 and 4 channels) concatenated: the consumer loses columns at each offset.
TEST(PruneStructured, ConcatKeepsOffsets) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 3, 5, 5});
  auto* c1 = b.Op("Conv",
                  {x, b.Const("w1", Dead(RandomTensor({8, 3, 1, 1}, 1), 0, {0, 2, 5, 7})),
                   b.Const("b1", Dead(RandomTensor({8}, 2), 0, {0, 2, 5, 7}))},
                  {}, "c1");
  auto* c2 = b.Op("Conv",
                  {x, b.Const("w2", Dead(RandomTensor({4, 3, 1, 1}, 3), 0, {1, 2})),
                   b.Const("b2", Dead(RandomTensor({4}, 4), 0, {1, 2}))},
                  {}, "c2");
  auto* cat = b.Op("Relu", {b.Op("Concat", {c1, c2}, {Attribute::Int("axis", 1)})});
  b.Output(b.Op("Conv", {cat, b.Const("w3", RandomTensor({5, 12, 1, 1}, 5))}, {}, "c3"));
  auto m = b.Build();
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 3, 5, 5}, 9)}};
  auto p = PruneExact(*m, "prune-structured{sparsity=0.5}", feeds);
  EXPECT_EQ(ShapeOf(*p, "w1")[0], 4);
  EXPECT_EQ(ShapeOf(*p, "w2")[0], 2);
  EXPECT_EQ(ShapeOf(*p, "w3"), (std::vector<int64_t>{5, 6, 1, 1}));
}

// Depthwise (group = channels) and grouped (group 4 of 2 channels) convs: the output shares
// the input's channels, and `group` follows the kept count.
TEST(PruneStructured, DepthwiseAndGroupedConvs) {
  for (int64_t groups : {8, 4}) {
    int64_t per = 8 / groups;
    std::vector<int64_t> dead = per == 1 ? std::vector<int64_t>{1, 2, 5, 6}
                                         : std::vector<int64_t>{2, 3, 6, 7};  // conv groups 1, 3
    GraphBuilder b;
    auto* x = b.Input("x", DType::kFloat32, {1, 3, 6, 6});
    auto* c1 = b.Op("Relu", {b.Op("Conv",
                                  {x, b.Const("w1", Dead(RandomTensor({8, 3, 1, 1}, 1), 0, dead)),
                                   b.Const("b1", Dead(RandomTensor({8}, 2), 0, dead))},
                                  {}, "c1")});
    auto* dw = b.Op("Conv",
                    {c1, b.Const("wd", Dead(RandomTensor({8, per, 3, 3}, 3), 0, dead)),
                     b.Const("bd", Dead(RandomTensor({8}, 4), 0, dead))},
                    {Pads1(), Attribute::Int("group", groups)}, "dw");
    b.Output(
        b.Op("Conv", {b.Op("Relu", {dw}), b.Const("w3", RandomTensor({4, 8, 1, 1}, 5))}, {}, "c3"));
    auto m = b.Build();
    std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 3, 6, 6}, 9)}};
    auto p = PruneExact(*m, "prune-structured{sparsity=0.5}", feeds);
    EXPECT_EQ(ShapeOf(*p, "w1")[0], 4) << groups;
    EXPECT_EQ(ShapeOf(*p, "wd"), (std::vector<int64_t>{4, per, 3, 3})) << groups;
    EXPECT_EQ(ShapeOf(*p, "w3"), (std::vector<int64_t>{4, 4, 1, 1})) << groups;
    ir::Node* n = p->graph->FindNode("dw");
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->attr_int("group", 0), groups / 2);
  }
}

// Gemm (transB) 16->32 -> Relu -> MatMul 32->10: the hidden neurons are one group.
TEST(PruneStructured, MlpNeurons) {
  std::vector<int64_t> dead;
  for (int64_t i = 0; i < 32; i += 2) dead.push_back(i);
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {3, 16});
  auto* h = b.Op("Gemm",
                 {x, b.Const("w1", Dead(RandomTensor({32, 16}, 1), 0, dead)),
                  b.Const("b1", Dead(RandomTensor({32}, 2), 0, dead))},
                 {Attribute::Int("transB", 1)}, "fc1");
  auto* y =
      b.Op("MatMul", {b.Op("Relu", {h}), b.Const("w2", RandomTensor({32, 10}, 3))}, {}, "fc2");
  b.Output(b.Op("Add", {y, b.Const("b2", RandomTensor({10}, 4))}));
  auto m = b.Build();
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({3, 16}, 9)}};
  PassRun run;
  auto p = PruneExact(*m, "prune-structured{sparsity=0.5,criterion=l2}", feeds, &run);
  EXPECT_EQ(ShapeOf(*p, "w1"), (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(ShapeOf(*p, "b1"), (std::vector<int64_t>{16}));
  EXPECT_EQ(ShapeOf(*p, "w2"), (std::vector<int64_t>{16, 10}));
  EXPECT_EQ(ShapeOf(*p, "b2"), (std::vector<int64_t>{10}));  // feeds the output: untouched
  // targets=conv leaves the linear group alone.
  std::vector<PassRun> runs;
  Apply(*m, "prune-structured{sparsity=0.5,targets=conv}", &runs);
  EXPECT_FALSE(runs[0].changed);
  Apply(*m, "prune-structured{sparsity=0.5,exclude=fc*}", &runs);
  EXPECT_FALSE(runs[0].changed);
}

// Multi-head attention, 4 heads of 4: heads 1 and 3 are dead (zero Q/K/V columns and
// biases), so their context is zero and removing them keeps the function. The group holds
// the Q/K/V columns, the output-projection rows and the head count of both Reshapes.
// With `fused`, one MatMul computes Q, K and V and a Split cuts them apart (GPT-2's c_attn).
std::unique_ptr<ir::Model> Attention(bool dead_heads, bool fused = false) {
  std::vector<int64_t> dead =
      dead_heads ? std::vector<int64_t>{4, 5, 6, 7, 12, 13, 14, 15} : std::vector<int64_t>{};
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 6, 16});
  std::vector<ir::Value*> qkv;
  if (fused) {
    std::vector<int64_t> dead3;
    for (int64_t part = 0; part < 3; ++part)
      for (int64_t d : dead) dead3.push_back(part * 16 + d);
    auto* mm =
        b.Op("MatMul", {x, b.Const("wqkv", Dead(RandomTensor({16, 48}, 1), 1, dead3))}, {}, "qkv");
    auto* add = b.Op("Add", {mm, b.Const("bqkv", Dead(RandomTensor({48}, 2), 0, dead3))});
    qkv = b.OpN("Split", {add, b.Const("sizes", ir::Int64s({16, 16, 16}))}, 3,
                {Attribute::Int("axis", 2)});
  }
  int next = 0;
  auto proj = [&](const std::string& n, uint32_t seed) {
    ir::Value* add;
    if (fused) {
      add = qkv[next++];
    } else {
      auto* mm =
          b.Op("MatMul", {x, b.Const("w" + n, Dead(RandomTensor({16, 16}, seed), 1, dead))}, {}, n);
      add = b.Op("Add", {mm, b.Const("b" + n, Dead(RandomTensor({16}, seed + 1), 0, dead))});
    }
    return b.Op("Reshape", {add, b.Const("shape_" + n, ir::Int64s({0, 0, 4, 4}))});
  };
  auto* q = b.Op("Transpose", {proj("q", 1)}, {Ints("perm", {0, 2, 1, 3})});
  auto* k = b.Op("Transpose", {proj("k", 3)}, {Ints("perm", {0, 2, 3, 1})});
  auto* v = b.Op("Transpose", {proj("v", 5)}, {Ints("perm", {0, 2, 1, 3})});
  auto* s = b.Op("Mul", {b.Op("MatMul", {q, k}), b.Const("scale", ir::FloatTensor({}, {0.5f}))});
  auto* ctx = b.Op("MatMul", {b.Op("Softmax", {s}, {Attribute::Int("axis", -1)}), v});
  auto* merged = b.Op("Reshape", {b.Op("Transpose", {ctx}, {Ints("perm", {0, 2, 1, 3})}),
                                  b.Const("shape_o", ir::Int64s({0, 0, 16}))});
  auto* o =
      b.Op("Add", {b.Op("MatMul", {merged, b.Const("wo", RandomTensor({16, 16}, 7))}, {}, "o"),
                   b.Const("bo", RandomTensor({16}, 8))});
  b.Output(b.Op("Add", {x, o}));
  return b.Build();
}

TEST(PruneStructured, AttentionHeads) {
  auto m = Attention(true);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 6, 16}, 9)}};
  PassRun run;
  auto p = PruneExact(*m, "prune-structured{sparsity=0.5}", feeds, &run);
  for (const char* n : {"wq", "wk", "wv"})
    EXPECT_EQ(ShapeOf(*p, n), (std::vector<int64_t>{16, 8})) << n;
  for (const char* n : {"bq", "bk", "bv"})
    EXPECT_EQ(ShapeOf(*p, n), (std::vector<int64_t>{8})) << n;
  EXPECT_EQ(ShapeOf(*p, "wo"), (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(p->graph->FindValue("shape_q")->initializer()->ToInt64(),
            (std::vector<int64_t>{0, 0, 2, 4}));
  EXPECT_EQ(p->graph->FindValue("shape_o")->initializer()->ToInt64(),
            (std::vector<int64_t>{0, 0, 8}));
  json d = json::parse(run.details);
  int heads = 0;
  for (const json& g : d["groups"]) {
    if (g["kind"] != "heads") continue;
    ++heads;
    EXPECT_EQ(g["units_before"], 4);
    EXPECT_EQ(g["units_after"], 2);
    EXPECT_EQ(g["channels_per_unit"], 4);
    EXPECT_EQ(g["anchors"].size(), 3u);
    EXPECT_EQ(g["removed_units"], json::array({1, 3}));
  }
  EXPECT_EQ(heads, 1);
  // The output projection adds to the graph input x: that group stays whole.
  EXPECT_EQ(ShapeOf(*p, "bo"), (std::vector<int64_t>{16}));
}

TEST(PruneStructured, FusedQkvSplitIntoHeads) {
  // The Split cuts the QKV group into Q, K and V; each then becomes heads coupled with the
  // others by the attention MatMuls, so the same heads go from all three thirds.
  auto m = Attention(true, /*fused=*/true);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 6, 16}, 9)}};
  auto p = PruneExact(*m, "prune-structured{sparsity=0.5}", feeds);
  EXPECT_EQ(ShapeOf(*p, "wqkv"), (std::vector<int64_t>{16, 24}));
  EXPECT_EQ(ShapeOf(*p, "bqkv"), (std::vector<int64_t>{24}));
  EXPECT_EQ(p->graph->FindValue("sizes")->initializer()->ToInt64(),
            (std::vector<int64_t>{8, 8, 8}));
  EXPECT_EQ(ShapeOf(*p, "wo"), (std::vector<int64_t>{8, 16}));
}

TEST(PruneStructured, HeadsRoundToKeepsWholeHeads) {
  // round-to=8 with 4-channel heads keeps an even number of heads.
  auto m = Attention(false);
  std::vector<PassRun> runs;
  auto p = Apply(*m, "prune-structured{sparsity=0.75,round-to=8}", &runs);
  EXPECT_EQ(ShapeOf(*p, "wq"), (std::vector<int64_t>{16, 8}));
}

TEST(PruneStructured, FollowsFusedConvAfterTheOptimizePipeline) {
  // fuse-activation makes com.microsoft FusedConv, which ai.onnx shape inference does not
  // know; the analysis infers through a stand-in and still follows the Flatten after it.
  std::vector<int64_t> dead = {0, 2, 4, 6};
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 3, 4, 4});
  auto* c = b.Op("Conv",
                 {x, b.Const("w1", Dead(RandomTensor({8, 3, 3, 3}, 1), 0, dead)),
                  b.Const("b1", Dead(RandomTensor({8}, 2), 0, dead))},
                 {Pads1()}, "c1");
  auto* f = b.Op("Flatten", {b.Op("Relu", {c})}, {Attribute::Int("axis", 1)});
  b.Output(b.Op("Gemm", {f, b.Const("w2", RandomTensor({5, 128}, 3))},
                {Attribute::Int("transB", 1)}, "fc"));
  auto m = b.Build();
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 3, 4, 4}, 9)}};
  std::vector<PassRun> runs;
  auto p = Apply(*m, "fuse-activation,prune-structured{sparsity=0.5}", &runs);
  EXPECT_EQ(testing::CountOps(*p, "FusedConv"), 1);
  EXPECT_TRUE(runs[1].changed);
  EXPECT_LT(MaxRelError(Evaluate(*p, feeds), Evaluate(*m, feeds)), 1e-5);
  EXPECT_EQ(ShapeOf(*p, "w1")[0], 4);
  EXPECT_EQ(ShapeOf(*p, "w2"), (std::vector<int64_t>{5, 64}));  // 16 columns per channel
}

// --- must not fire ---------------------------------------------------------------------

TEST(PruneStructured, GroupFeedingAGraphOutputIsLeftWhole) {
  // The conv's channels are the model's output: removing any would change its shape.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 3, 4, 4});
  b.Output(b.Op("Relu", {b.Op("Conv", {x, b.Const("w", RandomTensor({8, 3, 1, 1}, 1))}, {}, "c")}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto p = Apply(*m, "prune-structured{sparsity=0.5}", &runs);
  EXPECT_FALSE(runs[0].changed);
  EXPECT_EQ(runs[0].stats["groups-not-prunable"], 1);
  // Unchanged means unchanged: the types the analysis inferred are not left behind.
  EXPECT_EQ(p->graph->nodes()[0]->output(0)->type, m->graph->nodes()[0]->output(0)->type);
  json d = json::parse(runs[0].details);
  EXPECT_NE(d["groups"][0]["reasons"].dump().find("reaches graph output"), std::string::npos);
}

TEST(PruneStructured, UnknownOpOrLayerNormOverChannelsStopsTheGroup) {
  // LpNormalization over the channels (no rule) and a LayerNorm over the features both
  // read every channel together: the groups are reported, not pruned.
  {
    GraphBuilder b;
    auto* x = b.Input("x", DType::kFloat32, {1, 3, 4, 4});
    auto* c = b.Op("Conv", {x, b.Const("w", RandomTensor({8, 3, 1, 1}, 1))}, {}, "c");
    auto* n = b.Op("LpNormalization", {c}, {Attribute::Int("axis", 1)}, "lpn");
    b.Output(b.Op("Conv", {n, b.Const("w2", RandomTensor({2, 8, 1, 1}, 2))}, {}, "c2"));
    auto m = b.Build();
    std::vector<PassRun> runs;
    Apply(*m, "prune-structured{sparsity=0.5}", &runs);
    EXPECT_FALSE(runs[0].changed);
    EXPECT_NE(runs[0].details.find("read by node 'lpn' (LpNormalization)"), std::string::npos)
        << runs[0].details;
  }
  {
    GraphBuilder b;
    auto* x = b.Input("x", DType::kFloat32, {2, 5, 8});
    auto* h = b.Op("MatMul", {x, b.Const("w", RandomTensor({8, 12}, 1))}, {}, "fc1");
    auto* ln = b.Op("LayerNormalization",
                    {h, b.Const("g", RandomTensor({12}, 2)), b.Const("bb", RandomTensor({12}, 3))},
                    {Attribute::Int("axis", -1)}, "ln");
    b.Output(b.Op("MatMul", {ln, b.Const("w2", RandomTensor({12, 4}, 4))}, {}, "fc2"));
    auto m = b.Build();
    std::vector<PassRun> runs;
    Apply(*m, "prune-structured{sparsity=0.5}", &runs);
    EXPECT_FALSE(runs[0].changed);
    EXPECT_NE(runs[0].details.find("normalized over the channel axis"), std::string::npos);
  }
}

TEST(PruneStructured, ResidualWithAnUngroupedValueIsLeftWhole) {
  // y = x + Conv(x): the conv's channels are tied to the graph input's channels.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 4, 4, 4});
  auto* c = b.Op("Conv", {x, b.Const("w", RandomTensor({4, 4, 1, 1}, 1))}, {}, "c");
  auto* s = b.Op("Add", {x, c});
  b.Output(b.Op("Conv", {s, b.Const("w2", RandomTensor({2, 4, 1, 1}, 2))}, {}, "c2"));
  auto m = b.Build();
  std::vector<PassRun> runs;
  Apply(*m, "prune-structured{sparsity=0.5}", &runs);
  EXPECT_FALSE(runs[0].changed);
}

// --- options ---------------------------------------------------------------------------

TEST(PruneStructured, GlobalScopeRemovesTheRequestedShareOverall) {
  auto m = ConvBnChain();
  std::vector<PassRun> runs;
  auto p = Apply(*m, "prune-structured{sparsity=0.25,scope=global}", &runs);
  EXPECT_TRUE(runs[0].changed);
  // One prunable group of 16: 25% overall is 4 channels.
  EXPECT_EQ(runs[0].stats["channels-removed"], 4);
  EXPECT_EQ(ShapeOf(*p, "w1")[0], 12);
}

TEST(PruneStructured, ActivationCriterionUsesCalibrationData) {
  auto m = ConvBnChain();
  testing::ScratchDir dir;
  std::string data = dir.path() + "/calib.npz";
  formats::NamedTensors arrays;
  ir::Tensor xs = RandomTensor({4, 3, 8, 8}, 11);
  arrays.emplace_back("x", xs);
  formats::SaveNpz(arrays, data);
  auto copy = m->Clone();
  PassContext ctx;
  auto steps = ParsePipeline("prune-structured{sparsity=0.5,criterion=activation}");
  EXPECT_THROW(RunPipeline(*copy, steps, ctx), Error);  // no data given
  ctx.data_files = {data};
  auto runs = RunPipeline(*copy, steps, ctx);
  EXPECT_TRUE(runs[0].changed);
  // The dead channels have zero activations: they are the ones removed.
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 3, 8, 8}, 9)}};
  EXPECT_LT(MaxRelError(Evaluate(*copy, feeds), Evaluate(*m, feeds)), 1e-5);
}

TEST(PruneStructured, RejectsUnknownTargets) {
  EXPECT_THROW(ParsePipeline("prune-structured{targets=conv|blocks}"), Error);
  EXPECT_THROW(ParsePipeline("prune-structured{criterion=taylor}"), Error);
}

}  // namespace
}  // namespace edgepress::passes

namespace edgepress::passes {
namespace {

// x -> stem -> [y = r + f1(r)] -> [z = y + f2(y)] -> head: two identity residual blocks;
// f2's last conv is zero, so its branch adds nothing and removing it is exact.
std::unique_ptr<ir::Model> TwoBlocks() {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 3, 6, 6});
  auto* r =
      b.Op("Relu", {b.Op("Conv", {x, b.Const("ws", RandomTensor({8, 3, 1, 1}, 1))}, {}, "stem")});
  auto block = [&](ir::Value* in, const std::string& n, bool dead) {
    auto* h = b.Op("Relu", {b.Op("Conv", {in, b.Const(n + "_w1", RandomTensor({8, 8, 3, 3}, 2))},
                                 {Pads1()}, n + "_c1")});
    ir::Tensor w2 = RandomTensor({8, 8, 3, 3}, 3);
    if (dead) w2 = Dead(w2, 0, {0, 1, 2, 3, 4, 5, 6, 7});
    auto* f = b.Op("Conv", {h, b.Const(n + "_w2", w2)}, {Pads1()}, n + "_c2");
    return b.Op("Add", {in, f}, {}, n + "_add");
  };
  auto* z = block(block(r, "b1", false), "b2", true);
  b.Output(b.Op("Conv", {z, b.Const("wh", RandomTensor({2, 8, 1, 1}, 4))}, {}, "head"));
  auto m = b.Build();
  ir::InferShapes(*m);
  return m;
}

TEST(PruneStructuredDepth, RemovesResidualBlocksByIndex) {
  auto m = TwoBlocks();
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 3, 6, 6}, 9)}};
  PassRun run;
  auto p = PruneExact(*m, "prune-structured{sparsity=0,remove-blocks=1}", feeds, &run);
  EXPECT_EQ(run.stats["blocks-found"], 2);
  EXPECT_EQ(run.stats["blocks-removed"], 1);
  EXPECT_EQ(testing::CountOps(*p, "Add"), 1);
  EXPECT_EQ(testing::CountOps(*p, "Conv"), 4);
  EXPECT_EQ(p->graph->FindValue("b2_w1"), nullptr);  // the branch's weights are gone
  EXPECT_EQ(Params(*m) - Params(*p), 2 * 8 * 8 * 9);
  EXPECT_THROW(Apply(*m, "prune-structured{remove-blocks=2}"), Error);  // only 0 and 1
  // Chained blocks: block 1's skip is block 0's output, which goes first.
  std::vector<PassRun> runs;
  auto both = Apply(*m, "prune-structured{sparsity=0,remove-blocks=0|1}", &runs);
  EXPECT_EQ(runs[0].stats["blocks-removed"], 2);
  EXPECT_EQ(testing::CountOps(*both, "Add"), 0);
  EXPECT_EQ(testing::CountOps(*both, "Conv"), 2);
}

TEST(PruneStructuredDepth, DropsTheBlockThatContributesLeast) {
  auto m = TwoBlocks();
  testing::ScratchDir dir;
  std::string data = dir.path() + "/calib.npz";
  formats::SaveNpz({{"x", RandomTensor({4, 3, 6, 6}, 11)}}, data);
  auto copy = m->Clone();
  PassContext ctx;
  ctx.data_files = {data};
  auto runs = RunPipeline(*copy, ParsePipeline("prune-structured{sparsity=0,drop-blocks=1}"), ctx);
  EXPECT_TRUE(runs[0].changed);
  EXPECT_EQ(runs[0].stats["blocks-removed"], 1);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 3, 6, 6}, 9)}};
  EXPECT_LT(MaxRelError(Evaluate(*copy, feeds), Evaluate(*m, feeds)), 1e-5);  // b2 went
}

TEST(PruneStructuredDepth, DownsampleJoinIsNotABlock) {
  // Add(conv_a(x), conv_b(x)): neither input is the skip of the other.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 4, 4, 4});
  auto* a = b.Op("Conv", {x, b.Const("wa", RandomTensor({4, 4, 1, 1}, 1))});
  auto* c = b.Op("Conv", {x, b.Const("wb", RandomTensor({4, 4, 1, 1}, 2))});
  b.Output(b.Op("Conv", {b.Op("Add", {a, c}), b.Const("wc", RandomTensor({2, 4, 1, 1}, 3))}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  Apply(*m, "prune-structured{sparsity=0}", &runs);
  EXPECT_FALSE(runs[0].changed);
  EXPECT_EQ(runs[0].stats["blocks-found"], 0);
}

}  // namespace
}  // namespace edgepress::passes
