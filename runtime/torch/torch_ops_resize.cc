// Resize (opset 10, 11, 13+) and Upsample (7/9) with the native kernel's semantics
// (runtime/kernels/tensor/resize.cc): nearest (every nearest_mode), linear and cubic with every
// coordinate_transformation_mode, exclude_outside, cubic_coeff_a, tf_crop_and_resize with
// extrapolation_value; opset-10 Resize and Upsample follow onnxruntime's legacy rules.
//
// Each resized axis is one separable pass: a tap table (source index and weight per output
// position: 1 tap nearest, 2 linear, 4 cubic) is computed on the host, then the pass is an
// index_select of every tap and a weighted sum, so gradients flow to the input.
#include <ATen/ATen.h>

#include <cmath>

#include "ir/error.h"
#include "runtime/torch/torch_ops.h"

namespace edgepress::runtime::torch_ops {

namespace {

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord {
  kHalfPixel,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNn,
  kTfCrop
};
enum class Nearest { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kLegacy };

struct Attrs {
  Mode mode = Mode::kNearest;
  Coord coord = Coord::kHalfPixel;
  Nearest nearest = Nearest::kRoundPreferFloor;
  double cubic_a = -0.75, extrapolation = 0;
  bool exclude_outside = false, legacy = false;
};

std::string CheckResize(const ir::Node& n) {
  std::string mode = n.attr_string("mode", "nearest");
  if (mode != "nearest" && mode != "linear" && mode != "bilinear" && mode != "trilinear" &&
      mode != "cubic")
    return "mode '" + mode + "'";
  if (n.attr_int("antialias", 0)) return "antialias";
  if (n.has_attr("axes")) return "axes attribute";
  if (n.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch")
    return "keep_aspect_ratio_policy";
  std::string ct = n.attr_string("coordinate_transformation_mode", "half_pixel");
  if (ct == "half_pixel_symmetric") return "coordinate_transformation_mode " + ct;
  return "";
}

Attrs Read(const ir::Node& n) {
  Attrs a;
  a.legacy = n.op_type() == "Upsample" || n.num_inputs() <= 2;
  std::string mode = n.attr_string("mode", "nearest");
  a.mode = mode == "nearest" ? Mode::kNearest : mode == "cubic" ? Mode::kCubic : Mode::kLinear;
  if (a.legacy) {
    a.coord = Coord::kAsymmetric;
    a.nearest = Nearest::kLegacy;
    return a;
  }
  std::string ct = n.attr_string("coordinate_transformation_mode", "half_pixel");
  if (ct == "pytorch_half_pixel")
    a.coord = Coord::kPytorchHalfPixel;
  else if (ct == "align_corners")
    a.coord = Coord::kAlignCorners;
  else if (ct == "asymmetric")
    a.coord = Coord::kAsymmetric;
  else if (ct == "tf_half_pixel_for_nn")
    a.coord = Coord::kTfHalfPixelForNn;
  else if (ct == "tf_crop_and_resize")
    a.coord = Coord::kTfCrop;
  std::string nm = n.attr_string("nearest_mode", "round_prefer_floor");
  if (nm == "round_prefer_ceil")
    a.nearest = Nearest::kRoundPreferCeil;
  else if (nm == "floor")
    a.nearest = Nearest::kFloor;
  else if (nm == "ceil")
    a.nearest = Nearest::kCeil;
  a.cubic_a = n.attr_float("cubic_coeff_a", -0.75f);
  a.exclude_outside = n.attr_int("exclude_outside", 0) != 0;
  a.extrapolation = n.attr_float("extrapolation_value", 0.f);
  return a;
}

double SourceCoord(const Attrs& a, int64_t o, double scale, int64_t in, double out, double r0,
                   double r1) {
  double x = static_cast<double>(o);
  switch (a.coord) {
    case Coord::kHalfPixel:
      return (x + 0.5) / scale - 0.5;
    case Coord::kPytorchHalfPixel:
      return out > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    case Coord::kAlignCorners:
      return out <= 1 ? 0.0 : x * static_cast<double>(in - 1) / (out - 1);
    case Coord::kAsymmetric:
      return x / scale;
    case Coord::kTfHalfPixelForNn:
      return (x + 0.5) / scale;
    case Coord::kTfCrop:
      return out > 1 ? r0 * (in - 1) + x * (r1 - r0) * (in - 1) / (out - 1)
                     : 0.5 * (r0 + r1) * (in - 1);
  }
  return x;
}

int64_t NearestIndex(Nearest m, double x, double scale) {
  switch (m) {
    case Nearest::kRoundPreferFloor: {
      double f = std::floor(x);
      return static_cast<int64_t>(x - f == 0.5 ? f : std::round(x));
    }
    case Nearest::kRoundPreferCeil:
      return static_cast<int64_t>(std::floor(x + 0.5));
    case Nearest::kFloor:
      return static_cast<int64_t>(std::floor(x));
    case Nearest::kCeil:
      return static_cast<int64_t>(std::ceil(x));
    case Nearest::kLegacy:
      return static_cast<int64_t>(scale < 1.0 ? std::ceil(x) : std::trunc(x));
  }
  return 0;
}

// One axis: x [.., in, ..] -> [.., out, ..].
at::Tensor ResizeAxis(const Attrs& a, const at::Tensor& x, int64_t axis, int64_t out, double scale,
                      double r0, double r1) {
  int64_t in = x.size(axis);
  int taps = a.mode == Mode::kNearest ? 1 : a.mode == Mode::kLinear ? 2 : 4;
  std::vector<int64_t> idx(static_cast<size_t>(out * taps), 0);
  std::vector<double> w(static_cast<size_t>(out * taps), 0.0);
  std::vector<uint8_t> outside(static_cast<size_t>(out), 0);
  bool any_outside = false;
  double out_len = a.coord == Coord::kTfCrop || scale == 0 ? static_cast<double>(out)
                   : std::fabs(static_cast<double>(in) * scale - out) < 1e-6
                       ? static_cast<double>(out)
                       : static_cast<double>(in) * scale;
  auto clampi = [in](int64_t i) { return std::min<int64_t>(std::max<int64_t>(i, 0), in - 1); };
  for (int64_t o = 0; o < out; ++o) {
    double s = SourceCoord(a, o, scale, in, out_len, r0, r1);
    if (!std::isfinite(s)) s = 0;
    s = std::max(-1e9, std::min(1e9, s));
    int64_t* ti = &idx[static_cast<size_t>(o * taps)];
    double* tw = &w[static_cast<size_t>(o * taps)];
    if (a.coord == Coord::kTfCrop && (s < 0 || s > static_cast<double>(in - 1))) {
      outside[static_cast<size_t>(o)] = 1;
      any_outside = true;
      continue;
    }
    if (a.mode == Mode::kNearest) {
      ti[0] = clampi(NearestIndex(a.nearest, s, scale));
      tw[0] = 1;
    } else if (a.mode == Mode::kLinear) {
      s = std::max(0.0, std::min(s, static_cast<double>(in - 1)));
      int64_t i0 = static_cast<int64_t>(std::floor(s));
      double t = s - static_cast<double>(i0);
      ti[0] = clampi(i0);
      ti[1] = clampi(i0 + 1);
      tw[0] = 1 - t;
      tw[1] = t;
    } else {
      int64_t i0 = static_cast<int64_t>(std::floor(s));
      double t = s - static_cast<double>(i0), A = a.cubic_a;
      double c[4] = {((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A,
                     ((A + 2) * t - (A + 3)) * t * t + 1,
                     ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1,
                     ((A * (2 - t) - 5 * A) * (2 - t) + 8 * A) * (2 - t) - 4 * A};
      double sum = 0;
      for (int k = 0; k < 4; ++k) {
        int64_t i = i0 - 1 + k;
        if (a.exclude_outside && (i < 0 || i >= in)) c[k] = 0;
        sum += c[k];
        ti[k] = clampi(i);
      }
      for (int k = 0; k < 4; ++k) tw[k] = a.exclude_outside && sum != 0 ? c[k] / sum : c[k];
    }
  }
  at::Tensor index = at::tensor(idx, at::TensorOptions().dtype(at::kLong)).to(x.device());
  at::Tensor g = x.index_select(axis, index);  // [.., out * taps, ..]
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[static_cast<size_t>(axis)] = out;
  at::Tensor y;
  if (taps == 1) {
    y = g;
  } else {
    std::vector<int64_t> split = shape;
    split.insert(split.begin() + axis + 1, taps);
    std::vector<int64_t> wshape(split.size(), 1);
    wshape[static_cast<size_t>(axis)] = out;
    wshape[static_cast<size_t>(axis + 1)] = taps;
    at::Tensor wt = at::tensor(w, at::TensorOptions().dtype(at::kDouble))
                        .to(x.scalar_type())
                        .reshape(wshape)
                        .to(x.device());
    y = (g.reshape(split) * wt).sum(axis + 1);
  }
  if (any_outside) {
    std::vector<int64_t> mshape(shape.size(), 1);
    mshape[static_cast<size_t>(axis)] = out;
    at::Tensor mask = at::tensor(std::vector<int64_t>(outside.begin(), outside.end()))
                          .to(at::kBool)
                          .reshape(mshape)
                          .to(x.device());
    y = at::where(mask, at::full({}, a.extrapolation, y.options()), y);
  }
  return y;
}

std::vector<double> Doubles(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU).to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

std::vector<at::Tensor> Resize(OpContext& c) {
  Attrs a = Read(c.node);
  at::Tensor x = c.in(0);
  int64_t rank = x.dim();
  std::vector<double> scales, roi;
  std::vector<int64_t> out;
  if (a.legacy) {
    if (c.has(1))
      scales = Doubles(c.in(1));
    else
      scales.assign(c.node.attr_floats("scales").begin(), c.node.attr_floats("scales").end());
  } else {
    if (c.has(1) && c.in(1).numel() > 0) roi = Doubles(c.in(1));
    if (c.has(2) && c.in(2).numel() > 0) scales = Doubles(c.in(2));
    if (c.has(3) && c.in(3).numel() > 0) out = c.ints(3);
  }
  if (!scales.empty()) {
    if (static_cast<int64_t>(scales.size()) != rank) c.Fail("scales do not match the input rank");
    for (int64_t i = 0; i < rank; ++i) {
      if (!(scales[i] > 0)) c.Fail("scales must be positive");
      out.push_back(static_cast<int64_t>(std::floor(static_cast<double>(x.size(i)) * scales[i])));
    }
  } else if (!out.empty()) {
    if (static_cast<int64_t>(out.size()) != rank) c.Fail("sizes do not match the input rank");
    for (int64_t i = 0; i < rank; ++i)
      scales.push_back(x.size(i) > 0 ? static_cast<double>(out[i]) / x.size(i) : 1.0);
  } else {
    c.Fail("needs 'scales' or 'sizes'");
  }
  if (a.coord == Coord::kTfCrop && static_cast<int64_t>(roi.size()) != 2 * rank)
    c.Fail("tf_crop_and_resize needs a roi of 2 * rank values");
  for (int64_t i = 0; i < rank; ++i) {
    bool crop = a.coord == Coord::kTfCrop;
    if (out[i] == x.size(i) && scales[i] == 1.0 && !crop) continue;
    x = ResizeAxis(a, x, i, out[i], scales[i], crop ? roi[i] : 0.0, crop ? roi[rank + i] : 1.0);
  }
  return {x};
}

}  // namespace

void AddResizeConverters(std::vector<ConverterDef>& out) {
  out.push_back({"Resize", "", Resize, CheckResize});
  out.push_back({"Upsample", "", Resize, CheckResize});
}

}  // namespace edgepress::runtime::torch_ops
