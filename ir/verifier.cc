#include "ir/verifier.h"

#include <algorithm>
#include <functional>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "ir/error.h"

namespace edgepress::ir {
namespace {

// Input and output counts of ai.onnx ops; -1 = unbounded. Old-opset forms (attributes
// instead of inputs) are allowed by the lower bounds.
struct Arity {
  int min_in, max_in, min_out, max_out;
};
const std::unordered_map<std::string, Arity>& ArityTable() {
  static const std::unordered_map<std::string, Arity> table = {
      {"Conv", {2, 3, 1, 1}},
      {"ConvTranspose", {2, 3, 1, 1}},
      {"MatMul", {2, 2, 1, 1}},
      {"Gemm", {2, 3, 1, 1}},
      {"BatchNormalization", {5, 5, 1, 5}},
      {"Relu", {1, 1, 1, 1}},
      {"LeakyRelu", {1, 1, 1, 1}},
      {"Clip", {1, 3, 1, 1}},
      {"Sigmoid", {1, 1, 1, 1}},
      {"HardSigmoid", {1, 1, 1, 1}},
      {"HardSwish", {1, 1, 1, 1}},
      {"Tanh", {1, 1, 1, 1}},
      {"Erf", {1, 1, 1, 1}},
      {"Gelu", {1, 1, 1, 1}},
      {"Softmax", {1, 1, 1, 1}},
      {"LogSoftmax", {1, 1, 1, 1}},
      {"LayerNormalization", {2, 3, 1, 3}},
      {"Add", {2, 2, 1, 1}},
      {"Sub", {2, 2, 1, 1}},
      {"Mul", {2, 2, 1, 1}},
      {"Div", {2, 2, 1, 1}},
      {"Pow", {2, 2, 1, 1}},
      {"Sqrt", {1, 1, 1, 1}},
      {"Exp", {1, 1, 1, 1}},
      {"Log", {1, 1, 1, 1}},
      {"Neg", {1, 1, 1, 1}},
      {"Abs", {1, 1, 1, 1}},
      {"Reciprocal", {1, 1, 1, 1}},
      {"Min", {1, -1, 1, 1}},
      {"Max", {1, -1, 1, 1}},
      {"Sum", {1, -1, 1, 1}},
      {"Mean", {1, -1, 1, 1}},
      {"Equal", {2, 2, 1, 1}},
      {"Less", {2, 2, 1, 1}},
      {"Greater", {2, 2, 1, 1}},
      {"LessOrEqual", {2, 2, 1, 1}},
      {"GreaterOrEqual", {2, 2, 1, 1}},
      {"Where", {3, 3, 1, 1}},
      {"Not", {1, 1, 1, 1}},
      {"And", {2, 2, 1, 1}},
      {"Or", {2, 2, 1, 1}},
      {"Xor", {2, 2, 1, 1}},
      {"Reshape", {1, 2, 1, 1}},
      {"Transpose", {1, 1, 1, 1}},
      {"Flatten", {1, 1, 1, 1}},
      {"Squeeze", {1, 2, 1, 1}},
      {"Unsqueeze", {1, 2, 1, 1}},
      {"Concat", {1, -1, 1, 1}},
      {"Split", {1, 2, 1, -1}},
      {"Slice", {1, 5, 1, 1}},
      {"Gather", {2, 2, 1, 1}},
      {"Expand", {2, 2, 1, 1}},
      {"Tile", {2, 2, 1, 1}},
      {"Pad", {1, 4, 1, 1}},
      {"Shape", {1, 1, 1, 1}},
      {"Size", {1, 1, 1, 1}},
      {"Cast", {1, 1, 1, 1}},
      {"ConstantOfShape", {1, 1, 1, 1}},
      {"Range", {3, 3, 1, 1}},
      {"Identity", {1, 1, 1, 1}},
      {"Dropout", {1, 3, 1, 2}},
      {"MaxPool", {1, 1, 1, 2}},
      {"AveragePool", {1, 1, 1, 1}},
      {"GlobalAveragePool", {1, 1, 1, 1}},
      {"GlobalMaxPool", {1, 1, 1, 1}},
      {"ReduceMean", {1, 2, 1, 1}},
      {"ReduceSum", {1, 2, 1, 1}},
      {"ReduceMax", {1, 2, 1, 1}},
      {"ReduceMin", {1, 2, 1, 1}},
      {"ReduceProd", {1, 2, 1, 1}},
      {"ArgMax", {1, 1, 1, 1}},
      {"ArgMin", {1, 1, 1, 1}},
      {"Resize", {1, 4, 1, 1}},
      {"Upsample", {1, 2, 1, 1}},
      {"If", {1, 1, 1, -1}},
      {"Loop", {2, -1, 0, -1}},
      {"LSTM", {3, 8, 0, 3}},
      {"GRU", {3, 6, 0, 2}},
      {"RNN", {3, 6, 0, 2}},
      {"Constant", {0, 0, 1, 1}},
      {"QuantizeLinear", {2, 3, 1, 1}},
      {"DequantizeLinear", {2, 3, 1, 1}},
      {"MatMulInteger", {2, 4, 1, 1}},
      {"ConvInteger", {2, 4, 1, 1}},
      {"QLinearMatMul", {8, 8, 1, 1}},
      {"QLinearConv", {8, 9, 1, 1}},
  };
  return table;
}

// Ops whose data inputs must share one dtype and broadcast together.
bool IsElementwiseBinary(const std::string& op) {
  static const std::unordered_set<std::string> ops = {
      "Add", "Sub", "Mul", "Div", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
      "And", "Or",  "Xor", "Min", "Max",   "Sum",  "Mean",    "Mod"};
  return ops.count(op) > 0;
}

// Ops whose output has the dtype of input 0.
bool IsSameTypeUnary(const std::string& op) {
  static const std::unordered_set<std::string> ops = {
      "Relu",   "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
      "Erf",    "Gelu",      "Softmax", "LogSoftmax",  "Sqrt",      "Exp",
      "Log",    "Neg",       "Abs",     "Reciprocal",  "Identity",  "Add",
      "Sub",    "Mul",       "Div",     "Pow",         "Min",       "Max",
      "Clip",   "Transpose", "Reshape", "Flatten",     "Squeeze",   "Unsqueeze",
      "Concat", "Slice",     "Gather",  "Expand",      "Tile",      "Pad"};
  return ops.count(op) > 0;
}

bool BroadcastCompatible(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const Dim* da = i < a.size() ? &a[a.size() - 1 - i] : nullptr;
    const Dim* db = i < b.size() ? &b[b.size() - 1 - i] : nullptr;
    if (!da || !db || !da->known() || !db->known()) continue;
    if (da->value != db->value && da->value != 1 && db->value != 1) return false;
  }
  return true;
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

class Verifier {
 public:
  explicit Verifier(const Graph& root) { CollectAll(root); }

