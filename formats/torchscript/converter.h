// Internal to formats/torchscript (includes LibTorch; never include it from elsewhere).
//
// The conversion state: every TorchScript Value maps to a Slot, which is either an IR
// tensor, a compile-time constant (an IValue: None, int, float, bool, str, int[], a
// weight tensor, ...), or a list/tuple of slots (prim::ListConstruct of dynamic sizes,
// the Tensor[] of aten::chunk). TorchScript scalars computed at run time (x.size(0) * 2)
// are rank-0 IR tensors with `scalar` set; an int[] computed at run time (x.size()) is a
// 1-D int64 tensor with `int_list` set. Converters read their inputs through Ctx, which
// materialises constants as initializers when a tensor is needed, and write outputs.
#pragma once

#include <torch/script.h>

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"

namespace edgepress::formats::ts {

struct Slot {
  // kPoison: computed from an op without a converter (reported; nothing downstream runs).
  enum class Kind { kUnset, kTensor, kConst, kList, kTuple, kPoison };
  Kind kind = Kind::kUnset;
  ir::Value* value = nullptr;  // kTensor
  c10::IValue iv;              // kConst
  std::vector<Slot> items;     // kList, kTuple
  bool scalar = false;         // kTensor: a TorchScript int/float/bool held in a rank-0 tensor
  bool int_list = false;       // kTensor: a TorchScript int[] held in a 1-D int64 tensor

  static Slot Tensor(ir::Value* v, bool scalar = false) {
    Slot s;
    s.kind = Kind::kTensor;
    s.value = v;
    s.scalar = scalar;
    return s;
  }
  static Slot Const(c10::IValue iv) {
    Slot s;
    s.kind = Kind::kConst;
    s.iv = std::move(iv);
    return s;
  }
  static Slot List(std::vector<Slot> items, Kind kind = Kind::kList) {
    Slot s;
    s.kind = kind;
    s.items = std::move(items);
    return s;
  }
  static Slot Poison() {
    Slot s;
    s.kind = Kind::kPoison;
    return s;
  }
  bool is_const() const { return kind == Kind::kConst; }
  bool is_none() const { return kind == Kind::kConst && iv.isNone(); }
};

class Ctx;
using ConvertFn = std::function<void(Ctx&)>;
using Registry = std::unordered_map<std::string, ConvertFn>;

// One call per ops_*.cc file (ops_nn.cc also holds lstm/gru).
void RegisterNnOps(Registry& r);
void RegisterTensorOps(Registry& r);

class Ctx {
 public:
  Ctx(ir::Model& model, const std::string& file) : model_(model), file_(file), g_(model.graph.get()) {}

  // --- the node being converted ---
  const torch::jit::Node& node() const { return *node_; }
  std::string kind() const { return node_->kind().toQualString(); }
  size_t num_inputs() const { return node_->inputs().size(); }
  const Slot& In(size_t i) const;
  bool IsNone(size_t i) const { return i >= num_inputs() || In(i).is_none(); }
  bool IsConst(size_t i) const { return In(i).is_const(); }
  int64_t Int(size_t i) const;
  double Double(size_t i) const;
  bool Bool(size_t i) const;
  std::string Str(size_t i) const;
  std::vector<int64_t> Ints(size_t i) const;  // an int or int[] constant
  // Input i as an IR tensor (constants become initializers; scalars rank-0 tensors with
  // `scalar_dtype`, or by default f32 for a float constant, int64 for ints, bool for bools).
  ir::Value* T(size_t i, ir::DType scalar_dtype = ir::DType::kUndefined);
  // An int[] input (constant or built from dynamic sizes) as a 1-D int64 tensor.
  ir::Value* IntList(size_t i);
  [[noreturn]] void Fail(const std::string& why) const;  // kUnsupported naming the node

  // --- outputs ---
  void Out(size_t i, Slot s);
  void Out(ir::Value* v, size_t i = 0) { Out(i, Slot::Tensor(v)); }
  void OutScalar(ir::Value* v, size_t i = 0) { Out(i, Slot::Tensor(v, true)); }

  // --- building IR ---
  ir::Graph& graph() { return *g_; }
  // A node of the current graph named after the TorchScript node; output dtype is
  // `dtype`, or the first input's when kUndefined.
  ir::Value* Op(const std::string& op, const std::vector<ir::Value*>& inputs,
                std::vector<ir::Attribute> attrs = {}, ir::DType dtype = ir::DType::kUndefined);
  std::vector<ir::Value*> OpN(const std::string& op, const std::vector<ir::Value*>& inputs,
                              int n, std::vector<ir::Attribute> attrs = {},
                              ir::DType dtype = ir::DType::kUndefined);
  ir::Value* Const(ir::Tensor t, const std::string& hint = "const");
  ir::Value* I64s(const std::vector<int64_t>& v) { return Const(Int64Vec(v), "ints"); }
  ir::Value* I64(int64_t v);  // rank-0
  ir::Value* F32(float v);    // rank-0
  ir::Value* Cast(ir::Value* v, ir::DType to);
  static ir::DType DTypeOf(const ir::Value* v) { return v->type.dtype; }
  // Rank / dims of an IR value, running shape inference on demand; Fail()s when the
  // rank cannot be known (an input without a shape).
  int Rank(ir::Value* v);
  std::optional<int> TryRank(ir::Value* v);
  std::optional<int64_t> Dim(ir::Value* v, int axis);
  int64_t Axis(int64_t axis, int rank) const;  // normalises a negative axis

  // Tensors from IValues (weights, constant lists); Fail()s for other dtypes.
  ir::Tensor FromTorch(const at::Tensor& t) const;
  static ir::Tensor Int64Vec(const std::vector<int64_t>& v);
  static ir::DType FromScalarType(int64_t scalar_type);

  // --- driver state (import.cc) ---
  ir::Model& model_;
  std::string file_;
  ir::Graph* g_;
  const torch::jit::Node* node_ = nullptr;
  std::unordered_map<const torch::jit::Value*, Slot> slots_;
  const Registry* registry_ = nullptr;
  std::unordered_map<const torch::jit::Value*, ir::Value*> materialized_;
  size_t inferred_nodes_ = SIZE_MAX;
  std::string inference_error_;  // node count at the last shape inference
  int counter_ = 0;
};

// "file.py:12 (scope)" for a node, or "" when TorchScript kept no debug info.
std::string SourceLocation(const torch::jit::Node& n);

}  // namespace edgepress::formats::ts
