#include "ir/graph.h"

#include <algorithm>
#include <sstream>
#include <unordered_set>

#include "ir/error.h"

namespace edgepress::ir {

Shape MakeShape(const std::vector<int64_t>& dims) {
  Shape s;
  s.reserve(dims.size());
  for (int64_t d : dims) s.push_back(Dim::Known(d));
  return s;
}

std::optional<std::vector<int64_t>> ConcreteDims(const Shape& s) {
  std::vector<int64_t> out;
  out.reserve(s.size());
  for (const Dim& d : s) {
    if (!d.known()) return std::nullopt;
    out.push_back(d.value);
  }
  return out;
}

std::string ShapeToString(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    if (s[i].known()) out += std::to_string(s[i].value);
    else if (!s[i].symbol.empty()) out += s[i].symbol;
    else out += "?";
  }
  return out + "]";
}

bool ValueType::operator==(const ValueType& o) const {
  if (kind != o.kind || dtype != o.dtype || shape != o.shape || denotation != o.denotation)
    return false;
  if (!elem || !o.elem) return !elem && !o.elem;
  return *elem == *o.elem;
}

std::string ValueType::ToString() const {
  switch (kind) {
    case Kind::kUnknown: return "?";
    case Kind::kTensor:
    case Kind::kSparseTensor: {
      std::string s = kind == Kind::kSparseTensor ? "sparse " : "";
      s += DTypeName(dtype);
      s += shape ? ShapeToString(*shape) : "[...]";
      return s;
    }
    case Kind::kSequence: return "seq(" + (elem ? elem->ToString() : "?") + ")";
    case Kind::kOptional: return "optional(" + (elem ? elem->ToString() : "?") + ")";
    case Kind::kMap:
      return std::string("map(") + DTypeName(dtype) + "," + (elem ? elem->ToString() : "?") + ")";
  }
  return "?";
}

bool Value::is_graph_output() const {
  const auto& outs = graph_->outputs();
  return std::find(outs.begin(), outs.end(), this) != outs.end();
}

// ---------------------------------------------------------------------------- Attribute

Attribute Attribute::Int(std::string n, int64_t v) {
  Attribute a; a.name = std::move(n); a.kind = Kind::kInt; a.i = v; return a;
}
Attribute Attribute::Float(std::string n, float v) {
  Attribute a; a.name = std::move(n); a.kind = Kind::kFloat; a.f = v; return a;
}
Attribute Attribute::String(std::string n, std::string v) {
  Attribute a; a.name = std::move(n); a.kind = Kind::kString; a.s = std::move(v); return a;
}
Attribute Attribute::Ints(std::string n, std::vector<int64_t> v) {
  Attribute a; a.name = std::move(n); a.kind = Kind::kInts; a.ints = std::move(v); return a;
}
Attribute Attribute::Floats(std::string n, std::vector<float> v) {
  Attribute a; a.name = std::move(n); a.kind = Kind::kFloats; a.floats = std::move(v); return a;
}
Attribute Attribute::TensorValue(std::string n, Tensor v) {
  Attribute a; a.name = std::move(n); a.kind = Kind::kTensor; a.t = std::move(v); return a;
}
Attribute Attribute::GraphValue(std::string n, std::shared_ptr<Graph> v) {
  Attribute a; a.name = std::move(n); a.kind = Kind::kGraph; a.g = std::move(v); return a;
}

const char* AttributeKindName(Attribute::Kind k) {
  switch (k) {
    case Attribute::Kind::kUndefined: return "undefined";
    case Attribute::Kind::kFloat: return "float";
    case Attribute::Kind::kInt: return "int";
    case Attribute::Kind::kString: return "string";
    case Attribute::Kind::kTensor: return "tensor";
    case Attribute::Kind::kGraph: return "graph";
    case Attribute::Kind::kFloats: return "floats";
    case Attribute::Kind::kInts: return "ints";
    case Attribute::Kind::kStrings: return "strings";
    case Attribute::Kind::kTensors: return "tensors";
    case Attribute::Kind::kGraphs: return "graphs";
    case Attribute::Kind::kTypeProto: return "type_proto";
    case Attribute::Kind::kTypeProtos: return "type_protos";
  }
  return "?";
}

// ---------------------------------------------------------------------------- Node

std::string Node::qualified_op() const {
  if (domain_.empty() || domain_ == "ai.onnx") return op_type_;
  return domain_ + "::" + op_type_;
}

std::string Node::describe() const {
  return "node '" + name + "' (" + qualified_op() + ")";
}

