// Shape inference per op family, with known and symbolic dims, constants coming from
// initializers, Constant nodes and Shape->Gather->Concat chains, and the contradictions
// that must be reported. Expected shapes follow the ONNX operator specs.
#include "ir/shape_inference.h"

#include <gtest/gtest.h>

#include "ir/builder.h"
#include "ir/error.h"
#include "ir/verifier.h"

namespace edgepress::ir {
namespace {

constexpr DType F32 = DType::kFloat32;

Dim S(const char* sym) { return Dim::Symbol(sym); }
Dim K(int64_t v) { return Dim::Known(v); }

std::string T(const Value* v) { return v->type.ToString(); }

// Runs inference and the verifier (inference must leave a graph the verifier accepts).
void Infer(GraphBuilder& b) {
  InferShapes(b.model());
  std::vector<std::string> problems = VerifyAll(b.model());
  EXPECT_TRUE(problems.empty()) << problems[0];
}

// Expects inference to fail with a message naming `node` and containing `what`.
void ExpectInferError(GraphBuilder& b, const std::string& node, const std::string& what) {
  try {
    InferShapes(b.model());
    ADD_FAILURE() << "no error; expected: " << what;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_NE(msg.find("node '" + node + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

Attribute Ints(const char* n, std::vector<int64_t> v) { return Attribute::Ints(n, std::move(v)); }
Attribute Int(const char* n, int64_t v) { return Attribute::Int(n, v); }
Attribute Str(const char* n, const char* v) { return Attribute::String(n, v); }

TEST(ShapeInferenceTest, ConvStridesPadsDilationsGroups) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("batch"), K(4), K(10), K(12)});
  Value* w = b.Const("w", Tensor(F32, {8, 2, 3, 3}));
  Value* y = b.Op("Conv", {x, w},
                  {Int("group", 2), Ints("strides", {2, 1}), Ints("pads", {1, 0, 1, 0}),
                   Ints("dilations", {1, 2})});
  Value* same = b.Op("Conv", {x, w},
                     {Int("group", 2), Ints("strides", {2, 2}), Str("auto_pad", "SAME_UPPER")});
  Value* valid = b.Op("Conv", {x, w}, {Int("group", 2), Str("auto_pad", "VALID")});
  Infer(b);
  // H: (10 + 2 - 3) / 2 + 1 = 5; W: (12 - (2*2+1)) / 1 + 1 = 8.
  EXPECT_EQ(T(y), "f32[batch,8,5,8]");
  EXPECT_EQ(T(same), "f32[batch,8,5,6]");
  EXPECT_EQ(T(valid), "f32[batch,8,8,10]");
}

TEST(ShapeInferenceTest, ConvKeepsSymbolicSpatialDimsOnlyWhenSizePreserving) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("n"), K(3), S("h"), S("w")});
  Value* w3 = b.Const("w3", Tensor(F32, {4, 3, 3, 3}));
  Value* same = b.Op("Conv", {x, w3}, {Ints("pads", {1, 1, 1, 1})});
  Value* strided = b.Op("Conv", {x, w3}, {Ints("strides", {2, 2})});
  Value* auto_same = b.Op("Conv", {x, w3}, {Str("auto_pad", "SAME_LOWER")});
  Infer(b);
  EXPECT_EQ(T(same), "f32[n,4,h,w]");
  EXPECT_EQ(T(strided), "f32[n,4,?,?]");
  EXPECT_EQ(T(auto_same), "f32[n,4,h,w]");
}

TEST(ShapeInferenceTest, ConvChannelMismatchIsAnError) {
  GraphBuilder b;
  Value* x = b.Input("x", F32, {1, 3, 8, 8});
  Value* w = b.Const("w", Tensor(F32, {4, 4, 3, 3}));
  b.Op("Conv", {x, w}, {}, "conv1");
  ExpectInferError(b, "conv1", "input has 3 channels but weight expects 4");
}

TEST(ShapeInferenceTest, ConvKernelLargerThanInputIsAnError) {
  GraphBuilder b;
  Value* x = b.Input("x", F32, {1, 1, 2, 2});
  Value* w = b.Const("w", Tensor(F32, {1, 1, 3, 3}));
  b.Op("Conv", {x, w}, {}, "conv1");
  ExpectInferError(b, "conv1", "larger than the padded input");
}

TEST(ShapeInferenceTest, ConvTransposeOutputPaddingAndOutputShape) {
  GraphBuilder b;
  Value* x = b.Input("x", F32, {1, 4, 5, 5});
  Value* w = b.Const("w", Tensor(F32, {4, 3, 3, 3}));
  Value* y =
      b.Op("ConvTranspose", {x, w},
           {Ints("strides", {2, 2}), Ints("pads", {1, 1, 1, 1}), Ints("output_padding", {1, 0})});
  Value* g = b.Op("ConvTranspose", {x, w}, {Int("group", 2), Ints("strides", {2, 2})});
  Value* s =
      b.Op("ConvTranspose", {x, w}, {Ints("strides", {2, 2}), Ints("output_shape", {10, 11})});
  Value* same =
      b.Op("ConvTranspose", {x, w}, {Ints("strides", {2, 2}), Str("auto_pad", "SAME_UPPER")});
  Infer(b);
  // 2*(5-1) + 1 + 3 - 2 = 10 and 2*(5-1) + 0 + 3 - 2 = 9.
  EXPECT_EQ(T(y), "f32[1,3,10,9]");
  EXPECT_EQ(T(g), "f32[1,6,11,11]");
  EXPECT_EQ(T(s), "f32[1,3,10,11]");
  EXPECT_EQ(T(same), "f32[1,3,10,10]");
}

