// Training data for the distillation tests: the 1797 real sklearn digits (Debian's
// python3-sklearn, sklearn_digits.h) minus every image of examples/digits/eval.npz, so the
// eval top-1 is measured on images the student never trained on. Written as .npz shards
// {"image" [n,1,8,8] f32, "label" [n] i64} under the test's temp dir.
#pragma once

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "formats/npy/npy.h"
#include "ir/tensor.h"
#include "tests/runtime/torch/sklearn_digits.h"

namespace edgepress::test_util {

inline const std::string kDigitsEval = EDGEPRESS_SOURCE_DIR "/examples/digits/eval.npz";
inline const std::string kDigitsCnn = EDGEPRESS_SOURCE_DIR "/examples/digits/digits_cnn.onnx";

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
