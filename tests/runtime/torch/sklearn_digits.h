// The 1797 real sklearn handwritten digits, read from Debian's python3-sklearn
// (digits.csv.gz), pixels / 16 as examples/digits/make_example.py scales them. Shared by
// the torch-backend training tests; no LibTorch include, so callers convert.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace edgepress::test_util {

inline const char* kSklearnDigitsCsv = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";

struct SklearnDigits {
  std::vector<float> pixels;    // [count * 64], row-major 8x8 images
  std::vector<int64_t> labels;  // [count]; empty when the file is missing
};

inline SklearnDigits LoadSklearnDigits() {
  SklearnDigits d;
  gzFile f = gzopen(kSklearnDigitsCsv, "rb");
  if (!f) return d;
  std::string text;
  char buf[65536];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  gzclose(f);
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream cells(line);
    std::string cell;
    std::vector<float> row;
    while (std::getline(cells, cell, ',')) row.push_back(std::stof(cell));
    if (row.size() != 65) continue;
    for (int i = 0; i < 64; ++i) d.pixels.push_back(row[i] / 16.0f);
    d.labels.push_back(static_cast<int64_t>(row[64]));
  }
  return d;
}

}  // namespace edgepress::test_util
