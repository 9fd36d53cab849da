#include "runtime/planner.h"

#include <algorithm>
#include <functional>
#include <queue>

#include "ir/constant_value.h"
#include "ir/error.h"

namespace edgepress::runtime {

std::shared_ptr<ir::Buffer> BufferArena::Acquire(uint64_t bytes) {
  // Accept a free buffer up to twice the request (plus a little): close enough that a
  // tiny tensor does not pin a huge block, loose enough for shapes that vary a bit.
  auto it = free_.lower_bound(bytes);
  if (it != free_.end() && it->first <= bytes * 2 + 4096) {
    std::shared_ptr<ir::Buffer> b = std::move(it->second);
    free_.erase(it);
    ++reuses_;
    return b;
  }
  std::shared_ptr<ir::Buffer> b = ir::Buffer::Allocate(bytes);
  if (owned_.size() >= purge_at_) {
    for (auto o = owned_.begin(); o != owned_.end();)
      o = o->second.expired() ? owned_.erase(o) : std::next(o);
    purge_at_ = std::max<size_t>(1024, owned_.size() * 2);
  }
  owned_[b.get()] = b;
  ++allocations_;
  allocated_bytes_ += bytes;
  return b;
}

void BufferArena::Release(ir::Tensor& t) {
  std::shared_ptr<ir::Buffer> b = t.buffer();
  t = ir::Tensor();
  // use_count 1: `b` is the only holder left, so nothing can observe the reuse.
  if (!b || b.use_count() != 1) return;
  auto it = owned_.find(b.get());
  if (it != owned_.end() && it->second.lock() == b) free_.emplace(b->size(), std::move(b));
}

ir::Tensor ConstantNodeValue(const ir::Node& node) {
  if (std::optional<ir::Tensor> v = ir::ConstantAttributeValue(node)) return *std::move(v);
  if (node.has_attr("sparse_value"))
    ThrowUnsupported(node.describe() + ": sparse_value constants are not supported");
  ThrowInvalid(node.describe() + ": Constant node has no value attribute");
}

namespace {
// True when `g` is `anc` or nested inside it.
bool IsWithin(const ir::Graph* g, const ir::Graph* anc) {
  for (; g; g = g->parent())
    if (g == anc) return true;
  return false;
}

void CollectCaptures(const ir::Graph& root, const ir::Graph& g, std::vector<const ir::Value*>* out,
                     std::unordered_set<const ir::Value*>* seen) {
  auto note = [&](const ir::Value* v) {
    if (v && !IsWithin(v->graph(), &root) && seen->insert(v).second) out->push_back(v);
  };
  for (const ir::Node* n : g.nodes()) {
    for (const ir::Value* v : n->inputs()) note(v);
    for (const ir::Graph* sg : n->subgraphs()) CollectCaptures(root, *sg, out, seen);
  }
  for (const ir::Value* v : g.outputs()) note(v);
}
}  // namespace

std::vector<const ir::Value*> CapturedValues(const ir::Graph& sub) {
  std::vector<const ir::Value*> out;
  std::unordered_set<const ir::Value*> seen;
  CollectCaptures(sub, sub, &out, &seen);
  return out;
}

// Topological order over this graph's nodes (lowest index first among the ready ones, so
// the file's order is kept where it is valid). A node that owns subgraphs also depends on
// the producers of every outer value its subgraphs read.
static std::vector<const ir::Node*> TopologicalOrder(const ir::Graph& g) {
  std::vector<const ir::Node*> nodes;
  for (const ir::Node* n : g.nodes()) nodes.push_back(n);
  std::unordered_map<const ir::Node*, size_t> index;
  for (size_t i = 0; i < nodes.size(); ++i) index[nodes[i]] = i;
  std::vector<std::vector<const ir::Value*>> reads(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const ir::Value* v : nodes[i]->inputs())
      if (v) reads[i].push_back(v);
    for (const ir::Graph* sg : nodes[i]->subgraphs())
      for (const ir::Value* v : CapturedValues(*sg)) reads[i].push_back(v);
  }
  std::vector<std::vector<size_t>> users(nodes.size());
  std::vector<int> pending(nodes.size(), 0);
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::unordered_set<size_t> deps;
    for (const ir::Value* v : reads[i]) {
      if (v->graph() != &g || !v->producer()) continue;
      auto it = index.find(v->producer());
      if (it != index.end() && deps.insert(it->second).second) {
        users[it->second].push_back(i);
        ++pending[i];
      }
    }
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (pending[i] == 0) ready.push(i);
  std::vector<size_t> order;
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    order.push_back(i);
    for (size_t u : users[i])
      if (--pending[u] == 0) ready.push(u);
  }
  if (order.size() != nodes.size())
    ThrowInvalid("graph '" + g.name + "' has a cycle among its nodes");

  std::vector<const ir::Node*> sorted;
  for (size_t i : order) sorted.push_back(nodes[i]);
  return sorted;
}

