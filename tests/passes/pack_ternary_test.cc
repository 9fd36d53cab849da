// pack-ternary (passes/quant/pack_ternary.cc) on the real digits transformer and CNN: weights that
// are ternary per channel (TWN-snapped, as distill --fake-quant ternary writes them) become
// edgepress TernaryMatMul with 2-bit codes, the model computes what the snapped float model
// computes (float tolerance), .epk stores the packed tensors (~4x smaller than the int8
// codes of quantize-weights {bits: 8}), and ONNX refuses them with a clear error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "formats/epk/epk.h"
#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "ir/verifier.h"
#include "pass_test_util.h"
#include "passes/rewrite_util.h"
#include "passes/quant/ternary.h"

namespace edgepress::passes::testing {
namespace {

const std::string kDir = EDGEPRESS_SOURCE_DIR "/examples/digits/";

std::shared_ptr<ir::Model> Prepared(const std::string& file) {
  return std::shared_ptr<ir::Model>(
      Apply(*formats::LoadOnnx(kDir + file),
            "fold-constants,remove-identity,fold-batchnorm,eliminate-dead-nodes"));
}

std::map<std::string, ir::Tensor> Feeds(const ir::Model& m) {
  return {{m.graph->inputs()[0]->name(), formats::LoadNpz(kDir + "eval.npz")[0].second}};
}

double Top1(const ir::Model& m) {
  const ir::Tensor logits = Evaluate(m, Feeds(m)).begin()->second;
  const ir::Tensor labels = formats::LoadNpz(kDir + "eval.npz")[1].second;
  const int64_t n = logits.shape()[0], classes = logits.shape()[1];
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data<float>() + i * classes;
    correct += std::max_element(row, row + classes) - row == labels.data<int64_t>()[i];
  }
  return double(correct) / double(n);
}

// The float model with every MatMul/Gemm/Conv weight snapped by TWN per output channel:
// what distillation-aware ternary training leaves behind.
std::shared_ptr<ir::Model> Snapped(const ir::Model& m) {
  std::shared_ptr<ir::Model> out = m.Clone();
  for (ir::Node* n : out->graph->nodes()) {
    const bool conv = n->op_type() == "Conv";
    if (n->op_type() != "MatMul" && n->op_type() != "Gemm" && !conv) continue;
    ir::Value* w = n->input(1);
    if (!w->is_initializer() || (!conv && w->initializer()->rank() != 2)) continue;
    ir::Tensor t = *w->initializer();
    const int64_t rows = t.shape()[0], cols = static_cast<int64_t>(t.numel()) / rows;
    const bool trans = conv || (n->op_type() == "Gemm" && n->attr_int("transB", 0) != 0);
    if (trans)
      ternary::TernarizeTwn(t.mutable_data<float>(), rows, cols, cols, 1);
    else
      ternary::TernarizeTwn(t.mutable_data<float>(), cols, rows, 1, cols);
    *w->mutable_initializer() = t;
  }
  return out;
}

int64_t Stat(const std::vector<PassRun>& runs, const std::string& name) {
  for (const auto& [k, v] : runs.back().stats)
    if (k == name) return v;
  return 0;
}

TEST(PackTernary, TransformerComputesTheSnappedModelAndShrinksFourfoldVsInt8) {
  std::shared_ptr<ir::Model> snapped = Snapped(*Prepared("digits_transformer.onnx"));
  std::vector<PassRun> runs;
  std::unique_ptr<ir::Model> packed = Apply(*snapped, "pack-ternary", &runs);
  EXPECT_TRUE(runs.back().changed);
  EXPECT_EQ(Stat(runs, "matmul-ternary"), 9);  // q/k/v/o + fc1/fc2 ... of two blocks
  EXPECT_EQ(Stat(runs, "gemm-ternary"), 1);    // the head
  EXPECT_EQ(CountOps(*packed, "TernaryMatMul"), 10);
  EXPECT_EQ(CountOps(*packed, "Gemm"), 0);
  EXPECT_TRUE(ir::VerifyAll(*packed).empty());
  // Same values, another order of float additions: float tolerance, not quantization error.
  EXPECT_LT(MaxRelError(Evaluate(*packed, Feeds(*packed)), Evaluate(*snapped, Feeds(*snapped))),
            1e-5);
  EXPECT_EQ(Top1(*packed), Top1(*snapped));

  // The same weights as int8 codes (exact: -127/0/127) against 2-bit codes, in .epk.
  std::unique_ptr<ir::Model> int8 = Apply(*snapped, "quantize-weights{bits=8}");
  const formats::EpkSizeBreakdown s8 = formats::EpkSizeOf(*int8), s2 = formats::EpkSizeOf(*packed);
  const formats::EpkSizeBreakdown sf = formats::EpkSizeOf(*snapped);
  std::printf(
      "digits transformer .epk: float %llu B, int8 QDQ %llu B (weights %llu), ternary %llu B "
      "(weights %llu)\n",
      (unsigned long long)sf.total, (unsigned long long)s8.total, (unsigned long long)s8.blob_bytes,
      (unsigned long long)s2.total, (unsigned long long)s2.blob_bytes);
  EXPECT_LT(s2.total, s8.total);
  // The packed weights are 1/4 of the int8 codes; what stays is the float embeddings,
  // LayerNorms and biases both models share.
  const ir::Tensor* codes8 = nullptr;
  for (ir::Value* v : int8->graph->initializers())
    if (v->initializer()->dtype() == ir::DType::kInt8 &&
        (!codes8 || v->initializer()->nbytes() > codes8->nbytes()))
      codes8 = v->initializer();
  const ir::Tensor* codes2 = nullptr;
  for (ir::Value* v : packed->graph->initializers())
    if (v->initializer()->dtype() == ir::DType::kTernary &&
        (!codes2 || v->initializer()->nbytes() > codes2->nbytes()))
      codes2 = v->initializer();
  ASSERT_TRUE(codes8 && codes2);
  EXPECT_EQ(codes8->numel(), codes2->numel());  // the largest layer, K a multiple of 16
  EXPECT_EQ(codes2->nbytes() * 4, codes8->nbytes());
}

TEST(PackTernary, EpkStoresThePackedTensorsAndOnnxRefusesThem) {
  std::unique_ptr<ir::Model> packed =
      Apply(*Prepared("digits_transformer.onnx"), "pack-ternary{ternarize=true}");
  const auto dir =
      std::filesystem::temp_directory_path() / ("ep_pack_ternary_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string epk = (dir / "t.epk").string();
  formats::SaveEpk(*packed, epk);
  std::unique_ptr<ir::Model> back = formats::LoadEpk(epk);
  int ternary_tensors = 0;
  for (ir::Value* v : back->graph->initializers())
    ternary_tensors += v->initializer()->dtype() == ir::DType::kTernary;
  EXPECT_EQ(ternary_tensors, 10);
  const auto a = Evaluate(*back, Feeds(*back)), b = Evaluate(*packed, Feeds(*packed));
  EXPECT_EQ(MaxRelError(a, b), 0.0);  // same bytes, same kernels
  try {
    formats::SaveOnnx(*packed, (dir / "t.onnx").string());
    ADD_FAILURE() << "ONNX accepted a ternary tensor";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(msg.find("_ternary'"), std::string::npos) << msg;  // names the tensor
    EXPECT_NE(msg.find(".epk"), std::string::npos) << msg;       // and the way out
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "t.onnx"));
  std::filesystem::remove_all(dir);
}

// Must not fire: float weights are not ternary, and the default does not ternarize.
TEST(PackTernary, FloatWeightsAreLeftAlone) {
  std::shared_ptr<ir::Model> m = Prepared("digits_cnn.onnx");
  std::vector<PassRun> runs;
  std::unique_ptr<ir::Model> out = Apply(*m, "pack-ternary", &runs);
  EXPECT_FALSE(runs.back().changed);
  EXPECT_EQ(Stat(runs, "skipped-not-ternary"), 5);  // 3 Conv + 2 Gemm
  EXPECT_EQ(CountOps(*out, "TernaryMatMul") + CountOps(*out, "TernaryConv"), 0);
  EXPECT_EQ(formats::EpkGraphBytes(*out), formats::EpkGraphBytes(*m));
  EXPECT_THROW(Apply(*m, "pack-ternary{op-types=Gather}"), Error);
}

// Gemm's alpha folds into the scales and beta * C ([1, N]) becomes the bias; a Gemm whose
// C is not constant must not fire.
TEST(PackTernary, GemmFoldsAlphaAndBetaAndSkipsRuntimeC) {
  const int64_t M = 3, K = 21, N = 5;
  ir::Tensor w(ir::DType::kFloat32, {N, K});  // transB = 1
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      w.mutable_data<float>()[n * K + k] = ((n + k) % 3 - 1) * 0.25f * float(n + 1);
  for (bool const_c : {true, false}) {
    ir::GraphBuilder b;
    ir::Value* a = b.Input("a", ir::DType::kFloat32, {M, K});
    ir::Value* c =
        const_c ? b.Const("c", RandomTensor({1, N}, 3)) : b.Input("c", ir::DType::kFloat32, {1, N});
    ir::Value* y = b.Op("Gemm", {a, b.Const("w", w), c},
                        {ir::Attribute::Int("transB", 1), ir::Attribute::Float("alpha", 0.5f),
                         ir::Attribute::Float("beta", 2.f)});
    b.Output(y);
    std::unique_ptr<ir::Model> m = b.Build();
    std::vector<PassRun> runs;
    std::unique_ptr<ir::Model> out = Apply(*m, "pack-ternary", &runs);
    EXPECT_EQ(runs.back().changed, const_c);
    EXPECT_EQ(CountOps(*out, "TernaryMatMul"), const_c ? 1 : 0);
    std::map<std::string, ir::Tensor> feeds = {{"a", RandomTensor({M, K}, 1)}};
    if (!const_c) feeds["c"] = RandomTensor({1, N}, 2);
    EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-6);
  }
}

