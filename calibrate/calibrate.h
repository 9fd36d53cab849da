// Calibration: feeds a data set through the native runtime and records, for each float
// activation, the range a quantizer should use. Observers are streaming and bounded:
// minmax keeps two numbers, the histogram methods a fixed number of bins (re-binned when
// the range grows), so memory does not grow with the number of samples.
//
// Non-finite values are counted and skipped; a tensor that never had a finite value is an
// error naming it. The data set's SHA-256 (of the files' bytes, in the given order) is
// recorded so a report can say exactly which data calibrated a model.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "calibrate/dataset.h"
#include "ir/graph.h"
#include "ir/tensor.h"

namespace edgepress::calibrate {

enum class Method : uint8_t { kMinMax, kPercentile, kEntropy, kMse };
const char* MethodName(Method m);
// Throws Error(kInvalidInput) naming the valid methods (and the nearest one).
Method ParseMethod(const std::string& name);

struct ObserverOptions {
  Method method = Method::kMinMax;
  double percentile = 99.99;   // kPercentile: keep this share of |x| (two-sided)
  // Histogram methods: the searches run on about this many bins per side of zero (the
  // streaming grid holds 4x as many, on power-of-two bin widths, so re-binning is exact
  // and the result does not depend on how the data was split into batches).
  int bins = 2048;
  int per_channel_axis = -1;   // >= 0: one range per index along this axis
  bool symmetric = false;      // range symmetric around 0 (int8 symmetric activations)
  // When the statistics are too thin for a histogram method to be trusted, the range
  // falls back to the observed min/max (which never clips what calibration saw) and says
  // why (TensorRange::fallback): fewer than `min_samples` calibration samples (Calibrate
  // sets `samples`), fewer than `min_values` finite values in a tensor (or channel), or a
  // chosen range that clips more than `max_clip` of the observed values. Entropy on one
  // or two images can otherwise pick a threshold that collapses a model's output.
  int64_t samples = -1;        // calibration samples the observer will see (-1: unknown)
  int64_t min_samples = 8;
  int64_t min_values = 512;
  double max_clip = 0.05;
};

// The range chosen for one tensor, as observed (clamped to the values seen): it is not
// widened to include zero; a quantizer with a zero point does that itself.
struct TensorRange {
  float min = 0, max = 0;                       // per-tensor (always set)
  int axis = -1;                                // per-channel when >= 0
  std::vector<float> channel_min, channel_max;  // per-channel ranges (axis >= 0)
  uint64_t count = 0;                           // finite values observed
  uint64_t nonfinite = 0;                       // NaN/Inf values skipped
  std::string fallback;  // why the method's range was replaced by min/max; empty if it was not
};

// One streaming observer per tensor.
class Observer {
 public:
  virtual ~Observer() = default;
  // Adds the float32 values of `t`. Throws Error(kInvalidInput) for a non-float tensor or a
  // per-channel axis out of range, naming `tensor_name`.
  virtual void Observe(const ir::Tensor& t) = 0;
  // The range by the observer's method. Throws Error(kInvalidInput) naming `tensor_name`
  // when no finite value was observed.
  virtual TensorRange Range() const = 0;
  // Bytes the observer holds (for the memory-is-flat test).
  virtual size_t MemoryBytes() const = 0;
};
std::unique_ptr<Observer> MakeObserver(const std::string& tensor_name, const ObserverOptions& o);

struct CalibrationOptions {
  ObserverOptions observer;
  // Tensors to observe; empty = every float graph input and every float node output of
  // the main graph.
  std::vector<std::string> tensors;
  int threads = 1;
  int64_t batch_size = 1;      // samples per Run (the model's batch dim must be symbolic for > 1)
  int64_t max_samples = -1;    // -1: the whole data set
  // Called after each batch with (samples done, samples total).
  std::function<void(int64_t, int64_t)> progress;
};

struct CalibrationResult {
  std::string method;          // MethodName
  std::string data_sha256;     // DataSet::Sha256()
  int64_t samples = 0;
  std::map<std::string, TensorRange> ranges;  // by value name
  size_t peak_observer_bytes = 0;
  int64_t fallbacks = 0;  // ranges whose TensorRange::fallback is set
};

// Runs `model` (as is: callers decide whether to optimize it first) over `data` on the
// native runtime and observes activations through SessionOptions::observer.
CalibrationResult Calibrate(const ir::Model& model, DataSet& data, const CalibrationOptions& o);

// ranges.json: {"version":1,"method":..,"data_sha256":..,"samples":..,
//   "ranges":{"name":{"min":..,"max":..,"axis":..,"channel_min":[..],"channel_max":[..],
//   "count":..,"nonfinite":..}}}. Written atomically; the reader validates every field.
std::string RangesToJson(const CalibrationResult& r);
CalibrationResult RangesFromJson(const std::string& json, const std::string& name_for_errors);
void SaveRanges(const CalibrationResult& r, const std::string& path);
CalibrationResult LoadRanges(const std::string& path);

}  // namespace edgepress::calibrate
