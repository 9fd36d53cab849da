// The execution plan of a Session and the buffer arena it draws intermediate tensors from.
//
// Planning happens once per graph (the main graph and, recursively, every If/Loop/Scan
// body): a topological order that also respects outer-scope values captured by
// subgraphs, a slot per value in a flat frame, a reference (frame depth, slot) for every
// node input, and each value's last use, so that its buffer returns to the arena as soon
// as the last reader has run. Constants (initializers and Constant nodes) are
// materialised here, once, and never enter the arena.
//
// The arena is a free list of 64-byte aligned buffers keyed by capacity. Buffers go back
// to it only when the frame held the last reference (a view made by Reshape, or an output
// handed to the caller, keeps its buffer out of circulation), so reuse can never alias a
// live tensor. Shapes that only become known at run time are sized on the first run; the
// same shapes on later runs find their buffers in the free list and allocate nothing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"
#include "runtime/kernel.h"

namespace edgepress::runtime {

class BufferArena {
 public:
  // A buffer of at least `bytes`: a free one of close capacity, or a new allocation.
  std::shared_ptr<ir::Buffer> Acquire(uint64_t bytes);
  // Returns the tensor's buffer to the free list when the arena made it and `t` holds
  // the last reference; otherwise only drops the reference. Leaves `t` empty.
  void Release(ir::Tensor& t);

  uint64_t allocations() const { return allocations_; }
  uint64_t allocated_bytes() const { return allocated_bytes_; }
  uint64_t reuses() const { return reuses_; }

 private:
  std::multimap<uint64_t, std::shared_ptr<ir::Buffer>> free_;
  // Buffers handed out; weak so that outputs the caller keeps can die without us, and
  // so that a new buffer at a recycled address is not mistaken for one of ours.
  std::unordered_map<const ir::Buffer*, std::weak_ptr<ir::Buffer>> owned_;
  size_t purge_at_ = 1024;
  uint64_t allocations_ = 0, allocated_bytes_ = 0, reuses_ = 0;
};

// Where a node finds one of its inputs: `depth` frames up from the current one
// (0 = this graph, 1 = the enclosing graph, ...), at `slot`. slot < 0: omitted input.
struct ValueRef {
  int depth = 0;
  int slot = -1;
};

struct NodePlan {
  const ir::Node* node = nullptr;
  std::vector<ValueRef> inputs;
  std::vector<const ir::Tensor*> constant_inputs;  // per input; for Kernel creation
  std::vector<int> outputs;                        // slot per output; -1 when the output is omitted
  // Slots of this graph whose last reader is this node (released after it runs).
  std::vector<int> release_after;
  // The input pointers of the current execution, kept to spare an allocation per node run
  // (a node never runs inside its own execution, and Session::Run is serialised).
  std::vector<const ir::Tensor*> run_inputs;
  // Kernel chosen at plan time for the declared input dtype; re-chosen at run time
  // (and cached per dtype) when the declared dtype was unknown or differs.
  const KernelDef* def = nullptr;
  std::unique_ptr<Kernel> kernel;
  ir::DType kernel_dtype = ir::DType::kUndefined;
  std::map<ir::DType, std::pair<const KernelDef*, std::unique_ptr<Kernel>>> by_dtype;
  // Profiling (Session::Profile): the kernel that ran last and the first call's types.
  uint64_t total_ns = 0;
  uint64_t calls = 0;
  const KernelDef* ran_def = nullptr;
  const Kernel* ran_kernel = nullptr;
  std::string shapes;
};

struct GraphPlan {
  const ir::Graph* graph = nullptr;
  int num_slots = 0;
  std::unordered_map<const ir::Value*, int> slot;
  // Constant slots and their values. Frames do not copy them: a frame's slot left empty
  // reads constant_at[slot] (a copy per constant per run cost ~400 shape allocations and
  // refcount updates a run on an int8 mobilenet, whose convs have 8 constant inputs each).
  std::map<int, ir::Tensor> constants;
  std::vector<const ir::Tensor*> constant_at;  // per slot: &constants[slot] or nullptr
  std::vector<int> input_slots;       // graph inputs, in order
  std::vector<ValueRef> output_refs;  // graph outputs, in order (may be outer values)
  std::vector<NodePlan> nodes;        // execution order; Constant nodes are folded out
  std::vector<int> release_at_start;  // slots no node reads (e.g. unused inputs)
};

struct PlanOptions {
  const KernelRegistry* registry = nullptr;
  bool force_scalar = false;
  const ir::Model* model = nullptr;  // for the opset each kernel is created for
};

// Everything planned for one model: the main graph's plan and every subgraph's.
class Plan {
 public:
  // Throws Error(kUnsupported) listing every node (recursively) without a kernel, and
  // Error(kInvalidInput) for malformed graphs (cycles, undefined values).
  Plan(const ir::Graph& main, const PlanOptions& opts);

  GraphPlan& main() { return *plans_.at(main_); }
  const GraphPlan& main() const { return *plans_.at(main_); }
  // nullptr when `g` is not part of the planned model.
  GraphPlan* Find(const ir::Graph* g) {
    auto it = plans_.find(g);
    return it == plans_.end() ? nullptr : it->second.get();
  }
  const PlanOptions& options() const { return opts_; }
  // Every graph's plan, the main graph's included.
  const std::unordered_map<const ir::Graph*, std::unique_ptr<GraphPlan>>& all() { return plans_; }

 private:
  void PlanGraph(const ir::Graph& g, std::vector<std::string>* unsupported);
  void PlanLiveness(const ir::Graph& g, GraphPlan& p);
  void ChooseKernels(const ir::Graph& g, GraphPlan& p, std::vector<std::string>* unsupported);
  // Where value v lives as seen from graph g: its slot and how many graphs up.
  ValueRef Resolve(const ir::Graph& g, const ir::Value* v, const ir::Node* user) const;

  PlanOptions opts_;
  const ir::Graph* main_;
  std::unordered_map<const ir::Graph*, std::unique_ptr<GraphPlan>> plans_;
};

// The tensor a Constant node stands for (value, value_float(s), value_int(s),
// value_string(s)); throws Error naming the node for sparse or missing values.
ir::Tensor ConstantNodeValue(const ir::Node& node);

// Values of enclosing graphs that a subgraph (or its nested subgraphs) reads.
std::vector<const ir::Value*> CapturedValues(const ir::Graph& sub);

// The model's opset for the node's domain (0 when unknown).
int64_t OpsetFor(const PlanOptions& o, const ir::Node& n);

// Dtype of a node's first present input as declared in the graph (kUndefined if unknown).
ir::DType DeclaredFirstInputDType(const ir::Node& node);

}  // namespace edgepress::runtime
