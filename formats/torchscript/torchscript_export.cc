#include "formats/torchscript/torchscript_export.h"

#include <torch/script.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <sstream>

#include "formats/torchscript/torch_compat.h"
#include "formats/torchscript/torch_dtype.h"
#include "formats/torchscript/torchscript_emitter.h"
#include "formats/torchscript/torchscript_export_helpers.h"
#include "ir/error.h"
#include "ir/file_util.h"
#include "ir/shape_inference.h"

namespace edgepress::formats {

namespace {

using namespace ts_export;

// The c10::ScalarType code of a dtype: `define` without Python cannot resolve torch.float32
// and friends as values, but every TorchScript dtype argument is that int.
const char* TorchDType(ir::DType t) {
  switch (t) {
    case ir::DType::kFloat32:
      return "6";
    case ir::DType::kFloat16:
      return "5";
    case ir::DType::kBFloat16:
      return "15";
    case ir::DType::kFloat64:
      return "7";
    case ir::DType::kInt64:
      return "4";
    case ir::DType::kInt32:
      return "3";
    case ir::DType::kInt16:
      return "2";
    case ir::DType::kInt8:
      return "1";
    case ir::DType::kUInt8:
      return "0";
    case ir::DType::kBool:
      return "11";
    default:
      return nullptr;
  }
}

// Packed 4-bit tensors have no TorchScript form (the importer would read their bytes as
// 8-bit values): refused here rather than written wrong.
at::ScalarType ScalarType(ir::DType t) {
  const std::optional<at::ScalarType> st =
      t == ir::DType::kInt4 || t == ir::DType::kUInt4 ? std::nullopt : torch_dtype::ToScalarType(t);
  if (!st)
    ThrowUnsupported(std::string("TorchScript export: no torch dtype for ") + ir::DTypeName(t));
  return *st;
}

at::Tensor ToAt(const ir::Tensor& t) {
  at::Tensor a = at::empty(t.shape(), at::TensorOptions().dtype(ScalarType(t.dtype())));
  if (t.nbytes()) std::memcpy(a.data_ptr(), t.raw(), t.nbytes());
  return a;
}

void Unary(Emitter& e, const ir::Node& n, const std::string& fn) {
  e.Assign(n, fn + "(" + e.In(n, 0) + ")");
}

void Binary(Emitter& e, const ir::Node& n, const std::string& op) {
  e.Assign(n, "(" + e.In(n, 0) + " " + op + " " + e.In(n, 1) + ")");
}

std::string SpatialPrefix(size_t spatial) { return std::to_string(spatial) + "d"; }

std::vector<int64_t> Ints(const ir::Node& n, const char* name, size_t count, int64_t def) {
  std::vector<int64_t> v = n.attr_ints(name, {});
  if (v.empty()) v.assign(count, def);
  return v;
}

// Explicit pads for Conv/pools with NOTSET or VALID auto_pad; SAME needs the input size,
// which a traced graph knows only at run time, so the checker rejects it.
std::vector<int64_t> Pads(const ir::Node& n, size_t spatial) {
  if (n.attr_string("auto_pad", "NOTSET") == "VALID") return std::vector<int64_t>(2 * spatial, 0);
  return Ints(n, "pads", 2 * spatial, 0);
}

bool Symmetric(const std::vector<int64_t>& p) {
  size_t n = p.size() / 2;
  for (size_t i = 0; i < n; ++i)
    if (p[i] != p[i + n]) return false;
  return true;
}

// The input with asymmetric pads applied (constant_pad_nd lists the last dim first).
std::string Padded(const std::string& x, const std::vector<int64_t>& pads,
                   const std::string& value) {
  size_t n = pads.size() / 2;
  std::vector<int64_t> tp;
  for (size_t i = n; i-- > 0;) {
    tp.push_back(pads[i]);
    tp.push_back(pads[i + n]);
  }
  return "torch.constant_pad_nd(" + x + ", " + IntList(tp) + ", " + value + ")";
}

size_t WeightSpatial(const ir::Node& n) {
  const ir::Value* w = n.input(1);
  if (w && w->type.shape) return w->type.shape->size() - 2;
  if (w && w->initializer()) return static_cast<size_t>(w->initializer()->rank() - 2);
  return n.attr_ints("kernel_shape", {}).size();
}

std::string ConvExpr(Emitter& e, const ir::Node& n) {
  size_t s = WeightSpatial(n);
  std::vector<int64_t> pads = Pads(n, s);
  std::string x = e.In(n, 0);
  std::vector<int64_t> padding(pads.begin(), pads.begin() + static_cast<long>(s));
  if (!Symmetric(pads)) {
    x = Padded(x, pads, "0.0");
    padding.assign(s, 0);
  }
  return "torch.conv" + SpatialPrefix(s) + "(" + x + ", " + e.In(n, 1) + ", " + e.In(n, 2) + ", " +
         IntList(Ints(n, "strides", s, 1)) + ", " + IntList(padding) + ", " +
         IntList(Ints(n, "dilations", s, 1)) + ", " + std::to_string(n.attr_int("group", 1)) + ")";
}

std::string Activation(const ir::Node& n, const std::string& y) {
  std::string act = n.attr_string("activation", "");
  if (act == "Relu") return "torch.relu(" + y + ")";
  if (act == "Clip") {
    std::vector<float> p = n.attr_floats("activation_params", {});
    if (p.size() != 2) ThrowInvalid(n.describe() + ": activation Clip needs 2 activation_params");
    return "torch.clamp(" + y + ", " + Float(p[0]) + ", " + Float(p[1]) + ")";
  }
  return y;
}

std::string GemmExpr(Emitter& e, const ir::Node& n) {
  std::string a = e.In(n, 0), b = e.In(n, 1);
  if (n.attr_int("transA", 0)) a += ".t()";
  if (n.attr_int("transB", 0)) b += ".t()";
  std::string y = "torch.matmul(" + a + ", " + b + ")";
  double alpha = n.attr_float("alpha", 1.0f), beta = n.attr_float("beta", 1.0f);
  if (alpha != 1.0) y = "(" + y + " * " + Float(alpha) + ")";
  if (n.input(2) && beta != 0.0)
    y = "(" + y + " + " +
        (beta == 1.0 ? e.In(n, 2) : "(" + e.In(n, 2) + " * " + Float(beta) + ")") + ")";
  return y;
}

void Pool(Emitter& e, const ir::Node& n, bool max) {
  std::vector<int64_t> k = n.attr_ints("kernel_shape", {});
  size_t s = k.size();
  std::vector<int64_t> pads = Pads(n, s);
  std::string x = e.In(n, 0);
  std::vector<int64_t> padding(pads.begin(), pads.begin() + static_cast<long>(s));
  if (!Symmetric(pads) && max) {
    x = Padded(x, pads, "float('-inf')");
    padding.assign(s, 0);
  }
  std::string ceil = n.attr_int("ceil_mode", 0) ? "True" : "False";
  if (max)
    e.Assign(n, "torch.max_pool" + SpatialPrefix(s) + "(" + x + ", " + IntList(k) + ", " +
                    IntList(Ints(n, "strides", s, 1)) + ", " + IntList(padding) + ", " +
                    IntList(Ints(n, "dilations", s, 1)) + ", " + ceil + ")");
  else
    e.Assign(n, "torch.avg_pool" + SpatialPrefix(s) + "(" + x + ", " + IntList(k) + ", " +
                    IntList(Ints(n, "strides", s, 1)) + ", " + IntList(padding) + ", " + ceil +
                    ", " + (n.attr_int("count_include_pad", 0) ? "True" : "False") + ")");
}

std::string AxesAttr(const ir::Node& n) { return IntList(n.attr_ints("axes", {})); }

// The axis-holding input (opset 13 form) or the attribute (older opsets) as a tensor.
std::string AxesInput(Emitter& e, const ir::Node& n) {
  if (n.input(1)) return e.In(n, 1);
  if (n.has_attr("axes")) return "torch.tensor(" + AxesAttr(n) + ")";
  return "None";
}

void QuantizeLinear(Emitter& e, const ir::Node& n) {
  ir::DType out = ir::DType::kUInt8;
  if (const ir::Value* z = n.input(2))
    out = z->initializer() ? z->initializer()->dtype() : z->type.dtype;
  double lo = 0, hi = 255;
  if (out == ir::DType::kInt8) lo = -128, hi = 127;
  e.Assign(n, "self._quant(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + e.In(n, 2) + ", " +
                  std::to_string(n.attr_int("axis", 1)) + ", " + Float(lo) + ", " + Float(hi) +
                  ", " + TorchDType(out) + ")");
}

// RNN/GRU/LSTM in ONNX form (gate orders, W/R/B layout) by one helper loop per
// direction, as the torch backend runs them; outputs Y, Y_h, Y_c where named.
void Recurrent(Emitter& e, const ir::Node& n) {
  const std::string op = n.op_type(), dir = n.attr_string("direction", "forward");
  std::string parts = "p" + std::to_string(e.counter++);
  e.Line(parts + " = self._rnn(" + (op == "LSTM" ? "2" : op == "GRU" ? "1" : "0") + ", " + e.In(n, 0) + ", " +
         e.In(n, 1) + ", " + e.In(n, 2) + ", " + e.In(n, 3) + ", " + e.In(n, 4) + ", " + e.In(n, 5) + ", " +
         (op == "LSTM" ? e.In(n, 6) + ", " + e.In(n, 7) : std::string("None, None")) + ", " +
         std::to_string(n.attr_int("hidden_size", 0)) + ", " +
         (dir == "bidirectional" ? "2" : dir == "reverse" ? "1" : "0") + ", " +
         std::to_string(n.attr_int("layout", 0)) + ", " + std::to_string(n.attr_int("linear_before_reset", 0)) + ")");
  for (size_t i = 0; i < n.num_outputs(); ++i)
    if (n.output(i) && !n.output(i)->name().empty())
      e.Line(e.Out(n, i) + " = " + parts + "[" + std::to_string(i) + "]");
}

void EmitNodes(Emitter& e, const ir::Graph& g);

// If: both branches assign the node's outputs; TorchScript sees one if/else.
void If(Emitter& e, const ir::Node& n) {
  std::vector<std::string> outs;
  for (size_t i = 0; i < n.num_outputs(); ++i) outs.push_back(e.Out(n, i));
  std::string cond = e.In(n, 0);
  for (const char* branch : {"then_branch", "else_branch"}) {
    e.Line(std::string(branch[0] == 't' ? "if bool(" + cond + "):" : "else:"));
    ++e.indent;
    const ir::Graph& g = *n.attr(branch)->g;
    EmitNodes(e, g);
    for (size_t i = 0; i < outs.size(); ++i) e.Line(outs[i] + " = " + e.Expr(g.outputs()[i]));
    e.Line("pass");
    --e.indent;
  }
}

// Loop(M, cond, v...) as a while loop: the carried values are the node's first outputs,
// scan outputs are collected per iteration and stacked on a new axis 0.
void Loop(Emitter& e, const ir::Node& n) {
  const ir::Graph& body = *n.attr("body")->g;
  const std::string id = std::to_string(e.counter++);
  const std::string trips = "n" + id, go = "c" + id, iter = "i" + id;
  size_t carried = n.num_inputs() - 2, scans = n.num_outputs() - carried;
  e.Line(trips + " = " + (n.input(0) ? "int(" + e.In(n, 0) + ".reshape([]).item())" : "9223372036854775807"));
  e.Line(go + " = " + (n.input(1) ? "bool(" + e.In(n, 1) + ".reshape([]).item())" : "True"));
  std::vector<std::string> vars, lists;
  for (size_t j = 0; j < carried; ++j) {
    vars.push_back(e.Out(n, j));
    e.Line(vars[j] + " = " + e.In(n, 2 + j));
  }
  for (size_t k = 0; k < scans; ++k) {
    lists.push_back("s" + id + "_" + std::to_string(k));
    e.Line(lists[k] + ": List[Tensor] = []");
  }
  e.Line(iter + " = 0");
  e.Line("while " + iter + " < " + trips + " and " + go + ":");
  ++e.indent;
  e.Line("t" + id + " = torch.tensor(" + iter + ", dtype=4)");
  e.names[body.inputs()[0]] = "t" + id;
  e.Line("b" + id + " = torch.tensor(" + go + ")");
  e.names[body.inputs()[1]] = "b" + id;
  for (size_t j = 0; j < carried; ++j) e.names[body.inputs()[2 + j]] = vars[j];
  EmitNodes(e, body);
  // New values first, then the swap, so a body output that is another carried input
  // reads the old value.
  std::vector<std::string> next;
  for (size_t j = 0; j < carried; ++j) {
    next.push_back("u" + id + "_" + std::to_string(j));
    e.Line(next[j] + " = " + e.Expr(body.outputs()[1 + j]));
  }
  for (size_t k = 0; k < scans; ++k) e.Line(lists[k] + ".append(" + e.Expr(body.outputs()[1 + carried + k]) + ")");
  e.Line(go + " = bool(" + e.Expr(body.outputs()[0]) + ".reshape([]).item())");
  for (size_t j = 0; j < carried; ++j) e.Line(vars[j] + " = " + next[j]);
  e.Line(iter + " += 1");
  --e.indent;
  for (size_t k = 0; k < scans; ++k) e.Line(e.Out(n, carried + k) + " = torch.stack(" + lists[k] + ", 0)");
}

// ReduceSum/Max/Min: axes from the input (opset 13/18 forms) or the attribute.
void Reduce(Emitter& e, const ir::Node& n) {
  const std::string op = n.op_type();
  if (ReduceConst(e, n, op == "ReduceSum" ? "torch.sum" : op == "ReduceMax" ? "torch.amax" : "torch.amin")) return;
  e.Assign(n, "self._reduce(" + std::string(op == "ReduceSum" ? "0" : op == "ReduceMax" ? "1" : "2") + ", " +
                  e.In(n, 0) + ", " + e.In(n, 1) + ", " + AxesAttr(n) + ", " +
                  (n.attr_int("keepdims", 1) ? "True" : "False") + ", " +
                  (n.attr_int("noop_with_empty_axes", 0) ? "True" : "False") + ")");
}

const std::map<std::string, OpWriter>& Writers() {
  static const std::map<std::string, OpWriter> w = {
      {"Identity", [](Emitter& e, const ir::Node& n) { e.names[n.output(0)] = e.In(n, 0); }},
      {"Dropout", [](Emitter& e, const ir::Node& n) { e.names[n.output(0)] = e.In(n, 0); }},
      {"Relu", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.relu"); }},
      {"Sigmoid", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.sigmoid"); }},
      {"Tanh", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.tanh"); }},
      {"Erf", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.erf"); }},
      {"Sqrt", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.sqrt"); }},
      {"Exp", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.exp"); }},
      {"Log", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.log"); }},
      {"Neg", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.neg"); }},
      {"Abs", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.abs"); }},
      {"Not", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.logical_not"); }},
      {"Reciprocal", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.reciprocal"); }},
      // ONNX's forms (alpha, beta attributes) as arithmetic: torch.hardsigmoid is fixed to
      // alpha 1/6 and is not a builtin `define` resolves in 1.13.
      {"HardSigmoid", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.clamp(" + e.In(n, 0) + " * " + Float(n.attr_float("alpha", 0.2f)) + " + " +
                         Float(n.attr_float("beta", 0.5f)) + ", 0.0, 1.0)");
       }},
      {"HardSwish", [](Emitter& e, const ir::Node& n) {
         std::string x = e.In(n, 0);
         e.Assign(n, "(" + x + " * torch.clamp(" + x + " / 6.0 + 0.5, 0.0, 1.0))");
       }},
      {"Add", [](Emitter& e, const ir::Node& n) { Binary(e, n, "+"); }},
      {"Sub", [](Emitter& e, const ir::Node& n) { Binary(e, n, "-"); }},
      {"Mul", [](Emitter& e, const ir::Node& n) { Binary(e, n, "*"); }},
      {"Div", [](Emitter& e, const ir::Node& n) { Binary(e, n, "/"); }},
      {"Pow", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.pow(" + e.In(n, 0) + ", " + e.In(n, 1) + ")");
       }},
      {"Equal", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.eq(" + e.In(n, 0) + ", " + e.In(n, 1) + ")");
       }},
      {"Where", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.where(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + e.In(n, 2) + ")");
       }},
      {"Clip", [](Emitter& e, const ir::Node& n) {
         if (ClipConst(e, n)) return;
         e.Assign(n, "torch.clamp(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + e.In(n, 2) + ")");
       }},
      {"Gelu", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.gelu(" + e.In(n, 0) + ", approximate='" +
                         n.attr_string("approximate", "none") + "')");
       }},
      {"com.microsoft::Gelu", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.gelu(" + e.In(n, 0) + ")");
       }},
      {"com.microsoft::FastGelu", [](Emitter& e, const ir::Node& n) {  // tanh form, bias first
         const bool bias = n.num_inputs() > 1 && n.input(1);
         e.Assign(n, "torch.gelu(" + e.In(n, 0) + (bias ? " + " + e.In(n, 1) : std::string()) +
                         ", approximate='tanh')");
       }},
      {"Softmax", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.softmax(" + e.In(n, 0) + ", " + std::to_string(n.attr_int("axis", -1)) + ")");
       }},
      {"LogSoftmax", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.log_softmax(" + e.In(n, 0) + ", " + std::to_string(n.attr_int("axis", -1)) + ")");
       }},
      {"Conv", [](Emitter& e, const ir::Node& n) { e.Assign(n, ConvExpr(e, n)); }},
      {"com.microsoft::FusedConv", [](Emitter& e, const ir::Node& n) {
         std::string y = ConvExpr(e, n);
         if (n.num_inputs() > 3 && n.input(3)) y = "(" + y + " + " + e.In(n, 3) + ")";  // Z
         e.Assign(n, Activation(n, y));
       }},
      {"Gemm", [](Emitter& e, const ir::Node& n) { e.Assign(n, GemmExpr(e, n)); }},
      {"com.microsoft::FusedGemm", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, Activation(n, GemmExpr(e, n)));
       }},
      {"MatMul", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.matmul(" + e.In(n, 0) + ", " + e.In(n, 1) + ")");
       }},
      {"MaxPool", [](Emitter& e, const ir::Node& n) { Pool(e, n, true); }},
      {"AveragePool", [](Emitter& e, const ir::Node& n) { Pool(e, n, false); }},
      {"GlobalAveragePool", [](Emitter& e, const ir::Node& n) {
         if (GlobalAveragePoolKnownRank(e, n)) return;
         e.Assign(n, "torch.mean(" + e.In(n, 0) + ", [i for i in range(2, " + e.In(n, 0) + ".dim())], True)");
       }},
      {"BatchNormalization", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.batch_norm(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + e.In(n, 2) + ", " +
                         e.In(n, 3) + ", " + e.In(n, 4) + ", False, 0.0, " +
                         Float(n.attr_float("epsilon", 1e-5f)) + ", False)");
       }},
      {"LayerNormalization", [](Emitter& e, const ir::Node& n) {
         if (LayerNormConst(e, n)) return;
         e.Assign(n, "self._layer_norm(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + e.In(n, 2) + ", " +
                         std::to_string(n.attr_int("axis", -1)) + ", " +
                         Float(n.attr_float("epsilon", 1e-5f)) + ")");
       }},
      {"Flatten", [](Emitter& e, const ir::Node& n) {
         if (FlattenKnownRank(e, n)) return;
         e.Assign(n, "self._flatten(" + e.In(n, 0) + ", " + std::to_string(n.attr_int("axis", 1)) + ")");
       }},
      {"Reshape", [](Emitter& e, const ir::Node& n) {
         if (ReshapeConst(e, n)) return;
         e.Assign(n, "self._reshape(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " +
                         std::to_string(n.attr_int("allowzero", 0)) + ")");
       }},
      {"Transpose", [](Emitter& e, const ir::Node& n) {
         std::vector<int64_t> perm = n.attr_ints("perm", {});
         if (perm.empty()) e.Assign(n, e.In(n, 0) + ".permute([i for i in range(" + e.In(n, 0) + ".dim() - 1, -1, -1)])");
         else e.Assign(n, e.In(n, 0) + ".permute(" + IntList(perm) + ")");
       }},
      {"Concat", [](Emitter& e, const ir::Node& n) {
         std::string parts;
         for (size_t i = 0; i < n.num_inputs(); ++i) parts += (i ? ", " : "") + e.In(n, i);
         e.Assign(n, "torch.cat([" + parts + "], " + std::to_string(n.attr_int("axis", 0)) + ")");
       }},
      {"Split", [](Emitter& e, const ir::Node& n) {
         if (SplitConst(e, n)) return;
         std::string sizes = n.input(1) ? e.In(n, 1)
                             : n.has_attr("split") ? "torch.tensor(" + IntList(n.attr_ints("split")) + ")"
                                                   : "None";
         std::string parts = "p" + std::to_string(e.counter++);
         e.Line(parts + " = self._split(" + e.In(n, 0) + ", " + std::to_string(n.attr_int("axis", 0)) +
                ", " + sizes + ", " + std::to_string(n.attr_int("num_outputs", static_cast<int64_t>(n.num_outputs()))) + ")");
         for (size_t i = 0; i < n.num_outputs(); ++i)
           if (n.output(i) && !n.output(i)->name().empty())
             e.Line(e.Out(n, i) + " = " + parts + "[" + std::to_string(i) + "]");
       }},
      {"Slice", [](Emitter& e, const ir::Node& n) {
         if (SliceConst(e, n)) return;
         e.Assign(n, "self._slice(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + e.In(n, 2) + ", " +
                         e.In(n, 3) + ", " + e.In(n, 4) + ")");
       }},
      {"Gather", [](Emitter& e, const ir::Node& n) {
         if (GatherScalar(e, n)) return;
         e.Assign(n, "self._gather(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " +
                         std::to_string(n.attr_int("axis", 0)) + ")");
       }},
      {"Shape", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "self._shape(" + e.In(n, 0) + ", " + std::to_string(n.attr_int("start", 0)) + ", " +
                         std::to_string(n.attr_int("end", INT32_MAX)) + ")");
       }},
      {"Unsqueeze", [](Emitter& e, const ir::Node& n) {
         if (SqueezeConst(e, n, true)) return;
         e.Assign(n, "self._unsqueeze(" + e.In(n, 0) + ", " + AxesInput(e, n) + ")");
       }},
      {"Squeeze", [](Emitter& e, const ir::Node& n) {
         if (SqueezeConst(e, n, false)) return;
         e.Assign(n, "self._squeeze(" + e.In(n, 0) + ", " + AxesInput(e, n) + ")");
       }},
      {"Expand", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "self._expand(" + e.In(n, 0) + ", " + e.In(n, 1) + ")");
       }},
      {"Cast", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, e.In(n, 0) + ".to(" + TorchDType(ir::DTypeFromOnnx(n.attr_int("to", 0))) + ")");
       }},
      {"Range", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "self._range(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + e.In(n, 2) + ")");
       }},
      {"ReduceMean", [](Emitter& e, const ir::Node& n) {
         if (ReduceConst(e, n, "torch.mean")) return;
         e.Assign(n, "self._reduce_mean(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + AxesAttr(n) + ", " +
                         (n.attr_int("keepdims", 1) ? "True" : "False") + ")");
       }},
      {"Constant", [](Emitter& e, const ir::Node& n) {
         const ir::Attribute* a = n.attr("value");
         std::string attr = "c" + std::to_string(e.constants.size());
         e.constants.emplace_back(attr, a->t);
         e.names[n.output(0)] = "self." + attr;
       }},
      {"DequantizeLinear", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "self._dequant(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + e.In(n, 2) + ", " +
                         std::to_string(n.attr_int("axis", 1)) + ")");
       }},
      {"QuantizeLinear", QuantizeLinear},
      {"Floor", [](Emitter& e, const ir::Node& n) { Unary(e, n, "torch.floor"); }},
      {"Elu", [](Emitter& e, const ir::Node& n) {
         std::string x = e.In(n, 0);
         e.Assign(n, "torch.where(" + x + " > 0, " + x + ", torch.expm1(" + x + ") * " +
                         Float(n.attr_float("alpha", 1.0f)) + ")");
       }},
      {"LeakyRelu", [](Emitter& e, const ir::Node& n) {
         std::string x = e.In(n, 0);
         e.Assign(n, "torch.where(" + x + " >= 0, " + x + ", " + x + " * " + Float(n.attr_float("alpha", 0.01f)) + ")");
       }},
      {"Softplus", [](Emitter& e, const ir::Node& n) {  // log(exp(x) + 1) without overflow
         e.Assign(n, "torch.logaddexp(" + e.In(n, 0) + ", torch.zeros_like(" + e.In(n, 0) + "))");
       }},
      {"ArgMax", [](Emitter& e, const ir::Node& n) {
         std::string x = e.In(n, 0), axis = std::to_string(n.attr_int("axis", 0)),
                     keep = n.attr_int("keepdims", 1) ? "True" : "False";
         if (n.attr_int("select_last_index", 0))
           e.Assign(n, "((" + x + ".size(" + axis + ") - 1) - torch.argmax(torch.flip(" + x + ", [" + axis + "]), " +
                           axis + ", " + keep + "))");
         else
           e.Assign(n, "torch.argmax(" + x + ", " + axis + ", " + keep + ")");
       }},
      {"ConstantOfShape", [](Emitter& e, const ir::Node& n) {
         const ir::Attribute* a = n.attr("value");
         if (!a) {
           e.Assign(n, "torch.zeros(self._ints(" + e.In(n, 0) + "), dtype=6)");
           return;
         }
         std::string attr = "c" + std::to_string(e.constants.size());
         e.constants.emplace_back(attr, a->t);
         e.Assign(n, "self." + attr + ".reshape([]).expand(self._ints(" + e.In(n, 0) + ")).clone()");
       }},
      {"Tile", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, e.In(n, 0) + ".repeat(self._ints(" + e.In(n, 1) + "))");
       }},
      {"InstanceNormalization", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.instance_norm(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + e.In(n, 2) +
                         ", None, None, True, 0.0, " + Float(n.attr_float("epsilon", 1e-5f)) + ", False)");
       }},
      {"ConvTranspose", [](Emitter& e, const ir::Node& n) {
         size_t sp = WeightSpatial(n);
         std::vector<int64_t> pads = Pads(n, sp);
         e.Assign(n, "torch.conv_transpose" + SpatialPrefix(sp) + "(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " +
                         e.In(n, 2) + ", " + IntList(Ints(n, "strides", sp, 1)) + ", " +
                         IntList(std::vector<int64_t>(pads.begin(), pads.begin() + static_cast<long>(sp))) + ", " +
                         IntList(Ints(n, "output_padding", sp, 0)) + ", " + std::to_string(n.attr_int("group", 1)) +
                         ", " + IntList(Ints(n, "dilations", sp, 1)) + ")");
       }},
      {"If", If},
      {"Loop", Loop},
      {"ReduceSum", Reduce},
      {"ReduceMax", Reduce},
      {"ReduceMin", Reduce},
      {"Greater", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.gt(" + e.In(n, 0) + ", " + e.In(n, 1) + ")");
       }},
      {"Less", [](Emitter& e, const ir::Node& n) {
         e.Assign(n, "torch.lt(" + e.In(n, 0) + ", " + e.In(n, 1) + ")");
       }},
      {"Pad", [](Emitter& e, const ir::Node& n) {
         const std::string mode = n.attr_string("mode", "constant");
         int code = mode == "edge" ? 1 : mode == "reflect" ? 2 : mode == "wrap" ? 3 : 0;
         e.Assign(n, "self._pad(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + e.In(n, 2) + ", " + e.In(n, 3) +
                         ", " + std::to_string(code) + ")");
       }},
      {"RNN", Recurrent},
      {"GRU", Recurrent},
      {"LSTM", Recurrent},
      {"com.microsoft::MatMulNBits", [](Emitter& e, const ir::Node& n) {
         std::string y = "self._nbits(" + e.In(n, 0) + ", " + e.In(n, 1) + ", " + e.In(n, 2) + ", " +
                         e.In(n, 3) + ", " + std::to_string(n.attr_int("N", 0)) + ", " +
                         std::to_string(n.attr_int("K", 0)) + ", " +
                         std::to_string(n.attr_int("block_size", 0)) + ")";
         if (n.input(5)) y = "(" + y + " + " + e.In(n, 5) + ")";
         e.Assign(n, y);
       }},
  };
  return w;
}

