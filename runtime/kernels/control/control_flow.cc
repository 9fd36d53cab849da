// Control-flow kernels: If, Loop and Scan (ONNX semantics, Scan opsets 8 and 9+). They
// run their bodies through KernelContext::RunSubgraph, so bodies see outer-scope values
// and use the session's kernels and arena like any graph. Loop-carried values thread
// through iterations; per-iteration scan outputs are stacked along a new axis.
#include <algorithm>
#include <cstring>
#include <limits>

#include "ir/error.h"
#include "runtime/kernels/all_kernels.h"

namespace edgepress::runtime {

namespace {

const ir::Graph& GraphAttr(const ir::Node& n, const char* name) {
  const ir::Attribute* a = n.attr(name);
  if (!a || a->kind != ir::Attribute::Kind::kGraph || !a->g)
    ThrowInvalid(n.describe() + ": missing graph attribute '" + name + "'");
  return *a->g;
}

bool Truthy(const ir::Node& n, const ir::Tensor& t, const char* what) {
  if (t.numel() < 1) ThrowInvalid(n.describe() + ": " + what + " is empty");
  switch (t.dtype()) {
    case ir::DType::kBool:
    case ir::DType::kUInt8:
    case ir::DType::kInt8:
      return t.data<uint8_t>()[0] != 0;
    default:
      return t.ToDouble().at(0) != 0;
  }
}

void CheckCopyable(const ir::Node& n, const ir::Tensor& t) {
  if (ir::IsPacked(t.dtype()) || t.dtype() == ir::DType::kUndefined)
    ThrowUnsupported(n.describe() + ": cannot slice or stack " + ir::DTypeName(t.dtype()) +
                     " tensors");
}

uint64_t Product(const std::vector<int64_t>& s, size_t begin, size_t end) {
  uint64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= static_cast<uint64_t>(s[i]);
  return p;
}

// Index `idx` of `t` along `axis`, with that axis removed.
ir::Tensor SliceAxis(const ir::Node& n, const ir::Tensor& t, int axis, int64_t idx) {
  CheckCopyable(n, t);
  std::vector<int64_t> shape = t.shape();
  uint64_t outer = Product(shape, 0, axis);
  uint64_t inner = Product(shape, axis + 1, shape.size());
  uint64_t len = static_cast<uint64_t>(shape[axis]);
  shape.erase(shape.begin() + axis);
  if (t.dtype() == ir::DType::kString) {
    std::vector<std::string> v;
    for (uint64_t o = 0; o < outer; ++o)
      for (uint64_t i = 0; i < inner; ++i) v.push_back(t.strings()[(o * len + idx) * inner + i]);
    return ir::Tensor::Strings(shape, std::move(v));
  }
  ir::Tensor out(t.dtype(), shape);
  uint64_t eb = ir::DTypeBytes(t.dtype(), 1);
  const uint8_t* src = static_cast<const uint8_t*>(t.raw());
  uint8_t* dst = static_cast<uint8_t*>(out.mutable_raw());
  for (uint64_t o = 0; o < outer; ++o)
    std::memcpy(dst + o * inner * eb, src + ((o * len + idx) * inner) * eb, inner * eb);
  return out;
}

// Stacks `items` (all the same dtype and shape) along a new axis `axis`; item t goes to
// position `reverse ? T-1-t : t`. `empty_dtype/empty_shape` describe a zero-length result.
ir::Tensor Stack(const ir::Node& n, const std::vector<ir::Tensor>& items, int64_t axis,
                 bool reverse, const ir::Value* declared) {
  if (items.empty()) {
    ir::DType dt = declared && declared->type.is_tensor() ? declared->type.dtype
                                                          : ir::DType::kFloat32;
    if (dt == ir::DType::kUndefined) dt = ir::DType::kFloat32;
    std::vector<int64_t> shape = {0};
    if (declared && declared->type.shape) {
      if (auto dims = ir::ConcreteDims(*declared->type.shape)) {
        shape = *dims;
        int64_t a = axis < 0 ? axis + static_cast<int64_t>(shape.size()) + 1 : axis;
        a = std::clamp<int64_t>(a, 0, static_cast<int64_t>(shape.size()));
        shape.insert(shape.begin() + a, 0);
      }
    }
    return dt == ir::DType::kString ? ir::Tensor::Strings(shape, {}) : ir::Tensor(dt, shape);
  }
  const ir::Tensor& first = items[0];
  CheckCopyable(n, first);
  int64_t rank = first.rank();
  if (axis < 0) axis += rank + 1;
  if (axis < 0 || axis > rank)
    ThrowInvalid(n.describe() + ": scan output axis out of range for rank " +
                 std::to_string(rank));
  for (const ir::Tensor& t : items)
    if (t.dtype() != first.dtype() || t.shape() != first.shape())
      ThrowInvalid(n.describe() + ": scan output changes dtype or shape across iterations");
  uint64_t T = items.size();
  std::vector<int64_t> shape = first.shape();
  uint64_t outer = Product(shape, 0, axis);
  uint64_t inner = Product(shape, axis, shape.size());
  shape.insert(shape.begin() + axis, static_cast<int64_t>(T));
  if (first.dtype() == ir::DType::kString) {
    std::vector<std::string> v(outer * T * inner);
    for (uint64_t t = 0; t < T; ++t) {
      uint64_t p = reverse ? T - 1 - t : t;
      for (uint64_t o = 0; o < outer; ++o)
        for (uint64_t i = 0; i < inner; ++i)
          v[(o * T + p) * inner + i] = items[t].strings()[o * inner + i];
    }
    return ir::Tensor::Strings(shape, std::move(v));
  }
  ir::Tensor out(first.dtype(), shape);
  uint64_t eb = ir::DTypeBytes(first.dtype(), 1);
  uint8_t* dst = static_cast<uint8_t*>(out.mutable_raw());
  for (uint64_t t = 0; t < T; ++t) {
    uint64_t p = reverse ? T - 1 - t : t;
    const uint8_t* src = static_cast<const uint8_t*>(items[t].raw());
    for (uint64_t o = 0; o < outer; ++o)
      std::memcpy(dst + ((o * T + p) * inner) * eb, src + o * inner * eb, inner * eb);
  }
  return out;
}

class IfKernel : public Kernel {
 public:
  void Run(KernelContext& ctx) override {
    const ir::Node& n = ctx.node();
    const ir::Tensor* cond = ctx.input(0);
    if (!cond) ThrowInvalid(n.describe() + ": missing condition input");
    const ir::Graph& g =
        GraphAttr(n, Truthy(n, *cond, "condition") ? "then_branch" : "else_branch");
    std::vector<ir::Tensor> outs = ctx.RunSubgraph(g, {});
    if (outs.size() != ctx.num_outputs())
      ThrowInvalid(n.describe() + ": branch '" + g.name + "' yields " +
                   std::to_string(outs.size()) + " outputs, the node has " +
                   std::to_string(ctx.num_outputs()));
    for (size_t i = 0; i < outs.size(); ++i) ctx.SetOutput(i, std::move(outs[i]));
  }
};

class LoopKernel : public Kernel {
 public:
  void Run(KernelContext& ctx) override {
    const ir::Node& n = ctx.node();
    const ir::Graph& body = GraphAttr(n, "body");
    if (ctx.num_inputs() < 2) ThrowInvalid(n.describe() + ": Loop needs inputs M and cond");
    size_t carried = ctx.num_inputs() - 2;
    if (ctx.num_outputs() < carried)
      ThrowInvalid(n.describe() + ": fewer outputs than loop-carried values");
    size_t scans = ctx.num_outputs() - carried;
    if (body.inputs().size() != carried + 2 || body.outputs().size() != carried + scans + 1)
      ThrowInvalid(n.describe() + ": body has " + std::to_string(body.inputs().size()) +
                   " inputs and " + std::to_string(body.outputs().size()) +
                   " outputs; expected " + std::to_string(carried + 2) + " and " +
                   std::to_string(carried + scans + 1));
    int64_t trip = std::numeric_limits<int64_t>::max();
    if (const ir::Tensor* m = ctx.input(0)) {
      if (m->numel() < 1) ThrowInvalid(n.describe() + ": trip count M is empty");
      trip = m->ToInt64()[0];
    }
    bool cond = true;
    if (const ir::Tensor* c = ctx.input(1)) cond = Truthy(n, *c, "cond");
    std::vector<ir::Tensor> values;
    for (size_t i = 0; i < carried; ++i) {
      const ir::Tensor* v = ctx.input(i + 2);
      if (!v) ThrowInvalid(n.describe() + ": loop-carried input " + std::to_string(i) + " is missing");
      values.push_back(*v);
    }
    std::vector<std::vector<ir::Tensor>> scan_items(scans);
    for (int64_t it = 0; it < trip && cond; ++it) {
      std::vector<ir::Tensor> ins;
      ins.push_back(ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {}, {it}));
      ins.push_back(ir::Tensor::FromVector<uint8_t>(ir::DType::kBool, {}, {uint8_t{1}}));
      for (ir::Tensor& v : values) ins.push_back(std::move(v));
      std::vector<ir::Tensor> outs = ctx.RunSubgraph(body, ins);
      cond = Truthy(n, outs.at(0), "body condition output");
      for (size_t i = 0; i < carried; ++i) values[i] = std::move(outs[1 + i]);
      for (size_t k = 0; k < scans; ++k) scan_items[k].push_back(std::move(outs[1 + carried + k]));
    }
    for (size_t i = 0; i < carried; ++i) ctx.SetOutput(i, std::move(values[i]));
    for (size_t k = 0; k < scans; ++k)
      if (ctx.output_requested(carried + k))
        ctx.SetOutput(carried + k,
                      Stack(n, scan_items[k], 0, false, body.outputs()[1 + carried + k]));
  }
};

class ScanKernel : public Kernel {
 public:
  void Run(KernelContext& ctx) override {
    const ir::Node& n = ctx.node();
    const ir::Graph& body = GraphAttr(n, "body");
    int64_t m = n.attr_int("num_scan_inputs", -1);
    if (m < 1) ThrowInvalid(n.describe() + ": num_scan_inputs must be >= 1");
    // Opset 8 has a leading sequence_lens input and a batch axis; its body then has one
    // input fewer than the node.
    bool v8 = body.inputs().size() + 1 == ctx.num_inputs();
    size_t first = v8 ? 1 : 0;
    if (ctx.num_inputs() < first + static_cast<size_t>(m))
      ThrowInvalid(n.describe() + ": fewer inputs than num_scan_inputs");
    size_t states = ctx.num_inputs() - first - m;
    if (body.inputs().size() != states + m || ctx.num_outputs() < states ||
        body.outputs().size() != ctx.num_outputs())
      ThrowInvalid(n.describe() + ": body inputs/outputs do not match the node");
    size_t k = ctx.num_outputs() - states;
    std::vector<const ir::Tensor*> ins;
    for (size_t i = first; i < ctx.num_inputs(); ++i) {
      if (!ctx.input(i)) ThrowInvalid(n.describe() + ": input " + std::to_string(i) + " is missing");
      ins.push_back(ctx.input(i));
    }
    std::vector<int64_t> in_dirs, in_axes(m, 0), out_dirs, out_axes(k, 0);
    if (v8) {
      in_dirs = n.attr_ints("directions", std::vector<int64_t>(m, 0));
    } else {
      in_dirs = n.attr_ints("scan_input_directions", std::vector<int64_t>(m, 0));
      in_axes = n.attr_ints("scan_input_axes", std::vector<int64_t>(m, 0));
      out_dirs = n.attr_ints("scan_output_directions", std::vector<int64_t>(k, 0));
      out_axes = n.attr_ints("scan_output_axes", std::vector<int64_t>(k, 0));
    }
    if (out_dirs.empty()) out_dirs.assign(k, 0);
    if (in_dirs.size() != static_cast<size_t>(m) || in_axes.size() != static_cast<size_t>(m) ||
        out_dirs.size() != k || out_axes.size() != k)
      ThrowInvalid(n.describe() + ": direction/axis attributes do not match the scan counts");

    if (!v8) {
      std::vector<ir::Tensor> st, sc;
      for (size_t i = 0; i < states; ++i) st.push_back(*ins[i]);
      for (int64_t j = 0; j < m; ++j) sc.push_back(*ins[states + j]);
      std::vector<ir::Tensor> outs = Core(ctx, body, st, sc, in_dirs, in_axes, out_dirs, out_axes);
      for (size_t i = 0; i < outs.size(); ++i) ctx.SetOutput(i, std::move(outs[i]));
      return;
    }
    // Opset 8: run each batch entry separately, then stack the results along axis 0.
    const ir::Tensor* lens = ctx.input(0);
    int64_t batch = -1;
    for (const ir::Tensor* t : ins) {
      if (t->rank() < 1) ThrowInvalid(n.describe() + ": opset-8 Scan inputs need a batch axis");
      if (batch >= 0 && t->shape()[0] != batch)
        ThrowInvalid(n.describe() + ": inputs disagree on the batch size");
      batch = t->shape()[0];
    }
    std::vector<std::vector<ir::Tensor>> per_output(ctx.num_outputs());
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<ir::Tensor> st, sc;
      for (size_t i = 0; i < states; ++i) st.push_back(SliceAxis(n, *ins[i], 0, b));
      for (int64_t j = 0; j < m; ++j) {
        ir::Tensor s = SliceAxis(n, *ins[states + j], 0, b);
        if (lens && lens->numel() > static_cast<uint64_t>(b) && s.rank() > 0 &&
            lens->ToInt64()[b] != s.shape()[0])
          ThrowUnsupported(n.describe() + ": sequence_lens shorter than the sequence");
        sc.push_back(std::move(s));
      }
      std::vector<ir::Tensor> outs = Core(ctx, body, st, sc, in_dirs, in_axes, out_dirs, out_axes);
      for (size_t i = 0; i < outs.size(); ++i) per_output[i].push_back(std::move(outs[i]));
    }
    for (size_t i = 0; i < per_output.size(); ++i)
      ctx.SetOutput(i, Stack(n, per_output[i], 0, false, nullptr));
  }