  void Run(const Graph& g) {
    std::unordered_set<const Value*> outer;
    std::unordered_set<std::string> outer_names;
    // A subgraph verified on its own may reference anything its ancestors define.
    for (const Graph* p = g.parent(); p; p = p->parent()) {
      for (Value* v : p->inputs()) AddOuter(v, outer, outer_names);
      for (Value* v : p->initializers()) AddOuter(v, outer, outer_names);
      for (Node* n : p->nodes())
        for (Value* v : n->outputs()) AddOuter(v, outer, outer_names);
    }
    CheckGraph(g, outer, outer_names);
  }

  std::vector<std::string> problems;

 private:
  static void AddOuter(Value* v, std::unordered_set<const Value*>& outer,
                       std::unordered_set<std::string>& names) {
    if (!v) return;
    outer.insert(v);
    names.insert(v->name());
  }

  void CollectAll(const Graph& g) {
    for (Value* v : g.inputs())
      if (v) values_.insert(v);
    for (Value* v : g.initializers())
      if (v) values_.insert(v);
    for (Node* n : g.nodes()) {
      nodes_.insert(n);
      for (Value* v : n->outputs())
        if (v) values_.insert(v);
      for (Graph* sg : n->subgraphs())
        if (sg) CollectAll(*sg);
    }
  }