std::string Key(const ir::Node& n) {
  return n.domain().empty() || n.domain() == "ai.onnx" ? n.op_type()
                                                       : n.domain() + "::" + n.op_type();
}

// Why a node cannot be written, or "".
std::string Unsupported(const ir::Node& n) {
  if (!Writers().count(Key(n))) return "no TorchScript form for " + n.qualified_op();
  const std::string op = n.op_type();
  if ((op == "Conv" || op == "FusedConv" || op == "MaxPool" || op == "AveragePool") &&
      n.attr_string("auto_pad", "NOTSET").rfind("SAME", 0) == 0)
    return "auto_pad SAME";
  if (op == "AveragePool" && !Symmetric(Pads(n, n.attr_ints("kernel_shape", {}).size())))
    return "asymmetric pads";
  if ((op == "MaxPool" || op == "Dropout") && n.num_outputs() > 1 && n.output(1) &&
      !n.output(1)->name().empty())
    return "second output";
  if (op == "Constant" && (!n.attr("value") || !TorchDType(n.attr("value")->t.dtype())))
    return "constant without a tensor value of a torch dtype";
  if (op == "Cast" && !TorchDType(ir::DTypeFromOnnx(n.attr_int("to", 0)))) return "cast target";
  if (op == "RNN" || op == "GRU" || op == "LSTM") {
    // The forms the helper writes: default activations; sequence_lens, when given, must
    // be the full length (checked at run time, as the torch backend does).
    if (n.has_attr("activations")) return "activations attribute";
    if (n.has_attr("clip")) return "clip attribute";
    if (n.attr_int("input_forget", 0)) return "input_forget=1";
    std::string d = n.attr_string("direction", "forward");
    if (d != "forward" && d != "reverse" && d != "bidirectional") return "direction '" + d + "'";
  }
  if (op == "Loop" && n.attr("body") && n.attr("body")->g &&
      n.attr("body")->g->inputs().size() != n.num_inputs())
    return "body inputs do not match the loop's";
  if (op == "If" && (!n.attr("then_branch") || !n.attr("else_branch")))
    return "missing branch";
  if (op == "ConvTranspose") {
    if (n.has_attr("output_shape")) return "output_shape attribute";
    if (n.attr_string("auto_pad", "NOTSET") != "NOTSET" && n.attr_string("auto_pad", "NOTSET") != "VALID")
      return "auto_pad " + n.attr_string("auto_pad", "");
    if (!Symmetric(Pads(n, WeightSpatial(n)))) return "asymmetric pads";
  }
  if (op == "ConstantOfShape" && n.attr("value") && !TorchDType(n.attr("value")->t.dtype()))
    return "value of a dtype torch has no form for";
  if (op == "Pad") {
    std::string m = n.attr_string("mode", "constant");
    if (m != "constant" && m != "edge" && m != "reflect" && m != "wrap") return "mode '" + m + "'";
  }
  if ((op == "FusedConv" || op == "FusedGemm") && !n.attr_string("activation", "").empty() &&
      n.attr_string("activation", "") != "Relu" && n.attr_string("activation", "") != "Clip")
    return "fused activation " + n.attr_string("activation", "");
  if (op == "MatMulNBits" && (n.attr_int("bits", 4) != 4 || (n.num_inputs() > 4 && n.input(4))))
    return "bits other than 4 or g_idx";
  if (op == "QuantizeLinear" || op == "DequantizeLinear") {
    for (size_t i : {size_t{0}, size_t{2}}) {
      const ir::Value* v = n.input(i);
      if (!v) continue;
      ir::DType t = v->initializer() ? v->initializer()->dtype() : v->type.dtype;
      if (t != ir::DType::kInt8 && t != ir::DType::kUInt8 && t != ir::DType::kInt32 &&
          !(op == "QuantizeLinear" && i == 0))
        return std::string("quantized type ") + ir::DTypeName(t);
    }
    if (n.attr_int("block_size", 0)) return "blocked quantization";
  }
  for (const ir::Value* v : n.inputs())
    if (v && v->initializer() && !TorchDType(v->initializer()->dtype()))
      return "initializer '" + v->name() + "' of dtype " + ir::DTypeName(v->initializer()->dtype());
  return "";
}

