#include "runtime/torch/torch_session.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "formats/torchscript/torch_compat.h"
#include "formats/torchscript/torch_dtype.h"
#include "ir/error.h"
#include "runtime/torch/torch_ops.h"

namespace edgepress::runtime {

namespace torch_ops {

const at::Tensor& OpContext::in(size_t i) const {
  if (!has(i)) Fail("input " + std::to_string(i) + " is missing");
  return inputs[i];
}

std::vector<int64_t> OpContext::ints(size_t i) const {
  at::Tensor t = in(i).detach().to(at::kCPU).to(at::kLong).contiguous();
  const int64_t* p = t.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + t.numel());
}

double OpContext::scalar(size_t i) const {
  const at::Tensor& t = in(i);
  if (t.numel() != 1) Fail("input " + std::to_string(i) + " must hold one value");
  return t.detach().to(at::kCPU).to(at::kDouble).item<double>();
}

bool OpContext::wants(size_t i) const {
  const ir::Value* v = node.output(i);
  return v && (!v->uses().empty() || v->is_graph_output());
}

void OpContext::Fail(const std::string& what) const { ThrowInvalid(node.describe() + ": " + what); }

const std::vector<ConverterDef>& AllConverters() {
  static const std::vector<ConverterDef> all = [] {
    std::vector<ConverterDef> v;
    AddElementwiseConverters(v);
    AddNnConverters(v);
    AddTensorConverters(v);
    AddQuantConverters(v);
    AddResizeConverters(v);
    return v;
  }();
  return all;
}

const ConverterDef* FindConverter(const std::string& op_type, const std::string& domain) {
  static const std::map<std::string, const ConverterDef*> by_name = [] {
    std::map<std::string, const ConverterDef*> m;
    for (const ConverterDef& d : AllConverters()) m[std::string(d.domain) + "::" + d.op_type] = &d;
    return m;
  }();
  std::string dom = domain == "ai.onnx" ? "" : domain;
  auto it = by_name.find(dom + "::" + op_type);
  return it == by_name.end() ? nullptr : it->second;
}

at::ScalarType ToScalarType(ir::DType t) {
  if (const std::optional<at::ScalarType> st = torch_dtype::ToScalarType(t)) return *st;
  ThrowUnsupported(std::string("torch backend: no LibTorch type for dtype ") + ir::DTypeName(t));
}

ir::DType FromScalarType(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return ir::DType::kFloat32;
    case at::kHalf:
      return ir::DType::kFloat16;
    case at::kBFloat16:
      return ir::DType::kBFloat16;
    case at::kDouble:
      return ir::DType::kFloat64;
    case at::kLong:
      return ir::DType::kInt64;
    case at::kInt:
      return ir::DType::kInt32;
    case at::kShort:
      return ir::DType::kInt16;
    case at::kChar:
      return ir::DType::kInt8;
    case at::kByte:
      return ir::DType::kUInt8;
    case at::kBool:
      return ir::DType::kBool;
    default:
      ThrowUnsupported(std::string("torch backend: no IR dtype for LibTorch type ") +
                       c10::toString(t));
  }
}

at::Tensor ToTorch(const ir::Tensor& t, const at::Device& device) {
  at::ScalarType st = ToScalarType(t.dtype());
  std::vector<int64_t> shape = t.shape();
  at::Tensor host;
  if (t.dtype() == ir::DType::kInt4 || t.dtype() == ir::DType::kUInt4) {
    host = at::empty(shape, at::TensorOptions().dtype(st));
    const uint8_t* src = static_cast<const uint8_t*>(t.raw());
    bool is_signed = t.dtype() == ir::DType::kInt4;
    int8_t* dst = static_cast<int8_t*>(host.data_ptr());
    for (uint64_t i = 0; i < t.numel(); ++i) {
      int v = (src[i / 2] >> ((i % 2) * 4)) & 0xF;
      if (is_signed && v >= 8) v -= 16;
      dst[i] = static_cast<int8_t>(v);
    }
  } else {
    host = at::empty(shape, at::TensorOptions().dtype(st));
    if (t.nbytes() > 0) std::memcpy(host.data_ptr(), t.raw(), t.nbytes());
  }
  return device.is_cpu() ? host : host.to(device);
}

