// Tensor-manipulation kernels: values against hand-computed or naive-loop results
// (ONNX/numpy semantics), dynamic output shapes, every Transpose path (copy, row
// memcpy, tiled 2-D, strided) against a naive permutation, and bad inputs (indices out
// of range, bad shapes, bad axes) that must throw edgepress::Error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "ir/error.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

using ir::DType;
using ir::Tensor;

struct OneNode {
  ir::Graph g;
  ir::Node* node = nullptr;
  OneNode(const std::string& op, int n_in, int n_out = 1) {
    std::vector<ir::Value*> ins;
    for (int i = 0; i < n_in; ++i)
      ins.push_back(g.AddInput("x" + std::to_string(i), ir::ValueType::Tensor(DType::kFloat32)));
    std::vector<std::string> outs;
    for (int i = 0; i < n_out; ++i) outs.push_back("y" + std::to_string(i));
    node = g.AddNode(op, ins, outs, "n_" + op);
  }
  OneNode& Attr(ir::Attribute a) {
    node->set_attr(std::move(a));
    return *this;
  }
  std::vector<Tensor> Run(const std::vector<const Tensor*>& in, int threads = 1) {
    ThreadPool pool(threads);
    return RunNode(*node, in, pool);
  }
};

Tensor F32(std::vector<int64_t> shape, std::vector<float> v) {
  return Tensor::FromVector(DType::kFloat32, std::move(shape), v);
}
Tensor I64(std::vector<int64_t> shape, std::vector<int64_t> v) {
  return Tensor::FromVector(DType::kInt64, std::move(shape), v);
}
Tensor Iota(std::vector<int64_t> shape) {
  Tensor t(DType::kFloat32, std::move(shape));
  float* p = t.mutable_data<float>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(i);
  return t;
}
template <class T>
std::vector<T> Values(const Tensor& t) {
  std::vector<T> v(t.numel());
  if (!v.empty()) std::memcpy(v.data(), t.raw(), t.nbytes());
  return v;
}
using Shape = std::vector<int64_t>;

TEST(TensorOpsTest, ReshapeZeroMinusOneAndAllowZero) {
  Tensor x = Iota({2, 3, 4});
  Tensor s = I64({3}, {0, -1, 2});
  Tensor y = OneNode("Reshape", 2).Run({&x, &s})[0];
  EXPECT_EQ(y.shape(), (Shape{2, 6, 2}));
  EXPECT_EQ(Values<float>(y), Values<float>(x));
  Tensor e = Iota({0, 3});
  Tensor s0 = I64({2}, {3, 0});
  OneNode az("Reshape", 2);
  az.Attr(ir::Attribute::Int("allowzero", 1));
  EXPECT_EQ(az.Run({&e, &s0})[0].shape(), (Shape{3, 0}));
  Tensor bad = I64({2}, {-1, -1});
  EXPECT_THROW(OneNode("Reshape", 2).Run({&x, &bad}), Error);
  Tensor bad2 = I64({2}, {5, 5});
  EXPECT_THROW(OneNode("Reshape", 2).Run({&x, &bad2}), Error);
  Tensor bad3 = I64({2}, {7, -1});
  EXPECT_THROW(OneNode("Reshape", 2).Run({&x, &bad3}), Error);
}