TEST(ShapeInferenceTest, MatMulBroadcastingAndOneDimensionalCases) {
  GraphBuilder b;
  Value* a = b.InputShape("a", F32, {K(2), K(1), S("m"), K(4)});
  Value* m = b.Input("m", F32, {5, 4, 6});
  Value* v4 = b.Input("v4", F32, {4});
  Value* m46 = b.Input("m46", F32, {4, 6});
  Value* m34 = b.Input("m34", F32, {3, 4});
  Value* batched = b.Op("MatMul", {a, m});
  Value* vm = b.Op("MatMul", {v4, m46});
  Value* mv = b.Op("MatMul", {m34, v4});
  Value* vv = b.Op("MatMul", {v4, v4});
  Value* vb = b.Op("MatMul", {v4, m});
  Infer(b);
  EXPECT_EQ(T(batched), "f32[2,5,m,6]");
  EXPECT_EQ(T(vm), "f32[6]");
  EXPECT_EQ(T(mv), "f32[3]");
  EXPECT_EQ(T(vv), "f32[]");
  EXPECT_EQ(T(vb), "f32[5,6]");
}

TEST(ShapeInferenceTest, MatMulInnerDimMismatchIsAnError) {
  GraphBuilder b;
  Value* a = b.Input("a", F32, {2, 3});
  Value* c = b.Input("c", F32, {4, 5});
  b.Op("MatMul", {a, c}, {}, "mm");
  ExpectInferError(b, "mm", "inner dimensions differ: [2,3] x [4,5] (3 vs 4)");
}

TEST(ShapeInferenceTest, GemmTransposes) {
  GraphBuilder b;
  Value* a = b.InputShape("a", F32, {K(8), S("batch")});
  Value* w = b.Const("w", Tensor(F32, {10, 8}));
  Value* bias = b.Const("bias", Tensor(F32, {10}));
  Value* y = b.Op("Gemm", {a, w, bias}, {Int("transA", 1), Int("transB", 1)});
  Infer(b);
  EXPECT_EQ(T(y), "f32[batch,10]");
  GraphBuilder bad;
  Value* p = bad.Input("p", F32, {2, 3});
  Value* q = bad.Const("q", Tensor(F32, {2, 3}));
  bad.Op("Gemm", {p, q}, {}, "gemm");
  ExpectInferError(bad, "gemm", "inner dimensions differ: 3 vs 2");
}

TEST(ShapeInferenceTest, ElementwiseBroadcastingWithSymbols) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("batch"), K(1), K(4)});
  Value* y = b.Input("y", F32, {3, 1});
  Value* p = b.InputShape("p", F32, {S("batch"), S("seq")});
  Value* q = b.InputShape("q", F32, {S("batch"), K(1)});
  Value* r = b.InputShape("r", F32, {S("other"), S("seq")});
  Value* add = b.Op("Add", {x, y});
  Value* pq = b.Op("Mul", {p, q});
  Value* pr = b.Op("Sub", {p, r});
  Value* eq = b.Op("Less", {x, y});
  Value* c = b.Input("c", DType::kBool, {4});
  Value* where = b.Op("Where", {c, x, y});
  Value* mx = b.Op("Max", {x, y, q});
  Value* pw = b.Op("Pow", {x, b.Const("two", FloatTensor({}, {2}))});
  Infer(b);
  EXPECT_EQ(T(add), "f32[batch,3,4]");
  EXPECT_EQ(T(pq), "f32[batch,seq]");
  EXPECT_EQ(T(pr), "f32[?,seq]");
  EXPECT_EQ(T(eq), "bool[batch,3,4]");
  EXPECT_EQ(T(where), "f32[batch,3,4]");
  EXPECT_EQ(T(mx), "f32[batch,3,4]");
  EXPECT_EQ(T(pw), "f32[batch,1,4]");
}

TEST(ShapeInferenceTest, BroadcastConflictAndDtypeMismatchAreErrors) {
  GraphBuilder b;
  Value* x = b.Input("x", F32, {2, 3});
  Value* y = b.Input("y", F32, {4, 3});
  b.Op("Add", {x, y}, {}, "add");
  ExpectInferError(b, "add", "cannot broadcast dims 2 and 4");
  GraphBuilder b2;
  Value* f = b2.Input("f", F32, {2});
  Value* i = b2.Input("i", DType::kInt32, {2});
  b2.Op("Mul", {f, i}, {}, "mul");
  ExpectInferError(b2, "mul", "inputs have different dtypes f32 and i32");
}