// Every node that cannot be written, in subgraphs too.
void CollectProblems(const ir::Graph& g, std::vector<std::string>& problems) {
  for (const ir::Node* n : g.nodes()) {
    std::string why = Unsupported(*n);
    if (!why.empty()) problems.push_back(n->describe() + ": " + why);
    for (const ir::Attribute& a : n->attributes())
      if (a.g) CollectProblems(*a.g, problems);
  }
}

// One forward() argument of the signature file: the IR name, dtype and shape (known dims
// as numbers, symbolic ones by name, no "shape" when the rank is unknown), so a re-import
// gets the names and ranks TorchScript itself does not record.
nlohmann::json SignatureOf(const ir::Value& v, const std::string& arg) {
  nlohmann::json j{{"arg", arg}, {"name", v.name()}, {"dtype", ir::DTypeName(v.type.dtype)}};
  if (v.type.shape) {
    nlohmann::json dims = nlohmann::json::array();
    for (const ir::Dim& d : *v.type.shape)
      if (d.value >= 0) dims.push_back(d.value);
      else dims.push_back(d.symbol.empty() ? std::string("?") : d.symbol);
    j["shape"] = dims;
  }
  return j;
}

void EmitNodes(Emitter& e, const ir::Graph& g) {
  for (const ir::Node* n : g.nodes()) Writers().at(Key(*n))(e, *n);
}