void Node::set_input(size_t i, Value* v) {
  if (i >= inputs_.size()) inputs_.resize(i + 1, nullptr);
  Value* old = inputs_[i];
  if (old) {
    auto& uses = old->uses_;
    for (auto it = uses.begin(); it != uses.end(); ++it) {
      if (it->user == this && it->index == static_cast<int>(i)) {
        uses.erase(it);
        break;
      }
    }
  }
  inputs_[i] = v;
  if (v) v->uses_.push_back(Use{this, static_cast<int>(i)});
}

void Node::add_input(Value* v) { set_input(inputs_.size(), v); }

void Node::remove_input(size_t i) {
  if (i >= inputs_.size()) return;
  std::vector<Value*> tail(inputs_.begin() + static_cast<long>(i) + 1, inputs_.end());
  for (size_t k = i; k < inputs_.size(); ++k) set_input(k, nullptr);
  inputs_.resize(i);
  for (Value* v : tail) add_input(v);
}

const Attribute* Node::attr(const std::string& n) const {
  for (const auto& a : attrs_)
    if (a.name == n) return &a;
  return nullptr;
}

void Node::set_attr(Attribute a) {
  for (auto& x : attrs_) {
    if (x.name == a.name) {
      x = std::move(a);
      if (x.g) x.g->SetParent(graph_, this);
      for (auto& g : x.graphs) g->SetParent(graph_, this);
      return;
    }
  }
  attrs_.push_back(std::move(a));
  auto& x = attrs_.back();
  if (x.g) x.g->SetParent(graph_, this);
  for (auto& g : x.graphs) g->SetParent(graph_, this);
}

bool Node::remove_attr(const std::string& n) {
  for (auto it = attrs_.begin(); it != attrs_.end(); ++it) {
    if (it->name == n) {
      attrs_.erase(it);
      return true;
    }
  }
  return false;
}

namespace {
[[noreturn]] void AttrKindError(const Node& n, const Attribute& a, const char* want) {
  ThrowInvalid(n.describe() + ": attribute '" + a.name + "' is " + AttributeKindName(a.kind) +
               ", expected " + want);
}
}  // namespace

int64_t Node::attr_int(const std::string& n, int64_t def) const {
  const Attribute* a = attr(n);
  if (!a) return def;
  if (a->kind != Attribute::Kind::kInt) AttrKindError(*this, *a, "int");
  return a->i;
}
float Node::attr_float(const std::string& n, float def) const {
  const Attribute* a = attr(n);
  if (!a) return def;
  if (a->kind == Attribute::Kind::kInt) return static_cast<float>(a->i);
  if (a->kind != Attribute::Kind::kFloat) AttrKindError(*this, *a, "float");
  return a->f;
}
std::string Node::attr_string(const std::string& n, const std::string& def) const {
  const Attribute* a = attr(n);
  if (!a) return def;
  if (a->kind != Attribute::Kind::kString) AttrKindError(*this, *a, "string");
  return a->s;
}
std::vector<int64_t> Node::attr_ints(const std::string& n,
                                     const std::vector<int64_t>& def) const {
  const Attribute* a = attr(n);
  if (!a) return def;
  if (a->kind != Attribute::Kind::kInts) AttrKindError(*this, *a, "ints");
  return a->ints;
}
std::vector<float> Node::attr_floats(const std::string& n, const std::vector<float>& def) const {
  const Attribute* a = attr(n);
  if (!a) return def;
  if (a->kind != Attribute::Kind::kFloats) AttrKindError(*this, *a, "floats");
  return a->floats;
}

std::vector<Graph*> Node::subgraphs() const {
  std::vector<Graph*> out;
  for (const auto& a : attrs_) {
    if (a.g) out.push_back(a.g.get());
    for (const auto& g : a.graphs) out.push_back(g.get());
  }
  return out;
}

// ---------------------------------------------------------------------------- Graph

Value* Graph::NewValueUnchecked(const std::string& name) {
  auto v = std::make_unique<Value>();
  v->name_ = name;
  v->graph_ = this;
  Value* raw = v.get();
  values_.push_back(std::move(v));
  by_name_[name] = raw;
  return raw;
}

Value* Graph::NewValue(const std::string& name) {
  if (name.empty()) ThrowInvalid("graph '" + this->name + "': a value has an empty name");
  if (FindValue(name))
    ThrowInvalid("graph '" + this->name + "': value name '" + name +
                 "' is defined more than once");
  return NewValueUnchecked(name);
}

Value* Graph::FindValue(const std::string& n) const {
  for (const Graph* g = this; g; g = g->parent_) {
    auto it = g->by_name_.find(n);
    if (it != g->by_name_.end()) return it->second;
  }
  return nullptr;
}

