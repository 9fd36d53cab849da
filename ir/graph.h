// The graph IR. A Model owns one Graph; a Graph owns its Nodes and Values; control-flow
// nodes (If, Loop, Scan) own subgraphs through graph-valued attributes, and nodes in a
// subgraph may use Values of any enclosing graph (ONNX's outer-scope references).
//
// Invariants the verifier checks: every Value has at most one producer (a node output, a
// graph input or an initializer); names are unique across a graph and its subgraphs;
// node order is a topological order; use lists match node inputs exactly.
// Operators follow ONNX names and semantics (domain "" = ai.onnx).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/dtype.h"
#include "ir/tensor.h"

namespace edgepress::ir {

class Graph;
class Node;

// One dimension: a known size (value >= 0), a named symbol ("batch"), or unknown.
struct Dim {
  int64_t value = -1;
  std::string symbol;
  static Dim Known(int64_t v) { return Dim{v, {}}; }
  static Dim Symbol(std::string s) { return Dim{-1, std::move(s)}; }
  bool known() const { return value >= 0; }
  bool operator==(const Dim& o) const { return value == o.value && symbol == o.symbol; }
  bool operator!=(const Dim& o) const { return !(*this == o); }
};
using Shape = std::vector<Dim>;
Shape MakeShape(const std::vector<int64_t>& dims);
// Concrete dims when all are known.
std::optional<std::vector<int64_t>> ConcreteDims(const Shape& s);
std::string ShapeToString(const Shape& s);

// The type of a Value. Tensors are the common case; sequences, optionals and maps are
// carried through so that models using them import and export faithfully.
struct ValueType {
  enum class Kind : uint8_t { kUnknown, kTensor, kSparseTensor, kSequence, kOptional, kMap };
  Kind kind = Kind::kUnknown;
  DType dtype = DType::kUndefined;  // tensor element type, or map key type
  std::optional<Shape> shape;       // nullopt: rank unknown
  std::shared_ptr<ValueType> elem;  // sequence/optional element, map value
  std::string denotation;

  static ValueType Tensor(DType dt, std::optional<Shape> shape = std::nullopt) {
    ValueType t;
    t.kind = Kind::kTensor;
    t.dtype = dt;
    t.shape = std::move(shape);
    return t;
  }
  bool is_tensor() const { return kind == Kind::kTensor; }
  bool operator==(const ValueType& o) const;
  bool operator!=(const ValueType& o) const { return !(*this == o); }
  std::string ToString() const;
};

struct Use {
  Node* user;
  int index;  // input slot
};

class Value {
 public:
  const std::string& name() const { return name_; }
  Graph* graph() const { return graph_; }
  Node* producer() const { return producer_; }
  int producer_index() const { return producer_index_; }
  const std::vector<Use>& uses() const { return uses_; }
  bool is_graph_input() const { return is_input_; }
  bool is_initializer() const { return initializer_.has_value(); }
  // The constant value of an initializer (not of Constant nodes; see ConstantValue()).
  const Tensor* initializer() const { return initializer_ ? &*initializer_ : nullptr; }
  Tensor* mutable_initializer() { return initializer_ ? &*initializer_ : nullptr; }
  // True when this Value is one of its graph's outputs.
  bool is_graph_output() const;

  ValueType type;
  std::string doc;
  // Created by an importer to normalise an older opset (e.g. Squeeze axes moved from an
  // attribute to an input); exporters may fold it back.
  bool synthesized = false;

 private:
  friend class Graph;
  friend class Node;
  std::string name_;
  Graph* graph_ = nullptr;
  Node* producer_ = nullptr;
  int producer_index_ = -1;
  std::vector<Use> uses_;
  bool is_input_ = false;
  std::optional<Tensor> initializer_;
};

struct Attribute {
  enum class Kind : uint8_t {
    kUndefined, kFloat, kInt, kString, kTensor, kGraph, kFloats, kInts, kStrings, kTensors,
    kGraphs, kTypeProto, kTypeProtos,
  };
  std::string name;
  Kind kind = Kind::kUndefined;
  float f = 0;
  int64_t i = 0;
  std::string s;  // bytes, not necessarily UTF-8
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<std::shared_ptr<Graph>> graphs;
  std::vector<ValueType> types;  // kTypeProto(s)
  std::string ref_attr_name;     // set inside function bodies
  std::string doc;

  static Attribute Int(std::string n, int64_t v);
  static Attribute Float(std::string n, float v);
  static Attribute String(std::string n, std::string v);
  static Attribute Ints(std::string n, std::vector<int64_t> v);
  static Attribute Floats(std::string n, std::vector<float> v);
  static Attribute TensorValue(std::string n, Tensor v);
  static Attribute GraphValue(std::string n, std::shared_ptr<Graph> v);
};
const char* AttributeKindName(Attribute::Kind k);

class Node {
 public:
  const std::string& op_type() const { return op_type_; }
  const std::string& domain() const { return domain_; }
  std::string qualified_op() const;  // "Conv" or "com.microsoft::MatMulNBits"
  Graph* graph() const { return graph_; }

  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  Value* input(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }
  Value* output(size_t i) const { return i < outputs_.size() ? outputs_[i] : nullptr; }
  size_t num_inputs() const { return inputs_.size(); }
  size_t num_outputs() const { return outputs_.size(); }
  // Keeps use lists consistent; `v` may be nullptr (an omitted optional input).
  void set_input(size_t i, Value* v);
  void add_input(Value* v);
  void remove_input(size_t i);  // shifts later inputs down