  static std::string Label(const Graph& g) {
    std::string s = "graph " + Quote(g.name);
    if (g.owner()) s += " (subgraph of " + g.owner()->describe() + ")";
    return s;
  }

  void Problem(const Graph& g, const std::string& msg) {
    problems.push_back(Label(g) + ": " + msg);
  }

  void CheckName(const Graph& g, const Value* v,
                 std::unordered_map<std::string, const Value*>& local,
                 const std::unordered_set<std::string>& outer_names) {
    if (v->name().empty()) {
      Problem(g, "a value has an empty name");
      return;
    }
    auto [it, inserted] = local.emplace(v->name(), v);
    if (!inserted && it->second != v)
      Problem(g, "value name " + Quote(v->name()) + " is defined more than once");
    if (outer_names.count(v->name()))
      Problem(g, "value " + Quote(v->name()) + " shadows a value of an enclosing graph");
  }

  void CheckInitializer(const Graph& g, const Value* v) {
    const Tensor* t = v->initializer();
    if (!t || t->empty()) {
      Problem(g, "initializer " + Quote(v->name()) + " has no tensor");
      return;
    }
    if (v->type.kind == ValueType::Kind::kUnknown) return;
    if (!v->type.is_tensor()) {
      Problem(g, "initializer " + Quote(v->name()) + " has non-tensor type " + v->type.ToString());
      return;
    }
    if (v->type.dtype != DType::kUndefined && v->type.dtype != t->dtype())
      Problem(g, "initializer " + Quote(v->name()) + " holds " + DTypeName(t->dtype()) +
                     " data but its value is typed " + v->type.ToString());
    if (v->type.shape) {
      const Shape& s = *v->type.shape;
      bool ok = s.size() == t->shape().size();
      for (size_t i = 0; ok && i < s.size(); ++i)
        if (s[i].known() && s[i].value != t->shape()[i]) ok = false;
      if (!ok) {
        std::string ts = ShapeToString(MakeShape(t->shape()));
        Problem(g, "initializer " + Quote(v->name()) + " has shape " + ts +
                       " but its value is typed " + v->type.ToString());
      }
    }
  }

  void CheckArity(const Graph& g, const Node* n) {
    if (!n->domain().empty()) return;
    auto it = ArityTable().find(n->op_type());
    if (it == ArityTable().end()) return;
    const Arity& a = it->second;
    int ni = static_cast<int>(n->num_inputs());
    int no = static_cast<int>(n->num_outputs());
    // Trailing omitted optional inputs/outputs do not count.
    while (ni > 0 && !n->input(static_cast<size_t>(ni - 1))) --ni;
    while (no > 0 && !n->output(static_cast<size_t>(no - 1))) --no;
    if (ni < a.min_in || (a.max_in >= 0 && ni > a.max_in))
      Problem(g, n->describe() + " has " + std::to_string(ni) + " inputs, expected " +
                     std::to_string(a.min_in) + ".." +
                     (a.max_in < 0 ? std::string("n") : std::to_string(a.max_in)));
    if (no < a.min_out || (a.max_out >= 0 && no > a.max_out))
      Problem(g, n->describe() + " has " + std::to_string(no) + " outputs, expected " +
                     std::to_string(a.min_out) + ".." +
                     (a.max_out < 0 ? std::string("n") : std::to_string(a.max_out)));
  }