ir::Tensor FromTorch(const at::Tensor& t, ir::DType want) {
  at::Tensor c = t.detach().to(at::kCPU).contiguous();
  std::vector<int64_t> shape(c.sizes().begin(), c.sizes().end());
  if (want == ir::DType::kInt4 || want == ir::DType::kUInt4) {
    ir::Tensor out(want, shape);
    at::Tensor v = c.to(at::kInt);
    const int32_t* src = v.data_ptr<int32_t>();
    uint8_t* dst = static_cast<uint8_t*>(out.mutable_raw());
    std::memset(dst, 0, out.nbytes());
    for (int64_t i = 0; i < v.numel(); ++i)
      dst[i / 2] |= static_cast<uint8_t>((src[i] & 0xF) << ((i % 2) * 4));
    return out;
  }
  ir::Tensor out(FromScalarType(c.scalar_type()), shape);
  if (out.nbytes() > 0) std::memcpy(out.mutable_raw(), c.data_ptr(), out.nbytes());
  return out;
}

int64_t NormAxis(int64_t axis, int64_t rank, const ir::Node& node) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    ThrowInvalid(node.describe() + ": axis " + std::to_string(axis) + " out of range for rank " +
                 std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> ConvPads(const ir::Node& node, const at::Tensor& x,
                              const std::vector<int64_t>& kernel,
                              const std::vector<int64_t>& strides,
                              const std::vector<int64_t>& dilations) {
  size_t n = kernel.size();
  std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  std::vector<int64_t> pads(2 * n, 0);
  if (auto_pad == "NOTSET") {
    std::vector<int64_t> p = node.attr_ints("pads", {});
    if (!p.empty() && p.size() != 2 * n)
      ThrowInvalid(node.describe() + ": pads has " + std::to_string(p.size()) +
                   " values, expected " + std::to_string(2 * n));
    if (!p.empty()) pads = p;
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (size_t i = 0; i < n; ++i) {
      int64_t in = x.size(static_cast<int64_t>(2 + i));
      int64_t out = (in + strides[i] - 1) / strides[i];
      int64_t total =
          std::max<int64_t>(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in);
      int64_t small = total / 2, big = total - small;
      pads[i] = auto_pad == "SAME_UPPER" ? small : big;
      pads[i + n] = auto_pad == "SAME_UPPER" ? big : small;
    }
  } else if (auto_pad != "VALID") {
    ThrowInvalid(node.describe() + ": unknown auto_pad '" + auto_pad + "'");
  }
  return pads;
}

at::Tensor PadSpatial(const at::Tensor& x, const std::vector<int64_t>& pads, double value) {
  size_t n = pads.size() / 2;
  if (std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; })) return x;
  // constant_pad_nd takes (last dim begin, end, second-to-last begin, end, ...).
  std::vector<int64_t> tp;
  for (size_t i = n; i-- > 0;) {
    tp.push_back(pads[i]);
    tp.push_back(pads[i + n]);
  }
  return at::constant_pad_nd(x, tp, value);
}

std::string CheckActivation(const ir::Node& node) {
  std::string act = node.attr_string("activation", "");
  if (act.empty() || act == "Relu" || act == "Clip" || act == "Sigmoid" || act == "Tanh" ||
      act == "LeakyRelu" || act == "HardSigmoid" || act == "HardSwish")
    return "";
  return "fused activation '" + act + "'";
}

