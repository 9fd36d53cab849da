// A Session runs one model many times on the native CPU kernels.
//
// Create() plans once (see planner.h): execution order, a kernel per node (an error lists
// every node without one), constants materialised, liveness of every intermediate value.
// Run() validates the named inputs against the model's declared inputs, executes the plan
// drawing intermediates from a buffer arena (buffers are reused as soon as their last
// reader has run, and across runs), and returns the model's outputs by name, in order.
// If/Loop/Scan bodies run through the same machinery, with outer-scope values visible.
//
// Run() may be called from several threads; calls are serialised (one arena, one pool).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

class Plan;
class BufferArena;
struct GraphPlan;

using NamedTensors = std::vector<std::pair<std::string, ir::Tensor>>;

struct SessionOptions {
  int threads = 1;
  bool force_scalar = false;  // also forced by EDGEPRESS_FORCE_SCALAR=1
  // Reuse intermediate buffers by liveness (off: every intermediate is a fresh
  // allocation; for tests that compare both).
  bool reuse_buffers = true;
  // Run eligible elementwise ops in place on an input whose last reader they are.
  bool in_place = true;
  // Time every main-graph node and every Run (Session::Profile). Off, the run loop makes
  // no clock call per node.
  bool profile = false;
  // Largest tensor one node output may take, in bytes; 0 = DefaultMaxMemoryBytes(). A model
  // whose shapes (a declared input, a Reshape/Expand/ConstantOfShape/Tile target) would
  // need more fails with an Error naming the node and the size instead of the process
  // being killed for running out of memory.
  uint64_t max_memory_bytes = 0;
  // Kernel table to use; nullptr = GlobalKernelRegistry() (tests pass their own).
  const KernelRegistry* registry = nullptr;
  // Called after every main-graph node has run, with its outputs (nullptr for an output
  // the graph does not use), before any buffer is released or reused: calibration
  // observers and `compare` read intermediate activations here without keeping them.
  // Not called for nodes of If/Loop/Scan bodies or for constants folded at planning.
  std::function<void(const ir::Node&, const std::vector<const ir::Tensor*>&)> observer;
};

// The limit SessionOptions::max_memory_bytes = 0 stands for, and the one nodes run outside
// a Session (constant folding, runtime/eager.h) are held to: half the physical memory (1 GiB
// when it cannot be read), unless SetDefaultMaxMemoryBytes chose another.
uint64_t DefaultMaxMemoryBytes();
// Process-wide: commands that create many sessions (compress, apply, calibrate, sensitivity)
// set it from --max-memory so calibration, constant folding and evaluation all obey it;
// 0 restores half the physical memory. Thread-safe.
void SetDefaultMaxMemoryBytes(uint64_t bytes);
// Throws Error(kInvalidInput) naming the node, the output, its shape and the size when an
// output of `dtype` and `shape` would take more than `limit` bytes (a string element counts
// as the 32 bytes of a std::string).
void CheckOutputSize(const ir::Node& node, size_t output, ir::DType dtype,
                     const std::vector<int64_t>& shape, uint64_t limit);

struct NodeKernelInfo {
  std::string node;    // node name (may be empty in the model)
  std::string op;      // qualified op type
  std::string kernel;  // KernelDef name, or "(chosen at run time)" / "(constant)"
  Isa isa = Isa::kScalar;
};

struct NodeProfile {
  std::string node;
  std::string op;      // qualified op type
  std::string kernel;  // the KernelDef that ran last (with its Variant in brackets)
  Isa isa = Isa::kScalar;
  uint64_t calls = 0;
  double total_ms = 0;  // over all calls; includes the time of If/Loop/Scan bodies
  // Input and output types of the first profiled call: "f32[1,16,56,56] -> f32[1,16,56,56]".
  std::string shapes;
};

// What Session::Profile() accumulated since creation or the last ResetProfile().
struct SessionProfile {
  uint64_t runs = 0;
  double run_ms = 0;  // wall time of those Run() calls, input checks included
  std::vector<NodeProfile> nodes;  // main graph, execution order
};

struct ArenaStats {
  uint64_t allocations = 0;     // buffers ever allocated
  uint64_t allocated_bytes = 0; // their total size
  uint64_t reuses = 0;          // allocations served from the free list
  uint64_t in_place = 0;        // outputs written into their dying input's buffer
};

class Session {
 public:
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  static std::unique_ptr<Session> Create(std::shared_ptr<const ir::Model> model,
                                         const SessionOptions& opts = {});
  // Loads a model file by extension: .epk natively (when the epk format is built), other
  // extensions through a loader registered with RegisterModelLoader (the CLI registers
  // ONNX; the edge runtime itself does not depend on ONNX).
  static std::unique_ptr<Session> Load(const std::string& path, const SessionOptions& opts = {});
  using ModelLoader = std::function<std::unique_ptr<ir::Model>(const std::string& path)>;
  // `extension` includes the dot (".onnx"); a later registration replaces an earlier one.
  static void RegisterModelLoader(const std::string& extension, ModelLoader loader);
  // The model a path names, through the same dispatch as Load().
  static std::unique_ptr<ir::Model> LoadModel(const std::string& path);

  // Inputs by name; graph inputs with an initializer (a default) may be left out.
  // Throws Error(kInvalidInput) naming the input on an unknown/missing name or a dtype
  // or shape that does not match the declaration (symbolic dims accept any size).
  NamedTensors Run(const NamedTensors& inputs);

  const ir::Model& model() const { return *model_; }
  // Declared graph inputs the caller must or may feed (initializer defaults excluded).
  std::vector<const ir::Value*> inputs() const;
  std::vector<const ir::Value*> outputs() const;
  // Kernel per node of the main graph, in execution order.
  std::vector<NodeKernelInfo> Kernels() const;
  // Per-node timings accumulated over all runs since creation or ResetProfile() (no runs
  // and no nodes unless options.profile).
  SessionProfile Profile() const;
  // Forgets the timings so far (e.g. of warm-up runs).
  void ResetProfile();
  ArenaStats arena_stats() const;
  int num_threads() const { return pool_->num_threads(); }

 private:
  Session(std::shared_ptr<const ir::Model> model, const SessionOptions& opts);
  friend class SessionContext;
  struct Frame;
  std::vector<ir::Tensor> RunGraph(GraphPlan& plan, std::vector<ir::Tensor> inputs,
                                   Frame* parent);
  void RunNode(GraphPlan& plan, size_t index, Frame& frame);

  std::shared_ptr<const ir::Model> model_;
  SessionOptions opts_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Plan> plan_;
  std::unique_ptr<BufferArena> arena_;
  mutable std::mutex run_mu_;  // also guards the profile counters
  uint64_t in_place_count_ = 0;
  uint64_t profile_runs_ = 0, profile_run_ns_ = 0;
  uint64_t max_memory_bytes_ = 0;  // resolved SessionOptions::max_memory_bytes
};

}  // namespace edgepress::runtime