ir::DType DeclaredFirstInputDType(const ir::Node& node) {
  for (const ir::Value* v : node.inputs()) {
    if (!v) continue;
    if (const ir::Tensor* t = v->initializer()) return t->dtype();
    return v->type.is_tensor() ? v->type.dtype : ir::DType::kUndefined;
  }
  return ir::DType::kUndefined;
}

// True when some dtype-specific entry for the node's op has a more capable ISA than
// `chosen` on this CPU.
static bool HasBetterTypedKernel(const KernelRegistry& reg, const ir::Node& n,
                                 const KernelDef& chosen, bool force_scalar) {
  if (force_scalar) return false;
  std::string domain = n.domain() == "ai.onnx" ? std::string() : n.domain();
  for (const KernelDef& d : reg.defs())
    if (n.op_type() == d.op_type && domain == d.domain && d.dtype != ir::DType::kUndefined &&
        d.isa > chosen.isa && GetCpuFeatures().Has(d.isa))
      return true;
  return false;
}

int64_t OpsetFor(const PlanOptions& o, const ir::Node& n) {
  return o.model ? o.model->OpsetVersion(n.domain()) : 0;
}

Plan::Plan(const ir::Graph& main, const PlanOptions& opts) : opts_(opts), main_(&main) {
  if (!opts_.registry) opts_.registry = &GlobalKernelRegistry();
  std::vector<std::string> unsupported;
  PlanGraph(main, &unsupported);
  if (!unsupported.empty()) {
    std::string msg = std::to_string(unsupported.size()) + " node(s) have no kernel:";
    for (const std::string& s : unsupported) msg += "\n  " + s;
    ThrowUnsupported(msg);
  }
}

ValueRef Plan::Resolve(const ir::Graph& g, const ir::Value* v, const ir::Node* user) const {
  if (!v) return {};
  int depth = 0;
  for (const ir::Graph* cur = &g; cur; cur = cur->parent(), ++depth) {
    if (v->graph() != cur) continue;
    auto pit = plans_.find(cur);
    if (pit != plans_.end()) {
      auto sit = pit->second->slot.find(v);
      if (sit != pit->second->slot.end()) return {depth, sit->second};
    }
    break;
  }
  ThrowInvalid((user ? user->describe() : "graph '" + g.name + "' output") + ": value '" +
               v->name() + "' is not defined in scope");
}

void Plan::PlanGraph(const ir::Graph& g, std::vector<std::string>* unsupported) {
  auto owned = std::make_unique<GraphPlan>();
  GraphPlan& p = *owned;
  plans_[&g] = std::move(owned);
  p.graph = &g;
  auto new_slot = [&](const ir::Value* v) {
    auto [it, inserted] = p.slot.emplace(v, p.num_slots);
    if (!inserted) ThrowInvalid("value '" + v->name() + "' is defined twice");
    return p.num_slots++;
  };

  for (const ir::Value* v : g.inputs()) p.input_slots.push_back(new_slot(v));
  for (const ir::Value* v : g.initializers()) {
    // An initializer that is also a graph input is only that input's default value.
    int s = v->is_graph_input() ? p.slot.at(v) : new_slot(v);
    p.constants.emplace(s, *v->initializer());
  }

  // Slots for node outputs; Constant nodes become constants.
  for (const ir::Node* node : TopologicalOrder(g)) {
    const ir::Node& n = *node;
    bool is_constant = n.op_type() == "Constant" && (n.domain().empty() || n.domain() == "ai.onnx");
    for (const ir::Value* o : n.outputs())
      if (o) new_slot(o);
    if (is_constant) {
      if (n.num_outputs() != 1 || !n.output(0))
        ThrowInvalid(n.describe() + ": Constant must have exactly one output");
      p.constants.emplace(p.slot.at(n.output(0)), ConstantNodeValue(n));
      continue;
    }
    NodePlan np;
    np.node = &n;
    for (const ir::Value* o : n.outputs()) np.outputs.push_back(o ? p.slot.at(o) : -1);
    p.nodes.push_back(std::move(np));
  }
  p.constant_at.assign(static_cast<size_t>(p.num_slots), nullptr);
  for (const auto& [s, t] : p.constants) p.constant_at[static_cast<size_t>(s)] = &t;
  PlanLiveness(g, p);
  ChooseKernels(g, p, unsupported);
}