TEST(TensorOpsTest, FlattenSqueezeUnsqueeze) {
  Tensor x = Iota({2, 1, 3, 1});
  OneNode fl("Flatten", 1);
  fl.Attr(ir::Attribute::Int("axis", 2));
  EXPECT_EQ(fl.Run({&x})[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(OneNode("Squeeze", 1).Run({&x})[0].shape(), (Shape{2, 3}));
  Tensor ax = I64({1}, {-1});
  EXPECT_EQ(OneNode("Squeeze", 2).Run({&x, &ax})[0].shape(), (Shape{2, 1, 3}));
  Tensor ax0 = I64({1}, {0});
  EXPECT_THROW(OneNode("Squeeze", 2).Run({&x, &ax0}), Error);  // dim 2 is not 1
  Tensor ua = I64({2}, {0, -1});
  EXPECT_EQ(OneNode("Unsqueeze", 2).Run({&x, &ua})[0].shape(), (Shape{1, 2, 1, 3, 1, 1}));
  Tensor dup = I64({2}, {1, 1});
  EXPECT_THROW(OneNode("Unsqueeze", 2).Run({&x, &dup}), Error);
  Tensor far = I64({1}, {9});
  EXPECT_THROW(OneNode("Unsqueeze", 2).Run({&x, &far}), Error);
}

// Naive transpose for comparison.
std::vector<float> NaiveTranspose(const Tensor& x, const Shape& perm) {
  Shape in = x.shape();
  size_t r = in.size();
  Shape out(r), st(r, 1);
  for (size_t i = r; i-- > 1;) st[i - 1] = st[i] * in[i];
  for (size_t i = 0; i < r; ++i) out[i] = in[perm[i]];
  std::vector<float> res(x.numel());
  const float* p = x.data<float>();
  Shape c(r, 0);
  for (size_t k = 0; k < res.size(); ++k) {
    int64_t off = 0;
    for (size_t i = 0; i < r; ++i) off += c[i] * st[perm[i]];
    res[k] = p[off];
    for (size_t i = r; i-- > 0;) {
      if (++c[i] < out[i]) break;
      c[i] = 0;
    }
  }
  return res;
}

TEST(TensorOpsTest, TransposeAllPathsMatchNaive) {
  std::vector<std::pair<Shape, Shape>> cases = {
      {{5, 7}, {1, 0}},           {{33, 65}, {1, 0}},          {{2, 3, 4}, {0, 2, 1}},
      {{2, 3, 4}, {2, 0, 1}},     {{2, 3, 4}, {1, 0, 2}},      {{1, 3, 1, 4}, {3, 1, 0, 2}},
      {{2, 3, 4, 5}, {0, 2, 3, 1}}, {{2, 3, 4, 5}, {0, 3, 1, 2}}, {{2, 3, 4, 5}, {3, 2, 1, 0}},
      {{4, 64, 8, 32}, {0, 2, 1, 3}}, {{2, 0, 3}, {2, 1, 0}},  {{6}, {0}},
      {{1, 128, 12, 32}, {0, 2, 3, 1}},
      // The AVX2 8 x 8 blocks: sides below, at and around multiples of 8, and both edges.
      {{2, 7, 3, 9}, {0, 2, 3, 1}},  {{8, 8}, {1, 0}},           {{16, 24}, {1, 0}},
      {{3, 17, 23}, {0, 2, 1}},      {{2, 64, 3, 40}, {0, 2, 3, 1}},
  };
  for (const auto& [shape, perm] : cases) {
    Tensor x = Iota(shape);
    OneNode nd("Transpose", 1);
    nd.Attr(ir::Attribute::Ints("perm", perm));
    // Every Transpose entry the CPU can run (the reference and the AVX2 blocks).
    for (const KernelDef* d : KernelsFor("Transpose", "", DType::kFloat32)) {
      for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        Tensor y = RunNode(*nd.node, {&x}, pool, d)[0];
        Shape want(shape.size());
        for (size_t i = 0; i < perm.size(); ++i) want[i] = shape[perm[i]];
        EXPECT_EQ(y.shape(), want) << d->name;
        EXPECT_EQ(Values<float>(y), NaiveTranspose(x, perm)) << d->name;
      }
    }
  }
  // Default perm reverses; int64 and f16 move by size.
  Tensor i = I64({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(Values<int64_t>(OneNode("Transpose", 1).Run({&i})[0]),
            (std::vector<int64_t>{1, 4, 2, 5, 3, 6}));
  OneNode bad("Transpose", 1);
  bad.Attr(ir::Attribute::Ints("perm", {0, 0}));
  EXPECT_THROW(bad.Run({&i}), Error);
  OneNode bad2("Transpose", 1);
  bad2.Attr(ir::Attribute::Ints("perm", {0}));
  EXPECT_THROW(bad2.Run({&i}), Error);
}

TEST(TensorOpsTest, ConcatAndSplit) {
  Tensor a = Iota({2, 2}), b = F32({2, 1}, {10, 11});
  OneNode cat("Concat", 2);
  cat.Attr(ir::Attribute::Int("axis", -1));
  Tensor y = cat.Run({&a, &b})[0];
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{0, 1, 10, 2, 3, 11}));
  Tensor c = Iota({3, 3});
  EXPECT_THROW(cat.Run({&a, &c}), Error);
  Tensor s = I64({2}, {1, 2});
  OneNode sp("Split", 2, 2);
  sp.Attr(ir::Attribute::Int("axis", 1));
  std::vector<Tensor> parts = sp.Run({&y, &s});
  EXPECT_EQ(Values<float>(parts[0]), (std::vector<float>{0, 2}));
  EXPECT_EQ(Values<float>(parts[1]), (std::vector<float>{1, 10, 3, 11}));
  Tensor bad = I64({2}, {1, 1});
  EXPECT_THROW(sp.Run({&y, &bad}), Error);
  // num_outputs (opset 18): 7 into 3 gives 3, 3, 1.
  Tensor x7 = Iota({7});
  OneNode sn("Split", 1, 3);
  sn.Attr(ir::Attribute::Int("num_outputs", 3));
  std::vector<Tensor> p3 = sn.Run({&x7});
  EXPECT_EQ(p3[0].shape(), (Shape{3}));
  EXPECT_EQ(p3[2].shape(), (Shape{1}));
  EXPECT_EQ(Values<float>(p3[2]), (std::vector<float>{6}));
  // Equal split without sizes must divide evenly.
  EXPECT_THROW(OneNode("Split", 1, 3).Run({&x7}), Error);
}

TEST(TensorOpsTest, SliceStepsAndClamping) {
  Tensor x = Iota({3, 5});
  auto run = [&](std::vector<int64_t> st, std::vector<int64_t> en, std::vector<int64_t> ax,
                 std::vector<int64_t> sp) {
    Tensor a = I64({(int64_t)st.size()}, st), b = I64({(int64_t)en.size()}, en),
           c = I64({(int64_t)ax.size()}, ax), d = I64({(int64_t)sp.size()}, sp);
    return OneNode("Slice", 5).Run({&x, &a, &b, &c, &d})[0];
  };
  Tensor y = run({1, -1}, {1000, -1000}, {0, 1}, {1, -2});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{9, 7, 5, 14, 12, 10}));
  Tensor z = run({-100}, {2}, {1}, {1});
  EXPECT_EQ(Values<float>(z), (std::vector<float>{0, 1, 5, 6, 10, 11}));
  Tensor e = run({4}, {1}, {1}, {1});  // empty
  EXPECT_EQ(e.shape(), (Shape{3, 0}));
  Tensor big = run({std::numeric_limits<int64_t>::max()}, {std::numeric_limits<int64_t>::min()},
                   {0}, {std::numeric_limits<int64_t>::min()});
  EXPECT_EQ(big.shape(), (Shape{1, 5}));
  EXPECT_EQ(Values<float>(big), (std::vector<float>{10, 11, 12, 13, 14}));
  EXPECT_THROW(run({0}, {1}, {0}, {0}), Error);  // zero step
  EXPECT_THROW(run({0}, {1}, {2}, {1}), Error);  // bad axis
}

