// Resize on uint8/int8 (nearest; runtime/kernels/quant/qresize.cc) against the f32 Resize
// kernel on the same values: a nearest resize is a gather, so the 8-bit result must equal
// the float result exactly, for every coordinate_transformation_mode and nearest_mode,
// up- and down-sampling by non-integer scales, `sizes` instead of `scales`, the legacy
// opset-10 form, other ranks, and a second run with another input shape (the cached
// gather map must be rebuilt), on every kernel (the AVX2 one gathers upsampled rows 16
// outputs at a time: rows of 16/32 outputs, a ragged tail, the input's last row, whose
// 16-byte load would run past the end, goes scalar). Linear mode and tf_crop_and_resize are
// refused clearly.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "ir/error.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

using ir::DType;
using ir::Tensor;

template <typename T>
Tensor Random8(DType dt, std::vector<int64_t> shape, uint32_t seed) {
  Tensor t(dt, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-128, 255);
  for (uint64_t i = 0; i < t.numel(); ++i) t.mutable_data<T>()[i] = static_cast<T>(d(rng));
  return t;
}

template <typename T>
Tensor ToFloat(const Tensor& x) {
  Tensor f(DType::kFloat32, x.shape());
  for (uint64_t i = 0; i < x.numel(); ++i) f.mutable_data<float>()[i] = static_cast<float>(x.data<T>()[i]);
  return f;
}

struct Case {
  std::string coord, nearest;
  std::vector<float> scales;    // empty: use sizes
  std::vector<int64_t> sizes;
  std::vector<int64_t> shape;
  bool legacy;                  // opset-10 form: (X, scales)
};

template <typename T>
void Check(DType dt, const Case& c, uint32_t seed) {
  ir::Graph g;
  std::vector<ir::Value*> ins = {g.AddInput("x", ir::ValueType::Tensor(dt))};
  if (!c.legacy) ins.push_back(nullptr);  // roi
  const Tensor scales = Tensor::FromVector(DType::kFloat32, {static_cast<int64_t>(c.scales.size())}, c.scales);
  const Tensor sizes = Tensor::FromVector(DType::kInt64, {static_cast<int64_t>(c.sizes.size())}, c.sizes);
  ins.push_back(g.AddInitializer("scales", scales));
  if (!c.sizes.empty()) ins.push_back(g.AddInitializer("sizes", sizes));
  ir::Node* n = g.AddNode("Resize", ins, {"y"}, "resize", "");
  if (!c.legacy) {
    n->set_attr(ir::Attribute::String("coordinate_transformation_mode", c.coord));
    n->set_attr(ir::Attribute::String("nearest_mode", c.nearest));
  }
  const auto defs = KernelsFor("Resize", "", dt);
  ASSERT_GE(defs.size(), 1u);
  ASSERT_EQ(defs[0]->isa, Isa::kScalar);
  if (GetCpuFeatures().Has(Isa::kAvx2)) {
    ASSERT_EQ(defs.back()->isa, Isa::kAvx2);
  }
  ThreadPool pool(2);
  const std::string what = c.coord + "/" + c.nearest + (c.legacy ? " (opset 10)" : "");
  for (uint32_t run = 0; run < 2; ++run) {  // the second run uses another shape
    std::vector<int64_t> shape = c.shape;
    if (run == 1 && c.sizes.empty()) shape.back() += 3;
    const Tensor x = Random8<T>(dt, shape, seed + run);
    const Tensor xf = ToFloat<T>(x);
    std::vector<const Tensor*> q_in = {&x}, f_in = {&xf};
    if (!c.legacy) {
      q_in.push_back(nullptr);
      f_in.push_back(nullptr);
    }
    q_in.push_back(&scales);
    f_in.push_back(&scales);
    if (!c.sizes.empty()) {
      q_in.push_back(&sizes);
      f_in.push_back(&sizes);
    }
    const Tensor yf = RunNode(*n, f_in, pool)[0];
    for (const KernelDef* d : defs) {
      const Tensor y = RunNode(*n, q_in, pool, d)[0];
      ASSERT_EQ(y.dtype(), dt);
      ASSERT_EQ(y.shape(), yf.shape()) << what << " " << d->name;
      int bad = 0;
      for (uint64_t i = 0; i < y.numel(); ++i) bad += static_cast<float>(y.data<T>()[i]) != yf.data<float>()[i];
      EXPECT_EQ(bad, 0) << what << " run " << run << " " << d->name;
    }
  }
}