// Liveness: the last position (in execution order) that reads each local slot; a slot is
// released after that node, or at the start when nothing reads it. Constants and graph
// outputs are pinned.
void Plan::PlanLiveness(const ir::Graph& g, GraphPlan& p) {
  auto resolve = [&](const ir::Value* v, const ir::Node* user) { return Resolve(g, v, user); };
  std::vector<int> last_use(p.num_slots, -1);
  std::vector<bool> pinned(p.num_slots, false);
  for (const auto& [s, t] : p.constants) pinned[s] = true;
  for (const ir::Value* v : g.outputs()) {
    ValueRef r = resolve(v, nullptr);
    p.output_refs.push_back(r);
    if (r.depth == 0) pinned[r.slot] = true;
  }
  for (size_t pos = 0; pos < p.nodes.size(); ++pos) {
    NodePlan& np = p.nodes[pos];
    for (const ir::Value* v : np.node->inputs()) {
      ValueRef r = resolve(v, np.node);
      np.inputs.push_back(r);
      if (r.slot >= 0 && r.depth == 0) last_use[r.slot] = static_cast<int>(pos);
    }
    for (const ir::Graph* sg : np.node->subgraphs())
      for (const ir::Value* v : CapturedValues(*sg)) {
        ValueRef r = resolve(v, np.node);
        if (r.depth == 0) last_use[r.slot] = static_cast<int>(pos);
      }
    // An output nobody reads dies right after its producer.
    for (int s : np.outputs)
      if (s >= 0 && last_use[s] < static_cast<int>(pos)) last_use[s] = static_cast<int>(pos);
  }
  for (int s = 0; s < p.num_slots; ++s) {
    if (pinned[s]) continue;
    if (last_use[s] < 0)
      p.release_at_start.push_back(s);
    else
      p.nodes[last_use[s]].release_after.push_back(s);
  }
}

// Kernels. Constant inputs (initializers, Constant nodes, here or outer) go to create();
// subgraphs are planned first. Nodes without a kernel are collected in `unsupported`.
void Plan::ChooseKernels(const ir::Graph& g, GraphPlan& p, std::vector<std::string>* unsupported) {
  auto constant_of = [&](ValueRef r, const ir::Value* v) -> const ir::Tensor* {
    if (r.slot < 0 || v->is_graph_input()) return nullptr;
    const ir::Graph* cur = &g;
    for (int d = 0; d < r.depth; ++d) cur = cur->parent();
    const GraphPlan& owner = *plans_.at(cur);
    auto it = owner.constants.find(r.slot);
    return it == owner.constants.end() ? nullptr : &it->second;
  };
  for (NodePlan& np : p.nodes) {
    const ir::Node& n = *np.node;
    for (const ir::Graph* sg : n.subgraphs()) PlanGraph(*sg, unsupported);
    for (size_t i = 0; i < n.num_inputs(); ++i)
      np.constant_inputs.push_back(constant_of(np.inputs[i], n.input(i)));
    ir::DType dt = DeclaredFirstInputDType(n);
    const KernelRegistry& reg = *opts_.registry;
    const KernelDef* def =
        reg.Find(n.op_type(), n.domain(), dt, GetCpuFeatures(), opts_.force_scalar);
    // Exported models often declare no type for intermediate values, so only the "any"
    // entries match here; when a dtype-specific entry with a better ISA exists (the AVX2
    // f32 Clip, Softmax, Erf, Add...), leave the choice to run time, which knows the
    // dtype, instead of pinning the scalar reference.
    if (def && dt == ir::DType::kUndefined && def->dtype == ir::DType::kUndefined &&
        HasBetterTypedKernel(reg, n, *def, opts_.force_scalar))
      def = nullptr;
    if (!def) {
      bool any = false;
      for (const KernelDef& d : reg.defs())
        if (n.op_type() == d.op_type &&
            (n.domain() == "ai.onnx" ? std::string() : n.domain()) == d.domain)
          any = true;
      if (!any) {
        unsupported->push_back(n.describe() + ": no kernel for op " + n.qualified_op());
        continue;
      }
      if (dt != ir::DType::kUndefined) {
        unsupported->push_back(n.describe() + ": no kernel for dtype " + ir::DTypeName(dt));
        continue;
      }
      // The input dtype is only known at run time; the kernel is chosen then.
    }
    if (def) {
      KernelInit init{n, np.constant_inputs, OpsetFor(opts_, n)};
      try {
        np.kernel = def->create(init);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kUnsupported) throw;
        std::string what = e.what();
        unsupported->push_back(
            what.find(n.describe()) == std::string::npos ? n.describe() + ": " + what : what);
        continue;
      }
      np.def = def;
      np.kernel_dtype = dt;
    }
  }
}

}  // namespace edgepress::runtime
