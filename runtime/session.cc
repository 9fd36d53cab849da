#include "runtime/session.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include <unistd.h>
#include <unordered_map>

#include "ir/error.h"
#include "runtime/planner.h"

#if defined(EDGEPRESS_HAVE_EPK) && __has_include("formats/epk/epk.h")
#include "formats/epk/epk.h"
#define EDGEPRESS_SESSION_EPK 1
#endif

namespace edgepress::runtime {

struct Session::Frame {
  GraphPlan* plan = nullptr;
  std::vector<ir::Tensor> slots;
  Frame* parent = nullptr;

  // The value at `r`: the slot's tensor, or the plan's constant for a slot never written
  // (constants are not copied into frames; a graph input's fed value overrides its
  // initializer because it fills the slot).
  const ir::Tensor* At(ValueRef r) const {
    const Frame* f = this;
    for (int d = 0; d < r.depth && f; ++d) f = f->parent;
    if (!f || r.slot < 0 || r.slot >= static_cast<int>(f->slots.size())) return nullptr;
    const ir::Tensor& t = f->slots[static_cast<size_t>(r.slot)];
    if (t.empty()) {
      if (const ir::Tensor* c = f->plan->constant_at[static_cast<size_t>(r.slot)]) return c;
    }
    return &t;
  }
};

namespace {

// Ops whose kernels compute output[i] from input0[i] (and, for binary ops, a broadcast
// second operand), so that output 0 may share input 0's buffer when input 0 dies here.
bool InPlaceEligible(const ir::Node& n) {
  static const std::set<std::string> kOps = {
      "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf", "Gelu",
      "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Clip", "Elu", "Selu", "Softplus",
      "Floor", "Ceil", "Add", "Sub", "Mul", "Div", "Sin", "Cos"};
  return (n.domain().empty() || n.domain() == "ai.onnx") && n.num_outputs() == 1 &&
         kOps.count(n.op_type()) > 0;
}

std::string WithNode(const ir::Node& n, const std::string& what) {
  return what.find(n.describe()) == std::string::npos ? n.describe() + ": " + what : what;
}

std::string TensorTypeString(const ir::Tensor& t) {
  std::string s = ir::DTypeName(t.dtype());
  s += ir::ShapeToString(ir::MakeShape(t.shape()));
  return s;
}

std::string TypesOf(const std::vector<const ir::Tensor*>& tensors) {
  std::string s;
  for (const ir::Tensor* t : tensors) {
    if (!s.empty()) s += ", ";
    s += t && !t->empty() ? TensorTypeString(*t) : std::string("-");
  }
  return s;
}

std::mutex& LoaderMutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, Session::ModelLoader>& Loaders() {
  static std::map<std::string, Session::ModelLoader> loaders;
  return loaders;
}

}  // namespace

// The KernelContext of one node execution inside a frame.
class SessionContext : public KernelContext {
 public:
  SessionContext(Session& s, NodePlan& np, Session::Frame& frame,
                 const std::vector<const ir::Tensor*>& inputs, int in_place_slot)
      : s_(s), np_(np), frame_(frame), inputs_(inputs), in_place_slot_(in_place_slot) {}

