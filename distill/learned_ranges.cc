// Learned activation ranges (distill/learned_ranges.h).
#include "distill/learned_ranges.h"

#include <torch/torch.h>

#include <cmath>

#include "calibrate/calibrate.h"
#include "ir/error.h"
#include "passes/quant/quant_util.h"

namespace edgepress::distill {

struct LearnedRanges::Impl {
  struct Range {
    at::Tensor lo, hi;  // [1] float32; lo has no gradient when the range is one-sided
    std::vector<std::string> values;
  };
  int32_t qmax = 255;                          // 255 (uint8) or 15 (uint4, experiments)
  ir::DType dtype = ir::DType::kUInt8;
  std::vector<Range> ranges;
  std::map<std::string, size_t> of;  // value -> index into ranges

  passes::quant::QParams Exact(const Range& r) const {
    return passes::quant::ChooseQParams(r.lo.item<float>(), r.hi.item<float>(), dtype,
                                        /*symmetric=*/false);
  }
};

namespace {

class LearnedHook : public runtime::TorchValueHook {
 public:
  explicit LearnedHook(std::shared_ptr<LearnedRanges::Impl> impl) : impl_(std::move(impl)) {}
  at::Tensor Apply(const ir::Value& v, const at::Tensor& t) override {
    auto it = impl_->of.find(v.name());
    if (it == impl_->of.end() || !t.is_floating_point() || t.dim() == 0) return t;
    const LearnedRanges::Impl::Range& r = impl_->ranges[it->second];
    const passes::quant::QParams q = impl_->Exact(r);
    // The values are quantize-static's exactly (exact + (x - x) is exact); the gradient
    // flows through the surrogate s = (hi - lo) / 255, zp = -lo / s.
    const double levels = impl_->qmax;
    at::Tensor s = (r.hi - r.lo) / levels;
    at::Tensor zp = -r.lo / s;
    at::Tensor scale = at::full({1}, q.scale, s.options()) + (s - s.detach());
    at::Tensor zero = at::full({1}, static_cast<float>(q.zero_point), s.options()) +
                      (zp - zp.detach());
    const double features = static_cast<double>(t.numel() / std::max<int64_t>(t.size(0), 1));
    const double grad_factor = 1.0 / std::sqrt(features * levels);  // LSQ's g
    return at::_fake_quantize_learnable_per_tensor_affine(t, scale, zero, 0, impl_->qmax,
                                                          grad_factor);
  }

 private:
  std::shared_ptr<LearnedRanges::Impl> impl_;
};

}  // namespace

LearnedRanges::LearnedRanges(const std::vector<ActivationQuant>& quants, const std::string& device)
    : impl_(std::make_shared<Impl>()) {
  std::map<std::pair<float, int32_t>, size_t> by_params;
  if (!quants.empty() && quants[0].qmax == 15) {
    impl_->qmax = 15;
    impl_->dtype = ir::DType::kUInt4;
  }
  for (const ActivationQuant& a : quants) {
    if (a.qmin != 0 || a.qmax != impl_->qmax)
      throw Error(ErrorCode::kUsage,
                  "learned activation ranges: value '" + a.value +
                      "' is quantized to [" + std::to_string(a.qmin) + ", " +
                      std::to_string(a.qmax) +
                      "]; only quantize-static's default uint8 activations (and uint4 "
                      "[0, 15], for experiments: no export) are supported");
    auto key = std::make_pair(a.scale, a.zero_point);
    auto it = by_params.find(key);
    if (it == by_params.end()) {
      Impl::Range r;
      auto opts = at::TensorOptions().dtype(at::kFloat).device(at::Device(device));
      r.lo = at::full({1}, -static_cast<float>(a.zero_point) * a.scale, opts);
      r.hi = at::full({1}, static_cast<float>(impl_->qmax - a.zero_point) * a.scale, opts);
      if (a.zero_point != 0) r.lo.set_requires_grad(true);
      r.hi.set_requires_grad(true);
      it = by_params.emplace(key, impl_->ranges.size()).first;
      impl_->ranges.push_back(std::move(r));
    }
    impl_->ranges[it->second].values.push_back(a.value);
    impl_->of[a.value] = it->second;
  }
}

LearnedRanges::~LearnedRanges() = default;

std::vector<at::Tensor> LearnedRanges::Parameters() const {
  std::vector<at::Tensor> out;
  for (const Impl::Range& r : impl_->ranges) {
    if (r.lo.requires_grad()) out.push_back(r.lo);
    out.push_back(r.hi);
  }
  return out;
}

std::shared_ptr<runtime::TorchValueHook> LearnedRanges::Hook() const {
  return std::make_shared<LearnedHook>(impl_);
}

void LearnedRanges::Clamp() {
  torch::NoGradGuard ng;
  for (Impl::Range& r : impl_->ranges) {
    r.lo.clamp_max_(0.0);
    // A range must stay wide enough for a finite scale (ChooseQParams' degenerate case).
    const float lo = r.lo.item<float>();
    if (!(r.hi.item<float>() > lo + 1e-6f)) r.hi.fill_(std::max(lo + 1e-6f, 1e-6f));
    r.hi.clamp_min_(1e-6);
  }
}

float LearnedRanges::Scale(const std::string& value) const {
  auto it = impl_->of.find(value);
  return it == impl_->of.end() ? 0.f : impl_->Exact(impl_->ranges[it->second]).scale;
}

std::vector<LearnedRange> LearnedRanges::Ranges() const {
  std::vector<LearnedRange> out;
  for (const Impl::Range& r : impl_->ranges)
    for (const std::string& v : r.values)
      out.push_back({v, r.lo.item<float>(), r.hi.item<float>()});
  return out;
}

int64_t LearnedRanges::groups() const { return static_cast<int64_t>(impl_->ranges.size()); }

void SaveLearnedRanges(const std::vector<LearnedRange>& ranges, const std::string& path) {
  calibrate::CalibrationResult r;
  r.method = "minmax";
  for (const LearnedRange& l : ranges) {
    calibrate::TensorRange t;
    t.min = l.min;
    t.max = l.max;
    r.ranges[l.value] = t;
  }
  calibrate::SaveRanges(r, path);
}

}  // namespace edgepress::distill