at::Tensor ApplyActivation(const ir::Node& node, at::Tensor y) {
  std::string act = node.attr_string("activation", "");
  std::vector<float> p = node.attr_floats("activation_params", {});
  if (act.empty()) return y;
  if (act == "Relu") return at::relu(y);
  if (act == "Sigmoid") return at::sigmoid(y);
  if (act == "Tanh") return at::tanh(y);
  if (act == "LeakyRelu") return at::leaky_relu(y, p.empty() ? 0.01 : p[0]);
  if (act == "HardSwish") return at::hardswish(y);
  if (act == "HardSigmoid")  // ONNX's alpha, beta (torch's hardsigmoid fixes 1/6, 1/2)
    return at::clamp(y * (p.size() == 2 ? p[0] : 0.2f) + (p.size() == 2 ? p[1] : 0.5f), 0.0, 1.0);
  if (act == "Clip") {
    if (p.size() != 2)
      ThrowInvalid(node.describe() + ": activation Clip needs 2 activation_params, got " +
                   std::to_string(p.size()));
    return at::clamp(y, p[0], p[1]);
  }
  ThrowUnsupported(node.describe() + ": fused activation '" + act + "'");
}

}  // namespace torch_ops

using torch_ops::FromTorch;
using torch_ops::ToTorch;