  const ir::Node& node() const override { return *np_.node; }
  size_t num_inputs() const override { return inputs_.size(); }
  const ir::Tensor* input(size_t i) const override {
    return i < inputs_.size() ? inputs_[i] : nullptr;
  }
  size_t num_outputs() const override { return np_.outputs.size(); }
  bool output_requested(size_t i) const override {
    return i < np_.outputs.size() && np_.outputs[i] >= 0;
  }
  ir::Tensor& AllocateOutput(size_t i, ir::DType dtype, std::vector<int64_t> shape) override {
    ir::Tensor& out = Slot(i);
    CheckOutputSize(*np_.node, i, dtype, shape, s_.max_memory_bytes_);
    if (dtype == ir::DType::kString || !s_.opts_.reuse_buffers) {
      out = ir::Tensor(dtype, std::move(shape));
      return out;
    }
    if (i == 0 && in_place_slot_ >= 0) {
      ir::Tensor& in = frame_.slots[in_place_slot_];
      if (in.dtype() == dtype && in.shape() == shape && in.offset() == 0 && in.buffer() &&
          in.buffer()->owned() && in.buffer().use_count() == 1) {
        // The input keeps reading the same bytes through a non-owning view; the output
        // takes the buffer (so its writes do not copy on write).
        std::shared_ptr<ir::Buffer> buf = in.buffer();
        in = ir::Tensor(dtype, in.shape(), ir::Buffer::Wrap(buf->data(), buf->size(), nullptr));
        out = ir::Tensor(dtype, std::move(shape), std::move(buf));
        in_place_slot_ = -1;
        ++s_.in_place_count_;
        return out;
      }
    }
    const uint64_t bytes = ir::DTypeBytes(dtype, ir::ElementCount(shape));
    out = ir::Tensor(dtype, std::move(shape), s_.arena_->Acquire(bytes));
    return out;
  }
  void SetOutput(size_t i, ir::Tensor t) override { Slot(i) = std::move(t); }
  ThreadPool& pool() override { return *s_.pool_; }
  std::vector<ir::Tensor> RunSubgraph(const ir::Graph& g,
                                      const std::vector<ir::Tensor>& inputs) override {
    GraphPlan* plan = s_.plan_->Find(&g);
    if (!plan)
      throw Error(ErrorCode::kInternal,
                  np_.node->describe() + ": subgraph '" + g.name + "' was not planned");
    return s_.RunGraph(*plan, inputs, &frame_);
  }

