// Converters for the network layers: Conv/ConvTranspose (+ the com.microsoft FusedConv of
// fuse-activation), Gemm/MatMul (+ FusedGemm), pools, normalisations and the recurrent
// layers. Padding that LibTorch cannot express (asymmetric pads, SAME auto_pad) is
// applied explicitly before the op, so the op itself always runs unpadded or
// symmetrically padded.
#include <ATen/ATen.h>

#include <limits>

#include "ir/error.h"
#include "runtime/torch/torch_ops.h"

namespace edgepress::runtime::torch_ops {

namespace {

using Outs = std::vector<at::Tensor>;

std::vector<int64_t> AttrOr(const ir::Node& n, const char* name, size_t count, int64_t def) {
  std::vector<int64_t> v = n.attr_ints(name, {});
  if (v.empty()) v.assign(count, def);
  if (v.size() != count)
    ThrowInvalid(n.describe() + ": " + name + " has " + std::to_string(v.size()) +
                 " values, expected " + std::to_string(count));
  return v;
}

bool Symmetric(const std::vector<int64_t>& pads) {
  size_t n = pads.size() / 2;
  for (size_t i = 0; i < n; ++i)
    if (pads[i] != pads[i + n]) return false;
  return true;
}

at::Tensor ConvCore(OpContext& c, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  size_t n = static_cast<size_t>(w.dim() - 2);
  std::vector<int64_t> kernel(w.sizes().begin() + 2, w.sizes().end());
  std::vector<int64_t> strides = AttrOr(c.node, "strides", n, 1);
  std::vector<int64_t> dil = AttrOr(c.node, "dilations", n, 1);
  std::vector<int64_t> pads = ConvPads(c.node, x, kernel, strides, dil);
  at::Tensor in = x;
  std::vector<int64_t> padding(n, 0);
  if (Symmetric(pads))
    padding.assign(pads.begin(), pads.begin() + n);
  else
    in = PadSpatial(x, pads, 0.0);
  int64_t group = c.node.attr_int("group", 1);
  return at::convolution(in, w, b, strides, padding, dil, false, std::vector<int64_t>(n, 0), group);
}

Outs Conv(OpContext& c) {
  at::Tensor b = c.has(2) ? c.in(2) : at::Tensor();
  return {ConvCore(c, c.in(0), c.in(1), b)};
}

Outs FusedConv(OpContext& c) {
  at::Tensor b = c.has(2) ? c.in(2) : at::Tensor();
  at::Tensor y = ConvCore(c, c.in(0), c.in(1), b);
  if (c.has(3)) y = y + c.in(3);  // com.microsoft FusedConv's Z: added before the activation
  return {ApplyActivation(c.node, y)};
}

Outs ConvTranspose(OpContext& c) {
  const at::Tensor& x = c.in(0);
  const at::Tensor& w = c.in(1);
  size_t n = static_cast<size_t>(w.dim() - 2);
  std::vector<int64_t> kernel(w.sizes().begin() + 2, w.sizes().end());
  std::vector<int64_t> strides = AttrOr(c.node, "strides", n, 1);
  std::vector<int64_t> dil = AttrOr(c.node, "dilations", n, 1);
  std::vector<int64_t> out_pad = AttrOr(c.node, "output_padding", n, 0);
  std::vector<int64_t> out_shape = c.node.attr_ints("output_shape", {});
  std::string auto_pad = c.node.attr_string("auto_pad", "NOTSET");
  std::vector<int64_t> pads = AttrOr(c.node, "pads", 2 * n, 0);
  std::vector<int64_t> full(n);
  for (size_t i = 0; i < n; ++i)
    full[i] = (x.size(static_cast<int64_t>(2 + i)) - 1) * strides[i] + (kernel[i] - 1) * dil[i] +
              1 + out_pad[i];
  if (!out_shape.empty() || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    if (out_shape.size() > n) out_shape.erase(out_shape.begin(), out_shape.end() - n);
    for (size_t i = 0; i < n; ++i) {
      int64_t want =
          out_shape.empty() ? x.size(static_cast<int64_t>(2 + i)) * strides[i] : out_shape[i];
      int64_t total = full[i] - want;
      if (total < 0) {  // a larger output_shape extends the end, as output_padding does
        out_pad[i] -= total;
        total = 0;
      }
      bool upper = auto_pad != "SAME_LOWER";
      pads[i] = upper ? total / 2 : total - total / 2;
      pads[i + n] = total - pads[i];
    }
  } else if (auto_pad == "VALID") {
    std::fill(pads.begin(), pads.end(), 0);
  }
  at::Tensor b = c.has(2) ? c.in(2) : at::Tensor();
  at::Tensor y = at::convolution(x, w, b, strides, std::vector<int64_t>(n, 0), dil, true, out_pad,
                                 c.node.attr_int("group", 1));
  for (size_t i = 0; i < n; ++i) {
    int64_t d = static_cast<int64_t>(2 + i);
    y = y.narrow(d, pads[i], y.size(d) - pads[i] - pads[i + n]);
  }
  return {y};
}

at::Tensor GemmCore(OpContext& c) {
  at::Tensor a = c.in(0), b = c.in(1);
  if (c.node.attr_int("transA", 0)) a = a.t();
  if (c.node.attr_int("transB", 0)) b = b.t();
  double alpha = c.node.attr_float("alpha", 1.0f), beta = c.node.attr_float("beta", 1.0f);
  at::Tensor y = at::mm(a, b);
  if (alpha != 1.0) y = y * alpha;
  if (c.has(2) && beta != 0.0) y = y + (beta == 1.0 ? c.in(2) : c.in(2) * beta);
  return y;
}

Outs Gemm(OpContext& c) { return {GemmCore(c)}; }
Outs FusedGemm(OpContext& c) { return {ApplyActivation(c.node, GemmCore(c))}; }
Outs MatMul(OpContext& c) { return {at::matmul(c.in(0), c.in(1))}; }

// ---- pools ----------------------------------------------------------------------------

struct PoolGeometry {
  std::vector<int64_t> kernel, strides, dil, pads;
  bool ceil = false;
};

PoolGeometry Geometry(OpContext& c, const at::Tensor& x) {
  PoolGeometry g;
  size_t n = static_cast<size_t>(x.dim() - 2);
  g.kernel = c.node.attr_ints("kernel_shape", {});
  if (g.kernel.size() != n) c.Fail("kernel_shape must have one value per spatial dim");
  g.strides = AttrOr(c.node, "strides", n, 1);
  g.dil = AttrOr(c.node, "dilations", n, 1);
  g.pads = ConvPads(c.node, x, g.kernel, g.strides, g.dil);
  g.ceil = c.node.attr_int("ceil_mode", 0) != 0;
  return g;
}

Outs MaxPool(OpContext& c) {
  at::Tensor x = c.in(0);
  PoolGeometry g = Geometry(c, x);
  at::ScalarType st = x.scalar_type();
  bool is_float = at::isFloatingType(st);
  // LibTorch pools floats only; int8/uint8 values are exact in float.
  if (!is_float) x = x.to(at::kFloat);
  x = PadSpatial(x, g.pads, -std::numeric_limits<double>::infinity());
  std::vector<int64_t> zero(g.kernel.size(), 0);
  at::Tensor y;
  switch (g.kernel.size()) {
    case 1:
      y = at::max_pool1d(x, g.kernel, g.strides, zero, g.dil, g.ceil);
      break;
    case 2:
      y = at::max_pool2d(x, g.kernel, g.strides, zero, g.dil, g.ceil);
      break;
    case 3:
      y = at::max_pool3d(x, g.kernel, g.strides, zero, g.dil, g.ceil);
      break;
    default:
      c.Fail("MaxPool over " + std::to_string(g.kernel.size()) + " spatial dims");
  }
  return {is_float ? y : y.to(st)};
}

std::string CheckMaxPool(const ir::Node& n) {
  if (n.num_outputs() > 1 && n.output(1) && !n.output(1)->name().empty()) return "Indices output";
  size_t k = n.attr_ints("kernel_shape", {}).size();
  return k >= 1 && k <= 3 ? "" : "kernel_shape rank " + std::to_string(k);
}

// Window sums divided by the count of elements each window covers: the pad cells count
// when count_include_pad, never the cells past the padded input (ceil_mode windows).
Outs AveragePool(OpContext& c) {
  at::Tensor x = c.in(0);
  PoolGeometry g = Geometry(c, x);
  size_t n = g.kernel.size();
  bool include_pad = c.node.attr_int("count_include_pad", 0) != 0;
  at::Tensor padded = PadSpatial(x, g.pads, 0.0);
  std::vector<int64_t> ones_shape(padded.sizes().begin(), padded.sizes().end());
  ones_shape[0] = 1;
  ones_shape[1] = 1;
  std::vector<int64_t> unit_shape(x.sizes().begin(), x.sizes().end());
  unit_shape[0] = 1;
  unit_shape[1] = 1;
  at::Tensor mask = include_pad ? at::ones(ones_shape, padded.options())
                                : PadSpatial(at::ones(unit_shape, x.options()), g.pads, 0.0);
  // 1-D pools run as 2-D with a unit height (avg_pool1d has no divisor_override).
  auto pool = [&](at::Tensor t) {
    std::vector<int64_t> zero(n, 0);
    if (n == 1) {
      t = t.unsqueeze(2);
      return at::avg_pool2d(t, {1, g.kernel[0]}, {1, g.strides[0]}, {0, 0}, g.ceil, true, 1)
          .squeeze(2);
    }
    if (n == 2) return at::avg_pool2d(t, g.kernel, g.strides, zero, g.ceil, true, 1);
    return at::avg_pool3d(t, g.kernel, g.strides, zero, g.ceil, true, 1);
  };
  return {pool(padded) / pool(mask)};
}

std::string CheckAveragePool(const ir::Node& n) {
  size_t k = n.attr_ints("kernel_shape", {}).size();
  if (k < 1 || k > 3) return "kernel_shape rank " + std::to_string(k);
  for (int64_t d : n.attr_ints("dilations", {}))
    if (d != 1) return "dilations other than 1";
  return "";
}

std::vector<int64_t> SpatialDims(const at::Tensor& x) {
  std::vector<int64_t> d;
  for (int64_t i = 2; i < x.dim(); ++i) d.push_back(i);
  return d;
}
Outs GlobalAveragePool(OpContext& c) { return {at::mean(c.in(0), SpatialDims(c.in(0)), true)}; }
Outs GlobalMaxPool(OpContext& c) { return {at::amax(c.in(0), SpatialDims(c.in(0)), true)}; }

// ---- normalisation ---------------------------------------------------------------------

Outs BatchNormalization(OpContext& c) {
  return {at::batch_norm(c.in(0), c.in(1), c.in(2), c.in(3), c.in(4), false, 0.0,
                         c.node.attr_float("epsilon", 1e-5f), false)};
}
std::string CheckBatchNorm(const ir::Node& n) {
  return n.attr_int("training_mode", 0) ? "training_mode=1" : "";
}

Outs InstanceNormalization(OpContext& c) {
  return {at::instance_norm(c.in(0), c.in(1), c.in(2), {}, {}, true, 0.0,
                            c.node.attr_float("epsilon", 1e-5f), false)};
}

// Written out (not at::layer_norm) because ONNX lets scale/bias broadcast and has the
// optional Mean and InvStdDev outputs.
Outs LayerNormalization(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t axis = NormAxis(c.node.attr_int("axis", -1), x.dim(), c.node);
  double eps = c.node.attr_float("epsilon", 1e-5f);
  std::vector<int64_t> dims;
  for (int64_t d = axis; d < x.dim(); ++d) dims.push_back(d);
  at::Tensor xf =
      x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble ? x : x.to(at::kFloat);
  at::Tensor mean = at::mean(xf, dims, true);
  at::Tensor centered = xf - mean;
  at::Tensor inv_std = at::rsqrt(at::mean(centered * centered, dims, true) + eps);
  at::Tensor y = (centered * inv_std).to(x.scalar_type()) * c.in(1);
  if (c.has(2)) y = y + c.in(2);
  return {y, mean, inv_std};
}

Outs LRN(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t size = c.node.attr_int("size", 0);
  double alpha = c.node.attr_float("alpha", 1e-4f), beta = c.node.attr_float("beta", 0.75f),
         bias = c.node.attr_float("bias", 1.0f);
  at::Tensor sq = (x * x).unsqueeze(1);  // N, 1, C, ...
  std::vector<int64_t> pad(2 * (x.dim() - 1), 0);
  // Channel window [c - floor((size-1)/2), c + ceil((size-1)/2)].
  pad[pad.size() - 2] = (size - 1) / 2;
  pad[pad.size() - 1] = size - 1 - (size - 1) / 2;
  at::Tensor padded = at::constant_pad_nd(sq, pad, 0);
  at::Tensor sum = padded.unfold(2, size, 1).sum(-1).squeeze(1);
  return {x / at::pow(bias + alpha / size * sum, beta)};
}

Outs MeanVarianceNormalization(OpContext& c) {
  const at::Tensor& x = c.in(0);
  std::vector<int64_t> axes = c.node.attr_ints("axes", {0, 2, 3});
  at::Tensor mean = at::mean(x, axes, true);
  at::Tensor var = at::mean((x - mean) * (x - mean), axes, true);
  return {(x - mean) / (at::sqrt(var) + 1e-9)};
}

// ---- recurrent layers ------------------------------------------------------------------
// One loop per direction over time with the ONNX gate orders (LSTM: i o f c, GRU: z r h);
// the default activations only, no sequence_lens shorter than the sequence.

struct RnnIo {
  at::Tensor x;  // [seq, batch, input]
  int64_t hidden = 0, dirs = 1;
  bool batch_first = false;
  std::string direction;
};

RnnIo RnnInputs(OpContext& c) {
  RnnIo io;
  io.batch_first = c.node.attr_int("layout", 0) != 0;
  io.x = io.batch_first ? c.in(0).transpose(0, 1) : c.in(0);
  io.hidden = c.node.attr_int("hidden_size", 0);
  io.direction = c.node.attr_string("direction", "forward");
  io.dirs = io.direction == "bidirectional" ? 2 : 1;
  if (c.has(4)) {
    at::Tensor lens = c.in(4).to(at::kCPU).to(at::kLong);
    if (!lens.eq(io.x.size(0)).all().item<bool>())
      ThrowUnsupported(c.node.describe() + ": sequence_lens shorter than the sequence");
  }
  return io;
}

std::string CheckRnn(const ir::Node& n) {
  if (n.has_attr("activations")) return "activations attribute (only the defaults run)";
  if (n.has_attr("clip")) return "clip attribute";
  if (n.attr_int("input_forget", 0)) return "input_forget=1";
  std::string d = n.attr_string("direction", "forward");
  if (d != "forward" && d != "reverse" && d != "bidirectional") return "direction '" + d + "'";
  return "";
}

at::Tensor InitialState(OpContext& c, size_t index, const RnnIo& io) {
  if (c.has(index)) return io.batch_first ? c.in(index).transpose(0, 1) : c.in(index);
  return at::zeros({io.dirs, io.x.size(1), io.hidden}, io.x.options());
}

// Outputs Y [seq, dirs, batch, hidden], Y_h, (Y_c) in the node's layout.
Outs RnnOutputs(const RnnIo& io, std::vector<at::Tensor> ys, std::vector<at::Tensor> hs,
                std::vector<at::Tensor> cs) {
  at::Tensor y = at::stack(ys, 1);
  at::Tensor yh = at::stack(hs, 0);
  at::Tensor yc = cs.empty() ? at::Tensor() : at::stack(cs, 0);
  if (io.batch_first) {
    y = y.permute({2, 0, 1, 3});
    yh = yh.transpose(0, 1);
    if (yc.defined()) yc = yc.transpose(0, 1);
  }
  return {y, yh, yc};
}

template <int kKind>  // 0 RNN, 1 GRU, 2 LSTM
Outs Recurrent(OpContext& c) {
  RnnIo io = RnnInputs(c);
  const at::Tensor &w = c.in(1), &r = c.in(2);
  int64_t gates = kKind == 2 ? 4 : kKind == 1 ? 3 : 1, H = io.hidden;
  at::Tensor h0 = InitialState(c, 5, io);
  at::Tensor c0 = kKind == 2 ? InitialState(c, 6, io) : at::Tensor();
  bool lbr = c.node.attr_int("linear_before_reset", 0) != 0;
  std::vector<at::Tensor> ys, hs, cs;
  for (int64_t d = 0; d < io.dirs; ++d) {
    bool reverse = io.direction == "reverse" || d == 1;
    at::Tensor wd = w[d], rd = r[d];
    at::Tensor wb =
        c.has(3) ? c.in(3)[d].narrow(0, 0, gates * H) : at::zeros({gates * H}, io.x.options());
    at::Tensor rb = c.has(3) ? c.in(3)[d].narrow(0, gates * H, gates * H)
                             : at::zeros({gates * H}, io.x.options());
    at::Tensor p = kKind == 2 && c.has(7) ? c.in(7)[d] : at::Tensor();
    at::Tensor xw = at::matmul(io.x, wd.t()) + wb;  // [seq, batch, gates*H]
    at::Tensor h = h0[d], cell = kKind == 2 ? c0[d] : at::Tensor();
    int64_t seq = io.x.size(0);
    std::vector<at::Tensor> steps(static_cast<size_t>(seq));
    for (int64_t s = 0; s < seq; ++s) {
      int64_t t = reverse ? seq - 1 - s : s;
      at::Tensor xt = xw[t];
      if (kKind == 0) {
        h = at::tanh(xt + at::matmul(h, rd.t()) + rb);
      } else if (kKind == 1) {
        at::Tensor hr = at::matmul(h, rd.t());  // [batch, 3H] without bias
        at::Tensor z = at::sigmoid(xt.narrow(1, 0, H) + hr.narrow(1, 0, H) + rb.narrow(0, 0, H));
        at::Tensor rg = at::sigmoid(xt.narrow(1, H, H) + hr.narrow(1, H, H) + rb.narrow(0, H, H));
        at::Tensor rh = rd.narrow(0, 2 * H, H), rbh = rb.narrow(0, 2 * H, H);
        at::Tensor cand =
            lbr ? at::tanh(xt.narrow(1, 2 * H, H) + rg * (hr.narrow(1, 2 * H, H) + rbh))
                : at::tanh(xt.narrow(1, 2 * H, H) + at::matmul(rg * h, rh.t()) + rbh);
        h = (1 - z) * cand + z * h;
      } else {
        at::Tensor g = xt + at::matmul(h, rd.t()) + rb;
        at::Tensor i = g.narrow(1, 0, H), o = g.narrow(1, H, H), f = g.narrow(1, 2 * H, H),
                   cc = g.narrow(1, 3 * H, H);
        if (p.defined()) {
          i = i + p.narrow(0, 0, H) * cell;
          f = f + p.narrow(0, 2 * H, H) * cell;
        }
        cell = at::sigmoid(f) * cell + at::sigmoid(i) * at::tanh(cc);
        if (p.defined()) o = o + p.narrow(0, H, H) * cell;
        h = at::sigmoid(o) * at::tanh(cell);
      }
      steps[static_cast<size_t>(t)] = h;
    }
    ys.push_back(at::stack(steps, 0));
    hs.push_back(h);
    if (kKind == 2) cs.push_back(cell);
  }
  return RnnOutputs(io, ys, hs, cs);
}

}  // namespace

void AddNnConverters(std::vector<ConverterDef>& out) {
  std::vector<ConverterDef> defs = {
      {"Conv", "", Conv},
      {"FusedConv", "com.microsoft", FusedConv, CheckActivation},
      {"ConvTranspose", "", ConvTranspose},
      {"Gemm", "", Gemm},
      {"FusedGemm", "com.microsoft", FusedGemm, CheckActivation},
      {"MatMul", "", MatMul},
      {"MaxPool", "", MaxPool, CheckMaxPool},
      {"AveragePool", "", AveragePool, CheckAveragePool},
      {"GlobalAveragePool", "", GlobalAveragePool},
      {"GlobalMaxPool", "", GlobalMaxPool},
      {"BatchNormalization", "", BatchNormalization, CheckBatchNorm},
      {"InstanceNormalization", "", InstanceNormalization},
      {"LayerNormalization", "", LayerNormalization},
      {"LRN", "", LRN},
      {"MeanVarianceNormalization", "", MeanVarianceNormalization},
      {"RNN", "", Recurrent<0>, CheckRnn},
      {"GRU", "", Recurrent<1>, CheckRnn},
      {"LSTM", "", Recurrent<2>, CheckRnn},
  };
  out.insert(out.end(), defs.begin(), defs.end());
}

}  // namespace edgepress::runtime::torch_ops