TEST(TensorOpsTest, GatherFamily) {
  Tensor x = Iota({3, 4});
  Tensor idx = I64({2, 2}, {0, -1, 2, 1});
  OneNode g1("Gather", 2);
  g1.Attr(ir::Attribute::Int("axis", 1));
  Tensor y = g1.Run({&x, &idx})[0];
  EXPECT_EQ(y.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{0, 3, 2, 1, 4, 7, 6, 5, 8, 11, 10, 9}));
  Tensor oob = I64({1}, {4});
  EXPECT_THROW(g1.Run({&x, &oob}), Error);
  Tensor ge_idx = I64({2, 2}, {1, 0, 2, -1});
  OneNode ge("GatherElements", 2);
  ge.Attr(ir::Attribute::Int("axis", 0));
  EXPECT_EQ(Values<float>(ge.Run({&x, &ge_idx})[0]), (std::vector<float>{4, 1, 8, 9}));
  Tensor ge_bad = I64({2, 2}, {1, 0, 3, 0});
  EXPECT_THROW(ge.Run({&x, &ge_bad}), Error);
  Tensor data = F32({1, 5}, {1, 2, 3, 4, 5});
  Tensor si = I64({1, 2}, {1, 3});
  Tensor su = F32({1, 2}, {1.1f, 2.1f});
  OneNode sc("ScatterElements", 3);
  sc.Attr(ir::Attribute::Int("axis", 1));
  EXPECT_EQ(Values<float>(sc.Run({&data, &si, &su})[0]), (std::vector<float>{1, 1.1f, 3, 2.1f, 5}));
  OneNode sa("ScatterElements", 3);
  sa.Attr(ir::Attribute::Int("axis", 1));
  sa.Attr(ir::Attribute::String("reduction", "add"));
  Tensor dup = I64({1, 2}, {1, 1});
  std::vector<float> added = Values<float>(sa.Run({&data, &dup, &su})[0]);
  EXPECT_NEAR(added[1], 2 + 1.1 + 2.1, 1e-5);
  EXPECT_EQ(added[3], 4);
  Tensor sbad = I64({1, 2}, {1, 9});
  EXPECT_THROW(sc.Run({&data, &sbad, &su}), Error);
}

