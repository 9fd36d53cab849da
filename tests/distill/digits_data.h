// Training data for the distillation tests: the 1797 real sklearn digits (Debian's
// python3-sklearn, sklearn_digits.h) minus every image of examples/digits/eval.npz, so the
// eval top-1 is measured on images the student never trained on. Written as .npz shards
// {"image" [n,1,8,8] f32, "label" [n] i64} under the test's temp dir. Also the digits
// models' shared setup: the cleaned-up model a test trains, and its top-1 on eval.npz.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/tensor.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "tests/runtime/torch/sklearn_digits.h"

namespace edgepress::test_util {

inline const std::string kDigitsEval = EDGEPRESS_SOURCE_DIR "/examples/digits/eval.npz";
inline const std::string kDigitsCnn = EDGEPRESS_SOURCE_DIR "/examples/digits/digits_cnn.onnx";
inline const std::string kDigitsTrain = EDGEPRESS_SOURCE_DIR "/examples/digits/train.npz";
inline const std::string kDigitsCalib = EDGEPRESS_SOURCE_DIR "/examples/digits/calib.npz";

// `file` loaded with the cleanup every distillation starts from (constants folded,
// BatchNorm folded into the convs), then the passes of `more` (may be empty). `data_files`
// feed passes that calibrate.
inline std::shared_ptr<ir::Model> PrepareDigitsModel(const std::string& file,
                                                     const std::string& more = "",
                                                     std::vector<std::string> data_files = {}) {
  std::shared_ptr<ir::Model> m = formats::LoadOnnx(file);
  passes::PassContext ctx;
  ctx.data_files = std::move(data_files);
  std::string p = "fold-constants,remove-identity,fold-batchnorm,eliminate-dead-nodes";
  if (!more.empty()) p += "," + more;
  passes::RunPipeline(*m, passes::ParsePipeline(p), ctx, /*verify=*/true);
  return m;
}

// Top-1 of logits [n, 10] against eval.npz's labels.
inline double DigitsTop1(const ir::Tensor& logits) {
  formats::NamedTensors eval = formats::LoadNpz(kDigitsEval);
  const int64_t* label = eval[1].second.data<int64_t>();
  int64_t n = logits.shape()[0], correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data<float>() + i * 10;
    correct += std::max_element(row, row + 10) - row == label[i];
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

// Top-1 of `m` on eval.npz through the native runtime.
inline double DigitsTop1(const ir::Model& m) {
  auto s = runtime::Session::Create(std::shared_ptr<const ir::Model>(m.Clone()));
  return DigitsTop1(s->Run({{"image", formats::LoadNpz(kDigitsEval)[0].second}})[0].second);
}

// Writes `shards` files <dir>/train_<i>.npz (consecutive slices) and returns their paths;
// empty when the sklearn data is missing. `limit` > 0 keeps only that many images.
inline std::vector<std::string> WriteDigitsTrain(const std::string& dir, int shards = 1,
                                                 int64_t limit = 0) {
  SklearnDigits raw = LoadSklearnDigits();
  if (raw.labels.empty()) return {};
  std::set<std::string> held;
  for (const auto& [name, t] : formats::LoadNpz(kDigitsEval))
    if (name == "image")
      for (uint64_t i = 0; i < t.numel() / 64; ++i)
        held.insert(std::string(static_cast<const char*>(t.raw()) + i * 256, 256));
  std::vector<float> pixels;
  std::vector<int64_t> labels;
  for (size_t i = 0; i < raw.labels.size(); ++i) {
    std::string key(reinterpret_cast<const char*>(&raw.pixels[i * 64]), 256);
    if (held.count(key)) continue;
    pixels.insert(pixels.end(), raw.pixels.begin() + i * 64, raw.pixels.begin() + (i + 1) * 64);
    labels.push_back(raw.labels[i]);
  }
  int64_t n = static_cast<int64_t>(labels.size());
  if (limit > 0) n = std::min(n, limit);
  std::vector<std::string> files;
  for (int s = 0; s < shards; ++s) {
    int64_t begin = n * s / shards, end = n * (s + 1) / shards;
    std::vector<float> p(pixels.begin() + begin * 64, pixels.begin() + end * 64);
    std::vector<int64_t> l(labels.begin() + begin, labels.begin() + end);
    std::string f = dir + "/train_" + std::to_string(s) + ".npz";
    formats::SaveNpz(
        {{"image", ir::Tensor::FromVector(ir::DType::kFloat32, {end - begin, 1, 8, 8}, p)},
         {"label", ir::Tensor::FromVector(ir::DType::kInt64, {end - begin}, l)}},
        f);
    files.push_back(f);
  }
  return files;
}

}  // namespace edgepress::test_util
