// onnxruntime side of the quantization tests: export a model, run it in the project
// venv's onnxruntime, and make weights 7-bit for comparisons with onnxruntime's integer
// kernels. Tests using it need the ONNX format (they include formats/onnx/onnx.h).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <string>

#include "../tools/cli_run.h"
#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/graph.h"

namespace edgepress::passes::qtest {

inline const std::string& VenvPython() {
  static const std::string p = EDGEPRESS_SOURCE_DIR "/.venv/bin/python";
  return p;
}

// Why onnxruntime cannot be run from the project venv, or "" when it can.
inline std::string OrtProblem() {
  if (::access(VenvPython().c_str(), X_OK) != 0) return "no project venv at " + VenvPython();
  auto r = test_util::RunCommand(test_util::ShellQuote(VenvPython()) +
                                 " -c 'import numpy, onnxruntime'");
  if (r.rc != 0) return "the venv lacks numpy/onnxruntime: " + r.output;
  return "";
}

// Exports `model` to ONNX and runs it in onnxruntime on input `input_name` of the .npz
// `data` at graph optimisation `level` ("basic": QDQ executed as written; "all": QDQ
// fused into onnxruntime's integer kernels). Returns the first output (empty on failure,
// with a test failure recorded).
inline ir::Tensor RunOrt(const ir::Model& model, const std::string& dir, const std::string& data,
                         const std::string& input_name, const std::string& level) {
  std::string onnx = dir + "/model_" + level + ".onnx", out = dir + "/ort_" + level + ".npz",
              py = dir + "/run_ort.py";
  formats::SaveOnnx(model, onnx);
  {
    std::ofstream f(py);
    f << "import sys, numpy as np, onnxruntime as ort\n"
         "so = ort.SessionOptions()\n"
         "so.graph_optimization_level = {'basic': ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,\n"
         "    'all': ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[sys.argv[5]]\n"
         "s = ort.InferenceSession(sys.argv[1], so, providers=['CPUExecutionProvider'])\n"
         "x = np.load(sys.argv[2])[sys.argv[4]]\n"
         "np.savez(sys.argv[3], y=s.run(None, {sys.argv[4]: x})[0])\n";
  }
  auto q = [](const std::string& s) { return test_util::ShellQuote(s); };
  auto r = test_util::RunCommand(q(VenvPython()) + " " + q(py) + " " + q(onnx) + " " + q(data) +
                                 " " + q(out) + " " + q(input_name) + " " + q(level));
  EXPECT_EQ(r.rc, 0) << r.output;
  if (r.rc != 0) return {};
  return formats::LoadNpz(out)[0].second;
}

// 7-bit weights: every int8 `*_quantized` initializer gets codes round(q / 2) and its
// `*_scale` doubles (int32 biases likewise, their scale being s_x * s_w). onnxruntime's
// u8s8 kernels on x86 without VNNI (this VM: AVX2) add pairs of u8*s8 products in int16
// and saturate with full-range int8 weights (onnxruntime's `reduce_range` exists for
// this); with 7-bit weights its integer path is exact, so it can be compared.
inline void ReduceWeightRange(ir::Model& m) {
  for (ir::Value* v : m.graph->initializers()) {
    const std::string& n = v->name();
    const std::string suffix = "_quantized";
    if (n.size() <= suffix.size() || n.compare(n.size() - suffix.size(), suffix.size(), suffix))
      continue;
    ir::Tensor* t = v->mutable_initializer();
    ir::Value* sv = m.graph->FindValue(n.substr(0, n.size() - suffix.size()) + "_scale");
    if (!sv || !sv->is_initializer()) continue;
    if (t->dtype() == ir::DType::kInt8) {
      for (uint64_t i = 0; i < t->numel(); ++i)
        t->mutable_data<int8_t>()[i] =
            static_cast<int8_t>(std::nearbyint(t->data<int8_t>()[i] / 2.0));
    } else if (t->dtype() == ir::DType::kInt32) {
      for (uint64_t i = 0; i < t->numel(); ++i)
        t->mutable_data<int32_t>()[i] =
            static_cast<int32_t>(std::nearbyint(t->data<int32_t>()[i] / 2.0));
    } else {
      continue;
    }
    ir::Tensor* s = sv->mutable_initializer();
    for (uint64_t i = 0; i < s->numel(); ++i) s->mutable_data<float>()[i] *= 2.f;
  }
}

}  // namespace edgepress::passes::qtest
