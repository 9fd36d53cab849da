// Shape inference on models exported by torch.onnx with dynamic axes: a BERT-style encoder
// (symbolic "batch" and "seq"; the head split is a Shape -> Gather -> Unsqueeze -> Concat
// -> Reshape chain) at opsets 14 and 17, and a small MobileNet-style CNN (symbolic
// "batch"). After clearing every inferred type, inference must give every node output a
// dtype and a rank, keep the symbols through the attention reshapes, and reproduce the
// declared output types. The models come from tests/ir/export_symbolic.py (Debian's
// python3-torch); the test skips when that is unavailable.
#include <gtest/gtest.h>

#include <cstdlib>
#include <unistd.h>

#include <filesystem>

#include "formats/onnx/onnx.h"
#include "ir/dump.h"
#include "ir/shape_inference.h"
#include "ir/verifier.h"

namespace edgepress::ir {
namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::path(EDGEPRESS_BINARY_DIR) / "ir_symbolic_models";

// Exports once per build tree; later runs reuse the files.
bool EnsureModels(std::string* why) {
  if (fs::exists(kDir / "cnn.onnx") && fs::exists(kDir / "encoder_opset17.onnx")) return true;
  const char* python = "/usr/bin/python3";
  if (!fs::exists(python)) {
    *why = "no /usr/bin/python3";
    return false;
  }
  std::string cmd = std::string(python) + " -c 'import torch' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    *why = "python3-torch is not installed";
    return false;
  }
  // ctest runs the cases of this file in parallel: each exports into its own folder.
  fs::path tmp = kDir.string() + ".tmp." + std::to_string(getpid());
  cmd = std::string(python) + " " EDGEPRESS_SOURCE_DIR "/tests/ir/export_symbolic.py '" +
        tmp.string() + "' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    fs::remove_all(tmp);
    // A parallel case may have exported them meanwhile.
    if (fs::exists(kDir / "encoder_opset17.onnx")) return true;
    *why = "export_symbolic.py failed";
    return false;
  }
  std::error_code ec;
  fs::rename(tmp, kDir, ec);
  if (ec && fs::exists(kDir / "encoder_opset17.onnx")) ec.clear();  // another case won
  fs::remove_all(tmp);
  if (ec) {
    *why = "cannot move the exported models into place: " + ec.message();
    return false;
  }
  return true;
}

void ClearInferred(Graph& g) {
  for (Node* n : g.nodes())
    for (Value* v : n->outputs())
      if (v) v->type = ValueType{};
}

// Infers a model with all intermediate types cleared; returns the declared output types.
std::vector<ValueType> InferFresh(Model& m) {
  std::vector<ValueType> declared;
  for (Value* v : m.graph->outputs()) declared.push_back(v->type);
  ClearInferred(*m.graph);
  InferShapes(m);
  std::vector<std::string> problems = VerifyAll(m);
  EXPECT_TRUE(problems.empty()) << problems[0];
  for (Node* n : m.graph->nodes())
    for (Value* v : n->outputs()) {
      if (!v) continue;
      EXPECT_TRUE(v->type.is_tensor() && v->type.dtype != DType::kUndefined && v->type.shape)
          << "no type for " << DumpNode(*n);
    }
  return declared;
}

class SymbolicModelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!EnsureModels(&why)) GTEST_SKIP() << why;
  }
};

TEST_F(SymbolicModelsTest, EncoderKeepsBatchAndSeqThroughAttention) {
  for (const char* file : {"encoder_opset14.onnx", "encoder_opset17.onnx"}) {
    SCOPED_TRACE(file);
    auto m = formats::LoadOnnx((kDir / file).string());
    std::vector<ValueType> declared = InferFresh(*m);
    const Value* out = m->graph->outputs()[0];
    EXPECT_EQ(out->type.ToString(), "f32[batch,seq,32]");
    EXPECT_EQ(out->type, declared[0]);
    // The per-head tensors: [batch, 4, seq, 8] after the Reshape+Transpose, and the
    // attention scores [batch, 4, seq, seq].
    int heads = 0, scores = 0;
    for (Node* n : m->graph->nodes()) {
      std::string t = n->output(0) ? n->output(0)->type.ToString() : "";
      if (n->op_type() == "Transpose" && t == "f32[batch,4,seq,8]") ++heads;
      if (n->op_type() == "Softmax" && t == "f32[batch,4,seq,seq]") ++scores;
    }
    EXPECT_GE(heads, 4);  // q and v in each of the 2 layers at least
    EXPECT_EQ(scores, 2);
  }
}

TEST_F(SymbolicModelsTest, CnnShapesFollowConvAndPoolArithmetic) {
  auto m = formats::LoadOnnx((kDir / "cnn.onnx").string());
  std::vector<ValueType> declared = InferFresh(*m);
  EXPECT_EQ(m->graph->outputs()[0]->type.ToString(), "f32[batch,10]");
  EXPECT_EQ(m->graph->outputs()[0]->type, declared[0]);
  std::vector<std::string> conv_shapes;
  for (Node* n : m->graph->nodes()) {
    if (n->op_type() == "Conv" || n->op_type() == "MaxPool")
      conv_shapes.push_back(n->output(0)->type.ToString());
  }
  // 33 -> stride-2 conv: 17 -> depthwise 17 -> 1x1 17 -> 3/2 ceil-mode pool: 8.
  EXPECT_EQ(conv_shapes, (std::vector<std::string>{"f32[batch,16,17,17]", "f32[batch,16,17,17]",
                                                   "f32[batch,24,17,17]", "f32[batch,24,8,8]"}));
}

}  // namespace
}  // namespace edgepress::ir
