// Accuracy metrics over model outputs, accumulated batch by batch so evaluation memory
// does not grow with the data set:
//   top1 / topk  labels: fraction of rows whose label is the arg-max / among the k largest
//   perplexity   labels: exp(mean negative log-likelihood of the label under softmax)
//   cosine       reference outputs (usually the original model's): mean per-sample cosine
//   nmse         reference outputs: sum (y - ref)^2 / sum ref^2 over all elements
// Scores are rows of the last axis: an output [N, ..., C] has numel / C rows and the
// labels (any integer dtype, numel = rows) index C. Values are computed in double.
#pragma once

#include <cstdint>
#include <string>

#include "ir/tensor.h"

namespace edgepress::eval {

enum class Metric : uint8_t { kTop1, kTopK, kCosine, kNmse, kPerplexity };
const char* MetricName(Metric m);
// Throws Error(kInvalidInput) naming the valid metrics (and the nearest one).
Metric ParseMetric(const std::string& name);
// top1/topk/cosine: higher is better; nmse/perplexity: lower is better.
bool HigherIsBetter(Metric m);
// Metrics scored against labels; the others against a reference output.
bool NeedsLabels(Metric m);
// How much worse `value` is than `baseline` in metric units (positive = worse).
double Drop(Metric m, double baseline, double value);

class MetricAccumulator {
 public:
  explicit MetricAccumulator(Metric m, int k = 5);
  // Labels metrics. Throws Error(kInvalidInput) naming the output on a shape mismatch, a
  // non-float output, or a label outside [0, C).
  void AddLabels(const ir::Tensor& output, const ir::Tensor& labels);
  // Reference metrics; `output` and `reference` must have the same shape.
  void AddReference(const ir::Tensor& output, const ir::Tensor& reference);
  // The metric over everything added; throws Error(kInvalidInput) when nothing was added.
  double Value() const;
  int64_t rows() const { return rows_; }
  Metric metric() const { return metric_; }
  void set_name(std::string name) { name_ = std::move(name); }  // output name for errors

 private:
  Metric metric_;
  int k_;
  std::string name_ = "output";
  int64_t rows_ = 0;
  double sum_ = 0;      // hits, NLL or cosine sum
  double err_ = 0, ref_ = 0;  // nmse
};

// One-shot helpers over whole tensors (tests, per-layer error).
double Top1(const ir::Tensor& output, const ir::Tensor& labels);
double TopK(const ir::Tensor& output, const ir::Tensor& labels, int k);
double Perplexity(const ir::Tensor& logits, const ir::Tensor& labels);
double MeanCosine(const ir::Tensor& output, const ir::Tensor& reference);
double Nmse(const ir::Tensor& output, const ir::Tensor& reference);

}  // namespace edgepress::eval