  void CheckTypes(const Graph& g, const Node* n) {
    if (!n->domain().empty()) return;
    const std::string& op = n->op_type();
    auto tensor_in = [&](size_t i) -> const ValueType* {
      Value* v = n->input(i);
      if (!v || !values_.count(v) || !v->type.is_tensor() || v->type.dtype == DType::kUndefined)
        return nullptr;
      return &v->type;
    };
    if (IsElementwiseBinary(op)) {
      const ValueType* first = nullptr;
      for (size_t i = 0; i < n->num_inputs(); ++i) {
        const ValueType* t = tensor_in(i);
        if (!t) continue;
        if (!first) {
          first = t;
          continue;
        }
        if (t->dtype != first->dtype)
          Problem(g, n->describe() + ": input " + std::to_string(i) + " " +
                         Quote(n->input(i)->name()) + " is " + DTypeName(t->dtype) +
                         " but input 0 is " + DTypeName(first->dtype));
        else if (t->shape && first->shape && !BroadcastCompatible(*t->shape, *first->shape))
          Problem(g, n->describe() + ": shapes " + ShapeToString(*first->shape) + " and " +
                         ShapeToString(*t->shape) + " do not broadcast");
      }
    }
    if (op == "Where") {
      const ValueType* c = tensor_in(0);
      if (c && c->dtype != DType::kBool)
        Problem(g, n->describe() + ": condition " + Quote(n->input(0)->name()) + " is " +
                       DTypeName(c->dtype) + ", expected bool");
      const ValueType* x = tensor_in(1);
      const ValueType* y = tensor_in(2);
      if (x && y && x->dtype != y->dtype)
        Problem(g, n->describe() + ": branches are " + DTypeName(x->dtype) + " and " +
                       DTypeName(y->dtype));
    }
    if (IsSameTypeUnary(op)) {
      const ValueType* in = tensor_in(0);
      Value* out = n->output(0);
      if (in && out && values_.count(out) && out->type.is_tensor() &&
          out->type.dtype != DType::kUndefined && out->type.dtype != in->dtype)
        Problem(g, n->describe() + ": output " + Quote(out->name()) + " is " +
                       DTypeName(out->type.dtype) + " but input 0 is " + DTypeName(in->dtype));
    }
  }

  // Kahn's algorithm over the nodes of g; returns a node on a cycle, or nullptr.
  const Node* FindCycle(const Graph& g) {
    std::vector<Node*> order = g.nodes();
    std::unordered_map<const Node*, size_t> index;
    for (size_t i = 0; i < order.size(); ++i) index[order[i]] = i;
    std::vector<std::vector<size_t>> succ(order.size());
    std::vector<size_t> indeg(order.size(), 0);
    std::function<void(const Node*, std::vector<const Value*>&)> consumed =
        [&](const Node* n, std::vector<const Value*>& out) {
          for (Value* v : n->inputs())
            if (v && values_.count(v)) out.push_back(v);
          for (Graph* sg : n->subgraphs())
            for (Node* inner : sg->nodes()) consumed(inner, out);
        };
    for (size_t i = 0; i < order.size(); ++i) {
      std::vector<const Value*> ins;
      consumed(order[i], ins);
      std::unordered_set<size_t> preds;
      for (const Value* v : ins) {
        auto it = v->producer() ? index.find(v->producer()) : index.end();
        if (it == index.end() || it->second == i) continue;
        if (preds.insert(it->second).second) {
          succ[it->second].push_back(i);
          ++indeg[i];
        }
      }
    }
    std::vector<size_t> ready;
    for (size_t i = 0; i < order.size(); ++i)
      if (indeg[i] == 0) ready.push_back(i);
    size_t done = 0;
    while (!ready.empty()) {
      size_t i = ready.back();
      ready.pop_back();
      ++done;
      for (size_t s : succ[i])
        if (--indeg[s] == 0) ready.push_back(s);
    }
    if (done == order.size()) return nullptr;
    for (size_t i = 0; i < order.size(); ++i)
      if (indeg[i] != 0) return order[i];
    return nullptr;
  }

  // What one graph's check knows while it walks: the values visible so far (the enclosing
  // graphs' and this one's), this graph's names, the values it defines, and the nodes that
  // use a value before its producer (reported as a cycle or an ordering problem at the end).
  struct Scope {
    std::unordered_set<const Value*> defined;
    std::unordered_set<std::string> outer_names;
    std::unordered_map<std::string, const Value*> local;
    std::vector<const Value*> own;  // values defined by the graph, for the use-list check
    std::unordered_map<const Value*, const Node*> producers;      // by the nodes seen so far
    std::unordered_map<const Value*, const Node*> produced_later;  // by any node of the graph
    std::vector<std::string> order_messages;
  };

