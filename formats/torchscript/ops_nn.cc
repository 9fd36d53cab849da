// Converters for neural-network ops: convolutions, pools, normalisations, activations,
// linear algebra, softmax, embedding, dropout and the recurrent layers (aten::lstm/gru).
// Each maps one aten op onto the ONNX ops the ONNX importer would produce for it.
#include "formats/torchscript/converter.h"

namespace edgepress::formats::ts {

namespace {

using ir::Attribute;
using ir::DType;
using ir::Value;

// Expands a per-dim list (stride=[2] in a conv2d is [2, 2]).
std::vector<int64_t> PerDim(std::vector<int64_t> v, size_t n) {
  if (v.size() == 1 && n > 1) v.assign(n, v[0]);
  return v;
}

std::vector<int64_t> Pads(const std::vector<int64_t>& p) {
  std::vector<int64_t> out = p;
  out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Shared by aten::_convolution and aten::conv{1,2,3}d / conv_transpose{1,2,3}d.
void Conv(Ctx& c, Value* x, Value* w, Value* b, std::vector<int64_t> stride,
          const c10::IValue& padding, std::vector<int64_t> dilation, bool transposed,
          std::vector<int64_t> output_padding, int64_t groups) {
  const ir::Tensor* wt = w->initializer();
  if (!wt) c.Fail("the weight must be a constant (frozen) tensor");
  size_t k = static_cast<size_t>(wt->rank() - 2);
  std::vector<int64_t> kernel(wt->shape().begin() + 2, wt->shape().end());
  stride = PerDim(stride, k);
  dilation = PerDim(dilation, k);
  std::vector<int64_t> pads;
  if (padding.isString()) {
    if (padding.toStringRef() == "valid") {
      pads.assign(2 * k, 0);
    } else {  // "same" (stride 1): torch puts the odd pixel at the end
      std::vector<int64_t> lo, hi;
      for (size_t i = 0; i < k; ++i) {
        int64_t total = dilation[i] * (kernel[i] - 1);
        lo.push_back(total / 2);
        hi.push_back(total - total / 2);
      }
      pads = lo;
      pads.insert(pads.end(), hi.begin(), hi.end());
    }
  } else {
    pads = Pads(PerDim(padding.toIntVector(), k));
  }
  std::vector<Attribute> attrs = {Attribute::Ints("strides", stride), Attribute::Ints("pads", pads),
                                  Attribute::Ints("dilations", dilation),
                                  Attribute::Int("group", groups),
                                  Attribute::Ints("kernel_shape", kernel)};
  std::vector<Value*> in = {x, w};
  if (b) in.push_back(b);
  if (transposed) {
    output_padding = PerDim(output_padding, k);
    if (std::any_of(output_padding.begin(), output_padding.end(), [](int64_t v) { return v != 0; }))
      attrs.push_back(Attribute::Ints("output_padding", output_padding));
    c.Out(c.Op("ConvTranspose", in, attrs));
  } else {
    c.Out(c.Op("Conv", in, attrs));
  }
}

void Convolution(Ctx& c) {  // aten::_convolution
  Conv(c, c.T(0), c.T(1), c.IsNone(2) ? nullptr : c.T(2), c.Ints(3), c10::IValue(c.Ints(4)),
       c.Ints(5), c.Bool(6), c.Ints(7), c.Int(8));
}

void ConvNd(Ctx& c) {  // aten::conv1d/2d/3d(input, weight, bias, stride, padding, dilation, groups)
  c10::IValue padding = c.In(4).iv;
  if (!c.IsConst(4)) c.Fail("padding must be constant");
  Conv(c, c.T(0), c.T(1), c.IsNone(2) ? nullptr : c.T(2), c.Ints(3),
       padding.isString() ? padding : c10::IValue(c.Ints(4)), c.Ints(5), false, {0}, c.Int(6));
}

void ConvTransposeNd(Ctx& c) {  // (input, weight, bias, stride, padding, output_padding, groups, dilation)
  Conv(c, c.T(0), c.T(1), c.IsNone(2) ? nullptr : c.T(2), c.Ints(3), c10::IValue(c.Ints(4)),
       c.Ints(7), true, c.Ints(5), c.Int(6));
}

void MaxPool(Ctx& c) {  // (input, kernel, stride, padding, dilation, ceil_mode)
  std::vector<int64_t> kernel = c.Ints(1);
  size_t k = kernel.size();
  std::vector<int64_t> stride = c.Ints(2);
  if (stride.empty()) stride = kernel;
  std::vector<Attribute> attrs = {
      Attribute::Ints("kernel_shape", kernel), Attribute::Ints("strides", PerDim(stride, k)),
      Attribute::Ints("pads", Pads(PerDim(c.Ints(3), k))),
      Attribute::Ints("dilations", PerDim(c.Ints(4), k)), Attribute::Int("ceil_mode", c.Bool(5))};
  c.Out(c.Op("MaxPool", {c.T(0)}, attrs));
}

void AvgPool(Ctx& c) {  // (input, kernel, stride, padding, ceil_mode, count_include_pad[, divisor])
  std::vector<int64_t> kernel = c.Ints(1);
  size_t k = kernel.size();
  std::vector<int64_t> stride = c.Ints(2);
  if (stride.empty()) stride = kernel;
  if (c.num_inputs() > 6 && !c.IsNone(6)) c.Fail("divisor_override is not supported");
  std::vector<Attribute> attrs = {
      Attribute::Ints("kernel_shape", kernel), Attribute::Ints("strides", PerDim(stride, k)),
      Attribute::Ints("pads", Pads(PerDim(c.Ints(3), k))), Attribute::Int("ceil_mode", c.Bool(4)),
      Attribute::Int("count_include_pad", c.Bool(5))};
  c.Out(c.Op("AveragePool", {c.T(0)}, attrs));
}

// Adaptive pooling is a plain pool when every input size is a multiple of the output
// size (the case of every torchvision model); otherwise the windows overlap unevenly
// and the op is refused.
void AdaptivePool(Ctx& c, bool max) {
  Value* x = c.T(0);
  std::vector<int64_t> out = c.Ints(1);
  int rank = c.Rank(x);
  out = PerDim(out, static_cast<size_t>(rank - 2));
  bool global = std::all_of(out.begin(), out.end(), [](int64_t v) { return v == 1; });
  if (global) {
    c.Out(c.Op(max ? "GlobalMaxPool" : "GlobalAveragePool", {x}));
  } else {
    std::vector<int64_t> kernel;
    for (size_t i = 0; i < out.size(); ++i) {
      std::optional<int64_t> d = c.Dim(x, static_cast<int>(i) + 2);
      if (!d || *d % out[i] != 0)
        c.Fail("adaptive pooling to " + std::to_string(out[i]) +
               " needs an input size that is a known multiple of it (give the model's input shapes)");
      kernel.push_back(*d / out[i]);
    }
    c.Out(c.Op(max ? "MaxPool" : "AveragePool", {x},
               {Attribute::Ints("kernel_shape", kernel), Attribute::Ints("strides", kernel)}));
  }
  if (max && c.node().outputs().size() > 1) {
    if (c.node().outputs()[1]->hasUses()) c.Fail("the indices output is not supported");
    c.Out(1, Slot::Const(c10::IValue()));
  }
}

Value* OnesOrInput(Ctx& c, size_t i, Value* like_shape, float fill, int64_t channels) {
  if (!c.IsNone(i)) return c.T(i);
  std::vector<float> v(static_cast<size_t>(channels), fill);
  return c.Const(ir::Tensor::FromVector<float>(DType::kFloat32, {channels}, v), fill ? "ones" : "zeros");
}

void BatchNorm(Ctx& c) {  // (input, weight, bias, mean, var, training, momentum, eps, cudnn)
  if (c.Bool(5)) c.Fail("batch_norm in training mode");
  Value* mean = c.T(3);
  const ir::Tensor* m = mean->initializer();
  if (!m) c.Fail("running_mean must be a constant");
  int64_t ch = m->shape()[0];
  c.Out(c.Op("BatchNormalization",
             {c.T(0), OnesOrInput(c, 1, nullptr, 1, ch), OnesOrInput(c, 2, nullptr, 0, ch), mean, c.T(4)},
             {Attribute::Float("epsilon", static_cast<float>(c.Double(7)))}));
}

void LayerNorm(Ctx& c) {  // (input, normalized_shape, weight, bias, eps, cudnn)
  std::vector<int64_t> shape = c.Ints(1);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  Value* scale = c.IsNone(2) ? c.Const(ir::Tensor::FromVector<float>(DType::kFloat32, shape, std::vector<float>(n, 1.f)), "ones")
                             : c.T(2);
  std::vector<Value*> in = {c.T(0), scale};
  if (!c.IsNone(3)) in.push_back(c.T(3));
  c.Out(c.Op("LayerNormalization", in,
             {Attribute::Int("axis", -static_cast<int64_t>(shape.size())),
              Attribute::Float("epsilon", static_cast<float>(c.Double(4)))}));
}

// As torch.onnx writes it for opset < 18: InstanceNormalization over [N, G, -1], then the
// per-channel affine. (GroupNormalization-18 scales per group, 21 per channel.)
void GroupNorm(Ctx& c) {  // (input, num_groups, weight, bias, eps, cudnn)
  Value* x = c.T(0);
  int rank = c.Rank(x);
  int64_t groups = c.Int(1);
  Value* grouped = c.Op("Reshape", {x, c.I64s({0, groups, -1})});
  std::vector<float> ones(static_cast<size_t>(groups), 1.f), zeros(static_cast<size_t>(groups), 0.f);
  Value* norm = c.Op("InstanceNormalization",
                     {grouped, c.Const(ir::Tensor::FromVector<float>(DType::kFloat32, {groups}, ones), "ones"),
                      c.Const(ir::Tensor::FromVector<float>(DType::kFloat32, {groups}, zeros), "zeros")},
                     {Attribute::Float("epsilon", static_cast<float>(c.Double(4)))});
  Value* y = c.Op("Reshape", {norm, c.Op("Shape", {x}, {}, DType::kInt64)});
  std::vector<int64_t> per_channel = {-1};
  for (int i = 2; i < rank; ++i) per_channel.push_back(1);
  if (!c.IsNone(2)) y = c.Op("Mul", {y, c.Op("Reshape", {c.T(2), c.I64s(per_channel)})});
  if (!c.IsNone(3)) y = c.Op("Add", {y, c.Op("Reshape", {c.T(3), c.I64s(per_channel)})});
  c.Out(y);
}

// (input, weight, bias, running_mean, running_var, use_input_stats, momentum, eps, cudnn):
// with the input's own statistics and both affine tensors, ONNX InstanceNormalization.
void InstanceNorm(Ctx& c) {
  if (!c.Bool(5)) c.Fail("instance_norm with running statistics (use_input_stats=False)");
  if (c.IsNone(1) || c.IsNone(2)) c.Fail("instance_norm without weight and bias");
  c.Out(c.Op("InstanceNormalization", {c.T(0), c.T(1), c.T(2)},
             {Attribute::Float("epsilon", static_cast<float>(c.Double(7)))}));
}

void Linear(Ctx& c) {  // (input, weight, bias)
  Value* x = c.T(0);
  const Slot& w = c.In(1);
  Value* wt;
  if (w.is_const() && w.iv.isTensor() && w.iv.toTensor().dim() == 2 &&
      w.iv.toTensor().scalar_type() == at::kFloat) {
    // The transposed weight is stored once, as the ONNX exporter's MatMul form has it.
    wt = c.Const(c.FromTorch(w.iv.toTensor().t()), c.node().inputs()[1]->debugName());
  } else {
    wt = c.Op("Transpose", {c.T(1)}, {Attribute::Ints("perm", {1, 0})});
  }
  Value* y = c.Op("MatMul", {x, wt});
  if (!c.IsNone(2)) y = c.Op("Add", {y, c.T(2)});
  c.Out(y);
}

void MatMul(Ctx& c) { c.Out(c.Op("MatMul", {c.T(0), c.T(1)})); }

void Addmm(Ctx& c) {  // (self, mat1, mat2, beta, alpha)
  c.Out(c.Op("Gemm", {c.T(1), c.T(2), c.T(0)},
             {Attribute::Float("beta", static_cast<float>(c.Double(3))),
              Attribute::Float("alpha", static_cast<float>(c.Double(4)))}));
}

void Baddbmm(Ctx& c) {  // (self, b1, b2, beta, alpha): beta*self + alpha*(b1@b2)
  Value* prod = c.Op("MatMul", {c.T(1), c.T(2)});
  double beta = c.Double(3), alpha = c.Double(4);
  if (alpha != 1) prod = c.Op("Mul", {prod, c.F32(static_cast<float>(alpha))});
  Value* self = c.T(0);
  if (beta != 1) self = c.Op("Mul", {self, c.F32(static_cast<float>(beta))});
  c.Out(beta == 0 ? prod : c.Op("Add", {self, prod}));
}

void Softmax(Ctx& c, const char* op) {  // (input, dim, dtype)
  Value* x = c.T(0);
  if (c.num_inputs() > 2 && !c.IsNone(2)) x = c.Cast(x, Ctx::FromScalarType(c.Int(2)));
  c.Out(c.Op(op, {x}, {Attribute::Int("axis", c.Int(1))}));
}

void Unary(Ctx& c, const char* op, std::vector<Attribute> attrs = {}) {
  c.Out(c.Op(op, {c.T(0)}, std::move(attrs)));
}

void Clip(Ctx& c, Value* x, std::optional<double> lo, std::optional<double> hi) {
  DType dt = Ctx::DTypeOf(x);
  auto bound = [&](std::optional<double> v) -> Value* {
    if (!v) return nullptr;
    Value* s = c.F32(static_cast<float>(*v));
    return dt == DType::kFloat32 ? s : c.Cast(s, dt);
  };
  c.Out(c.Op("Clip", {x, bound(lo), bound(hi)}));
}

// The decomposition torch.onnx writes for opset < 20 (fuse-gelu turns the erf form back
// into one Gelu kernel): erf: (x * (erf(x / sqrt 2) + 1)) * 0.5;
// tanh: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
void Gelu(Ctx& c) {
  std::string approx = c.num_inputs() > 1 ? c.Str(1) : "none";
  Value* x = c.T(0);
  if (approx == "tanh") {
    Value* cube = c.Op("Mul", {c.Op("Mul", {x, x}), x});
    Value* inner = c.Op("Add", {x, c.Op("Mul", {cube, c.F32(0.044715f)})});
    Value* t = c.Op("Tanh", {c.Op("Mul", {inner, c.F32(0.7978845608028654f)})});
    c.Out(c.Op("Mul", {c.Op("Mul", {x, c.F32(0.5f)}), c.Op("Add", {t, c.F32(1.f)})}));
    return;
  }
  Value* e = c.Op("Erf", {c.Op("Div", {x, c.F32(1.4142135623730951f)})});
  c.Out(c.Op("Mul", {c.Op("Mul", {x, c.Op("Add", {e, c.F32(1.f)})}), c.F32(0.5f)}));
}

void Silu(Ctx& c) {
  Value* x = c.T(0);
  c.Out(c.Op("Mul", {x, c.Op("Sigmoid", {x})}));
}

void Elu(Ctx& c) {  // (self, alpha, scale, input_scale)
  if (c.Double(2) != 1 || c.Double(3) != 1) c.Fail("elu with scale/input_scale other than 1");
  Unary(c, "Elu", {Attribute::Float("alpha", static_cast<float>(c.Double(1)))});
}

void Embedding(Ctx& c) {  // (weight, indices, padding_idx, scale_grad, sparse)
  Value* idx = c.T(1);
  if (Ctx::DTypeOf(idx) != DType::kInt64 && Ctx::DTypeOf(idx) != DType::kInt32)
    idx = c.Cast(idx, DType::kInt64);
  c.Out(c.Op("Gather", {c.T(0), idx}, {Attribute::Int("axis", 0)}));
}

void Identity(Ctx& c) { c.Out(0, c.In(0)); }

// --- recurrent layers -----------------------------------------------------------------

// Torch stacks gate weights as (i, f, g, o) for LSTM and (r, z, n) for GRU; ONNX wants
// (i, o, f, c) and (z, r, h). `order` lists, for each ONNX gate, the torch gate index.
ir::Tensor ReorderGates(Ctx& c, const at::Tensor& w, const std::vector<int>& order) {
  ir::Tensor t = c.FromTorch(w);
  int64_t rows = t.shape()[0] / static_cast<int64_t>(order.size());
  int64_t cols = t.rank() > 1 ? t.shape()[1] : 1;
  ir::Tensor out(DType::kFloat32, t.shape());
  for (size_t g = 0; g < order.size(); ++g)
    std::memcpy(out.mutable_data<float>() + g * rows * cols, t.data<float>() + order[g] * rows * cols,
                static_cast<size_t>(rows * cols) * sizeof(float));
  return out;
}

ir::Tensor Stack(const std::vector<ir::Tensor>& parts) {
  std::vector<int64_t> shape = parts[0].shape();
  shape.insert(shape.begin(), static_cast<int64_t>(parts.size()));
  ir::Tensor out(DType::kFloat32, shape);
  size_t off = 0;
  for (const ir::Tensor& p : parts) {
    std::memcpy(static_cast<uint8_t*>(out.mutable_raw()) + off, p.raw(), p.nbytes());
    off += p.nbytes();
  }
  return out;
}

ir::Tensor ConcatRows(const ir::Tensor& a, const ir::Tensor& b) {
  ir::Tensor out(DType::kFloat32, {a.shape()[0] + b.shape()[0]});
  std::memcpy(out.mutable_raw(), a.raw(), a.nbytes());
  std::memcpy(static_cast<uint8_t*>(out.mutable_raw()) + a.nbytes(), b.raw(), b.nbytes());
  return out;
}

// aten::lstm(input, hx[], params[], has_biases, num_layers, dropout, train, bidirectional,
// batch_first) and aten::gru(input, hx, params[], ...): one ONNX LSTM/GRU per layer.
void Rnn(Ctx& c, bool lstm) {
  Value* x = c.T(0);
  const Slot& hx_slot = c.In(1);
  const Slot& params = c.In(2);
  bool has_bias = c.Bool(3), bidir = c.Bool(7), batch_first = c.Bool(8);
  int64_t layers = c.Int(4);
  if (c.Bool(6)) c.Fail("training mode");
  std::vector<at::Tensor> w;
  if (params.is_const() && params.iv.isTensorList()) {
    for (const at::Tensor& t : params.iv.toTensorVector()) w.push_back(t);
  } else if (params.kind == Slot::Kind::kList) {
    for (const Slot& s : params.items) {
      if (!s.is_const() || !s.iv.isTensor()) c.Fail("the weights must be constants (frozen)");
      w.push_back(s.iv.toTensor());
    }
  } else {
    c.Fail("the weights must be a constant list");
  }
  const int dirs = bidir ? 2 : 1;
  const size_t per = has_bias ? 4 : 2;
  if (w.size() != per * dirs * layers) c.Fail("unexpected weight count " + std::to_string(w.size()));
  const int64_t hidden = w[1].size(1);
  const std::vector<int> order = lstm ? std::vector<int>{0, 3, 1, 2} : std::vector<int>{1, 0, 2};
  // Initial states: [layers*dirs, N, H] each.
  std::vector<Value*> h0s;
  if (hx_slot.kind == Slot::Kind::kList || (hx_slot.is_const() && hx_slot.iv.isTensorList())) {
    if (hx_slot.kind == Slot::Kind::kList)
      for (const Slot& s : hx_slot.items) h0s.push_back(s.kind == Slot::Kind::kTensor ? s.value : c.Const(c.FromTorch(s.iv.toTensor()), "h0"));
    else
      for (const at::Tensor& t : hx_slot.iv.toTensorVector()) h0s.push_back(c.Const(c.FromTorch(t), "h0"));
  } else {
    h0s.push_back(c.T(1));
  }
  if (h0s.size() != (lstm ? 2u : 1u)) c.Fail("unexpected initial state count");
  Value* seq = batch_first ? c.Op("Transpose", {x}, {Attribute::Ints("perm", {1, 0, 2})}) : x;
  std::vector<Value*> hn, cn;
  for (int64_t l = 0; l < layers; ++l) {
    std::vector<ir::Tensor> W, R, B;
    for (int d = 0; d < dirs; ++d) {
      size_t base = (static_cast<size_t>(l) * dirs + d) * per;
      W.push_back(ReorderGates(c, w[base], order));
      R.push_back(ReorderGates(c, w[base + 1], order));
      if (has_bias)
        B.push_back(ConcatRows(ReorderGates(c, w[base + 2], order), ReorderGates(c, w[base + 3], order)));
      else
        B.push_back(ir::Tensor(DType::kFloat32, {2 * static_cast<int64_t>(order.size()) * hidden}));
    }
    auto state = [&](Value* all) {
      return c.Op("Slice", {all, c.I64s({l * dirs}), c.I64s({(l + 1) * dirs}), c.I64s({0})});
    };
    std::vector<Value*> in = {seq, c.Const(Stack(W), "W"), c.Const(Stack(R), "R"), c.Const(Stack(B), "B"),
                              nullptr, state(h0s[0])};
    if (lstm) in.push_back(state(h0s[1]));
    std::vector<Attribute> attrs = {Attribute::Int("hidden_size", hidden),
                                    Attribute::String("direction", bidir ? "bidirectional" : "forward")};
    if (!lstm) attrs.push_back(Attribute::Int("linear_before_reset", 1));
    std::vector<Value*> outs = c.OpN(lstm ? "LSTM" : "GRU", in, lstm ? 3 : 2, attrs, DType::kFloat32);
    // Y is [T, dirs, N, H]; the next layer and torch's output want [T, N, dirs*H].
    Value* y = c.Op("Transpose", {outs[0]}, {Attribute::Ints("perm", {0, 2, 1, 3})});
    seq = c.Op("Reshape", {y, c.I64s({0, 0, -1})});
    hn.push_back(outs[1]);
    if (lstm) cn.push_back(outs[2]);
  }
  Value* out = batch_first ? c.Op("Transpose", {seq}, {Attribute::Ints("perm", {1, 0, 2})}) : seq;
  auto cat = [&](const std::vector<Value*>& v) {
    return v.size() == 1 ? v[0] : c.Op("Concat", v, {Attribute::Int("axis", 0)});
  };
  c.Out(out, 0);
  c.Out(cat(hn), 1);
  if (lstm) c.Out(cat(cn), 2);
}

at::Tensor ConstTensorArg(Ctx& c, size_t i) {
  const Slot& s = c.In(i);
  if (!s.is_const() || !s.iv.isTensor()) c.Fail("argument " + std::to_string(i) + " must be a constant (frozen) weight");
  return s.iv.toTensor();
}

// aten::lstm_cell(input, [h, c], w_ih, w_hh, b_ih, b_hh) and aten::gru_cell(input, h, ...):
// a one-step ONNX LSTM/GRU over [1, N, in].
void RnnCell(Ctx& c, bool lstm) {
  const std::vector<int> order = lstm ? std::vector<int>{0, 3, 1, 2} : std::vector<int>{1, 0, 2};
  at::Tensor w_ih = ConstTensorArg(c, 2), w_hh = ConstTensorArg(c, 3);
  const int64_t hidden = w_hh.size(1);
  ir::Tensor bias(DType::kFloat32, {2 * static_cast<int64_t>(order.size()) * hidden});
  if (!c.IsNone(4) && !c.IsNone(5))
    bias = ConcatRows(ReorderGates(c, ConstTensorArg(c, 4), order), ReorderGates(c, ConstTensorArg(c, 5), order));
  std::vector<Value*> states;
  const Slot& hx = c.In(1);
  if (lstm) {
    if (hx.kind == Slot::Kind::kList && hx.items.size() == 2) {
      for (const Slot& s : hx.items)
        states.push_back(s.kind == Slot::Kind::kTensor ? s.value : c.Const(c.FromTorch(s.iv.toTensor()), "state"));
    } else if (hx.is_const() && hx.iv.isTensorList() && hx.iv.toTensorVector().size() == 2) {
      for (const at::Tensor& t : hx.iv.toTensorVector()) states.push_back(c.Const(c.FromTorch(t), "state"));
    } else {
      c.Fail("expected the [h, c] state list");
    }
  } else {
    states.push_back(c.T(1));
  }
  auto step = [&](Value* v) { return c.Op("Unsqueeze", {v, c.I64s({0})}); };
  std::vector<Value*> in = {step(c.T(0)), c.Const(Stack({ReorderGates(c, w_ih, order)}), "W"),
                            c.Const(Stack({ReorderGates(c, w_hh, order)}), "R"), c.Const(Stack({bias}), "B"),
                            nullptr, step(states[0])};
  if (lstm) in.push_back(step(states[1]));
  std::vector<Attribute> attrs = {Attribute::Int("hidden_size", hidden)};
  if (!lstm) attrs.push_back(Attribute::Int("linear_before_reset", 1));
  std::vector<Value*> outs = c.OpN(lstm ? "LSTM" : "GRU", in, lstm ? 3 : 2, attrs, DType::kFloat32);
  c.Out(c.Op("Squeeze", {outs[1], c.I64s({0})}), 0);
  if (lstm) c.Out(c.Op("Squeeze", {outs[2], c.I64s({0})}), 1);
}

}  // namespace

void RegisterNnOps(Registry& r) {
  r["aten::lstm_cell"] = [](Ctx& c) { RnnCell(c, true); };
  r["aten::gru_cell"] = [](Ctx& c) { RnnCell(c, false); };
  r["aten::_convolution"] = Convolution;
  for (const char* k : {"aten::conv1d", "aten::conv2d", "aten::conv3d"}) r[k] = ConvNd;
  for (const char* k : {"aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d"})
    r[k] = ConvTransposeNd;
  for (const char* k : {"aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d"}) r[k] = MaxPool;
  for (const char* k : {"aten::avg_pool1d", "aten::avg_pool2d", "aten::avg_pool3d"}) r[k] = AvgPool;
  for (const char* k : {"aten::adaptive_avg_pool1d", "aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool3d"})
    r[k] = [](Ctx& c) { AdaptivePool(c, false); };
  for (const char* k : {"aten::adaptive_max_pool1d", "aten::adaptive_max_pool2d", "aten::adaptive_max_pool3d"})
    r[k] = [](Ctx& c) { AdaptivePool(c, true); };
  r["aten::batch_norm"] = BatchNorm;
  r["aten::layer_norm"] = LayerNorm;
  r["aten::group_norm"] = GroupNorm;
  r["aten::instance_norm"] = InstanceNorm;
  r["aten::linear"] = Linear;
  for (const char* k : {"aten::matmul", "aten::bmm", "aten::mm"}) r[k] = MatMul;
  r["aten::addmm"] = Addmm;
  r["aten::baddbmm"] = Baddbmm;
  r["aten::softmax"] = [](Ctx& c) { Softmax(c, "Softmax"); };
  r["aten::log_softmax"] = [](Ctx& c) { Softmax(c, "LogSoftmax"); };
  // Activations (the in-place forms compute the same value).
  for (std::string k : {"relu", "sigmoid", "tanh", "exp", "log", "sqrt", "neg", "abs", "sin", "cos",
                        "erf", "reciprocal", "floor", "ceil", "sign"}) {
    std::string op = k == "relu" ? "Relu" : k == "sigmoid" ? "Sigmoid" : k == "tanh" ? "Tanh"
                   : k == "exp" ? "Exp" : k == "log" ? "Log" : k == "sqrt" ? "Sqrt" : k == "neg" ? "Neg"
                   : k == "abs" ? "Abs" : k == "sin" ? "Sin" : k == "cos" ? "Cos" : k == "erf" ? "Erf"
                   : k == "reciprocal" ? "Reciprocal" : k == "floor" ? "Floor" : k == "ceil" ? "Ceil" : "Sign";
    r["aten::" + k] = r["aten::" + k + "_"] = [op](Ctx& c) { Unary(c, op.c_str()); };
  }
  r["aten::expm1"] = [](Ctx& c) {  // exp(x) - 1 (the exporter's Elu); absolute error ~1 ulp of 1
    Value* e = c.Op("Exp", {c.T(0)});
    c.Out(c.Op("Sub", {e, c.Cast(c.I64(1), Ctx::DTypeOf(e))}));
  };
  r["aten::rsqrt"] = [](Ctx& c) { c.Out(c.Op("Reciprocal", {c.Op("Sqrt", {c.T(0)})})); };
  r["aten::gelu"] = Gelu;
  r["aten::silu"] = r["aten::silu_"] = Silu;
  r["aten::hardswish"] = r["aten::hardswish_"] = [](Ctx& c) { Unary(c, "HardSwish"); };
  r["aten::hardsigmoid"] = r["aten::hardsigmoid_"] = [](Ctx& c) {
    Unary(c, "HardSigmoid", {Attribute::Float("alpha", 1.f / 6), Attribute::Float("beta", 0.5f)});
  };
  r["aten::leaky_relu"] = r["aten::leaky_relu_"] = [](Ctx& c) {
    Unary(c, "LeakyRelu", {Attribute::Float("alpha", c.num_inputs() > 1 ? static_cast<float>(c.Double(1)) : 0.01f)});
  };
  r["aten::elu"] = r["aten::elu_"] = Elu;
  r["aten::softplus"] = [](Ctx& c) {
    if (c.Double(1) != 1) c.Fail("softplus with beta != 1");
    Unary(c, "Softplus");
  };
  r["aten::mish"] = [](Ctx& c) { Unary(c, "Mish"); };
  r["aten::hardtanh"] = r["aten::hardtanh_"] = [](Ctx& c) { Clip(c, c.T(0), c.Double(1), c.Double(2)); };
  r["aten::relu6"] = r["aten::relu6_"] = [](Ctx& c) { Clip(c, c.T(0), 0.0, 6.0); };
  auto clamp = [](Ctx& c) {
    std::optional<double> lo, hi;
    if (!c.IsNone(1)) lo = c.Double(1);
    if (c.num_inputs() > 2 && !c.IsNone(2)) hi = c.Double(2);
    Clip(c, c.T(0), lo, hi);
  };
  r["aten::clamp"] = r["aten::clamp_"] = r["aten::clip"] = clamp;
  r["aten::clamp_min"] = r["aten::clamp_min_"] = [](Ctx& c) { Clip(c, c.T(0), c.Double(1), std::nullopt); };
  r["aten::clamp_max"] = r["aten::clamp_max_"] = [](Ctx& c) { Clip(c, c.T(0), std::nullopt, c.Double(1)); };
  r["aten::embedding"] = Embedding;
  for (const char* k : {"aten::dropout", "aten::dropout_", "aten::feature_dropout", "aten::alpha_dropout",
                        "aten::feature_alpha_dropout", "aten::contiguous", "aten::detach", "aten::clone",
                        "prim::unchecked_cast", "aten::alias"})
    r[k] = Identity;
  r["aten::lstm"] = [](Ctx& c) { Rnn(c, true); };
  r["aten::gru"] = [](Ctx& c) { Rnn(c, false); };
}

}  // namespace edgepress::formats::ts