TEST(ShapeInferenceTest, UnaryActivationsAndNormalizations) {
  GraphBuilder b;
  Value* x = b.InputShape("x", DType::kFloat16, {S("batch"), K(16), K(7)});
  const char* ops[] = {"Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
                       "Erf",  "Gelu",      "Softmax", "LogSoftmax",  "Sqrt",      "Exp",
                       "Log",  "Neg",       "Abs",     "Reciprocal",  "Identity",  "Clip"};
  std::vector<Value*> outs;
  for (const char* op : ops) outs.push_back(b.Op(op, {x}));
  Value* bn = b.Op(
      "BatchNormalization",
      {x, b.Const("s", Tensor(DType::kFloat16, {16})), b.Const("bb", Tensor(DType::kFloat16, {16})),
       b.Const("m", Tensor(DType::kFloat16, {16})), b.Const("v", Tensor(DType::kFloat16, {16}))});
  auto ln = b.OpN("LayerNormalization", {x, b.Const("g", Tensor(DType::kFloat16, {7}))}, 3,
                  {Int("axis", -1)});
  auto drop = b.OpN("Dropout", {x}, 2);
  Value* nb = b.Op("Not", {b.Input("flags", DType::kBool, {3})});
  Infer(b);
  for (size_t i = 0; i < outs.size(); ++i) EXPECT_EQ(T(outs[i]), "f16[batch,16,7]") << ops[i];
  EXPECT_EQ(T(bn), "f16[batch,16,7]");
  EXPECT_EQ(T(ln[0]), "f16[batch,16,7]");
  EXPECT_EQ(T(ln[1]), "f32[batch,16,1]");  // stash_type defaults to float
  EXPECT_EQ(T(drop[1]), "bool[batch,16,7]");
  EXPECT_EQ(T(nb), "bool[3]");
}

TEST(ShapeInferenceTest, ReshapeWithZeroMinusOneAndAllowzero) {
  GraphBuilder b;
  Value* x = b.Input("x", F32, {2, 3, 4});
  Value* r1 = b.Op("Reshape", {x, b.Const("s1", Int64s({0, -1}))});
  Value* r2 = b.Op("Reshape", {x, b.ConstNode("s2", Int64s({-1, 2, 2}))});
  Value* sym = b.InputShape("sym", F32, {S("batch"), K(3), K(4)});
  Value* r3 = b.Op("Reshape", {sym, b.Const("s3", Int64s({0, -1}))});
  Value* r4 = b.Op("Reshape", {sym, b.Const("s4", Int64s({-1, 6, 2}))});
  Value* r5 = b.Op("Reshape", {sym, b.Const("s5", Int64s({0, 2, -1}))});
  Value* z = b.Input("z", F32, {0, 3});
  Value* r6 = b.Op("Reshape", {z, b.Const("s6", Int64s({3, 0}))}, {Int("allowzero", 1)});
  Infer(b);
  EXPECT_EQ(T(r1), "f32[2,12]");
  EXPECT_EQ(T(r2), "f32[6,2,2]");
  EXPECT_EQ(T(r3), "f32[batch,12]");
  EXPECT_EQ(T(r4), "f32[batch,6,2]");
  EXPECT_EQ(T(r5), "f32[batch,2,6]");
  EXPECT_EQ(T(r6), "f32[3,0]");
  GraphBuilder bad;
  Value* y = bad.Input("y", F32, {2, 3});
  bad.Op("Reshape", {y, bad.Const("s", Int64s({4, -1}))}, {}, "reshape");
  ExpectInferError(bad, "reshape", "not divisible");
}

TEST(ShapeInferenceTest, ShapeGatherConcatReshapeChainAsExported) {
  // The attention-head split that torch.onnx emits:
  //   Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), Unsqueeze(Gather(Shape(x), 1)), [12, 32]))
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("batch"), S("seq"), K(384)});
  Value* shape = b.Op("Shape", {x});
  Value* bdim = b.Op("Gather", {shape, b.ConstNode("i0", Int64Tensor({}, {0}))}, {Int("axis", 0)});
  Value* sdim = b.Op("Gather", {shape, b.ConstNode("i1", Int64Tensor({}, {1}))}, {Int("axis", 0)});
  Value* axes = b.Const("axes0", Int64s({0}));
  Value* ub = b.Op("Unsqueeze", {bdim, axes});
  Value* us = b.Op("Unsqueeze", {sdim, axes});
  Value* cat = b.Op("Concat", {ub, us, b.Const("heads", Int64s({12, 32}))}, {Int("axis", 0)});
  Value* y = b.Op("Reshape", {x, cat});
  Value* t = b.Op("Transpose", {y}, {Ints("perm", {0, 2, 1, 3})});
  // And back: Reshape(t', Concat(Slice(Shape(x), 0, 2), [-1])).
  Value* back = b.Op("Transpose", {t}, {Ints("perm", {0, 2, 1, 3})});
  Value* head = b.Op("Slice", {shape, b.Const("st", Int64s({0})), b.Const("en", Int64s({2}))});
  Value* cat2 = b.Op("Concat", {head, b.Const("m1", Int64s({-1}))}, {Int("axis", 0)});
  Value* merged = b.Op("Reshape", {back, cat2});
  // Size arithmetic: Mul(Gather(shape, 1), 2) as a scalar feeding ConstantOfShape via Unsqueeze.
  Value* twice = b.Op("Mul", {sdim, b.Const("two", Int64Tensor({}, {2}))});
  Value* cos = b.Op("ConstantOfShape", {b.Op("Unsqueeze", {bdim, axes})});
  Value* seq_range = b.Op(
      "Range", {b.Const("r0", Int64Tensor({}, {0})), sdim, b.Const("r1", Int64Tensor({}, {1}))});
  Infer(b);
  EXPECT_EQ(T(shape), "i64[3]");
  EXPECT_EQ(T(bdim), "i64[]");
  EXPECT_EQ(T(cat), "i64[4]");
  EXPECT_EQ(T(y), "f32[batch,seq,12,32]");
  EXPECT_EQ(T(t), "f32[batch,12,seq,32]");
  EXPECT_EQ(T(merged), "f32[batch,seq,384]");
  EXPECT_EQ(T(twice), "i64[]");
  EXPECT_EQ(T(cos), "f32[batch]");
  EXPECT_EQ(T(seq_range), "i64[seq]");  // arange(0, seq)
}