// Post-training ternary of the whole CNN (ternarize=true): convolutions become TernaryConv,
// the Gemms TernaryMatMul, and the packed model equals the TWN-snapped float model through
// the native kernels; the 2-bit .epk is far smaller than the int8 codes of the same values.
TEST(PackTernary, TernarizeOptionIsTwnOnTheCnn) {
  std::shared_ptr<ir::Model> m = Prepared("digits_cnn.onnx");
  std::vector<PassRun> runs;
  std::unique_ptr<ir::Model> out = Apply(*m, "pack-ternary{ternarize=true}", &runs);
  EXPECT_EQ(Stat(runs, "ternarized"), 5);
  EXPECT_EQ(Stat(runs, "conv-ternary"), 3);
  EXPECT_EQ(CountOps(*out, "TernaryConv"), 3);
  EXPECT_EQ(CountOps(*out, "Conv"), 0);
  EXPECT_TRUE(ir::VerifyAll(*out).empty());
  std::shared_ptr<ir::Model> snapped = Snapped(*m);
  EXPECT_LT(MaxRelError(Evaluate(*out, Feeds(*out)), Evaluate(*snapped, Feeds(*m))), 1e-5);
  const double top1 = Top1(*out);
  EXPECT_EQ(top1, Top1(*snapped));
  const uint64_t int8 = formats::EpkSizeOf(*Apply(*snapped, "quantize-weights{bits=8}")).total,
                 tern = formats::EpkSizeOf(*out).total;
  std::printf(
      "digits CNN: top-1 float %.4f, ternary post-training %.4f; .epk int8 %llu B, "
      "ternary %llu B\n",
      Top1(*m), top1, (unsigned long long)int8, (unsigned long long)tern);
  EXPECT_LT(tern * 2, int8);
}

}  // namespace
}  // namespace edgepress::passes::testing
