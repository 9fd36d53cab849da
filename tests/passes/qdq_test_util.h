// Helpers for the quantize-static/quantize-dynamic tests: calibration data written to .npz, running a
// pipeline with data, running a model in a Session, and error measures.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "formats/npy/npy.h"
#include "ir/builder.h"
#include "ir/verifier.h"
#include "passes/registry.h"
#include "runtime/session.h"

namespace edgepress::passes::qtest {

inline std::string TempDir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/edgepress_quant_" + std::to_string(::getpid()) + "_" + name;
  std::filesystem::create_directories(d);
  return d;
}

inline std::string SaveData(const std::string& dir, const std::string& file,
                            const formats::NamedTensors& arrays) {
  std::string path = dir + "/" + file;
  formats::SaveNpz(arrays, path);
  return path;
}

// Normal(0, 1) samples, with `outliers` leading channels of the last axis scaled by `gain`.
inline ir::Tensor Gaussian(std::vector<int64_t> shape, uint32_t seed, int outliers = 0,
                           float gain = 1.f) {
  ir::Tensor t(ir::DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  int64_t last = t.shape().back();
  for (uint64_t i = 0; i < t.numel(); ++i) {
    float v = dist(rng);
    if (static_cast<int64_t>(i % last) < outliers) v *= gain;
    t.mutable_data<float>()[i] = v;
  }
  return t;
}

// Runs `pipeline` on a copy of `m` with calibration files; verifies the result.
inline std::unique_ptr<ir::Model> ApplyWithData(const ir::Model& m, const std::string& pipeline,
                                                const std::vector<std::string>& files,
                                                std::vector<PassRun>* runs = nullptr) {
  auto copy = m.Clone();
  PassContext ctx;
  ctx.data_files = files;
  auto r = RunPipeline(*copy, ParsePipeline(pipeline), ctx, /*verify=*/true);
  if (runs) *runs = r;
  ir::Verify(*copy);
  return copy;
}

inline runtime::NamedTensors RunModel(const ir::Model& m, const runtime::NamedTensors& feeds) {
  auto s = runtime::Session::Create(std::shared_ptr<const ir::Model>(m.Clone()));
  return s->Run(feeds);
}

// sum (a - b)^2 / sum b^2 over one tensor.
inline double Nmse(const ir::Tensor& a, const ir::Tensor& ref) {
  EXPECT_EQ(a.shape(), ref.shape());
  if (a.numel() != ref.numel()) return 1e30;
  double num = 0, den = 0;
  for (uint64_t i = 0; i < a.numel(); ++i) {
    double d = double(a.data<float>()[i]) - ref.data<float>()[i];
    num += d * d;
    den += double(ref.data<float>()[i]) * ref.data<float>()[i];
  }
  return num / std::max(den, 1e-30);
}

inline double MaxAbsDiff(const ir::Tensor& a, const ir::Tensor& b) {
  EXPECT_EQ(a.numel(), b.numel());
  double m = 0;
  for (uint64_t i = 0; i < a.numel() && i < b.numel(); ++i)
    m = std::max(m, std::fabs(double(a.data<float>()[i]) - b.data<float>()[i]));
  return m;
}

inline int Count(const ir::Model& m, const std::string& op) {
  int n = 0;
  for (ir::Node* node : m.graph->nodes()) n += node->op_type() == op;
  return n;
}

inline const ir::Node* NodeNamed(const ir::Model& m, const std::string& name) {
  return m.graph->FindNode(name);
}

// The quantization rules every QDQ model must satisfy: each QuantizeLinear feeds only
// DequantizeLinear nodes; each DequantizeLinear of an activation has readers, none of
// which is a QuantizeLinear (no requantize chains) and all of which are ops that run
// integer; no QuantizeLinear is read by a float op.
inline void ExpectCleanQdq(const ir::Model& m) {
  static const std::set<std::string> integer_ops = {
      "Conv", "MatMul", "Gemm", "Add", "Mul", "Concat", "MaxPool", "AveragePool",
      "GlobalAveragePool", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze",
      "Resize",  // nearest only (a linear Resize must not get Q/DQ; tested by its reader)
      // element-wise functions: fuse-qdq makes them 256-entry tables (QLinearLookup)
      "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Softplus",
      "Gelu", "Mish"};
  for (ir::Node* n : m.graph->nodes()) {
    if (n->op_type() == "QuantizeLinear") {
      ASSERT_FALSE(n->output(0)->uses().empty()) << n->describe();
      for (const ir::Use& u : n->output(0)->uses())
        EXPECT_EQ(u.user->op_type(), "DequantizeLinear") << n->describe();
    }
    if (n->op_type() == "DequantizeLinear" && n->input(0)->producer() &&
        n->input(0)->producer()->op_type() == "QuantizeLinear") {
      EXPECT_FALSE(n->output(0)->uses().empty()) << n->describe();
      EXPECT_FALSE(n->output(0)->is_graph_output()) << n->describe();
      for (const ir::Use& u : n->output(0)->uses())
        EXPECT_TRUE(integer_ops.count(u.user->op_type()))
            << n->describe() << " feeds float-only " << u.user->describe();
    }
  }
}

}  // namespace edgepress::passes::qtest