TEST(ShapeInferenceTest, ShapeStartEndAndSize) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("n"), K(3), K(4), K(5)});
  Value* s = b.Op("Shape", {x}, {Int("start", 1), Int("end", -1)});
  Value* sz = b.Op("Size", {x});
  Value* known = b.Op("Reshape", {b.Input("y", F32, {12}), s});
  Infer(b);
  EXPECT_EQ(T(s), "i64[2]");
  EXPECT_EQ(T(sz), "i64[]");
  EXPECT_EQ(T(known), "f32[3,4]");
}

TEST(ShapeInferenceTest, TransposeFlattenSqueezeUnsqueeze) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("batch"), K(1), K(3), K(4)});
  Value* t = b.Op("Transpose", {x}, {Ints("perm", {0, 3, 1, 2})});
  Value* tr = b.Op("Transpose", {x});
  Value* f1 = b.Op("Flatten", {x});
  Value* f0 = b.Op("Flatten", {x}, {Int("axis", 0)});
  Value* f3 = b.Op("Flatten", {x}, {Int("axis", -1)});
  Value* sq = b.Op("Squeeze", {x, b.Const("ax1", Int64s({1}))});
  Value* sq_attr = b.Op("Squeeze", {x}, {Ints("axes", {-3})});
  Value* us = b.Op("Unsqueeze", {x, b.Const("ax2", Int64s({0, -1}))});
  Value* us_attr = b.Op("Unsqueeze", {x}, {Ints("axes", {2})});
  Value* sq_all = b.Op("Squeeze", {b.Input("k", F32, {1, 3, 1})});
  Infer(b);
  EXPECT_EQ(T(t), "f32[batch,4,1,3]");
  EXPECT_EQ(T(tr), "f32[4,3,1,batch]");
  EXPECT_EQ(T(f1), "f32[batch,12]");
  EXPECT_EQ(T(f0), "f32[1,?]");
  EXPECT_EQ(T(f3), "f32[?,4]");
  EXPECT_EQ(T(sq), "f32[batch,3,4]");
  EXPECT_EQ(T(sq_attr), "f32[batch,3,4]");
  EXPECT_EQ(T(us), "f32[1,batch,1,3,4,1]");
  EXPECT_EQ(T(us_attr), "f32[batch,1,1,3,4]");
  EXPECT_EQ(T(sq_all), "f32[3]");
  GraphBuilder bad;
  Value* y = bad.Input("y", F32, {2, 3});
  bad.Op("Squeeze", {y, bad.Const("a", Int64s({0}))}, {}, "sq");
  ExpectInferError(bad, "sq", "cannot squeeze axis 0 of size 2");
}

TEST(ShapeInferenceTest, ConcatAndSplit) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("batch"), K(3), K(4)});
  Value* y = b.InputShape("y", F32, {S("batch"), K(5), K(4)});
  Value* c = b.Op("Concat", {x, y}, {Int("axis", -2)});
  auto s = b.OpN("Split", {c, b.Const("sp", Int64s({2, 6}))}, 2, {Int("axis", 1)});
  auto even = b.OpN("Split", {c}, 4, {Int("axis", 1)});
  auto attr = b.OpN("Split", {x}, 2, {Int("axis", 2), Ints("split", {1, 3})});
  Infer(b);
  EXPECT_EQ(T(c), "f32[batch,8,4]");
  EXPECT_EQ(T(s[0]), "f32[batch,2,4]");
  EXPECT_EQ(T(s[1]), "f32[batch,6,4]");
  EXPECT_EQ(T(even[3]), "f32[batch,2,4]");
  EXPECT_EQ(T(attr[1]), "f32[batch,3,3]");
  GraphBuilder bad;
  Value* p = bad.Input("p", F32, {2, 3});
  Value* q = bad.Input("q", F32, {2, 4});
  bad.Op("Concat", {p, q}, {Int("axis", 0)}, "cat");
  ExpectInferError(bad, "cat", "non-axis dim 1 differs: 3 vs 4");
  GraphBuilder bad2;
  Value* r = bad2.Input("r", F32, {5});
  bad2.OpN("Split", {r, bad2.Const("sp", Int64s({2, 2}))}, 2, {}, "split");
  ExpectInferError(bad2, "split", "sums to 4 but axis 0 has size 5");
}