  void CheckGraph(const Graph& g, const std::unordered_set<const Value*>& outer,
                  const std::unordered_set<std::string>& outer_names) {
    Scope sc{outer, outer_names, {}, {}, {}, {}, {}};
    CheckGraphInputs(g, sc);
    CheckInitializers(g, sc);
    for (Node* n : g.nodes())
      for (Value* o : n->outputs())
        if (o) sc.produced_later.emplace(o, n);
    for (Node* n : g.nodes()) {
      if (n->graph() != &g) Problem(g, n->describe() + " belongs to another graph");
      CheckArity(g, n);
      CheckNodeInputs(g, n, sc);
      CheckSubgraphs(g, n, sc);
      CheckNodeOutputs(g, n, sc);
      CheckTypes(g, n);
    }
    if (!sc.order_messages.empty()) {
      if (const Node* c = FindCycle(g))
        Problem(g, "has a cycle through " + c->describe());
      else
        for (const auto& m : sc.order_messages) Problem(g, m);
    }
    CheckGraphOutputs(g, sc);
    CheckUseLists(g, sc.own);
  }

  std::string ProducerName(const Value* v) const {
    return nodes_.count(v->producer()) ? v->producer()->describe() : "a removed node";
  }

  void CheckGraphInputs(const Graph& g, Scope& sc) {
    for (Value* v : g.inputs()) {
      if (!v) {
        Problem(g, "a graph input is null");
        continue;
      }
      CheckName(g, v, sc.local, sc.outer_names);
      if (v->graph() != &g) Problem(g, "input " + Quote(v->name()) + " belongs to another graph");
      if (v->producer())
        Problem(g, "value " + Quote(v->name()) + " has two producers: graph input and " +
                       ProducerName(v));
      sc.defined.insert(v);
      sc.own.push_back(v);
    }
  }

  void CheckInitializers(const Graph& g, Scope& sc) {
    for (Value* v : g.initializers()) {
      if (!v) {
        Problem(g, "an initializer is null");
        continue;
      }
      if (!v->is_graph_input()) CheckName(g, v, sc.local, sc.outer_names);
      if (v->graph() != &g)
        Problem(g, "initializer " + Quote(v->name()) + " belongs to another graph");
      if (v->producer())
        Problem(g, "value " + Quote(v->name()) + " has two producers: initializer and " +
                       ProducerName(v));
      CheckInitializer(g, v);
      if (sc.defined.insert(v).second) sc.own.push_back(v);
    }
  }

  // Each input is a value of the model, defined before `n` (or later: an ordering problem),
  // and listed exactly once in its use list for this input slot.
  void CheckNodeInputs(const Graph& g, const Node* n, Scope& sc) {
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      Value* v = n->input(i);
      if (!v) continue;
      if (!values_.count(v)) {
        Problem(g, n->describe() + " input " + std::to_string(i) +
                       " refers to a value that is not part of this model");
        continue;
      }
      if (!sc.defined.count(v)) {
        auto it = sc.produced_later.find(v);
        if (it != sc.produced_later.end() && !sc.producers.count(v)) {
          sc.order_messages.push_back(n->describe() + " uses " + Quote(v->name()) + " before " +
                                      it->second->describe() +
                                      " defines it (nodes are not in topological order)");
        } else {
          Problem(g, n->describe() + " input " + std::to_string(i) + " " + Quote(v->name()) +
                         " is dangling: not defined in this graph or an enclosing one");
        }
      }
      int count = 0;
      for (const Use& u : v->uses())
        if (u.user == n && u.index == static_cast<int>(i)) ++count;
      if (count != 1)
        Problem(g, "use list of " + Quote(v->name()) + " has " + std::to_string(count) +
                       " entries for input " + std::to_string(i) + " of " + n->describe() +
                       ", expected 1");
    }
  }