TEST(TensorOpsTest, ExpandTilePad) {
  Tensor x = F32({3, 1}, {1, 2, 3});
  Tensor shape = I64({3}, {2, 1, 2});
  Tensor y = OneNode("Expand", 2).Run({&x, &shape})[0];
  EXPECT_EQ(y.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}));
  Tensor bad = I64({2}, {2, 1});  // 3 vs 2 on the first axis
  EXPECT_THROW(OneNode("Expand", 2).Run({&x, &bad}), Error);
  Tensor t = F32({2, 2}, {1, 2, 3, 4});
  Tensor reps = I64({2}, {2, 3});
  Tensor ty = OneNode("Tile", 2).Run({&t, &reps})[0];
  EXPECT_EQ(ty.shape(), (Shape{4, 6}));
  EXPECT_EQ(Values<float>(ty)[0 * 6 + 5], 2);
  EXPECT_EQ(Values<float>(ty)[3 * 6 + 4], 3);
  Tensor r1 = I64({1}, {2});
  EXPECT_THROW(OneNode("Tile", 2).Run({&t, &r1}), Error);
  // Pad [1, 2, 3] by (2 before, 1 after) in every mode, as numpy.pad does.
  Tensor v = F32({3}, {1, 2, 3});
  Tensor pads = I64({2}, {2, 1});
  auto pad = [&](const char* mode) {
    OneNode nd("Pad", 2);
    nd.Attr(ir::Attribute::String("mode", mode));
    return Values<float>(nd.Run({&v, &pads})[0]);
  };
  EXPECT_EQ(pad("constant"), (std::vector<float>{0, 0, 1, 2, 3, 0}));
  EXPECT_EQ(pad("reflect"), (std::vector<float>{3, 2, 1, 2, 3, 2}));
  EXPECT_EQ(pad("edge"), (std::vector<float>{1, 1, 1, 2, 3, 3}));
  EXPECT_EQ(pad("wrap"), (std::vector<float>{2, 3, 1, 2, 3, 1}));
  // Constant value input, axes input, negative pads crop.
  Tensor m = Iota({2, 3});
  Tensor p2 = I64({2}, {-1, 1});
  Tensor cv = F32({}, {9});
  Tensor axes = I64({1}, {1});
  Tensor py = OneNode("Pad", 4).Run({&m, &p2, &cv, &axes})[0];
  EXPECT_EQ(py.shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<float>(py), (std::vector<float>{1, 2, 9, 4, 5, 9}));
  Tensor p3 = I64({3}, {1, 1, 1});
  EXPECT_THROW(OneNode("Pad", 2).Run({&m, &p3}), Error);
}