  std::vector<Attribute>& attributes() { return attrs_; }
  const std::vector<Attribute>& attributes() const { return attrs_; }
  const Attribute* attr(const std::string& name) const;
  bool has_attr(const std::string& name) const { return attr(name) != nullptr; }
  void set_attr(Attribute a);  // replaces an attribute of the same name
  bool remove_attr(const std::string& name);
  // Typed getters; throw Error naming node and attribute on a kind mismatch.
  int64_t attr_int(const std::string& name, int64_t def) const;
  float attr_float(const std::string& name, float def) const;
  std::string attr_string(const std::string& name, const std::string& def) const;
  std::vector<int64_t> attr_ints(const std::string& name,
                                 const std::vector<int64_t>& def = {}) const;
  std::vector<float> attr_floats(const std::string& name,
                                 const std::vector<float>& def = {}) const;

  // Subgraphs held by this node's attributes.
  std::vector<Graph*> subgraphs() const;
  // "node 'conv3' (Conv)" — for error messages.
  std::string describe() const;

  std::string name;
  std::string doc;

 private:
  friend class Graph;
  std::string op_type_;
  std::string domain_;
  Graph* graph_ = nullptr;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  std::vector<Attribute> attrs_;
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  std::string name;
  std::string doc;

  Graph* parent() const { return parent_; }
  Node* owner() const { return owner_; }

  // --- values ---------------------------------------------------------------
  // Throws Error when `name` is already defined in this graph or an enclosing one.
  Value* AddInput(const std::string& name, ValueType type);
  Value* AddInitializer(const std::string& name, Tensor t);
  void AddOutput(Value* v);
  void SetOutput(size_t i, Value* v);
  void RemoveOutput(size_t i);
  void RemoveInput(Value* v);  // must have no uses
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  const std::vector<Value*>& initializers() const { return initializers_; }
  // Drops an initializer that nothing uses; returns false when still used.
  bool RemoveInitializer(Value* v);
  // Looks up a name in this graph, then in enclosing graphs.
  Value* FindValue(const std::string& name) const;
  // A name not used in this graph, its ancestors or its subgraphs, derived from `base`.
  std::string UniqueName(const std::string& base);
  // Renames a value of this graph; throws Error when `name` is taken (see UniqueName).
  // Passes use it to keep graph output names stable when they replace the producer.
  void RenameValue(Value* v, const std::string& name);

  // --- nodes ----------------------------------------------------------------
  // Appends a node; output Values are created with the given names (empty = omitted
  // optional output).
  Node* AddNode(const std::string& op_type, const std::vector<Value*>& inputs,
                const std::vector<std::string>& output_names, const std::string& name = "",
                const std::string& domain = "");
  // Same, inserted before `pos` (nullptr = append).
  Node* InsertNode(Node* pos, const std::string& op_type, const std::vector<Value*>& inputs,
                   const std::vector<std::string>& output_names, const std::string& name = "",
                   const std::string& domain = "");
  // Removes a node whose outputs have no uses (throws otherwise).
  void RemoveNode(Node* n);
  std::vector<Node*> nodes() const;
  size_t num_nodes() const { return nodes_.size(); }
  // Pointer to a node of this graph found by name; nullptr when absent.
  Node* FindNode(const std::string& name) const;

  // --- rewrites -------------------------------------------------------------
  // Every use of `from` (node inputs here and in subgraphs, and graph outputs) now uses `to`.
  void ReplaceAllUsesWith(Value* from, Value* to);
  // Removes nodes whose outputs are unused and that have no side effects, and unused
  // initializers; returns the number of nodes removed.
  int RemoveDeadNodes();
  // Reorders nodes topologically (stable for already-sorted graphs). Throws Error on a cycle.
  void TopologicalSort();

  // Visits this graph and every nested subgraph, parents first.
  void Walk(const std::function<void(Graph&)>& fn);
  // Deep copy; outer-scope references of the copy resolve against `parent`.
  std::unique_ptr<Graph> Clone(Graph* parent = nullptr) const;
  // Makes `this` a subgraph of `owner` (called when attaching a graph attribute).
  void SetParent(Graph* parent, Node* owner);

 private:
  friend class Node;
  Value* NewValue(const std::string& name);
  Value* NewValueUnchecked(const std::string& name);
  bool NameTakenDown(const std::string& name) const;

  Graph* parent_ = nullptr;
  Node* owner_ = nullptr;
  std::list<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Value>> values_;
  std::unordered_map<std::string, Value*> by_name_;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  std::vector<Value*> initializers_;
  uint64_t name_counter_ = 0;
};

struct OpsetImport {
  std::string domain;  // "" = ai.onnx
  int64_t version = 0;
};

class Model {
 public:
  Model() : graph(std::make_unique<Graph>()) {}
  int64_t ir_version = 8;
  std::string producer_name;
  std::string producer_version;
  std::string domain;
  int64_t model_version = 0;
  std::string doc;
  std::vector<OpsetImport> opsets;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::unique_ptr<Graph> graph;

  // Opset version imported for `domain` ("" and "ai.onnx" are the same); 0 when absent.
  int64_t OpsetVersion(const std::string& domain) const;
  void SetOpsetVersion(const std::string& domain, int64_t version);
  std::unique_ptr<Model> Clone() const;
};

}  // namespace edgepress::ir
