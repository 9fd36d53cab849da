#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ir/error.h"

namespace edgepress::eval {

namespace {

struct MetricEntry {
  Metric m;
  const char* name;
};
constexpr MetricEntry kMetrics[] = {{Metric::kTop1, "top1"},
                                    {Metric::kTopK, "topk"},
                                    {Metric::kCosine, "cosine"},
                                    {Metric::kNmse, "nmse"},
                                    {Metric::kPerplexity, "perplexity"}};

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string Shape(const ir::Tensor& t) {
  std::string s = "[";
  for (size_t i = 0; i < t.shape().size(); ++i) s += (i ? "," : "") + std::to_string(t.shape()[i]);
  return s + "]";
}

// Rows of the last axis as doubles; throws for non-float outputs.
std::vector<double> Values(const ir::Tensor& t, const std::string& what) {
  if (!ir::IsFloat(t.dtype()))
    ThrowInvalid(what + ": expected a float tensor, got " + ir::DTypeName(t.dtype()) + Shape(t));
  return t.ToDouble();
}

}  // namespace

const char* MetricName(Metric m) {
  for (const auto& e : kMetrics)
    if (e.m == m) return e.name;
  return "?";
}

Metric ParseMetric(const std::string& name) {
  std::string valid, nearest;
  size_t best = 3;
  for (const auto& e : kMetrics) {
    if (name == e.name) return e.m;
    valid += (valid.empty() ? "" : ", ") + std::string(e.name);
    size_t d = EditDistance(name, e.name);
    if (d < best) best = d, nearest = e.name;
  }
  ThrowInvalid("unknown metric '" + name + "'" +
               (nearest.empty() ? "" : " (did you mean '" + nearest + "'?)") + "; valid: " + valid);
}

bool HigherIsBetter(Metric m) {
  return m == Metric::kTop1 || m == Metric::kTopK || m == Metric::kCosine;
}
bool NeedsLabels(Metric m) {
  return m == Metric::kTop1 || m == Metric::kTopK || m == Metric::kPerplexity;
}
double Drop(Metric m, double baseline, double value) {
  return HigherIsBetter(m) ? baseline - value : value - baseline;
}

MetricAccumulator::MetricAccumulator(Metric m, int k) : metric_(m), k_(k) {
  if (m == Metric::kTopK && k < 1) ThrowInvalid("topk: k must be >= 1, got " + std::to_string(k));
}

void MetricAccumulator::AddLabels(const ir::Tensor& output, const ir::Tensor& labels) {
  if (!NeedsLabels(metric_))
    ThrowInvalid(std::string("metric ") + MetricName(metric_) + " compares against a reference output, not labels");
  if (output.rank() < 1 || output.shape().back() < 1)
    ThrowInvalid(name_ + ": cannot score " + Shape(output) + ": the last axis holds the classes");
  const int64_t classes = output.shape().back();
  const int64_t rows = static_cast<int64_t>(output.numel()) / classes;
  if (static_cast<int64_t>(labels.numel()) != rows)
    ThrowInvalid(name_ + ": " + std::to_string(rows) + " score rows in " + Shape(output) +
                 " but " + std::to_string(labels.numel()) + " labels " + Shape(labels));
  if (ir::IsFloat(labels.dtype()) || labels.dtype() == ir::DType::kString)
    ThrowInvalid(name_ + ": labels must be integers, got " + ir::DTypeName(labels.dtype()));
  std::vector<double> v = Values(output, name_);
  std::vector<int64_t> lab = labels.ToInt64();
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = v.data() + r * classes;
    const int64_t y = lab[r];
    if (y < 0 || y >= classes)
      ThrowInvalid(name_ + ": label " + std::to_string(y) + " of row " + std::to_string(rows_ + r) +
                   " is outside [0, " + std::to_string(classes) + ")");
    switch (metric_) {
      case Metric::kTop1:
      case Metric::kTopK: {
        // Rank of the label: classes scoring strictly higher, ties broken by index (as
        // argmax picks the first maximum).
        int64_t above = 0;
        for (int64_t c = 0; c < classes; ++c)
          if (row[c] > row[y] || (row[c] == row[y] && c < y)) ++above;
        sum_ += above < (metric_ == Metric::kTop1 ? 1 : k_) ? 1 : 0;
        break;
      }
      case Metric::kPerplexity: {
        double mx = *std::max_element(row, row + classes), z = 0;
        for (int64_t c = 0; c < classes; ++c) z += std::exp(row[c] - mx);
        sum_ += -(row[y] - mx - std::log(z));
        break;
      }
      default: break;
    }
  }
  rows_ += rows;
}

void MetricAccumulator::AddReference(const ir::Tensor& output, const ir::Tensor& reference) {
  if (NeedsLabels(metric_))
    ThrowInvalid(std::string("metric ") + MetricName(metric_) + " needs labels, not a reference output");
  if (output.shape() != reference.shape())
    ThrowInvalid(name_ + ": output " + Shape(output) + " and reference " + Shape(reference) +
                 " differ in shape");
  std::vector<double> a = Values(output, name_), b = Values(reference, name_ + " (reference)");
  if (metric_ == Metric::kNmse) {
    for (size_t i = 0; i < a.size(); ++i) err_ += (a[i] - b[i]) * (a[i] - b[i]), ref_ += b[i] * b[i];
    rows_ += output.rank() ? output.shape()[0] : 1;
    return;
  }
  // Cosine per sample (dim 0); two all-zero samples are identical (1), one zero vs a
  // non-zero one is orthogonal (0).
  const int64_t n = output.rank() ? output.shape()[0] : 1;
  const size_t per = n ? a.size() / static_cast<size_t>(n) : 0;
  for (int64_t s = 0; s < n; ++s) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = s * per; i < (s + 1) * per; ++i) dot += a[i] * b[i], na += a[i] * a[i], nb += b[i] * b[i];
    if (na == 0 && nb == 0) sum_ += 1;
    else if (na > 0 && nb > 0) sum_ += dot / std::sqrt(na * nb);
  }
  rows_ += n;
}

double MetricAccumulator::Value() const {
  if (rows_ == 0) ThrowInvalid(std::string("metric ") + MetricName(metric_) + ": no samples were scored");
  switch (metric_) {
    case Metric::kPerplexity: return std::exp(sum_ / static_cast<double>(rows_));
    case Metric::kNmse: return ref_ > 0 ? err_ / ref_ : (err_ > 0 ? INFINITY : 0.0);
    default: return sum_ / static_cast<double>(rows_);
  }
}

double Top1(const ir::Tensor& output, const ir::Tensor& labels) {
  MetricAccumulator a(Metric::kTop1);
  a.AddLabels(output, labels);
  return a.Value();
}
double TopK(const ir::Tensor& output, const ir::Tensor& labels, int k) {
  MetricAccumulator a(Metric::kTopK, k);
  a.AddLabels(output, labels);
  return a.Value();
}
double Perplexity(const ir::Tensor& logits, const ir::Tensor& labels) {
  MetricAccumulator a(Metric::kPerplexity);
  a.AddLabels(logits, labels);
  return a.Value();
}
double MeanCosine(const ir::Tensor& output, const ir::Tensor& reference) {
  MetricAccumulator a(Metric::kCosine);
  a.AddReference(output, reference);
  return a.Value();
}
double Nmse(const ir::Tensor& output, const ir::Tensor& reference) {
  MetricAccumulator a(Metric::kNmse);
  a.AddReference(output, reference);
  return a.Value();
}

}  // namespace edgepress::eval