struct Generated {
  std::string source;
  std::string signature;  // kTorchScriptSignatureFile's JSON
  std::vector<std::pair<std::string, const ir::Tensor*>> weights;
  std::vector<std::pair<std::string, ir::Tensor>> constants;
};

Generated Generate(const ir::Model& model) {
  const ir::Graph& g = *model.graph;
  std::vector<std::string> problems;
  CollectProblems(g, problems);
  int64_t opset = model.OpsetVersion("");
  if (opset > 0 && opset < 13)
    for (const ir::Node* n : g.nodes())
      if ((n->op_type() == "Softmax" || n->op_type() == "LogSoftmax") &&
          n->attr_int("axis", 1) != -1)
        problems.push_back(n->describe() + ": opset " + std::to_string(opset) +
                           " Softmax (2-D coercion) is not exported");
  if (!problems.empty()) {
    std::string msg =
        "TorchScript export: " + std::to_string(problems.size()) + " node(s) cannot be written:";
    for (const std::string& p : problems) msg += "\n  " + p;
    ThrowUnsupported(msg);
  }
  Emitter e(model);
  std::string args;
  int arg = 0;
  nlohmann::json sig_inputs = nlohmann::json::array(), sig_outputs = nlohmann::json::array();
  for (const ir::Value* v : g.inputs()) {
    if (v->initializer()) continue;  // a default the caller cannot override in TorchScript
    std::string name = "x" + std::to_string(arg++);
    e.names[v] = name;
    args += ", " + name + ": Tensor";
    sig_inputs.push_back(SignatureOf(*v, name));
  }
  for (const ir::Value* v : g.outputs()) sig_outputs.push_back(v->name());
  EmitNodes(e, g);
  std::vector<std::string> outs;
  for (const ir::Value* v : g.outputs()) {
    auto it = e.names.find(v);
    if (it == e.names.end()) {
      if (!v->initializer())
        ThrowInvalid("TorchScript export: output '" + v->name() + "' has no value");
      std::string attr = "w" + std::to_string(e.weights.size());
      e.weights.emplace_back(attr, v->initializer());
      e.names[v] = "self." + attr;
      it = e.names.find(v);
    }
    outs.push_back(it->second);
  }
  std::string ret_type = "Tensor", ret = outs.empty() ? "" : outs[0];
  if (outs.size() != 1) {
    ret_type = "Tuple[";
    ret = "(";
    for (size_t i = 0; i < outs.size(); ++i) {
      ret_type += std::string(i ? ", " : "") + "Tensor";
      ret += (i ? ", " : "") + outs[i];
    }
    ret_type += "]";
    ret += outs.size() == 1 ? ",)" : ")";
  }
  Generated gen;
  gen.source = std::string(kTorchScriptExportHelpers) + "\ndef forward(self" + args + ") -> " + ret_type + ":\n" +
               e.body.str() + "    return " + ret + "\n";
  gen.signature = nlohmann::json{{"format", 1}, {"inputs", sig_inputs}, {"outputs", sig_outputs}}.dump();
  gen.weights = std::move(e.weights);
  gen.constants = std::move(e.constants);
  return gen;
}