TEST(ShapeInferenceTest, SliceClampsNegativeIndicesAndSteps) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("batch"), K(10), K(8)});
  auto i64 = [&](const char* n, std::vector<int64_t> v) { return b.Const(n, Int64s(v)); };
  Value* s1 = b.Op("Slice", {x, i64("s", {1, -3}), i64("e", {1000, 100}), i64("a", {1, 2})});
  Value* s2 =
      b.Op("Slice", {x, i64("s2", {-1}), i64("e2", {-1000}), i64("a2", {1}), i64("p2", {-3})});
  Value* s3 = b.Op("Slice", {x, i64("s3", {0}), i64("e3", {INT64_MAX}), i64("a3", {0})});
  Value* s4 = b.Op("Slice", {x, i64("s4", {0}), i64("e4", {1})});
  Value* s5 = b.Op("Slice", {x}, {Ints("starts", {2}), Ints("ends", {4}), Ints("axes", {2})});
  Value* dyn =
      b.Op("Slice", {x, b.Input("start", DType::kInt64, {1}), i64("e6", {5}), i64("a6", {1})});
  Infer(b);
  EXPECT_EQ(T(s1), "f32[batch,9,3]");
  EXPECT_EQ(T(s2), "f32[batch,4,8]");  // indices 9, 6, 3, 0
  EXPECT_EQ(T(s3), "f32[batch,10,8]");
  EXPECT_EQ(T(s4), "f32[?,10,8]");
  EXPECT_EQ(T(s5), "f32[batch,10,2]");
  EXPECT_EQ(T(dyn), "f32[batch,?,8]");
}

TEST(ShapeInferenceTest, GatherExpandTilePad) {
  GraphBuilder b;
  Value* table = b.Const("table", Tensor(F32, {1000, 64}));
  Value* ids = b.InputShape("ids", DType::kInt64, {S("batch"), S("seq")});
  Value* emb = b.Op("Gather", {table, ids});
  Value* x = b.InputShape("x", F32, {S("batch"), K(1), K(4)});
  Value* g1 = b.Op("Gather", {x, b.Const("i", Int64Tensor({}, {2}))}, {Int("axis", -1)});
  Value* ex = b.Op("Expand", {x, b.Const("es", Int64s({2, 1, 3, 1}))});
  Value* tl = b.Op("Tile", {x, b.Const("rep", Int64s({1, 5, 2}))});
  Value* pd = b.Op("Pad", {x, b.Const("pads", Int64s({0, 1, 2, 0, 1, 0}))});
  Value* pd_axes =
      b.Op("Pad", {x, b.Const("pads2", Int64s({1, 1})), nullptr, b.Const("pax", Int64s({-1}))});
  Infer(b);
  EXPECT_EQ(T(emb), "f32[batch,seq,64]");
  EXPECT_EQ(T(g1), "f32[batch,1]");
  EXPECT_EQ(T(ex), "f32[2,batch,3,4]");
  EXPECT_EQ(T(tl), "f32[batch,5,8]");
  EXPECT_EQ(T(pd), "f32[batch,3,6]");
  EXPECT_EQ(T(pd_axes), "f32[batch,1,6]");
  GraphBuilder bad;
  Value* y = bad.Input("y", F32, {2, 3});
  bad.Op("Expand", {y, bad.Const("s", Int64s({4, 3}))}, {}, "expand");
  ExpectInferError(bad, "expand", "cannot broadcast dims 2 and 4");
}

TEST(ShapeInferenceTest, CastConstantOfShapeRangeConstant) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("n"), K(2)});
  Value* c = b.Op("Cast", {x}, {Int("to", 7)});
  Value* cs = b.Op("ConstantOfShape", {b.Const("shape", Int64s({2, 3}))},
                   {Attribute::TensorValue("value", Int64Tensor({1}, {5}))});
  Value* r = b.Op("Range", {b.Const("a", FloatTensor({}, {1})), b.Const("l", FloatTensor({}, {2})),
                            b.Const("d", FloatTensor({}, {0.3f}))});
  Value* r_neg =
      b.Op("Range", {b.Const("a2", Int64Tensor({}, {10})), b.Const("l2", Int64Tensor({}, {0})),
                     b.Const("d2", Int64Tensor({}, {-3}))});
  Value* k = b.ConstNode("k", FloatTensor({2, 2}, {1, 2, 3, 4}));
  Node* vi = b.graph().AddNode("Constant", {}, {"ints"}, "ints_node");
  vi->set_attr(Attribute::Ints("value_ints", {1, 2, 3}));
  Infer(b);
  EXPECT_EQ(T(c), "i64[n,2]");
  EXPECT_EQ(T(cs), "i64[2,3]");
  EXPECT_EQ(T(r), "f32[4]");  // ceil((2 - 1) / 0.3) = 4
  EXPECT_EQ(T(r_neg), "i64[4]");
  EXPECT_EQ(T(k), "f32[2,2]");
  EXPECT_EQ(T(vi->output(0)), "i64[3]");
}