namespace {

// Values live while a graph runs; subgraph frames see their parents' values (ONNX outer
// scope), keyed by the IR Value, which nodes of a subgraph share with the enclosing graph.
struct Frame {
  const Frame* parent = nullptr;
  std::unordered_map<const ir::Value*, at::Tensor> values;
  const at::Tensor* Find(const ir::Value* v) const {
    for (const Frame* f = this; f; f = f->parent) {
      auto it = f->values.find(v);
      if (it != f->values.end()) return &it->second;
    }
    return nullptr;
  }
};

at::Device ParseDevice(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  if (lower != "cpu" && lower.rfind("cuda", 0) != 0)
    throw Error(ErrorCode::kUsage,
                "torch backend: unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
  at::Device dev(at::kCPU);
  try {
    dev = at::Device(lower);
  } catch (const c10::Error&) {
    throw Error(ErrorCode::kUsage,
                "torch backend: unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
  }
  if (dev.is_cuda()) {
    if (!torch::cuda::is_available())
      ThrowUnsupported("torch backend: device '" + name +
                       "' requested, but this LibTorch build has no CUDA or no CUDA device is "
                       "visible (Debian's libtorch-dev is CPU-only; build against a CUDA "
                       "LibTorch, see docs/torch_backend.md)");
    int count = static_cast<int>(torch::cuda::device_count());
    if (dev.has_index() && dev.index() >= count)
      ThrowUnsupported("torch backend: device '" + name + "' requested, but only " +
                       std::to_string(count) + " CUDA device(s) are visible");
  }
  return dev;
}

std::string FirstLine(const std::string& s) {
  std::string l = s.substr(0, s.find('\n'));
  return l.size() > 400 ? l.substr(0, 400) + "..." : l;
}

// Every node (subgraphs included) whose op has no converter or whose attributes the
// converter cannot handle, in one sweep.
void CollectUnsupported(const ir::Graph& g, const ir::Model& m, std::vector<std::string>& out) {
  for (const ir::Node* n : g.nodes()) {
    const torch_ops::ConverterDef* def = torch_ops::FindConverter(n->op_type(), n->domain());
    if (!def) {
      out.push_back(n->describe() + ": no converter for " + n->qualified_op());
    } else if (def->check) {
      std::string why = def->check(*n);
      if (!why.empty()) out.push_back(n->describe() + ": " + why);
    }
    for (const ir::Graph* sub : n->subgraphs()) CollectUnsupported(*sub, m, out);
  }
}

}  // namespace

struct TorchSession::Impl {
  std::shared_ptr<ir::Model> model;
  at::Device device{at::kCPU};
  std::string device_name = "cpu";
  // Initializers of every graph (subgraphs included) as tensors on `device`.
  std::unordered_map<const ir::Value*, at::Tensor> weights;
  std::vector<const ir::Value*> trainable;  // in ParameterNames() order
  std::shared_ptr<TorchValueHook> hook;
  // Main-graph node index after which a value is no longer read (for freeing early).
  std::unordered_map<const ir::Value*, size_t> last_use;

  void LoadWeights(const ir::Graph& g, const std::set<const ir::Value*>& train) {
    for (const ir::Value* v : g.initializers()) {
      at::Tensor t = ToTorch(*v->initializer(), device);
      if (train.count(v)) t.set_requires_grad(true);
      weights[v] = t;
    }
    for (const ir::Node* n : g.nodes())
      for (const ir::Graph* sub : n->subgraphs()) LoadWeights(*sub, train);
  }

  int64_t Opset(const ir::Node& n) const {
    return model->OpsetVersion(n.domain().empty() ? "" : n.domain());
  }

  std::vector<at::Tensor> RunGraph(const ir::Graph& g, Frame& frame,
                                   const std::set<const ir::Value*>* keep) {
    std::vector<ir::Node*> nodes = g.nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      const ir::Node& n = *nodes[i];
      std::vector<at::Tensor> ins;
      for (const ir::Value* v : n.inputs()) {
        if (!v) {
          ins.emplace_back();
          continue;
        }
        const at::Tensor* t = frame.Find(v);
        if (!t) {
          auto w = weights.find(v);
          if (w == weights.end())
            ThrowInvalid(n.describe() + ": input '" + v->name() + "' has no value");
          t = &w->second;
        }
        ins.push_back(*t);
      }
      const torch_ops::ConverterDef* def = torch_ops::FindConverter(n.op_type(), n.domain());
      if (!def) ThrowUnsupported(n.describe() + ": no converter for " + n.qualified_op());
      torch_ops::OpContext ctx(
          n, std::move(ins), Opset(n), device,
          [this, &frame](const ir::Graph& sub, const std::vector<at::Tensor>& in) {
            return RunSubgraph(sub, frame, in);
          });
      std::vector<at::Tensor> outs;
      try {
        outs = def->fn(ctx);
      } catch (const c10::Error& e) {
        ThrowInvalid(n.describe() + ": LibTorch: " + FirstLine(e.what_without_backtrace()));
      }
      for (size_t o = 0; o < n.num_outputs(); ++o) {
        const ir::Value* v = n.output(o);
        if (!v || v->name().empty()) continue;
        if (o >= outs.size() || !outs[o].defined()) {
          if (ctx.wants(o))
            ThrowUnsupported(n.describe() + ": output " + std::to_string(o) +
                             " is not produced by the torch backend");
          continue;
        }
        frame.values[v] = hook ? hook->Apply(*v, outs[o]) : outs[o];
      }
      // Free values of the main graph after their last reader (inference memory).
      if (keep) {
        for (const ir::Value* v : n.inputs()) {
          if (!v || keep->count(v)) continue;
          auto lu = last_use.find(v);
          if (lu != last_use.end() && lu->second == i) frame.values.erase(v);
        }
      }
    }
    std::vector<at::Tensor> result;
    for (const ir::Value* v : g.outputs()) {
      const at::Tensor* t = frame.Find(v);
      if (!t) {
        auto w = weights.find(v);
        if (w == weights.end()) ThrowInvalid("graph output '" + v->name() + "' has no value");
        t = &w->second;
      }
      result.push_back(*t);
    }
    return result;
  }

  std::vector<at::Tensor> RunSubgraph(const ir::Graph& g, const Frame& parent,
                                      const std::vector<at::Tensor>& inputs) {
    Frame f;
    f.parent = &parent;
    if (inputs.size() != g.inputs().size())
      ThrowInvalid("subgraph '" + g.name + "' takes " + std::to_string(g.inputs().size()) +
                   " inputs, got " + std::to_string(inputs.size()));
    for (size_t i = 0; i < inputs.size(); ++i) f.values[g.inputs()[i]] = inputs[i];
    return RunGraph(g, f, nullptr);
  }

  void ComputeLastUse() {
    std::vector<ir::Node*> nodes = model->graph->nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      for (const ir::Value* v : nodes[i]->inputs())
        if (v) last_use[v] = i;
      // Values read inside subgraphs stay alive until their owner node has run.
      std::function<void(const ir::Graph&)> mark = [&](const ir::Graph& sub) {
        for (const ir::Node* sn : sub.nodes()) {
          for (const ir::Value* v : sn->inputs())
            if (v && v->graph() == model->graph.get()) last_use[v] = std::max(last_use[v], i);
          for (const ir::Graph* s2 : sn->subgraphs()) mark(*s2);
        }
      };
      for (const ir::Graph* sub : nodes[i]->subgraphs()) mark(*sub);
    }
  }

