// Learned activation ranges for distillation-aware quantization (LSQ, Esser et al. 2020;
// PACT, Choi et al. 2018; docs/distill.md, "Learned activation ranges").
//
// With fixed ranges (ActivationFakeQuantHook) every activation quantize-static quantizes
// keeps the calibrated scale and zero point while the weights train. Here the clip range
// [lo, hi] of each quantizer is a trainable parameter, initialised from the calibrated
// quantization (lo = -zp * s, hi = (255 - zp) * s), and stepped by the optimizer with the
// weights. The forward pass quantizes with exactly the scale and zero point that
// quantize-static derives from [lo, hi] (passes/quant/quant_util.h ChooseQParams, so the export
// with `quantize-static{ranges=FILE}` computes what training computed), and the gradient
// reaches lo and hi through LibTorch's learnable fake quantization
// (_fake_quantize_learnable_per_tensor_affine: LSQ+'s gradients for scale and zero point,
// scaled by LSQ's g = 1 / sqrt(features * 255)) and the surrogate s = (hi - lo) / 255,
// zp = -lo / s. A range starting at 0 (a ReLU output) keeps lo = 0 and learns hi only,
// as PACT's clipping level; lo stays <= 0 <= hi, as ChooseQParams requires.
//
// Values that quantize-static quantizes with one shared scale (a data-movement group such
// as Relu -> Flatten) start with identical (scale, zero point): they are tied to one
// learned range, and the export's group union of them is that range. Only quantize-
// static's default uint8 asymmetric activations are supported, and uint4 [0, 15] for
// experiments (quantize-static has no 4-bit activations to export them with).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "distill/fake_quant.h"

namespace at {
class Tensor;
}

namespace edgepress::distill {

struct LearnedRange {
  std::string value;
  float min = 0, max = 0;  // the clip range; quantize-static's range for `value`
};

// Writes `ranges` as a ranges.json (calibrate::SaveRanges) for quantize-static's `ranges`.
void SaveLearnedRanges(const std::vector<LearnedRange>& ranges, const std::string& path);

class LearnedRanges {
 public:
  // Throws Error(kUsage) for a non-uint8 quantizer. `device`: where the parameters live.
  LearnedRanges(const std::vector<ActivationQuant>& quants, const std::string& device);
  ~LearnedRanges();

  // The trainable range tensors (shape [1] each), in a fixed order.
  std::vector<at::Tensor> Parameters() const;
  // The torch backend hook that fake-quantizes with the current ranges.
  std::shared_ptr<runtime::TorchValueHook> Hook() const;
  // Keeps lo <= 0 < hi after an optimizer step.
  void Clamp();
  // The current scale quantize-static would use for `value`; 0 if it is not quantized.
  float Scale(const std::string& value) const;
  // The current range of every quantized value.
  std::vector<LearnedRange> Ranges() const;
  int64_t groups() const;

  struct Impl;  // public only so the hook in the .cc can share it

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace edgepress::distill