TEST(ShapeInferenceTest, PoolingWithCeilModeAndGlobalPools) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("n"), K(3), K(112), K(112)});
  auto mp =
      b.OpN("MaxPool", {x}, 2,
            {Ints("kernel_shape", {3, 3}), Ints("strides", {2, 2}), Ints("pads", {1, 1, 1, 1})});
  Value* ap = b.Op("AveragePool", {x},
                   {Ints("kernel_shape", {2, 2}), Ints("strides", {2, 2}), Int("ceil_mode", 1)});
  Value* y = b.Input("y", F32, {1, 1, 5, 5});
  Value* c1 = b.Op("MaxPool", {y},
                   {Ints("kernel_shape", {2, 2}), Ints("strides", {2, 2}), Int("ceil_mode", 1)});
  Value* c0 = b.Op("MaxPool", {y}, {Ints("kernel_shape", {2, 2}), Ints("strides", {2, 2})});
  // The last window would start in the right padding: ceil_mode does not add it.
  Value* c2 = b.Op("AveragePool", {y},
                   {Ints("kernel_shape", {2, 2}), Ints("strides", {2, 2}),
                    Ints("pads", {0, 0, 1, 1}), Int("ceil_mode", 1)});
  Value* gap = b.Op("GlobalAveragePool", {x});
  Value* gmp = b.Op("GlobalMaxPool", {x});
  Infer(b);
  EXPECT_EQ(T(mp[0]), "f32[n,3,56,56]");
  EXPECT_EQ(T(mp[1]), "i64[n,3,56,56]");
  EXPECT_EQ(T(ap), "f32[n,3,56,56]");
  EXPECT_EQ(T(c1), "f32[1,1,3,3]");
  EXPECT_EQ(T(c0), "f32[1,1,2,2]");
  EXPECT_EQ(T(c2), "f32[1,1,3,3]");
  EXPECT_EQ(T(gap), "f32[n,3,1,1]");
  EXPECT_EQ(T(gmp), "f32[n,3,1,1]");
}

TEST(ShapeInferenceTest, ReductionsAndArgMax) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("batch"), K(5), K(6)});
  Value* m = b.Op("ReduceMean", {x}, {Ints("axes", {-1})});
  Value* s = b.Op("ReduceSum", {x, b.Const("ax", Int64s({1}))}, {Int("keepdims", 0)});
  Value* all = b.Op("ReduceMax", {x}, {Int("keepdims", 0)});
  Value* noop =
      b.Op("ReduceSum", {x, b.Const("none", Int64s({}))}, {Int("noop_with_empty_axes", 1)});
  Value* mn = b.Op("ReduceMin", {x, b.Const("ax2", Int64s({0, 2}))});
  Value* dyn = b.Op("ReduceSum", {x, b.Input("axes", DType::kInt64, {1})});
  Value* am = b.Op("ArgMax", {x}, {Int("axis", 2), Int("keepdims", 0)});
  Infer(b);
  EXPECT_EQ(T(m), "f32[batch,5,1]");
  EXPECT_EQ(T(s), "f32[batch,6]");
  EXPECT_EQ(T(all), "f32[]");
  EXPECT_EQ(T(noop), "f32[batch,5,6]");
  EXPECT_EQ(T(mn), "f32[1,5,1]");
  EXPECT_EQ(T(dyn), "f32[?,?,?]");
  EXPECT_EQ(T(am), "i64[batch,5]");
}

TEST(ShapeInferenceTest, ResizeWithScalesOrSizes) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("n"), K(3), K(15), K(20)});
  Value* by_scale = b.Op("Resize", {x, nullptr, b.Const("sc", FloatTensor({4}, {1, 1, 2, 0.5f}))},
                         {Str("mode", "nearest")});
  Value* by_size = b.Op("Resize", {x, nullptr, nullptr, b.Const("sz", Int64s({1, 3, 32, 32}))});
  Value* empty_scales =
      b.Op("Resize", {x, b.Const("roi", FloatTensor({0}, {})),
                      b.Const("none", FloatTensor({0}, {})), b.Const("sz2", Int64s({2, 3, 4, 5}))});
  Infer(b);
  EXPECT_EQ(T(by_scale), "f32[n,3,30,10]");
  EXPECT_EQ(T(by_size), "f32[1,3,32,32]");
  EXPECT_EQ(T(empty_scales), "f32[2,3,4,5]");
}

TEST(ShapeInferenceTest, IfMergesBranchesAndUsesOuterValues) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("n"), K(4)});
  Value* c = b.Input("c", DType::kBool, {});
  auto then_g = std::make_shared<Graph>();
  GraphBuilder tb(then_g.get());
  tb.Output(tb.Op("Relu", {x}));
  tb.Output(tb.Op("Reshape", {x, tb.Const("s", Int64s({-1}))}));
  auto else_g = std::make_shared<Graph>();
  GraphBuilder eb(else_g.get());
  eb.Output(eb.Op("Neg", {x}));
  eb.Output(eb.Op("Slice", {x, eb.Const("st", Int64s({0})), eb.Const("en", Int64s({2})),
                            eb.Const("ax", Int64s({1}))}));
  auto outs = b.OpN(
      "If", {c}, 2,
      {Attribute::GraphValue("then_branch", then_g), Attribute::GraphValue("else_branch", else_g)});
  Infer(b);
  EXPECT_EQ(T(outs[0]), "f32[n,4]");
  EXPECT_EQ(T(outs[1]), "f32[...]");  // rank 1 vs rank 2: rank unknown
}