 private:
  ir::Tensor& Slot(size_t i) {
    if (i >= np_.outputs.size())
      throw Error(ErrorCode::kInternal, np_.node->describe() + ": kernel wrote output " +
                                            std::to_string(i) + " past the node's outputs");
    if (np_.outputs[i] >= 0) return frame_.slots[np_.outputs[i]];
    // Omitted outputs only (rare): sized on demand, not allocated for every node run.
    if (scratch_.size() < np_.outputs.size()) scratch_.resize(np_.outputs.size());
    return scratch_[i];
  }
  Session& s_;
  NodePlan& np_;
  Session::Frame& frame_;
  const std::vector<const ir::Tensor*>& inputs_;
  int in_place_slot_;
  std::vector<ir::Tensor> scratch_;
};

Session::Session(std::shared_ptr<const ir::Model> model, const SessionOptions& opts)
    : model_(std::move(model)), opts_(opts) {}

Session::~Session() = default;

namespace {
std::atomic<uint64_t> g_default_max_memory{0};
}  // namespace

void SetDefaultMaxMemoryBytes(uint64_t bytes) { g_default_max_memory.store(bytes); }

void CheckOutputSize(const ir::Node& node, size_t output, ir::DType dtype,
                     const std::vector<int64_t>& shape, uint64_t limit) {
  uint64_t count = ir::ElementCount(shape);
  uint64_t bytes = dtype != ir::DType::kString ? ir::DTypeBytes(dtype, count)
                   : count > UINT64_MAX / 32   ? UINT64_MAX
                                               : count * 32;
  if (bytes > limit)
    throw Error(ErrorCode::kInvalidInput,
                node.describe() + ": output " + std::to_string(output) + " of shape " +
                    ir::ShapeToString(ir::MakeShape(shape)) + " would take " +
                    std::to_string(bytes) + " bytes, over the memory limit of " +
                    std::to_string(limit) + " bytes (--max-memory)");
}

uint64_t DefaultMaxMemoryBytes() {
  if (uint64_t set = g_default_max_memory.load()) return set;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return uint64_t{1} << 30;
  return static_cast<uint64_t>(pages) / 2 * static_cast<uint64_t>(page);
}

std::unique_ptr<Session> Session::Create(std::shared_ptr<const ir::Model> model,
                                         const SessionOptions& opts) {
  if (!model || !model->graph) ThrowInvalid("Session::Create: no model");
  std::unique_ptr<Session> s(new Session(std::move(model), opts));
  s->max_memory_bytes_ = opts.max_memory_bytes ? opts.max_memory_bytes : DefaultMaxMemoryBytes();
  int threads = opts.threads;
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  s->pool_ = std::make_unique<ThreadPool>(threads);
  PlanOptions po;
  po.registry = opts.registry;
  po.force_scalar = opts.force_scalar || ForceScalar();
  po.model = s->model_.get();
  s->plan_ = std::make_unique<Plan>(*s->model_->graph, po);
  s->arena_ = std::make_unique<BufferArena>();
  return s;
}

void Session::RegisterModelLoader(const std::string& extension, ModelLoader loader) {
  std::lock_guard<std::mutex> lock(LoaderMutex());
  Loaders()[extension] = std::move(loader);
}

std::unique_ptr<ir::Model> Session::LoadModel(const std::string& path) {
  auto dot = path.find_last_of('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  ModelLoader loader;
  {
    std::lock_guard<std::mutex> lock(LoaderMutex());
    auto it = Loaders().find(ext);
    if (it != Loaders().end()) loader = it->second;
  }
  if (loader) return loader(path);
#ifdef EDGEPRESS_SESSION_EPK
  if (ext == ".epk") return formats::LoadEpk(path);
#endif
  std::string known;
  {
    std::lock_guard<std::mutex> lock(LoaderMutex());
    for (const auto& [e, l] : Loaders()) known += " " + e;
  }
#ifdef EDGEPRESS_SESSION_EPK
  known += " .epk";
#endif
  ThrowUnsupported(path + ": unknown model file extension '" + ext + "' (this build reads:" +
                   (known.empty() ? std::string(" none") : known) + ")");
}

std::unique_ptr<Session> Session::Load(const std::string& path, const SessionOptions& opts) {
  return Create(std::shared_ptr<const ir::Model>(LoadModel(path)), opts);
}

std::vector<const ir::Value*> Session::inputs() const {
  std::vector<const ir::Value*> out;
  for (const ir::Value* v : model_->graph->inputs())
    if (!v->is_initializer()) out.push_back(v);
  return out;
}

std::vector<const ir::Value*> Session::outputs() const {
  return {model_->graph->outputs().begin(), model_->graph->outputs().end()};
}

NamedTensors Session::Run(const NamedTensors& inputs) {
  std::lock_guard<std::mutex> lock(run_mu_);
  const ir::Graph& g = *model_->graph;
  std::unordered_map<std::string, const ir::Tensor*> given;
  for (const auto& [name, t] : inputs) {
    if (!given.emplace(name, &t).second) ThrowInvalid("input '" + name + "' is given twice");
  }
  std::unordered_map<std::string, const ir::Value*> declared;
  for (const ir::Value* v : g.inputs()) declared[v->name()] = v;
  for (const auto& [name, t] : inputs) {
    if (declared.count(name)) continue;
    std::string names;
    for (const ir::Value* v : g.inputs())
      names += (names.empty() ? "" : ", ") + v->name();
    ThrowInvalid("unknown input '" + name + "'; the model's inputs are: " + names);
  }
  std::vector<ir::Tensor> feed;
  for (const ir::Value* v : g.inputs()) {
    auto it = given.find(v->name());
    if (it == given.end()) {
      if (v->is_initializer()) {
        feed.push_back(*v->initializer());
        continue;
      }
      ThrowInvalid("missing input '" + v->name() + "' (" + v->type.ToString() + ")");
    }
    const ir::Tensor& t = *it->second;
    if (v->type.is_tensor()) {
      bool ok = v->type.dtype == ir::DType::kUndefined || v->type.dtype == t.dtype();
      if (ok && v->type.shape) {
        const ir::Shape& s = *v->type.shape;
        ok = s.size() == t.shape().size();
        for (size_t d = 0; ok && d < s.size(); ++d)
          if (s[d].known() && s[d].value != t.shape()[d]) ok = false;
      }
      if (!ok)
        ThrowInvalid("input '" + v->name() + "': expected " + v->type.ToString() + ", got " +
                     TensorTypeString(t));
    }
    feed.push_back(t);
  }
  const auto start = opts_.profile ? std::chrono::steady_clock::now()
                                    : std::chrono::steady_clock::time_point();
  std::vector<ir::Tensor> outs = RunGraph(plan_->main(), std::move(feed), nullptr);
  if (opts_.profile) {
    profile_run_ns_ += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                 std::chrono::steady_clock::now() - start)
                                                 .count());
    ++profile_runs_;
  }
  NamedTensors result;
  for (size_t i = 0; i < outs.size(); ++i)
    result.emplace_back(g.outputs()[i]->name(), std::move(outs[i]));
  return result;
}

