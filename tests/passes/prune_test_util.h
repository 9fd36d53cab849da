// Helpers for the pruning tests: weight inspection, correlated calibration data (where a
// Hessian criterion has something to exploit), and the bundled digits models
// (examples/digits: eval.npz, 360 held-out images with labels; calib.npz, 200 training
// images).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/builder.h"
#include "qdq_test_util.h"

namespace edgepress::passes::ptest {

inline const std::string kDigitsDir = EDGEPRESS_SOURCE_DIR "/examples/digits";

inline const ir::Tensor& Weight(const ir::Model& m, const std::string& name) {
  for (ir::Value* v : m.graph->initializers())
    if (v->name() == name) return *v->initializer();
  throw std::runtime_error("no initializer " + name);
}

inline int64_t Zeros(const ir::Tensor& t) {
  const float* d = t.data<float>();
  return std::count(d, d + t.numel(), 0.f);
}

// Rows x = z·M (z standard normal, M a fixed random mixing): strongly correlated input
// channels, as real activations have.
inline ir::Tensor CorrelatedRows(int64_t rows, int64_t K, uint32_t seed) {
  ir::Tensor z = qtest::Gaussian({rows, K}, seed);
  ir::Tensor mix = qtest::Gaussian({K, K}, 1234);
  ir::Tensor x(ir::DType::kFloat32, {rows, K});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < K; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += z.data<float>()[r * K + k] * mix.data<float>()[k * K + j] * (k < K / 4 ? 1.0 : 0.1);
      x.mutable_data<float>()[r * K + j] = static_cast<float>(s);
    }
  return x;
}

struct DigitsEval {
  ir::Tensor images;
  ir::Tensor labels;
};

inline const DigitsEval& Digits() {
  static const DigitsEval e = [] {
    DigitsEval s;
    for (auto& [name, t] : formats::LoadNpz(kDigitsDir + "/eval.npz")) {
      if (name == "image") s.images = t;
      if (name == "label") s.labels = t;
    }
    return s;
  }();
  return e;
}

inline ir::Tensor DigitsLogits(const ir::Model& m) {
  return qtest::RunModel(m, {{"image", Digits().images}})[0].second;
}

// Top-1 in percent on the digits eval set.
inline double DigitsTop1(const ir::Model& m) {
  ir::Tensor logits = DigitsLogits(m);
  std::vector<int64_t> labels = Digits().labels.ToInt64();
  int64_t classes = logits.shape().back(), right = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* row = logits.data<float>() + i * classes;
    right += std::max_element(row, row + classes) - row == labels[i];
  }
  return 100.0 * double(right) / double(labels.size());
}

}  // namespace edgepress::passes::ptest
