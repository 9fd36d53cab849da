// The kernel interface of the native runtime.
//
// A kernel is chosen per node when a Session is created, from one flat table of
// KernelDef entries per op: {op, domain, dtype, isa, name, create}. The scalar reference
// entry (isa kScalar) always exists; the best entry whose ISA the CPU has is picked,
// unless EDGEPRESS_FORCE_SCALAR=1. `create` runs once per node (prepack weights, read
// attributes, validate); Run() runs on every inference.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace edgepress::runtime {

// Instruction sets, ordered from least to most capable within x86; kScalar is portable C++.
enum class Isa : uint8_t { kScalar, kAvx2, kAvx512, kAvx512Vnni, kAmx, kNeon };
const char* IsaName(Isa isa);

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avxvnni = false;
  bool avx512vbmi = false;  // vpermi2b: 8-bit table lookups (QLinearLookup)
  bool amx_int8 = false, amx_tile = false;
  bool neon = false, neon_dot = false;
  std::string model_name;
  bool Has(Isa isa) const;
};
// Detected once per process. EDGEPRESS_MAX_ISA limits what is reported, to run this
// machine as an older CPU would (kernel selection and every kernel's inner dispatch read
// these flags): scalar | avx2 (AMD EPYC Zen 2/3: AVX2+FMA+F16C) | avxvnni (+AVX-VNNI, Intel
// client) | avx512 (Skylake-X: F/BW/VL/DQ) | avx512vnni (Cascade Lake) | amx (everything).
// Features are only removed, never added; an unknown value is ignored with a warning.
const CpuFeatures& GetCpuFeatures();
// Clears the features above `level` (the names above); false for an unknown level.
bool LimitCpuFeatures(CpuFeatures* f, const std::string& level);
// True when EDGEPRESS_FORCE_SCALAR=1 is set in the environment (read once).
bool ForceScalar();

class ThreadPool;

// What a kernel sees when it runs.
class KernelContext {
 public:
  virtual ~KernelContext() = default;
  virtual const ir::Node& node() const = 0;
  virtual size_t num_inputs() const = 0;
  // nullptr when the input is omitted (optional) or the index is past the end.
  virtual const ir::Tensor* input(size_t i) const = 0;
  virtual size_t num_outputs() const = 0;
  // False when the graph omits this optional output (the kernel may skip it).
  virtual bool output_requested(size_t i) const = 0;
  // Allocates output i (from the session's arena when the plan allows) and returns it;
  // the contents are uninitialised.
  virtual ir::Tensor& AllocateOutput(size_t i, ir::DType dtype, std::vector<int64_t> shape) = 0;
  // Sets output i to an existing tensor (e.g. Reshape returning a view of its input).
  virtual void SetOutput(size_t i, ir::Tensor t) = 0;
  virtual ThreadPool& pool() = 0;
  // Runs a subgraph of this node (If/Loop/Scan bodies) with the given inputs; outer-scope
  // values resolve against the current frame.
  virtual std::vector<ir::Tensor> RunSubgraph(const ir::Graph& g,
                                              const std::vector<ir::Tensor>& inputs) = 0;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual void Run(KernelContext& ctx) = 0;
  // A choice the kernel made at creation beyond its table entry (e.g. the sparse kernel
  // MatMul measured faster); listed by Session::Kernels(). Empty when none.
  virtual std::string Variant() const { return {}; }
};

// Information available when a kernel is created: the node, and the constant value of
// each input that is an initializer (nullptr otherwise), for weight prepacking.
struct KernelInit {
  const ir::Node& node;
  std::vector<const ir::Tensor*> constant_inputs;
  // The model's opset for the node's domain; 0 when unknown (kernels then assume the
  // latest semantics). Softmax/LogSoftmax/Hardmax before opset 13 coerce to 2-D.
  int64_t opset = 0;
};

struct KernelDef {
  const char* op_type;
  const char* domain;     // "" for ai.onnx
  ir::DType dtype;        // dtype of the first input it accepts; kUndefined = any
  Isa isa;
  const char* name;       // self-describing: "f32_conv__avx2", "f32_add__ref"
  std::unique_ptr<Kernel> (*create)(const KernelInit& init);
};

class KernelRegistry {
 public:
  void Add(const KernelDef& def) { defs_.push_back(def); }
  const std::vector<KernelDef>& defs() const { return defs_; }
  // Best entry for the node given the CPU; nullptr when no entry matches.
  const KernelDef* Find(const std::string& op_type, const std::string& domain, ir::DType dtype,
                        const CpuFeatures& cpu, bool force_scalar) const;
  // Every op_type (qualified) with at least one entry.
  std::vector<std::string> SupportedOps() const;

 private:
  std::vector<KernelDef> defs_;
};

// The registry with every kernel compiled in (built once; see kernels/all_kernels.cc).
const KernelRegistry& GlobalKernelRegistry();

}  // namespace edgepress::runtime