 private:
  static std::vector<ir::Tensor> Core(KernelContext& ctx, const ir::Graph& body,
                                      std::vector<ir::Tensor> states,
                                      const std::vector<ir::Tensor>& scans,
                                      const std::vector<int64_t>& in_dirs,
                                      std::vector<int64_t> in_axes,
                                      const std::vector<int64_t>& out_dirs,
                                      const std::vector<int64_t>& out_axes) {
    const ir::Node& n = ctx.node();
    int64_t len = -1;
    for (size_t j = 0; j < scans.size(); ++j) {
      int64_t r = scans[j].rank();
      if (in_axes[j] < 0) in_axes[j] += r;
      if (in_axes[j] < 0 || in_axes[j] >= r)
        ThrowInvalid(n.describe() + ": scan input axis out of range");
      int64_t l = scans[j].shape()[in_axes[j]];
      if (len >= 0 && l != len)
        ThrowInvalid(n.describe() + ": scan inputs disagree on the sequence length");
      len = l;
    }
    size_t k = out_dirs.size();
    std::vector<std::vector<ir::Tensor>> items(k);
    for (int64_t t = 0; t < len; ++t) {
      std::vector<ir::Tensor> ins = states;
      for (size_t j = 0; j < scans.size(); ++j)
        ins.push_back(SliceAxis(n, scans[j], static_cast<int>(in_axes[j]),
                                in_dirs[j] ? len - 1 - t : t));
      std::vector<ir::Tensor> outs = ctx.RunSubgraph(body, ins);
      for (size_t i = 0; i < states.size(); ++i) states[i] = std::move(outs[i]);
      for (size_t o = 0; o < k; ++o) items[o].push_back(std::move(outs[states.size() + o]));
    }
    std::vector<ir::Tensor> result = std::move(states);
    for (size_t o = 0; o < k; ++o)
      result.push_back(Stack(n, items[o], out_axes[o], out_dirs[o] != 0,
                             body.outputs()[result.size()]));
    return result;
  }
};

template <typename K>
std::unique_ptr<Kernel> Make(const KernelInit&) {
  return std::make_unique<K>();
}

}  // namespace

void RegisterControlFlowKernels(KernelRegistry& r) {
  r.Add({"If", "", ir::DType::kUndefined, Isa::kScalar, "any_if__ref", &Make<IfKernel>});
  r.Add({"Loop", "", ir::DType::kUndefined, Isa::kScalar, "any_loop__ref", &Make<LoopKernel>});
  r.Add({"Scan", "", ir::DType::kUndefined, Isa::kScalar, "any_scan__ref", &Make<ScanKernel>});
}

}  // namespace edgepress::runtime