  // Graph inputs the caller feeds, validated as the native Session does.
  void BindInputs(const std::vector<std::pair<std::string, at::Tensor>>& inputs, Frame& f) {
    const ir::Graph& g = *model->graph;
    std::map<std::string, const ir::Value*> declared;
    for (const ir::Value* v : g.inputs()) declared[v->name()] = v;
    for (const auto& [name, t] : inputs) {
      auto it = declared.find(name);
      if (it == declared.end()) ThrowInvalid("unknown input '" + name + "'");
      const ir::Value* v = it->second;
      if (f.values.count(v)) ThrowInvalid("input '" + name + "' given twice");
      if (v->type.is_tensor()) {
        ir::DType want = v->type.dtype;
        if (want != ir::DType::kUndefined && torch_ops::ToScalarType(want) != t.scalar_type())
          ThrowInvalid("input '" + name + "': dtype " + c10::toString(t.scalar_type()) +
                       " does not match the declared " + ir::DTypeName(want));
        if (v->type.shape) {
          const ir::Shape& s = *v->type.shape;
          bool ok = static_cast<int64_t>(s.size()) == t.dim();
          for (size_t d = 0; ok && d < s.size(); ++d)
            ok = !s[d].known() || s[d].value == t.size(static_cast<int64_t>(d));
          if (!ok)
            ThrowInvalid("input '" + name + "': shape " + c10::str(t.sizes()) +
                         " does not match the declared " + ir::ShapeToString(s));
        }
      }
      f.values[v] = t.device() == device ? t : t.to(device);
      if (hook) f.values[v] = hook->Apply(*v, f.values[v]);
    }
    for (const ir::Value* v : g.inputs())
      if (!f.values.count(v) && !v->is_initializer())
        ThrowInvalid("missing input '" + v->name() + "'");
  }
};

TorchSession::TorchSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TorchSession::~TorchSession() = default;

bool TorchSession::CudaAvailable() { return torch::cuda::is_available(); }

std::vector<std::string> TorchSession::SupportedOps() {
  std::vector<std::string> ops;
  for (const auto& d : torch_ops::AllConverters())
    ops.push_back(std::string(d.domain).empty() ? d.op_type
                                                : std::string(d.domain) + "::" + d.op_type);
  std::sort(ops.begin(), ops.end());
  return ops;
}

std::unique_ptr<TorchSession> TorchSession::Create(std::shared_ptr<ir::Model> model,
                                                   const TorchSessionOptions& opts) {
  if (!model || !model->graph) ThrowInvalid("torch backend: no model");
  std::vector<std::string> unsupported;
  CollectUnsupported(*model->graph, *model, unsupported);
  if (!unsupported.empty()) {
    std::string msg =
        "torch backend: " + std::to_string(unsupported.size()) + " node(s) cannot run:";
    for (const std::string& u : unsupported) msg += "\n  " + u;
    ThrowUnsupported(msg);
  }
  auto impl = std::make_unique<Impl>();
  impl->model = std::move(model);
  impl->device = ParseDevice(opts.device);
  impl->hook = opts.value_hook;
  if (opts.threads > 0) at::set_num_threads(opts.threads);
  impl->device_name = impl->device.str();
  std::set<const ir::Value*> train;
  const ir::Graph& g = *impl->model->graph;
  for (const std::string& name : opts.trainable) {
    const ir::Value* v = nullptr;
    for (const ir::Value* w : g.initializers())
      if (w->name() == name) v = w;
    if (!v) ThrowInvalid("torch backend: trainable '" + name + "' is not an initializer");
    if (!ir::IsFloat(v->initializer()->dtype()))
      ThrowInvalid("torch backend: trainable '" + name + "' is " +
                   ir::DTypeName(v->initializer()->dtype()) + ", not float");
    train.insert(v);
  }
  if (opts.train_all_float)
    for (const ir::Value* w : g.initializers())
      if (ir::IsFloat(w->initializer()->dtype()) && w->initializer()->numel() > 1) train.insert(w);
  for (const ir::Value* w : g.initializers())
    if (train.count(w)) impl->trainable.push_back(w);
  try {
    impl->LoadWeights(g, train);
  } catch (const c10::Error& e) {
    ThrowUnsupported("torch backend: moving weights to " + impl->device_name + ": " +
                     FirstLine(e.what_without_backtrace()));
  }
  impl->ComputeLastUse();
  return std::unique_ptr<TorchSession>(new TorchSession(std::move(impl)));
}