std::vector<ir::Tensor> Session::RunGraph(GraphPlan& plan, std::vector<ir::Tensor> inputs,
                                          Frame* parent) {
  if (inputs.size() != plan.input_slots.size())
    ThrowInvalid("graph '" + plan.graph->name + "' expects " +
                 std::to_string(plan.input_slots.size()) + " inputs, got " +
                 std::to_string(inputs.size()));
  Frame frame;
  frame.plan = &plan;
  frame.parent = parent;
  frame.slots.resize(plan.num_slots);
  for (size_t i = 0; i < inputs.size(); ++i) frame.slots[plan.input_slots[i]] = std::move(inputs[i]);
  for (int s : plan.release_at_start) arena_->Release(frame.slots[s]);
  for (size_t i = 0; i < plan.nodes.size(); ++i) RunNode(plan, i, frame);
  std::vector<ir::Tensor> outs;
  outs.reserve(plan.output_refs.size());
  for (size_t i = 0; i < plan.output_refs.size(); ++i) {
    const ir::Tensor* t = frame.At(plan.output_refs[i]);
    if (!t || t->empty())
      ThrowInvalid("graph '" + plan.graph->name + "': output '" +
                   plan.graph->outputs()[i]->name() + "' was not computed");
    outs.push_back(*t);
  }
  return outs;
}

// "input types -> output types" of a node that has just run.
static std::string ShapesOf(const std::vector<const ir::Tensor*>& ins, const NodePlan& np,
                            const std::vector<ir::Tensor>& slots) {
  std::vector<const ir::Tensor*> outs;
  for (int slot : np.outputs) outs.push_back(slot >= 0 ? &slots[slot] : nullptr);
  return TypesOf(ins) + " -> " + TypesOf(outs);
}

void Session::RunNode(GraphPlan& plan, size_t index, Frame& frame) {
  NodePlan& np = plan.nodes[index];
  const ir::Node& n = *np.node;
  std::vector<const ir::Tensor*>& ins = np.run_inputs;
  ins.assign(np.inputs.size(), nullptr);
  ir::DType first = ir::DType::kUndefined;
  for (size_t i = 0; i < np.inputs.size(); ++i) {
    if (np.inputs[i].slot < 0) continue;
    const ir::Tensor* t = frame.At(np.inputs[i]);
    if (!t || t->empty())
      ThrowInvalid(n.describe() + ": input '" + n.input(i)->name() + "' has no value");
    ins[i] = t;
    if (first == ir::DType::kUndefined) first = t->dtype();
  }

  Kernel* kernel = nullptr;
  const KernelDef* def = nullptr;
  if (np.kernel && (np.kernel_dtype == first || np.def->dtype == ir::DType::kUndefined)) {
    kernel = np.kernel.get();
    def = np.def;
  } else {
    auto it = np.by_dtype.find(first);
    if (it == np.by_dtype.end()) {
      const KernelDef* def = plan_->options().registry->Find(
          n.op_type(), n.domain(), first, GetCpuFeatures(), plan_->options().force_scalar);
      if (!def)
        ThrowUnsupported(n.describe() + ": no kernel for dtype " + ir::DTypeName(first));
      KernelInit init{n, np.constant_inputs, OpsetFor(plan_->options(), n)};
      it = np.by_dtype.emplace(first, std::make_pair(def, def->create(init))).first;
    }
    kernel = it->second.second.get();
    def = it->second.first;
  }

  int in_place = -1;
  if (opts_.in_place && opts_.reuse_buffers && !np.inputs.empty() && np.inputs[0].depth == 0 &&
      np.inputs[0].slot >= 0 && InPlaceEligible(n) &&
      std::find(np.release_after.begin(), np.release_after.end(), np.inputs[0].slot) !=
          np.release_after.end())
    in_place = np.inputs[0].slot;

  SessionContext ctx(*this, np, frame, ins, in_place);
  // No clock call per node unless profiling.
  const auto start = opts_.profile ? std::chrono::steady_clock::now()
                                   : std::chrono::steady_clock::time_point();
  try {
    kernel->Run(ctx);
  } catch (const Error& e) {
    throw Error(e.code(), WithNode(n, e.what()));
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal, WithNode(n, e.what()));
  }
  if (opts_.profile) {
    np.total_ns += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::steady_clock::now() - start)
                                             .count());
    np.ran_def = def;
    np.ran_kernel = kernel;
    // Formatted outside the timed region, once, so it does not distort the node's time.
    if (np.calls++ == 0) np.shapes = ShapesOf(ins, np, frame.slots);
  }
  for (size_t i = 0; i < np.outputs.size(); ++i)
    if (np.outputs[i] >= 0 && frame.slots[np.outputs[i]].empty()) {
      // A missing first output is a kernel bug; a later one is an output the model declares
      // that this op does not define or its kernel does not compute (e.g. training-only
      // statistics): the model's problem, named (found by fuzz_epk_run).
      if (i == 0)
        throw Error(ErrorCode::kInternal, n.describe() + ": kernel did not produce output 0");
      throw Error(ErrorCode::kUnsupported,
                  n.describe() + ": the model declares output " + std::to_string(i) + " ('" +
                      (n.output(i) ? n.output(i)->name() : std::string()) +
                      "'), which this op's kernel does not produce");
    }
  if (opts_.observer && !frame.parent) {
    std::vector<const ir::Tensor*> outs(np.outputs.size(), nullptr);
    for (size_t i = 0; i < np.outputs.size(); ++i)
      if (np.outputs[i] >= 0) outs[i] = &frame.slots[np.outputs[i]];
    opts_.observer(n, outs);
  }
  for (int s : np.release_after) arena_->Release(frame.slots[s]);
}