// A copy with every value's shape inferred where inference can: the specialised forms
// (Flatten, Squeeze, GlobalAveragePool at a known rank) and the signature file need
// ranks that a pass may have left unset on the values it created.
std::unique_ptr<ir::Model> Typed(const ir::Model& model) {
  std::unique_ptr<ir::Model> copy = model.Clone();
  try {
    ir::InferShapes(*copy);
  } catch (const Error&) {
    // Shapes stay as they were; the generic helpers need none.
  }
  return copy;
}

}  // namespace

std::string TorchScriptSource(const ir::Model& model) { return Generate(*Typed(model)).source; }

std::vector<std::string> TorchScriptExportOps() {
  std::vector<std::string> ops;
  for (const auto& [k, w] : Writers()) ops.push_back(k);
  return ops;
}

void SaveTorchScript(const ir::Model& model, const std::string& path,
                     const TorchScriptExportOptions& opts) {
  if (!model.graph) ThrowInvalid(path + ": no graph to export");
  std::unique_ptr<ir::Model> typed = Typed(model);  // outlives gen, which points at its weights
  Generated gen = Generate(*typed);
  try {
    torch::jit::Module m("EdgepressModel");
    for (const auto& [name, t] : gen.weights) {
      at::Tensor a = ToAt(*t);
      bool param = opts.float_weights_as_parameters && at::isFloatingType(a.scalar_type());
      m.register_parameter(name, a, /*is_buffer=*/!param);
    }
    for (const auto& [name, t] : gen.constants) m.register_buffer(name, ToAt(t));
    m.define(gen.source);
    torch::jit::ExtraFilesMap extra{{kTorchScriptSignatureFile, gen.signature}};
    WriteFileAtomicWith(path, [&](const std::string& tmp) { m.save(tmp, extra); });
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    ThrowUnsupported(path + ": TorchScript export failed: " + what.substr(0, what.find('\n', 400)));
  }
}

}  // namespace edgepress::formats