TEST(QResizeTest, NearestEqualsTheFloatKernelForEveryMode) {
  std::vector<Case> cases;
  for (const char* coord : {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                            "tf_half_pixel_for_nn"})
    for (const char* nm : {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}) {
      cases.push_back({coord, nm, {1, 1, 2, 2}, {}, {1, 3, 5, 7}, false});
      cases.push_back({coord, nm, {1, 1, 0.6f, 1.7f}, {}, {2, 2, 9, 11}, false});
    }
  cases.push_back({"half_pixel", "round_prefer_floor", {}, {1, 2, 13, 4}, {1, 2, 5, 9}, false});
  cases.push_back({"asymmetric", "floor", {1, 1, 3}, {}, {2, 3, 40}, false});  // rank 3
  cases.push_back({"asymmetric", "floor", {1, 2, 1, 2, 2}, {}, {1, 2, 3, 4, 5}, false});  // rank 5
  cases.push_back({"", "", {1, 1, 2, 3}, {}, {1, 2, 4, 5}, true});
  cases.push_back({"asymmetric", "floor", {1, 1, 2, 2}, {}, {1, 96, 20, 20}, false});  // FPN
  // Wide rows for the 16-output chunks: x2 to 16 and 32 outputs, x8 (the detector's 10 ->
  // 80), x1.7 to 42 (2 chunks and a tail of 10), x3 ceil, and x1.1 where 16 outputs span
  // 15 inputs.
  cases.push_back({"asymmetric", "floor", {1, 1, 2, 2}, {}, {1, 3, 4, 8}, false});
  cases.push_back({"asymmetric", "floor", {1, 1, 2, 2}, {}, {2, 3, 5, 16}, false});
  cases.push_back({"asymmetric", "floor", {1, 1, 8, 8}, {}, {1, 4, 10, 10}, false});
  cases.push_back({"half_pixel", "round_prefer_floor", {1, 1, 1.7f, 1.7f}, {}, {1, 2, 9, 25}, false});
  cases.push_back({"align_corners", "ceil", {1, 1, 3, 3}, {}, {1, 2, 3, 13}, false});
  cases.push_back({"pytorch_half_pixel", "round_prefer_ceil", {1, 1, 1, 1.1f}, {}, {1, 1, 5, 61}, false});
  uint32_t seed = 1;
  for (const Case& c : cases) {
    Check<uint8_t>(DType::kUInt8, c, seed += 2);
    Check<int8_t>(DType::kInt8, c, seed += 2);
  }
}

TEST(QResizeTest, LinearAndCropAndResizeAreRefused) {
  for (const auto& [attr, value] : std::vector<std::pair<std::string, std::string>>{
           {"mode", "linear"}, {"coordinate_transformation_mode", "tf_crop_and_resize"}}) {
    ir::Graph g;
    const Tensor scales = Tensor::FromVector(DType::kFloat32, {4}, std::vector<float>{1, 1, 2, 2});
    ir::Node* n = g.AddNode("Resize", {g.AddInput("x", ir::ValueType::Tensor(DType::kUInt8)), nullptr,
                                       g.AddInitializer("scales", scales)},
                            {"y"}, "up", "");
    n->set_attr(ir::Attribute::String(attr, value));
    const Tensor x(DType::kUInt8, {1, 1, 2, 2});
    ThreadPool pool(1);
    try {
      RunNode(*n, {&x, nullptr, &scales}, pool);
      ADD_FAILURE() << value << " was not refused";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
      EXPECT_NE(std::string(e.what()).find("'up'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("8-bit"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace edgepress::runtime