TEST(ShapeInferenceTest, LoopCarriedAndScanOutputs) {
  GraphBuilder b;
  Value* x = b.Input("x", F32, {2, 3});
  Value* trip = b.Const("trip", Int64Tensor({}, {5}));
  Value* cond = b.Const("cond", Tensor::FromVector<uint8_t>(DType::kBool, {}, {1}));
  auto body = std::make_shared<Graph>();
  GraphBuilder lb(body.get());
  lb.Input("iter", DType::kUndefined, std::vector<int64_t>{});
  body->inputs()[0]->type = ValueType{};
  Value* cin = body->AddInput("cond_in", ValueType{});
  Value* acc = body->AddInput("acc", ValueType{});
  Value* next = lb.Op("Add", {acc, x});  // x from the outer scope
  lb.Output(lb.Op("Identity", {cin}));
  lb.Output(next);
  lb.Output(lb.Op("ReduceSum", {next}, {Int("keepdims", 0)}));  // scan output
  auto outs = b.OpN("Loop", {trip, cond, x}, 2, {Attribute::GraphValue("body", body)});
  Infer(b);
  EXPECT_EQ(T(body->inputs()[0]), "i64[]");
  EXPECT_EQ(T(acc), "f32[2,3]");
  EXPECT_EQ(T(outs[0]), "f32[2,3]");
  EXPECT_EQ(T(outs[1]), "f32[?]");
}

TEST(ShapeInferenceTest, LoopWithGrowingStateGeneralisesTheCarriedShape) {
  GraphBuilder b;
  Value* x = b.Input("x", F32, {1, 3});
  auto body = std::make_shared<Graph>();
  GraphBuilder lb(body.get());
  body->AddInput("i", ValueType{});
  Value* cin = body->AddInput("c", ValueType{});
  Value* acc = body->AddInput("acc", ValueType{});
  lb.Output(lb.Op("Identity", {cin}));
  lb.Output(lb.Op("Concat", {acc, x}, {Int("axis", 0)}));
  Value* out = b.Op("Loop", {b.Const("m", Int64Tensor({}, {4})), nullptr, x},
                    {Attribute::GraphValue("body", body)});
  Infer(b);
  EXPECT_EQ(T(acc), "f32[?,3]");
  EXPECT_EQ(T(out), "f32[?,3]");
}

TEST(ShapeInferenceTest, RecurrentLayers) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {S("seq"), S("batch"), K(16)});
  Value* w = b.Const("w", Tensor(F32, {2, 4 * 32, 16}));
  Value* r = b.Const("r", Tensor(F32, {2, 4 * 32, 32}));
  auto lstm =
      b.OpN("LSTM", {x, w, r}, 3, {Int("hidden_size", 32), Str("direction", "bidirectional")});
  Value* gw = b.Const("gw", Tensor(F32, {1, 3 * 8, 16}));
  Value* gr = b.Const("gr", Tensor(F32, {1, 3 * 8, 8}));
  Value* xb = b.InputShape("xb", F32, {S("batch"), S("seq"), K(16)});
  auto gru = b.OpN("GRU", {xb, gw, gr}, 2, {Int("hidden_size", 8), Int("layout", 1)});
  Infer(b);
  EXPECT_EQ(T(lstm[0]), "f32[seq,2,batch,32]");
  EXPECT_EQ(T(lstm[1]), "f32[2,batch,32]");
  EXPECT_EQ(T(lstm[2]), "f32[2,batch,32]");
  EXPECT_EQ(T(gru[0]), "f32[batch,seq,1,8]");
  EXPECT_EQ(T(gru[1]), "f32[batch,1,8]");
}

TEST(ShapeInferenceTest, QuantizedOps) {
  GraphBuilder b;
  Value* x = b.Input("x", F32, {1, 3, 8, 8});
  Value* scale = b.Const("scale", FloatTensor({}, {0.1f}));
  Value* zp = b.Const("zp", Tensor(DType::kInt8, {}));
  Value* q = b.Op("QuantizeLinear", {x, scale, zp});
  Value* qu8 = b.Op("QuantizeLinear", {x, scale});
  Value* dq = b.Op("DequantizeLinear", {q, scale, zp});
  Value* w = b.Const("w", Tensor(DType::kInt8, {4, 3, 3, 3}));
  Value* ci = b.Op("ConvInteger", {q, w, zp, zp});
  Value* wzp = b.Const("wzp", Tensor(DType::kUInt8, {}));
  Value* qc =
      b.Op("QLinearConv", {q, scale, zp, w, scale, zp, scale, wzp}, {Ints("pads", {1, 1, 1, 1})});
  Value* a = b.Input("a", DType::kUInt8, {2, 5, 6});
  Value* m = b.Const("m", Tensor(DType::kUInt8, {6, 7}));
  Value* mi = b.Op("MatMulInteger", {a, m});
  Value* qm = b.Op("QLinearMatMul", {a, scale, wzp, m, scale, wzp, scale, zp});
  Infer(b);
  EXPECT_EQ(T(q), "i8[1,3,8,8]");
  EXPECT_EQ(T(qu8), "u8[1,3,8,8]");
  EXPECT_EQ(T(dq), "f32[1,3,8,8]");
  EXPECT_EQ(T(ci), "i32[1,4,6,6]");
  EXPECT_EQ(T(qc), "u8[1,4,8,8]");
  EXPECT_EQ(T(mi), "i32[2,5,7]");
  EXPECT_EQ(T(qm), "i8[2,5,7]");
}