TorchNamedTensors TorchSession::Run(const TorchNamedTensors& inputs) {
  at::NoGradGuard no_grad;
  Frame f;
  std::vector<std::pair<std::string, at::Tensor>> tin;
  for (const auto& [name, t] : inputs) {
    if (t.dtype() == ir::DType::kString) ThrowUnsupported("input '" + name + "': string tensors");
    tin.emplace_back(name, ToTorch(t, impl_->device));
  }
  impl_->BindInputs(tin, f);
  std::set<const ir::Value*> keep(impl_->model->graph->outputs().begin(),
                                  impl_->model->graph->outputs().end());
  std::vector<at::Tensor> outs = impl_->RunGraph(*impl_->model->graph, f, &keep);
  TorchNamedTensors result;
  const auto& gouts = impl_->model->graph->outputs();
  for (size_t i = 0; i < outs.size(); ++i) {
    ir::DType want = gouts[i]->type.dtype;
    result.emplace_back(gouts[i]->name(),
                        FromTorch(outs[i], ir::IsPacked(want) ? want : ir::DType::kUndefined));
  }
  return result;
}

std::vector<at::Tensor> TorchSession::Forward(
    const std::vector<std::pair<std::string, at::Tensor>>& inputs,
    const std::vector<std::string>& fetch) {
  Frame f;
  impl_->BindInputs(inputs, f);
  const ir::Graph& g = *impl_->model->graph;
  std::vector<const ir::Value*> wanted;
  for (const std::string& name : fetch) {
    const ir::Value* v = g.FindValue(name);
    if (!v) ThrowInvalid("torch backend: no value named '" + name + "' to fetch");
    wanted.push_back(v);
  }
  std::vector<at::Tensor> outs = impl_->RunGraph(g, f, nullptr);
  if (fetch.empty()) return outs;
  std::vector<at::Tensor> result;
  for (const ir::Value* v : wanted) {
    const at::Tensor* t = f.Find(v);
    if (!t) {
      auto w = impl_->weights.find(v);
      if (w == impl_->weights.end())
        ThrowInvalid("torch backend: value '" + v->name() + "' was not computed");
      t = &w->second;
    }
    result.push_back(*t);
  }
  return result;
}

std::vector<at::Tensor> TorchSession::Parameters() const {
  std::vector<at::Tensor> p;
  for (const ir::Value* v : impl_->trainable) p.push_back(impl_->weights.at(v));
  return p;
}

std::vector<std::string> TorchSession::ParameterNames() const {
  std::vector<std::string> names;
  for (const ir::Value* v : impl_->trainable) names.push_back(v->name());
  return names;
}

void TorchSession::To(const std::string& device) {
  at::Device dev = ParseDevice(device);
  for (auto& [v, t] : impl_->weights) {
    bool grad = t.requires_grad();
    at::Tensor moved = t.detach().to(dev);
    if (grad) moved.set_requires_grad(true);
    t = moved;
  }
  impl_->device = dev;
  impl_->device_name = dev.str();
}

std::string TorchSession::device() const { return impl_->device_name; }

int TorchSession::WriteBack() {
  int written = 0;
  for (const ir::Value* v : impl_->trainable) {
    ir::Value* mv = const_cast<ir::Value*>(v);
    ir::Tensor* init = mv->mutable_initializer();
    at::Tensor t = impl_->weights.at(v).detach().to(torch_ops::ToScalarType(init->dtype()));
    ir::Tensor updated = FromTorch(t);
    updated.quant = init->quant;
    updated.sparse = init->sparse;
    *init = std::move(updated);
    ++written;
  }
  return written;
}

const ir::Model& TorchSession::model() const { return *impl_->model; }

}  // namespace edgepress::runtime