  // A subgraph sees every value defined so far and every name of the enclosing graphs.
  void CheckSubgraphs(const Graph& g, const Node* n, const Scope& sc) {
    for (Graph* sg : n->subgraphs()) {
      if (!sg) {
        Problem(g, n->describe() + " has a null subgraph attribute");
        continue;
      }
      if (sg->parent() != &g || sg->owner() != n)
        Problem(g, "subgraph " + Quote(sg->name) + " of " + n->describe() +
                       " does not name that node and graph as its parent");
      std::unordered_set<std::string> names = sc.outer_names;
      for (const auto& kv : sc.local) names.insert(kv.first);
      CheckGraph(*sg, sc.defined, names);
    }
  }

  void CheckNodeOutputs(const Graph& g, Node* n, Scope& sc) {
    for (size_t k = 0; k < n->num_outputs(); ++k) {
      Value* o = n->output(k);
      if (!o) continue;
      CheckName(g, o, sc.local, sc.outer_names);
      if (o->graph() != &g)
        Problem(g, "output " + Quote(o->name()) + " of " + n->describe() +
                       " belongs to another graph");
      auto [pit, first] = sc.producers.emplace(o, n);
      if (!first || sc.defined.count(o)) {
        Problem(g, "value " + Quote(o->name()) + " has two producers: " + n->describe() + " and " +
                       (first ? std::string("a graph input or initializer")
                              : pit->second->describe()));
      } else if (o->producer() != n || o->producer_index() != static_cast<int>(k)) {
        Problem(g, "value " + Quote(o->name()) + " is output " + std::to_string(k) + " of " +
                       n->describe() + " but records a different producer");
      }
      if (sc.defined.insert(o).second) sc.own.push_back(o);
    }
  }

  void CheckGraphOutputs(const Graph& g, const Scope& sc) {
    for (size_t i = 0; i < g.outputs().size(); ++i) {
      Value* o = g.outputs()[i];
      if (!o) {
        Problem(g, "graph output " + std::to_string(i) + " is null");
      } else if (!values_.count(o) || !sc.defined.count(o)) {
        Problem(g, "graph output " + std::to_string(i) + " " +
                       (values_.count(o) ? Quote(o->name()) + " " : std::string()) +
                       "is not defined in this graph or an enclosing one");
      }
    }
  }

  // Every use recorded on a value the graph defines points back at a live node's input.
  void CheckUseLists(const Graph& g, const std::vector<const Value*>& own) {
    for (const Value* v : own) {
      for (const Use& u : v->uses()) {
        if (!nodes_.count(u.user)) {
          Problem(g, "use list of " + Quote(v->name()) + " names a node that is not in the model");
          continue;
        }
        if (u.index < 0 || u.user->input(static_cast<size_t>(u.index)) != v)
          Problem(g, "use list of " + Quote(v->name()) + " says input " + std::to_string(u.index) +
                         " of " + u.user->describe() + " uses it, but that input is " +
                         (u.user->input(static_cast<size_t>(std::max(u.index, 0)))
                              ? Quote(u.user->input(static_cast<size_t>(u.index))->name())
                              : std::string("empty")));
      }
    }
  }

  std::unordered_set<const Value*> values_;
  std::unordered_set<const Node*> nodes_;
};

const Graph& Root(const Graph& g) {
  const Graph* r = &g;
  while (r->parent()) r = r->parent();
  return *r;
}

void ThrowFirst(const std::vector<std::string>& problems) {
  if (problems.empty()) return;
  std::string msg = "invalid graph: " + problems.front();
  if (problems.size() > 1)
    msg += " (and " + std::to_string(problems.size() - 1) + " more problem" +
           (problems.size() > 2 ? "s" : "") + ")";
  ThrowInvalid(msg);
}

}  // namespace

std::vector<std::string> VerifyAll(const Graph& graph) {
  Verifier v(Root(graph));
  v.Run(graph);
  return v.problems;
}

std::vector<std::string> VerifyAll(const Model& model) {
  if (!model.graph) return {"model has no graph"};
  return VerifyAll(*model.graph);
}

void Verify(const Graph& graph) { ThrowFirst(VerifyAll(graph)); }
void Verify(const Model& model) { ThrowFirst(VerifyAll(model)); }

}  // namespace edgepress::ir
