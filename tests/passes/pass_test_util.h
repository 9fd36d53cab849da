// Helpers for pass tests: run a model node by node with the runtime's kernels (no
// Session needed), and compare outputs with a declared tolerance.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <string>

#include "ir/builder.h"
#include "ir/verifier.h"
#include "passes/registry.h"
#include "runtime/eager.h"

namespace edgepress::passes::testing {

inline std::map<std::string, ir::Tensor> Evaluate(const ir::Model& m,
                                                  const std::map<std::string, ir::Tensor>& feeds) {
  runtime::ThreadPool pool(1);
  std::map<const ir::Value*, ir::Tensor> env;
  for (ir::Value* v : m.graph->inputs()) env[v] = feeds.at(v->name());
  for (ir::Value* v : m.graph->initializers()) env[v] = *v->initializer();
  for (ir::Node* n : m.graph->nodes()) {
    std::vector<const ir::Tensor*> ins;
    for (ir::Value* v : n->inputs()) ins.push_back(v ? &env.at(v) : nullptr);
    auto outs = runtime::RunNode(*n, ins, pool);
    for (size_t i = 0; i < n->num_outputs(); ++i)
      if (n->output(i)) env[n->output(i)] = outs[i];
  }
  std::map<std::string, ir::Tensor> out;
  for (ir::Value* v : m.graph->outputs()) out[v->name()] = env.at(v);
  return out;
}

inline ir::Tensor RandomTensor(std::vector<int64_t> shape, uint32_t seed, float lo = -1.f,
                               float hi = 1.f) {
  ir::Tensor t(ir::DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (uint64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = dist(rng);
  return t;
}

// Max |a-b| / (max|b| + 1e-12) over all outputs.
inline double MaxRelError(const std::map<std::string, ir::Tensor>& a,
                          const std::map<std::string, ir::Tensor>& b) {
  double worst = 0;
  for (const auto& [name, tb] : b) {
    const ir::Tensor& ta = a.at(name);
    EXPECT_EQ(ta.shape(), tb.shape()) << name;
    if (ta.shape() != tb.shape()) return 1e30;
    double maxb = 0, maxd = 0;
    for (uint64_t i = 0; i < tb.numel(); ++i) {
      maxb = std::max(maxb, std::fabs(double(tb.data<float>()[i])));
      maxd = std::max(maxd, std::fabs(double(ta.data<float>()[i]) - tb.data<float>()[i]));
    }
    worst = std::max(worst, maxd / (maxb + 1e-12));
  }
  return worst;
}

inline int CountOps(const ir::Model& m, const std::string& op) {
  int n = 0;
  for (ir::Node* node : m.graph->nodes()) n += node->op_type() == op;
  return n;
}

// Runs `pipeline` on a copy of `m`, verifies it, and returns the copy and the run log.
inline std::unique_ptr<ir::Model> Apply(const ir::Model& m, const std::string& pipeline,
                                        std::vector<PassRun>* runs = nullptr) {
  auto copy = m.Clone();
  PassContext ctx;
  auto r = RunPipeline(*copy, ParsePipeline(pipeline), ctx, /*verify=*/true);
  if (runs) *runs = r;
  return copy;
}

}  // namespace edgepress::passes::testing