std::vector<NodeKernelInfo> Session::Kernels() const {
  std::vector<NodeKernelInfo> out;
  for (const NodePlan& np : plan_->main().nodes) {
    NodeKernelInfo k{np.node->name, np.node->qualified_op(), "(chosen at run time)",
                     Isa::kScalar};
    const KernelDef* def = np.def;
    if (!def && !np.by_dtype.empty()) def = np.by_dtype.begin()->second.first;
    if (def) {
      k.kernel = def->name;
      k.isa = def->isa;
    }
    if (np.kernel) {
      const std::string variant = np.kernel->Variant();
      if (!variant.empty()) k.kernel += " [" + variant + "]";
    }
    out.push_back(std::move(k));
  }
  return out;
}

SessionProfile Session::Profile() const {
  SessionProfile out;
  if (!opts_.profile) return out;
  std::lock_guard<std::mutex> lock(run_mu_);
  out.runs = profile_runs_;
  out.run_ms = static_cast<double>(profile_run_ns_) / 1e6;
  std::vector<NodeKernelInfo> planned = Kernels();
  const auto& nodes = plan_->main().nodes;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodePlan& np = nodes[i];
    NodeProfile p;
    p.node = np.node->name;
    p.op = np.node->qualified_op();
    // The kernel that actually ran (a node re-dispatched at run time for its input dtype
    // may differ from the planned one); the plan's choice when the node never ran.
    if (np.ran_def) {
      p.kernel = np.ran_def->name;
      p.isa = np.ran_def->isa;
      const std::string variant = np.ran_kernel ? np.ran_kernel->Variant() : std::string();
      if (!variant.empty()) p.kernel += " [" + variant + "]";
    } else {
      p.kernel = planned[i].kernel;
      p.isa = planned[i].isa;
    }
    p.calls = np.calls;
    p.total_ms = static_cast<double>(np.total_ns) / 1e6;
    p.shapes = np.shapes;
    out.nodes.push_back(std::move(p));
  }
  return out;
}

void Session::ResetProfile() {
  std::lock_guard<std::mutex> lock(run_mu_);
  profile_runs_ = profile_run_ns_ = 0;
  for (auto& [graph, plan] : plan_->all())
    for (NodePlan& np : plan->nodes) {
      np.total_ns = np.calls = 0;
      np.ran_def = nullptr;
      np.ran_kernel = nullptr;
      np.shapes.clear();
    }
}

ArenaStats Session::arena_stats() const {
  return {arena_->allocations(), arena_->allocated_bytes(), arena_->reuses(), in_place_count_};
}

}  // namespace edgepress::runtime