TEST(TensorOpsTest, ShapeSizeCastAndConstants) {
  Tensor x = Iota({2, 3, 4});
  OneNode sh("Shape", 1);
  sh.Attr(ir::Attribute::Int("start", -2));
  EXPECT_EQ(Values<int64_t>(sh.Run({&x})[0]), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(Values<int64_t>(OneNode("Size", 1).Run({&x})[0]), (std::vector<int64_t>{24}));
  Tensor f = F32({5}, {1.7f, -2.7f, 1e20f, NAN, 300});
  OneNode c32("Cast", 1);
  c32.Attr(ir::Attribute::Int("to", 6));  // int32
  EXPECT_EQ(Values<int32_t>(c32.Run({&f})[0]),
            (std::vector<int32_t>{1, -2, std::numeric_limits<int32_t>::max(), 0, 300}));
  OneNode c16("Cast", 1);
  c16.Attr(ir::Attribute::Int("to", 10));  // float16
  Tensor h = c16.Run({&f})[0];
  EXPECT_EQ(h.dtype(), DType::kFloat16);
  OneNode back("Cast", 1);
  back.Attr(ir::Attribute::Int("to", 1));
  std::vector<float> hb = Values<float>(back.Run({&h})[0]);
  EXPECT_NEAR(hb[0], 1.7f, 1e-3);
  EXPECT_TRUE(std::isinf(hb[2]));
  OneNode cb("Cast", 1);
  cb.Attr(ir::Attribute::Int("to", 9));  // bool
  EXPECT_EQ(Values<uint8_t>(cb.Run({&f})[0]), (std::vector<uint8_t>{1, 1, 1, 1, 1}));
  OneNode cbad("Cast", 1);
  cbad.Attr(ir::Attribute::Int("to", 8));  // string
  EXPECT_THROW(cbad.Run({&f}), Error);
  Tensor like = I64({1}, {0});
  EXPECT_EQ(OneNode("CastLike", 2).Run({&f, &like})[0].dtype(), DType::kInt64);

  Tensor dims = I64({2}, {2, 3});
  OneNode cos("ConstantOfShape", 1);
  cos.Attr(ir::Attribute::TensorValue("value", I64({1}, {7})));
  EXPECT_EQ(Values<int64_t>(cos.Run({&dims})[0]), std::vector<int64_t>(6, 7));
  Tensor neg = I64({1}, {-2});
  EXPECT_THROW(cos.Run({&neg}), Error);
  Tensor s = I64({}, {10}), l = I64({}, {1}), d = I64({}, {-3});
  EXPECT_EQ(Values<int64_t>(OneNode("Range", 3).Run({&s, &l, &d})[0]), (std::vector<int64_t>{10, 7, 4}));
  Tensor z = I64({}, {0});
  EXPECT_THROW(OneNode("Range", 3).Run({&s, &l, &z}), Error);
  OneNode k("Constant", 0);
  k.Attr(ir::Attribute::Floats("value_floats", {1, 2}));
  EXPECT_EQ(Values<float>(k.Run({})[0]), (std::vector<float>{1, 2}));
  OneNode eye("EyeLike", 1);
  eye.Attr(ir::Attribute::Int("k", 1));
  Tensor sq = Iota({2, 3});
  EXPECT_EQ(Values<float>(eye.Run({&sq})[0]), (std::vector<float>{0, 1, 0, 0, 0, 1}));
}

TEST(TensorOpsTest, OneHotTriluTopKArgCumSumNonZero) {
  Tensor idx = I64({3}, {0, -1, 5});
  Tensor depth = I64({}, {3});
  Tensor vals = F32({2}, {0, 1});
  Tensor oh = OneNode("OneHot", 3).Run({&idx, &depth, &vals})[0];
  EXPECT_EQ(oh.shape(), (Shape{3, 3}));
  EXPECT_EQ(Values<float>(oh), (std::vector<float>{1, 0, 0, 0, 0, 1, 0, 0, 0}));

  Tensor m = Iota({3, 3});
  Tensor kk = I64({}, {-1});
  OneNode lo("Trilu", 2);
  lo.Attr(ir::Attribute::Int("upper", 0));
  EXPECT_EQ(Values<float>(lo.Run({&m, &kk})[0]), (std::vector<float>{0, 0, 0, 3, 0, 0, 6, 7, 0}));

  Tensor t = F32({2, 4}, {1, 5, 3, 5, 9, 0, 2, 1});
  Tensor k2 = I64({1}, {2});
  std::vector<Tensor> top = OneNode("TopK", 2, 2).Run({&t, &k2});
  EXPECT_EQ(Values<float>(top[0]), (std::vector<float>{5, 5, 9, 2}));
  EXPECT_EQ(Values<int64_t>(top[1]), (std::vector<int64_t>{1, 3, 0, 2}));  // ties: lower index
  OneNode small("TopK", 2, 2);
  small.Attr(ir::Attribute::Int("largest", 0));
  EXPECT_EQ(Values<int64_t>(small.Run({&t, &k2})[1]), (std::vector<int64_t>{0, 2, 1, 3}));
  Tensor k9 = I64({1}, {9});
  EXPECT_THROW(OneNode("TopK", 2, 2).Run({&t, &k9}), Error);

  OneNode am("ArgMax", 1);
  am.Attr(ir::Attribute::Int("axis", 1));
  Tensor a = am.Run({&t})[0];
  EXPECT_EQ(a.shape(), (Shape{2, 1}));
  EXPECT_EQ(Values<int64_t>(a), (std::vector<int64_t>{1, 0}));
  am.Attr(ir::Attribute::Int("select_last_index", 1));
  EXPECT_EQ(Values<int64_t>(am.Run({&t})[0]), (std::vector<int64_t>{3, 0}));
  OneNode an("ArgMin", 1);
  an.Attr(ir::Attribute::Int("keepdims", 0));
  EXPECT_EQ(Values<int64_t>(an.Run({&t})[0]), (std::vector<int64_t>{0, 1, 1, 1}));

  Tensor cs = F32({4}, {1, 2, 3, 4});
  Tensor ax = I64({}, {0});
  EXPECT_EQ(Values<float>(OneNode("CumSum", 2).Run({&cs, &ax})[0]), (std::vector<float>{1, 3, 6, 10}));
  OneNode rev("CumSum", 2);
  rev.Attr(ir::Attribute::Int("reverse", 1));
  rev.Attr(ir::Attribute::Int("exclusive", 1));
  EXPECT_EQ(Values<float>(rev.Run({&cs, &ax})[0]), (std::vector<float>{9, 7, 4, 0}));

  Tensor nz = F32({2, 2}, {1, 0, 0, 3});
  Tensor n = OneNode("NonZero", 1).Run({&nz})[0];
  EXPECT_EQ(n.shape(), (Shape{2, 2}));
  EXPECT_EQ(Values<int64_t>(n), (std::vector<int64_t>{0, 1, 0, 1}));
}

TEST(TensorOpsTest, DepthToSpaceInvertsSpaceToDepth) {
  Tensor x = Iota({1, 2, 4, 6});
  OneNode s2d("SpaceToDepth", 1);
  s2d.Attr(ir::Attribute::Int("blocksize", 2));
  Tensor d = s2d.Run({&x})[0];
  EXPECT_EQ(d.shape(), (Shape{1, 8, 2, 3}));
  // Channel 0 of the result holds x[0, 0, 0::2, 0::2].
  std::vector<float> dv = Values<float>(d);
  EXPECT_EQ(std::vector<float>(dv.begin(), dv.begin() + 6), (std::vector<float>{0, 2, 4, 12, 14, 16}));
  OneNode d2s("DepthToSpace", 1);
  d2s.Attr(ir::Attribute::Int("blocksize", 2));
  // SpaceToDepth's channel order is DCR's inverse.
  Tensor back = d2s.Run({&d})[0];
  EXPECT_EQ(back.shape(), x.shape());
  EXPECT_EQ(Values<float>(back), Values<float>(x));
  // CRD mode against the ONNX spec's example layout.
  Tensor c = Iota({1, 4, 1, 1});
  OneNode crd("DepthToSpace", 1);
  crd.Attr(ir::Attribute::Int("blocksize", 2));
  crd.Attr(ir::Attribute::String("mode", "CRD"));
  EXPECT_EQ(Values<float>(crd.Run({&c})[0]), (std::vector<float>{0, 1, 2, 3}));
  Tensor odd = Iota({1, 3, 2, 2});
  EXPECT_THROW(d2s.Run({&odd}), Error);
}

}  // namespace
}  // namespace edgepress::runtime