bool Graph::NameTakenDown(const std::string& n) const {
  if (by_name_.count(n)) return true;
  for (const auto& node : nodes_)
    for (Graph* sg : node->subgraphs())
      if (sg->NameTakenDown(n)) return true;
  return false;
}

std::string Graph::UniqueName(const std::string& base) {
  std::string b = base.empty() ? "v" : base;
  auto taken = [&](const std::string& n) { return FindValue(n) || NameTakenDown(n); };
  if (!taken(b)) return b;
  for (;;) {
    std::string candidate = b + "_" + std::to_string(++name_counter_);
    if (!taken(candidate)) return candidate;
  }
}

void Graph::RenameValue(Value* v, const std::string& n) {
  if (v->name_ == n) return;
  if (FindValue(n) || NameTakenDown(n))
    ThrowInvalid("graph '" + name + "': cannot rename '" + v->name_ + "' to '" + n +
                 "': the name is taken");
  by_name_.erase(v->name_);
  v->name_ = n;
  by_name_[n] = v;
}

Value* Graph::AddInput(const std::string& n, ValueType type) {
  Value* v = NewValue(n);
  v->type = std::move(type);
  v->is_input_ = true;
  inputs_.push_back(v);
  return v;
}

Value* Graph::AddInitializer(const std::string& n, Tensor t) {
  auto it = by_name_.find(n);
  Value* v;
  if (it != by_name_.end() && it->second->is_input_ && !it->second->initializer_) {
    v = it->second;  // a graph input with a default value (ONNX ir_version < 4 style)
  } else {
    v = NewValue(n);
    v->type = ValueType::Tensor(t.dtype(), MakeShape(t.shape()));
  }
  v->initializer_ = std::move(t);
  initializers_.push_back(v);
  return v;
}

void Graph::AddOutput(Value* v) { outputs_.push_back(v); }

void Graph::SetOutput(size_t i, Value* v) {
  if (i >= outputs_.size()) throw std::logic_error("Graph::SetOutput: index out of range");
  outputs_[i] = v;
}

void Graph::RemoveOutput(size_t i) {
  if (i < outputs_.size()) outputs_.erase(outputs_.begin() + static_cast<long>(i));
}

void Graph::RemoveInput(Value* v) {
  if (!v->uses_.empty()) throw std::logic_error("Graph::RemoveInput: input still used");
  inputs_.erase(std::remove(inputs_.begin(), inputs_.end(), v), inputs_.end());
  v->is_input_ = false;
  if (!v->initializer_ && !v->is_graph_output()) {
    by_name_.erase(v->name_);
    values_.erase(std::remove_if(values_.begin(), values_.end(),
                                 [&](const std::unique_ptr<Value>& p) { return p.get() == v; }),
                  values_.end());
  }
}

bool Graph::RemoveInitializer(Value* v) {
  if (!v->uses_.empty() || v->is_graph_output()) return false;
  initializers_.erase(std::remove(initializers_.begin(), initializers_.end(), v),
                      initializers_.end());
  v->initializer_.reset();
  if (!v->is_input_) {
    by_name_.erase(v->name_);
    values_.erase(std::remove_if(values_.begin(), values_.end(),
                                 [&](const std::unique_ptr<Value>& p) { return p.get() == v; }),
                  values_.end());
  }
  return true;
}

Node* Graph::AddNode(const std::string& op_type, const std::vector<Value*>& inputs,
                     const std::vector<std::string>& output_names, const std::string& name,
                     const std::string& domain) {
  return InsertNode(nullptr, op_type, inputs, output_names, name, domain);
}

Node* Graph::InsertNode(Node* pos, const std::string& op_type,
                        const std::vector<Value*>& inputs,
                        const std::vector<std::string>& output_names, const std::string& name,
                        const std::string& domain) {
  auto node = std::make_unique<Node>();
  node->op_type_ = op_type;
  node->domain_ = domain == "ai.onnx" ? "" : domain;
  node->graph_ = this;
  node->name = name;
  Node* raw = node.get();
  for (Value* v : inputs) raw->add_input(v);
  for (const auto& on : output_names) {
    if (on.empty()) {
      raw->outputs_.push_back(nullptr);
      continue;
    }
    Value* v = NewValue(on);
    v->producer_ = raw;
    v->producer_index_ = static_cast<int>(raw->outputs_.size());
    raw->outputs_.push_back(v);
  }
  if (!pos) {
    nodes_.push_back(std::move(node));
  } else {
    auto it = std::find_if(nodes_.begin(), nodes_.end(),
                           [&](const std::unique_ptr<Node>& p) { return p.get() == pos; });
    nodes_.insert(it, std::move(node));
  }
  return raw;
}