TEST(ShapeInferenceTest, UnknownOpsAndInputsLeaveTypesUnknown) {
  GraphBuilder b;
  Value* x = b.Input("x", F32, {2, 3});
  Value* custom = b.graph().AddNode("Mystery", {x}, {"m"}, "mystery", "com.example")->output(0);
  Value* after = b.Op("Relu", {custom});
  Value* unknown_op = b.Op("NotAnOnnxOp", {x});
  Value* dyn = b.Op("Reshape", {x, b.Input("shape", DType::kInt64, {3})});
  Infer(b);
  EXPECT_EQ(custom->type.kind, ValueType::Kind::kUnknown);
  EXPECT_EQ(after->type.kind, ValueType::Kind::kUnknown);
  EXPECT_EQ(unknown_op->type.kind, ValueType::Kind::kUnknown);
  EXPECT_EQ(T(dyn), "f32[?,?,?]");
}

TEST(ShapeInferenceTest, DeclaredTypesAreMergedAndContradictionsReported) {
  GraphBuilder b;
  Value* x = b.InputShape("x", F32, {Dim{}, K(4)});
  Value* y = b.Op("Relu", {x}, {}, "relu");
  y->type = ValueType::Tensor(F32, Shape{S("N"), Dim{}});  // e.g. from ONNX value_info
  Infer(b);
  EXPECT_EQ(T(y), "f32[N,4]");
  GraphBuilder bad;
  Value* p = bad.Input("p", F32, {2, 4});
  Value* q = bad.Op("Relu", {p}, {}, "relu");
  q->type = ValueType::Tensor(F32, MakeShape({2, 5}));
  ExpectInferError(bad, "relu", "declared with shape [2,5] but infers as [2,4]");
}

TEST(ShapeInferenceTest, OldOpsetResizeAndUpsampleTakeScalesSecond) {
  GraphBuilder b;
  b.model().SetOpsetVersion("", 10);
  Value* x = b.Input("x", F32, {1, 2, 4, 4});
  Value* sc = b.Const("sc", FloatTensor({4}, {1, 1, 2, 3}));
  Value* r = b.Op("Resize", {x, sc});
  Value* u = b.Op("Upsample", {x, sc});
  Infer(b);
  EXPECT_EQ(T(r), "f32[1,2,8,12]");
  EXPECT_EQ(T(u), "f32[1,2,8,12]");
}

// Sizes from a hostile model file must end in an Error or unknown dims, never in UB, a
// huge allocation or a crash (the sanitizer build runs this).
TEST(ShapeInferenceTest, HostileSizesAreRefusedOrLeftUnknown) {
  const int64_t kBig = INT64_MAX;
  {
    GraphBuilder b;
    Value* x = b.Input("x", F32, {2, 3});
    b.Op("Pad", {x, b.Const("p", Int64s({kBig, 0, kBig, 0}))}, {}, "pad");
    ExpectInferError(b, "pad", "overflow");
  }
  {
    GraphBuilder b;
    Value* x = b.Input("x", F32, {1, 1, 8});
    Value* w = b.Const("w", Tensor(F32, {1, 1, 3}));
    b.Op("Conv", {x, w}, {Ints("dilations", {kBig})}, "conv");
    ExpectInferError(b, "conv", "overflow");
  }
  {
    GraphBuilder b;
    Value* x = b.Input("x", F32, {1, 1, 8});
    Value* w = b.Const("w", Tensor(F32, {1, 1, 3}));
    b.Op("ConvTranspose", {x, w}, {Ints("strides", {kBig / 2})}, "convt");
    ExpectInferError(b, "convt", "overflows");
  }
  {
    GraphBuilder b;
    Value* x = b.Input("x", F32, {1, 1, 4, 4});
    b.Op("Resize", {x, nullptr, b.Const("s", FloatTensor({4}, {1, 1, 1e30f, 1}))}, {}, "resize");
    ExpectInferError(b, "resize", "overflow");
  }
  {
    GraphBuilder b;
    Value* x = b.Input("x", F32, {kBig / 2 + 1});
    Value* y = b.Input("y", F32, {kBig / 2 + 1});
    Value* c = b.Op("Concat", {x, y}, {Int("axis", 0)});
    // A shape input that claims a rank of 10^12 gives an unknown rank, not an allocation.
    Value* r = b.Op("Reshape", {x, b.Input("shape", DType::kInt64, {1000000000000})});
    Value* z = b.Input("z", F32, {0, 5});
    Value* sl = b.Op("Slice", {z, b.Const("st", Int64s({-1})), b.Const("en", Int64s({-100})),
                               b.Const("ax", Int64s({0})), b.Const("sp", Int64s({-1}))});
    InferShapes(b.model());
    EXPECT_EQ(T(c), "f32[?]");
    EXPECT_EQ(T(r), "f32[...]");
    EXPECT_EQ(T(sl), "f32[0,5]");
  }
  {
    GraphBuilder b;
    Value* x = b.Input("x", F32, {2, 3});
    Value* shape = b.Op("Shape", {x});
    b.Op("Gather", {shape, b.Const("i", Int64Tensor({}, {7}))}, {}, "gather");
    ExpectInferError(b, "gather", "index 7 is out of range for size 2");
  }
  {
    GraphBuilder b;
    Value* x = b.Input("x", F32, {2, 3});
    b.Op("Transpose", {x}, {Ints("perm", {0, 0})}, "transpose");
    ExpectInferError(b, "transpose", "repeats an axis");
  }
}

}  // namespace
}  // namespace edgepress::ir