namespace {
// Drops every use that nodes of `g` (recursively) hold, so outer values do not keep
// dangling uses when a control-flow node is deleted.
void DetachAllUses(Graph& g) {
  for (Node* n : g.nodes()) {
    for (Graph* sg : n->subgraphs()) DetachAllUses(*sg);
    for (size_t i = 0; i < n->num_inputs(); ++i) n->set_input(i, nullptr);
  }
}
}  // namespace

void Graph::RemoveNode(Node* n) {
  for (Value* o : n->outputs_) {
    if (o && (!o->uses_.empty() || o->is_graph_output()))
      throw std::logic_error("Graph::RemoveNode: output '" + o->name() + "' of " +
                             n->describe() + " is still used");
  }
  for (Graph* sg : n->subgraphs()) DetachAllUses(*sg);
  for (size_t i = 0; i < n->num_inputs(); ++i) n->set_input(i, nullptr);
  std::unordered_set<Value*> dead(n->outputs_.begin(), n->outputs_.end());
  for (Value* o : n->outputs_)
    if (o) by_name_.erase(o->name_);
  values_.erase(std::remove_if(values_.begin(), values_.end(),
                               [&](const std::unique_ptr<Value>& p) { return dead.count(p.get()); }),
                values_.end());
  nodes_.remove_if([&](const std::unique_ptr<Node>& p) { return p.get() == n; });
}

std::vector<Node*> Graph::nodes() const {
  std::vector<Node*> out;
  out.reserve(nodes_.size());
  for (const auto& n : nodes_) out.push_back(n.get());
  return out;
}

Node* Graph::FindNode(const std::string& n) const {
  for (const auto& node : nodes_)
    if (node->name == n) return node.get();
  return nullptr;
}

void Graph::ReplaceAllUsesWith(Value* from, Value* to) {
  if (from == to) return;
  std::vector<Use> uses = from->uses_;
  for (const Use& u : uses) u.user->set_input(static_cast<size_t>(u.index), to);
  Graph* g = from->graph_;
  for (auto& o : g->outputs_)
    if (o == from) o = to;
}

int Graph::RemoveDeadNodes() {
  int removed = 0;
  bool again = true;
  while (again) {
    again = false;
    for (auto it = nodes_.rbegin(); it != nodes_.rend();) {
      Node* n = it->get();
      ++it;
      bool live = false;
      for (Value* o : n->outputs_)
        if (o && (!o->uses_.empty() || o->is_graph_output())) live = true;
      if (!live) {
        RemoveNode(n);
        ++removed;
        again = true;
        break;  // iterator invalidated; restart from the end
      }
    }
  }
  std::vector<Value*> inits = initializers_;
  for (Value* v : inits)
    if (!v->is_input_) RemoveInitializer(v);
  return removed;
}

namespace {
// Values of graph `g` (or enclosing graphs) that node `n` consumes, including through
// outer-scope references made inside its subgraphs.
void CollectConsumed(const Node* n, std::vector<Value*>& out) {
  for (Value* v : n->inputs())
    if (v) out.push_back(v);
  for (Graph* sg : n->subgraphs())
    for (Node* inner : sg->nodes()) CollectConsumed(inner, out);
}
}  // namespace

void Graph::TopologicalSort() {
  std::vector<Node*> order = nodes();
  std::unordered_map<const Node*, size_t> index;
  for (size_t i = 0; i < order.size(); ++i) index[order[i]] = i;
  std::vector<std::vector<size_t>> succ(order.size());
  std::vector<size_t> indeg(order.size(), 0);
  for (size_t i = 0; i < order.size(); ++i) {
    std::vector<Value*> consumed;
    CollectConsumed(order[i], consumed);
    std::unordered_set<size_t> preds;
    for (Value* v : consumed) {
      // Walk up: a value produced in a subgraph of this graph's node is not a dependency.
      if (v->producer() && v->producer()->graph() == this) {
        size_t p = index.at(v->producer());
        if (p != i && preds.insert(p).second) {
          succ[p].push_back(i);
          ++indeg[i];
        }
      }
    }
  }
  // Kahn with the smallest original index first, so sorted graphs keep their order.
  std::vector<size_t> heap;
  auto cmp = [](size_t a, size_t b) { return a > b; };
  for (size_t i = 0; i < order.size(); ++i)
    if (indeg[i] == 0) heap.push_back(i);
  std::make_heap(heap.begin(), heap.end(), cmp);
  std::vector<size_t> sorted;
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    size_t i = heap.back();
    heap.pop_back();
    sorted.push_back(i);
    for (size_t s : succ[i]) {
      if (--indeg[s] == 0) {
        heap.push_back(s);
        std::push_heap(heap.begin(), heap.end(), cmp);
      }
    }
  }
  if (sorted.size() != order.size()) {
    for (size_t i = 0; i < order.size(); ++i)
      if (indeg[i] != 0)
        ThrowInvalid("graph '" + name + "' has a cycle through " + order[i]->describe());
  }
  std::unordered_map<const Node*, std::unique_ptr<Node>> owned;
  for (auto& p : nodes_) owned[p.get()] = std::move(p);
  nodes_.clear();
  for (size_t i : sorted) nodes_.push_back(std::move(owned[order[i]]));
}

void Graph::Walk(const std::function<void(Graph&)>& fn) {
  fn(*this);
  for (const auto& n : nodes_)
    for (Graph* sg : n->subgraphs()) sg->Walk(fn);
}

void Graph::SetParent(Graph* parent, Node* owner) {
  parent_ = parent;
  owner_ = owner;
}

std::unique_ptr<Graph> Graph::Clone(Graph* parent) const {
  auto g = std::make_unique<Graph>();
  g->name = name;
  g->doc = doc;
  g->parent_ = parent;
  std::unordered_map<const Value*, Value*> map;
  auto mapped = [&](Value* v) -> Value* {
    if (!v) return nullptr;
    auto it = map.find(v);
    if (it != map.end()) return it->second;
    Value* outer = g->FindValue(v->name());
    if (!outer)
      throw std::logic_error("Graph::Clone: outer value '" + v->name() + "' not found");
    return outer;
  };
  for (Value* in : inputs_) {
    Value* c = g->AddInput(in->name(), in->type);
    c->doc = in->doc;
    map[in] = c;
  }
  for (Value* init : initializers_) {
    Value* c = g->AddInitializer(init->name(), *init->initializer());
    c->type = init->type;
    c->doc = init->doc;
    c->synthesized = init->synthesized;
    map[init] = c;
  }
  for (const auto& n : nodes_) {
    std::vector<Value*> ins;
    for (Value* v : n->inputs_) ins.push_back(mapped(v));
    std::vector<std::string> outs;
    for (Value* o : n->outputs_) outs.push_back(o ? o->name() : "");
    Node* c = g->AddNode(n->op_type_, ins, outs, n->name, n->domain_);
    c->doc = n->doc;
    for (size_t i = 0; i < n->outputs_.size(); ++i) {
      if (!n->outputs_[i]) continue;
      c->outputs_[i]->type = n->outputs_[i]->type;
      c->outputs_[i]->doc = n->outputs_[i]->doc;
      map[n->outputs_[i]] = c->outputs_[i];
    }
    for (const Attribute& a : n->attrs_) {
      Attribute ca = a;
      if (a.g) ca.g = std::shared_ptr<Graph>(a.g->Clone(g.get()).release());
      for (auto& sg : ca.graphs) sg = std::shared_ptr<Graph>(sg->Clone(g.get()).release());
      c->set_attr(std::move(ca));
    }
  }
  for (Value* o : outputs_) g->AddOutput(mapped(o));
  // Values that are neither inputs, initializers nor node outputs but carry type info
  // (value_info of unused names) are not kept: they have no producer.
  return g;
}

// ---------------------------------------------------------------------------- Model

int64_t Model::OpsetVersion(const std::string& d) const {
  std::string want = d == "ai.onnx" ? "" : d;
  for (const auto& o : opsets) {
    std::string have = o.domain == "ai.onnx" ? "" : o.domain;
    if (have == want) return o.version;
  }
  return 0;
}

void Model::SetOpsetVersion(const std::string& d, int64_t version) {
  std::string want = d == "ai.onnx" ? "" : d;
  for (auto& o : opsets) {
    std::string have = o.domain == "ai.onnx" ? "" : o.domain;
    if (have == want) {
      o.version = version;
      return;
    }
  }
  opsets.push_back({want, version});
}

std::unique_ptr<Model> Model::Clone() const {
  auto m = std::make_unique<Model>();
  m->ir_version = ir_version;
  m->producer_name = producer_name;
  m->producer_version = producer_version;
  m->domain = domain;
  m->model_version = model_version;
  m->doc = doc;
  m->opsets = opsets;
  m->metadata = metadata;
  m->graph = graph->Clone();
  return m;
}

}  // namespace edgepress::ir
