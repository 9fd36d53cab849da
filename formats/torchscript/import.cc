// The TorchScript import driver: check the archive, load/freeze/inline with LibTorch,
// specialise the graph for CPU float inference, then convert block by block
// (prim::If/prim::Loop with run-time conditions become ONNX If/Loop).
//
// The sweep for unsupported ops runs with the conversion: values that are fixed at
// import (constants, x.dim() of a described input, the model's `if mask is None` checks)
// are evaluated as it goes, so branches the model itself rules out are not reported;
// an op without a converter is recorded and everything computed from it is swept
// statically. The import fails with the whole list before any model is returned.
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/lower_tuples.h>
#include <torch/csrc/jit/passes/peephole.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/script.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "formats/torchscript/converter.h"
#include "formats/torchscript/pt_archive.h"
#include "formats/torchscript/torchscript_export.h"
#include "formats/torchscript/torchscript_import.h"
#include "ir/error.h"
#include "ir/shape_inference.h"

namespace edgepress::formats {

namespace ts {
namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

// LibTorch's messages carry a C++ backtrace after the first lines; the user needs the
// message.
std::string Brief(const c10::Error& e) {
  std::string s = e.what_without_backtrace();
  if (s.size() > 600) s = s.substr(0, 600) + " ...";
  return s;
}

const Registry& GlobalRegistry() {
  static const Registry r = [] {
    Registry reg;
    RegisterNnOps(reg);
    RegisterTensorOps(reg);
    return reg;
  }();
  return r;
}

// prim ops the driver handles itself.
bool DriverOp(const std::string& k) {
  return k == "prim::Constant" || k == "prim::If" || k == "prim::Loop" ||
         k == "prim::RaiseException" || k == "aten::warn" || k == "prim::Uninitialized" ||
         k == "prim::GetAttr" || k == "prim::SetAttr" || k == "aten::_set_item" ||
         k == "aten::append";
}

// A block (nested blocks included) that reads or changes a Python list: such a loop cannot
// become an ONNX Loop, which carries and indexes tensors only.
bool UsesLists(const torch::jit::Block* b) {
  for (const torch::jit::Node* n : b->nodes()) {
    for (const torch::jit::Value* v : n->inputs())
      if (v->type()->kind() == c10::TypeKind::ListType) return true;
    for (const torch::jit::Block* sub : n->blocks())
      if (UsesLists(sub)) return true;
  }
  return false;
}

// Ops folded when all their inputs are constants: anything deterministic without side
// effects or blocks. This evaluates weight arithmetic and Python scalar logic with
// LibTorch's own operators; it never touches a model input.
bool Foldable(const Node* n) {
  if (!n->blocks().empty() || n->isNondeterministic() || n->hasSideEffects()) return false;
  std::string k = n->kind().toQualString();
  return !DriverOp(k) && k.rfind("prim::", 0) != 0
             ? true
             : k == "prim::ListConstruct" || k == "prim::ListUnpack" ||
                   k == "prim::TupleConstruct" || k == "prim::TupleUnpack" ||
                   k == "prim::TupleIndex" || k == "prim::unchecked_cast" ||
                   k == "prim::NumToTensor" || k == "prim::min" || k == "prim::max" ||
                   k == "prim::dtype" || k == "prim::device" || k == "prim::tolist";
}

// A block that ends by raising is an assertion of the model's own (shape checks, "input
// not batched"): the importer keeps the other branch.
bool Raises(const Block* b) {
  for (const Node* n : b->nodes())
    if (n->kind() == c10::prim::RaiseException) return true;
  return false;
}

class Driver {
 public:
  Driver(Ctx& ctx) : ctx_(ctx) {}

  // Ops without a converter, by kind, with up to three source locations each. The
  // conversion below records instead of failing, so one error lists them all.
  std::map<std::string, std::vector<std::string>> missing_;

  void Record(const Node* n) {
    std::string loc = SourceLocation(*n);
    auto& locs = missing_[n->kind().toQualString()];
    if (locs.size() < 3 && std::find(locs.begin(), locs.end(), loc) == locs.end())
      locs.push_back(loc.empty() ? "(no debug info)" : loc);
  }

  // A region whose inputs depend on an unsupported op cannot be evaluated; it is swept
  // statically: every op that has neither a converter nor constant inputs is recorded.
  void Sweep(const Block* b, std::set<const Value*>& statics) {
    for (const Node* n : b->nodes()) {
      std::string k = n->kind().toQualString();
      if (k == "prim::Constant") {
        statics.insert(n->output());
        continue;
      }
      for (const Block* sub : n->blocks())
        if (!(k == "prim::If" && Raises(sub))) Sweep(sub, statics);  // a raising branch is dropped
      bool all_static = true;
      for (const Value* v : n->inputs()) all_static = all_static && statics.count(v);
      if (all_static && Foldable(n)) {
        for (const Value* v : n->outputs()) statics.insert(v);
        continue;
      }
      if (!DriverOp(k) && !ctx_.registry_->count(k)) Record(n);
    }
  }

  bool Poisoned(const Node* n) {
    for (const Value* v : n->inputs()) {
      auto it = ctx_.slots_.find(v);
      if (it != ctx_.slots_.end() && it->second.kind == Slot::Kind::kPoison) return true;
    }
    return false;
  }

  void Poison(const Node* n) {
    std::set<const Value*> statics;
    for (const Block* sub : n->blocks()) Sweep(sub, statics);
    for (const Value* v : n->outputs()) ctx_.slots_[v] = Slot::Poison();
  }

  void ConvertBlock(const Block* b) {
    for (const Node* n : b->nodes()) ConvertNode(n);
  }

  void ConvertNode(const Node* n) {
    ctx_.node_ = n;
    std::string k = n->kind().toQualString();
    if (Poisoned(n)) {
      if (!DriverOp(k) && !ctx_.registry_->count(k) && !Foldable(n)) Record(n);
      return Poison(n);
    }
    if (k == "prim::Constant") {
      c10::optional<c10::IValue> iv = torch::jit::toIValue(n->output());
      if (!iv) ctx_.Fail("a constant LibTorch cannot read");
      ctx_.Out(0, Slot::Const(*iv));
      return;
    }
    if (k == "prim::If") return ConvertIf(n);
    if (k == "prim::Loop") return UnrollLoop(n) ? void() : ConvertLoop(n);
    if (k == "aten::_set_item" || k == "aten::append") return MutateList(n, k == "aten::append");
    if (k == "aten::warn") return;
    if (k == "prim::GetAttr" || k == "prim::SetAttr") return ConvertAttr(n, k == "prim::SetAttr");
    if (k == "prim::Uninitialized") return ctx_.Out(0, Slot::Const(c10::IValue()));
    if (k == "prim::RaiseException")
      ctx_.Fail(
          "the model raises an exception on this path (a condition the importer "
          "could not decide at import time)");
    if (TryFold(n)) return;
    auto it = ctx_.registry_->find(k);
    if (it == ctx_.registry_->end()) {
      Record(n);
      return Poison(n);
    }
    it->second(ctx_);
    for (size_t i = 0; i < n->outputs().size(); ++i)
      if (ctx_.slots_[n->outputs()[i]].kind == Slot::Kind::kUnset)
        throw Error(ErrorCode::kInternal, ctx_.file_ + ": converter for " + k + " left output " +
                                              std::to_string(i) + " unset");
  }

  // Attributes that forward() itself writes survive freezing (a stateful model such as
  // silero-vad keeps its RNN state there). The graph computes one call: reads see the
  // state the module was saved with, or what this call wrote before; writes are kept
  // for later reads and otherwise dropped (the IR has no mutable state). A write under a
  // run-time condition cannot be followed and is refused.
  void ConvertAttr(const Node* n, bool set) {
    const Value* obj = n->inputs()[0];
    if (obj != self_) ctx_.Fail("attribute access on a value other than the module itself");
    const std::string name = n->s(c10::attr::name);
    if (set) {
      if (depth_ > 0)
        ctx_.Fail("forward() writes module attribute '" + name +
                  "' under a condition decided at run time; that state cannot be imported");
      attrs_[name] = ctx_.slots_.at(n->inputs()[1]);
      return;
    }
    if (auto it = attrs_.find(name); it != attrs_.end()) return ctx_.Out(0, it->second);
    if (!module_->hasattr(name)) ctx_.Fail("the module has no attribute '" + name + "'");
    c10::IValue v = module_->attr(name);
    if (v.isObject() || v.isModule()) ctx_.Fail("attribute '" + name + "' is an object");
    ctx_.Out(0, Slot::Const(v));
  }

  bool TryFold(const Node* n) {
    if (!Foldable(n)) return false;
    torch::jit::Stack stack;
    for (size_t i = 0; i < n->inputs().size(); ++i) {
      const Slot& s = ctx_.In(i);
      if (!s.is_const()) return false;
      stack.push_back(s.iv);
    }
    if (n->kind() == c10::prim::ListConstruct) {
      // Built directly: LibTorch's operator for it is chosen by the typed schema, which
      // the peepholes' refined types do not always match.
      c10::impl::GenericList list(n->output()->type()->expectRef<c10::ListType>().getElementType());
      for (c10::IValue& v : stack) list.push_back(std::move(v));
      ctx_.Out(0, Slot::Const(c10::IValue(list)));
      return true;
    }
    if (n->kind() == c10::prim::TupleConstruct) {
      ctx_.Out(0, Slot::Const(c10::IValue(c10::ivalue::Tuple::create(std::move(stack)))));
      return true;
    }
    // Vararg operators (aten::format) read their input count from the stack.
    if (n->maybeSchema() && n->maybeSchema()->is_vararg())
      stack.push_back(static_cast<int64_t>(n->inputs().size()));
    try {
      torch::jit::Operation op = n->getOperation();
      op(stack);
    } catch (const std::exception&) {
      return false;  // no kernel for it: the converter (if any) decides
    }
    if (stack.size() != n->outputs().size()) return false;
    for (size_t i = 0; i < stack.size(); ++i) ctx_.Out(i, Slot::Const(std::move(stack[i])));
    return true;
  }

  void MapBlockOutputs(const Node* n, const Block* b) {
    for (size_t i = 0; i < n->outputs().size(); ++i)
      ctx_.slots_[n->outputs()[i]] = ctx_.slots_.at(b->outputs()[i]);
  }

  // Block outputs must be tensors in an IR subgraph: scalars become rank-0 tensors.
  ir::Value* SubgraphOutput(const Value* v, ir::DType want) {
    Slot s = ctx_.slots_.at(v);
    if (s.kind == Slot::Kind::kPoison) return nullptr;  // reported; the import fails
    if (s.kind == Slot::Kind::kList || s.kind == Slot::Kind::kTuple || s.is_none() ||
        (s.is_const() && !s.iv.isTensor() && !s.iv.isDouble() && !s.iv.isInt() && !s.iv.isBool()))
      ctx_.Fail("a branch or loop body yields a " + v->type()->str() +
                ", which an ONNX If/Loop cannot carry");
    ir::Value* out = TensorOfSlot(s, want);
    // A subgraph output must be produced inside it (outer values and initializers are
    // passed through an Identity).
    if (out->graph() != ctx_.g_ || out->is_initializer() || out->is_graph_input() ||
        out->is_graph_output())
      out = ctx_.Op("Identity", {out});
    return out;
  }

  ir::Value* TensorOfSlot(const Slot& s, ir::DType want) {
    ir::Value* v;
    if (s.kind == Slot::Kind::kTensor) {
      v = s.value;
    } else if (s.iv.isTensor()) {
      v = ctx_.Const(ctx_.FromTorch(s.iv.toTensor()));
    } else if (s.iv.isDouble()) {
      v = ctx_.F32(static_cast<float>(s.iv.toDouble()));
    } else if (s.iv.isBool()) {
      ir::Tensor t(ir::DType::kBool, {});
      *t.mutable_data<uint8_t>() = s.iv.toBool();
      v = ctx_.Const(t, "bool");
    } else {
      v = ctx_.I64(s.iv.toInt());
    }
    if (want != ir::DType::kUndefined && ctx_.DTypeOf(v) != want) v = ctx_.Cast(v, want);
    return v;
  }

  static bool IsScalarType(const c10::TypePtr& t) {
    return t->kind() == c10::TypeKind::IntType || t->kind() == c10::TypeKind::FloatType ||
           t->kind() == c10::TypeKind::BoolType || t->kind() == c10::TypeKind::NumberType;
  }

  void ConvertIf(const Node* n) {
    const Slot& cond = ctx_.In(0);
    const Block* then_b = n->blocks()[0];
    const Block* else_b = n->blocks()[1];
    if (cond.is_const() || Raises(then_b) || Raises(else_b)) {
      const Block* taken;
      if (cond.is_const())
        taken = cond.iv.toBool() ? then_b : else_b;
      else
        taken = Raises(then_b) ? else_b : then_b;
      if (Raises(taken)) {
        ctx_.node_ = n;
        ctx_.Fail("the model always raises here for the given inputs");
      }
      ConvertBlock(taken);
      MapBlockOutputs(n, taken);
      return;
    }
    ir::Value* c = ctx_.T(0);
    if (ctx_.DTypeOf(c) != ir::DType::kBool) c = ctx_.Cast(c, ir::DType::kBool);
    ir::Graph* parent = ctx_.g_;
    std::vector<std::string> names;
    for (const Value* o : n->outputs()) names.push_back(parent->UniqueName(o->debugName()));
    ir::Node* node = parent->AddNode("If", {c}, names, parent->UniqueName("If"));
    node->doc = SourceLocation(*n);
    std::vector<ir::DType> dtypes(n->outputs().size(), ir::DType::kUndefined);
    const char* attr[2] = {"then_branch", "else_branch"};
    for (int bi = 0; bi < 2; ++bi) {
      auto sub = std::make_shared<ir::Graph>();
      sub->name = node->name + "_" + attr[bi];
      sub->SetParent(parent, node);
      ctx_.g_ = sub.get();
      ++depth_;
      runtime_blocks_.push_back(n->blocks()[bi]);
      ConvertBlock(n->blocks()[bi]);
      runtime_blocks_.pop_back();
      --depth_;
      ctx_.node_ = n;
      for (size_t i = 0; i < n->outputs().size(); ++i) {
        ir::Value* v = SubgraphOutput(n->blocks()[bi]->outputs()[i], dtypes[i]);
        if (!v) {
          ctx_.g_ = parent;
          return Poison(n);
        }
        dtypes[i] = ctx_.DTypeOf(v);
        sub->AddOutput(v);
      }
      ctx_.g_ = parent;
      node->set_attr(ir::Attribute::GraphValue(attr[bi], sub));
    }
    for (size_t i = 0; i < n->outputs().size(); ++i) {
      node->output(i)->type = ir::ValueType::Tensor(dtypes[i]);
      ctx_.slots_[n->outputs()[i]] =
          Slot::Tensor(node->output(i), IsScalarType(n->outputs()[i]->type()));
    }
  }

  // A `for` over a trip count known at import whose body uses a Python list or carries one
  // (the exporter's shape helpers: `for i in range(len(s)): s[i] = ...`) is evaluated at
  // import, one copy of the body per iteration: an ONNX Loop cannot carry or index lists.
  // Other loops stay loops.
  bool UnrollLoop(const Node* n) {
    constexpr int64_t kMaxUnroll = 256;
    const Block* body = n->blocks()[0];
    const Slot &trip = ctx_.In(0), &cond = ctx_.In(1);
    if (!trip.is_const() || !trip.iv.isInt() || !cond.is_const() || !cond.iv.isBool()) return false;
    if (trip.iv.toInt() > kMaxUnroll) return false;
    if (body->outputs()[0]->node()->kind() != c10::prim::Constant) return false;  // a while loop
    std::vector<Slot> carried;
    bool lists = UsesLists(body);
    for (size_t i = 2; i < n->inputs().size(); ++i) {
      carried.push_back(ctx_.In(i));
      const Slot& c = carried.back();
      lists = lists || c.kind == Slot::Kind::kList || c.kind == Slot::Kind::kTuple ||
              (c.is_const() && (c.iv.isList() || c.iv.isTuple()));
    }
    if (!lists) return false;
    const bool go = torch::jit::toIValue(body->outputs()[0])->toBool();
    const int64_t trips = cond.iv.toBool() ? trip.iv.toInt() : 0;
    for (int64_t it = 0; it < trips; ++it) {
      ctx_.slots_[body->inputs()[0]] = Slot::Const(c10::IValue(it));
      for (size_t j = 0; j < carried.size(); ++j) ctx_.slots_[body->inputs()[j + 1]] = carried[j];
      ConvertBlock(body);
      ctx_.node_ = n;
      for (size_t j = 0; j < carried.size(); ++j)
        carried[j] = ctx_.slots_.at(body->outputs()[j + 1]);
      if (!go) break;
    }
    for (size_t j = 0; j < carried.size(); ++j) ctx_.slots_[n->outputs()[j]] = carried[j];
    return true;
  }

  // list[i] = v and list.append(v) on a list known at import (constant, or a list of
  // slots): the list value's slot is replaced by the new list, which every later use of
  // that value reads (TorchScript's RemoveListMutation leaves these only inside loops).
  void MutateList(const Node* n, bool append) {
    const Value* lv = n->inputs()[0];
    if (!runtime_blocks_.empty()) {
      // Under a run-time If/Loop only a list made inside it may change: the slot update
      // would otherwise apply whichever way run time goes.
      bool inside = false;
      for (const Block* b = lv->node()->owningBlock(); b && !inside;
           b = b->owningNode() ? b->owningNode()->owningBlock() : nullptr)
        inside = b == runtime_blocks_.back();
      if (!inside) ctx_.Fail("changes a list under a condition decided at run time");
    }
    Slot list = ctx_.slots_.at(lv);
    if (list.is_const() && list.iv.isList()) {
      std::vector<Slot> items;
      for (const c10::IValue& v : list.iv.toListRef()) items.push_back(Slot::Const(v));
      list = Slot::List(std::move(items));
    }
    if (list.kind == Slot::Kind::kTensor && list.int_list && ctx_.TryRank(list.value) == 1) {
      // Sizes computed at run time but of a known count: one scalar slot per element.
      if (std::optional<int64_t> count = ctx_.Dim(list.value, 0); count && *count <= 64) {
        std::vector<Slot> items;
        for (int64_t i = 0; i < *count; ++i)
          items.push_back(Slot::Tensor(ctx_.Op("Gather", {list.value, ctx_.I64(i)},
                                               {ir::Attribute::Int("axis", 0)}, ir::DType::kInt64),
                                       true));
        list = Slot::List(std::move(items));
      }
    }
    if (list.kind != Slot::Kind::kList)
      ctx_.Fail("changes a list computed at run time (give the model's input shapes)");
    const Slot& item = ctx_.In(append ? 1 : 2);
    if (append) {
      list.items.push_back(item);
    } else {
      if (!ctx_.IsConst(1)) ctx_.Fail("list index computed at run time");
      int64_t i = ctx_.Int(1), size = static_cast<int64_t>(list.items.size());
      if (i < 0) i += size;
      if (i < 0 || i >= size) ctx_.Fail("list index out of range");
      list.items[static_cast<size_t>(i)] = item;
    }
    // All-constant items fold back to one constant list, as ListConstruct makes them.
    bool all_const = true;
    for (const Slot& it : list.items) all_const = all_const && it.is_const();
    if (all_const && n->output()->type()->kind() == c10::TypeKind::ListType) {
      c10::impl::GenericList folded(
          n->output()->type()->expectRef<c10::ListType>().getElementType());
      for (const Slot& it : list.items) folded.push_back(it.iv);
      list = Slot::Const(c10::IValue(folded));
    }
    ctx_.slots_[lv] = list;
    ctx_.Out(0, list);
  }

  void ConvertLoop(const Node* n) {
    const Block* body = n->blocks()[0];
    ir::Graph* parent = ctx_.g_;
    ir::Value* trip = ctx_.T(0);
    if (ctx_.DTypeOf(trip) != ir::DType::kInt64) trip = ctx_.Cast(trip, ir::DType::kInt64);
    ir::Value* cond = ctx_.T(1);
    if (ctx_.DTypeOf(cond) != ir::DType::kBool) cond = ctx_.Cast(cond, ir::DType::kBool);
    std::vector<ir::Value*> inputs = {trip, cond};
    std::vector<ir::DType> dtypes;
    std::vector<std::optional<ir::Shape>> shapes;  // rank only: a carried value may change size
    for (size_t i = 2; i < n->inputs().size(); ++i) {
      inputs.push_back(SubgraphInit(n->inputs()[i]));
      dtypes.push_back(ctx_.DTypeOf(inputs.back()));
      std::optional<int> rank = ctx_.TryRank(inputs.back());
      shapes.push_back(rank ? std::optional<ir::Shape>(ir::Shape(static_cast<size_t>(*rank)))
                            : std::nullopt);
    }
    std::vector<std::string> names;
    for (const Value* o : n->outputs()) names.push_back(parent->UniqueName(o->debugName()));
    ir::Node* node = parent->AddNode("Loop", inputs, names, parent->UniqueName("Loop"));
    node->doc = SourceLocation(*n);
    auto sub = std::make_shared<ir::Graph>();
    sub->name = node->name + "_body";
    sub->SetParent(parent, node);
    ctx_.g_ = sub.get();
    ir::Value* iter = sub->AddInput(sub->UniqueName("iter"),
                                    ir::ValueType::Tensor(ir::DType::kInt64, ir::Shape{}));
    sub->AddInput(sub->UniqueName("cond_in"), ir::ValueType::Tensor(ir::DType::kBool, ir::Shape{}));
    ctx_.slots_[body->inputs()[0]] = Slot::Tensor(iter, true);
    for (size_t i = 1; i < body->inputs().size(); ++i) {
      const Value* bv = body->inputs()[i];
      ir::Value* in = sub->AddInput(sub->UniqueName(bv->debugName()),
                                    ir::ValueType::Tensor(dtypes[i - 1], shapes[i - 1]));
      ctx_.slots_[bv] = Slot::Tensor(in, IsScalarType(bv->type()));
    }
    ++depth_;
    runtime_blocks_.push_back(body);
    ConvertBlock(body);
    runtime_blocks_.pop_back();
    --depth_;
    ctx_.node_ = n;
    for (size_t i = 0; i < body->outputs().size(); ++i) {
      ir::Value* v = SubgraphOutput(body->outputs()[i], i == 0 ? ir::DType::kBool : dtypes[i - 1]);
      if (!v) {
        ctx_.g_ = parent;
        return Poison(n);
      }
      sub->AddOutput(v);
    }
    ctx_.g_ = parent;
    node->set_attr(ir::Attribute::GraphValue("body", sub));
    for (size_t i = 0; i < n->outputs().size(); ++i) {
      node->output(i)->type = ir::ValueType::Tensor(dtypes[i]);
      ctx_.slots_[n->outputs()[i]] =
          Slot::Tensor(node->output(i), IsScalarType(n->outputs()[i]->type()));
    }
  }

  ir::Value* SubgraphInit(const Value* v) {
    const Slot& s = ctx_.slots_.at(v);
    if (s.kind == Slot::Kind::kList || s.kind == Slot::Kind::kTuple || s.is_none())
      ctx_.Fail("a loop carries a " + v->type()->str() + ", which an ONNX Loop cannot carry");
    return TensorOfSlot(s, ir::DType::kUndefined);
  }

 private:
  Ctx& ctx_;

 public:
  const Value* self_ = nullptr;                 // forward()'s `self`
  const torch::jit::Module* module_ = nullptr;  // the frozen module
  std::map<std::string, Slot> attrs_;           // attributes this call wrote
  int depth_ = 0;                               // nesting of If/Loop subgraphs
  std::vector<const Block*> runtime_blocks_;    // the blocks those subgraphs convert
};

// Facts TorchScript code asks about at run time that are fixed for an import to CPU
// inference: gradients "on" (so TransformerEncoder & co. take their math path instead
// of fused inference kernels; both compute the same function), no CUDA, no nested
// tensors, no autocast.
void SpecialiseForImport(torch::jit::Graph& g) {
  std::vector<Node*> todo;
  std::function<void(Block*)> collect = [&](Block* b) {
    for (Node* n : b->nodes()) {
      for (Block* sub : n->blocks()) collect(sub);
      std::string k = n->kind().toQualString();
      if (k == "aten::is_grad_enabled" || k == "prim::requires_grad" || k == "prim::is_cuda" ||
          k == "prim::is_nested" || k == "aten::is_autocast_enabled" || k == "prim::is_mkldnn" ||
          k == "prim::is_quantized" || k == "prim::is_meta" || k == "prim::is_sparse")
        todo.push_back(n);
    }
  };
  collect(g.block());
  for (Node* n : todo) {
    std::string k = n->kind().toQualString();
    bool value = k == "aten::is_grad_enabled" || k == "prim::requires_grad";
    torch::jit::WithInsertPoint guard(n);
    Value* c = g.insertConstant(value);
    n->output()->replaceAllUsesWith(c);
    n->destroy();
  }
}

std::string ArgTypeName(const c10::TypePtr& t) { return t->str(); }

// An input given without a shape still has a rank its first consumer fixes (a Conv's
// weight, a Transpose's perm, an LSTM's sequence): declaring it with symbolic dims lets
// shape inference run through the model and lets ONNX export declare the input.
void RanksFromConsumers(ir::Graph& g) {
  for (ir::Value* in : g.inputs()) {
    if (in->type.shape) continue;
    std::optional<size_t> rank;
    for (const ir::Use& u : in->uses()) {
      const ir::Node* n = u.user;
      const std::string& op = n->op_type();
      if (u.index != 0 || !n->domain().empty()) continue;
      if ((op == "Conv" || op == "ConvTranspose") && n->input(1) && n->input(1)->initializer())
        rank = static_cast<size_t>(n->input(1)->initializer()->rank());
      else if (op == "Transpose" && n->has_attr("perm"))
        rank = n->attr_ints("perm").size();
      else if (op == "LSTM" || op == "GRU" || op == "RNN")
        rank = 3;
      if (rank) break;
    }
    if (!rank) continue;
    ir::Shape shape;
    for (size_t d = 0; d < *rank; ++d)
      shape.push_back(ir::Dim::Symbol(in->name() + "_d" + std::to_string(d)));
    in->type.shape = shape;
  }
}

// The signature file an edgepress export writes (torchscript_export.h). Checked field by
// field: a malformed one is refused naming the file and the field, never half-used.
struct RecordedInput {
  std::string arg, name;
  ir::DType dtype = ir::DType::kUndefined;
  std::optional<ir::Shape> shape;
};
struct RecordedSignature {
  std::vector<RecordedInput> inputs;
  std::vector<std::string> outputs;
  const RecordedInput* Find(const std::string& arg) const {
    for (const RecordedInput& r : inputs)
      if (r.arg == arg) return &r;
    return nullptr;
  }
};

RecordedSignature ReadSignature(const std::string& path, const std::string& text) {
  RecordedSignature sig;
  if (text.empty()) return sig;
  const std::string where = path + ": extra/" + kTorchScriptSignatureFile;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& what) { ThrowInvalid(where + ": " + what); };
  if (!j.is_object()) bad("not a JSON object");
  if (!j.contains("format") || !j["format"].is_number_integer() || j["format"].get<int64_t>() != 1)
    bad("'format' must be 1");
  if (j.contains("inputs")) {
    if (!j["inputs"].is_array()) bad("'inputs' must be an array");
    for (const nlohmann::json& in : j["inputs"]) {
      if (!in.is_object() || !in.contains("arg") || !in["arg"].is_string() ||
          !in.contains("name") || !in["name"].is_string() || in["name"].get<std::string>().empty())
        bad("each input needs string 'arg' and 'name'");
      RecordedInput r;
      r.arg = in["arg"].get<std::string>();
      r.name = in["name"].get<std::string>();
      if (in.contains("dtype")) {
        if (!in["dtype"].is_string()) bad("input '" + r.name + "': 'dtype' must be a string");
        r.dtype = ir::DTypeFromName(in["dtype"].get<std::string>());
      }
      if (in.contains("shape")) {
        if (!in["shape"].is_array() || in["shape"].size() > 64)
          bad("input '" + r.name + "': 'shape' must be an array of at most 64 dims");
        r.shape = ir::Shape{};
        for (size_t d = 0; d < in["shape"].size(); ++d) {
          const nlohmann::json& dim = in["shape"][d];
          if (dim.is_number_integer() && dim.get<int64_t>() >= 0)
            r.shape->push_back(ir::Dim::Known(dim.get<int64_t>()));
          else if (dim.is_string() && dim.get<std::string>() != "?")
            r.shape->push_back(ir::Dim::Symbol(dim.get<std::string>()));
          else if (dim.is_string())
            r.shape->push_back(ir::Dim::Symbol(r.name + "_d" + std::to_string(d)));
          else
            bad("input '" + r.name + "': dim " + std::to_string(d) +
                " must be a size >= 0 or a name");
        }
      }
      for (const RecordedInput& o : sig.inputs)
        if (o.arg == r.arg || o.name == r.name) bad("input '" + r.name + "' is listed twice");
      sig.inputs.push_back(std::move(r));
    }
  }
  if (j.contains("outputs")) {
    if (!j["outputs"].is_array()) bad("'outputs' must be an array");
    for (const nlohmann::json& o : j["outputs"]) {
      if (!o.is_string() || o.get<std::string>().empty())
        bad("each output must be a non-empty name");
      sig.outputs.push_back(o.get<std::string>());
    }
  }
  return sig;
}

// The module loaded, frozen (parameters become constants) and forward() inlined, with the
// signature an edgepress-written archive records.
struct Loaded {
  torch::jit::Module frozen;
  std::shared_ptr<torch::jit::Graph> graph;
  c10::FunctionSchema schema{"", "", {}, {}};
  RecordedSignature recorded;
};

Loaded LoadAndFreeze(const std::string& path) {
  CheckPtArchiveFile(path);
  torch::jit::Module module;
  torch::jit::ExtraFilesMap extra{{kTorchScriptSignatureFile, ""}};
  try {
    module = torch::jit::load(path, torch::kCPU, extra);
  } catch (const c10::Error& e) {
    ThrowInvalid(path + ": LibTorch cannot load it: " + Brief(e));
  } catch (const std::exception& e) {
    ThrowInvalid(path + ": LibTorch cannot load it: " + std::string(e.what()));
  }
  Loaded l;
  l.recorded = ReadSignature(path, extra[kTorchScriptSignatureFile]);
  try {
    module.eval();
    l.frozen = torch::jit::freeze(module);
    if (!l.frozen.find_method("forward")) ThrowUnsupported(path + ": the module has no forward()");
    torch::jit::Method forward = l.frozen.get_method("forward");
    l.schema = forward.function().getSchema();
    l.graph = forward.graph()->copy();
    torch::jit::Inline(*l.graph);
  } catch (const c10::Error& e) {
    ThrowUnsupported(path + ": LibTorch cannot freeze the module: " + Brief(e));
  }
  return l;
}

// A tensor argument of forward(): the user's dtype and shape win over the recorded ones;
// index arguments of an embedding default to int64.
void AddTensorInput(Ctx& ctx, torch::jit::Value* in, const std::string& name, bool index,
                    const RecordedSignature& recorded, const TorchScriptImportOptions& options) {
  // An archive edgepress wrote names its arguments x0, x1, ... and records the IR
  // name, dtype and shape of each; the caller's options win over the record.
  const RecordedInput* rec = recorded.Find(name);
  const std::string ir_name = rec ? rec->name : name;
  ir::DType dt = index ? ir::DType::kInt64 : ir::DType::kFloat32;
  if (rec && rec->dtype != ir::DType::kUndefined) dt = rec->dtype;
  if (auto it = options.input_dtypes.find(name); it != options.input_dtypes.end())
    dt = it->second;
  else if (auto jt = options.input_dtypes.find(ir_name); jt != options.input_dtypes.end())
    dt = jt->second;
  std::optional<ir::Shape> shape = rec ? rec->shape : std::nullopt;
  auto given = options.input_shapes.find(name);
  if (given == options.input_shapes.end()) given = options.input_shapes.find(ir_name);
  if (given != options.input_shapes.end()) {
    shape = ir::Shape{};
    for (size_t d = 0; d < given->second.size(); ++d)
      shape->push_back(given->second[d] >= 0 ? ir::Dim::Known(given->second[d])
                                             : ir::Dim::Symbol(ir_name + "_d" + std::to_string(d)));
  }
  if (shape) {
    // The rank lets TorchScript's own peepholes settle x.dim() checks.
    in->setType(c10::TensorType::create(c10::nullopt, c10::Device(c10::kCPU),
                                        c10::SymbolicShape(c10::optional<size_t>(shape->size())),
                                        c10::VaryingShape<c10::Stride>(shape->size()),
                                        c10::nullopt));
  }
  ir::Value* v = ctx.model_.graph->AddInput(ir_name, ir::ValueType::Tensor(dt, shape));
  ctx.slots_[in] = Slot::Tensor(v);
}

// Graph inputs: forward(self, ...). Tensors get the user's shape/dtype; Python scalars
// become rank-0 inputs (or constants the user gives); Optional arguments the user does not
// feed are None, which settles `if mask is not None` at import time. Then TorchScript's own
// passes simplify the graph for those inputs.
void AddInputsAndSimplify(Ctx& ctx, Loaded& l, const std::string& path,
                          const TorchScriptImportOptions& options) {
  torch::jit::Graph& graph = *l.graph;
  const auto& args = l.schema.arguments();
  std::set<std::string> embedding_indices;
  for (const torch::jit::Node* n : graph.nodes())
    if (n->kind() == c10::aten::embedding && n->inputs().size() > 1)
      for (size_t i = 1; i < graph.inputs().size(); ++i)
        if (n->inputs()[1] == graph.inputs()[i] && i < args.size())
          embedding_indices.insert(args[i].name());
  try {
    for (size_t i = 1; i < graph.inputs().size(); ++i) {
      torch::jit::Value* in = graph.inputs()[i];
      const std::string name = i < args.size() ? args[i].name() : in->debugName();
      c10::TypePtr t = in->type();
      if (t->kind() == c10::TypeKind::OptionalType) {
        torch::jit::WithInsertPoint guard(graph.block()->nodes().front());
        in->replaceAllUsesWith(graph.insertConstant(c10::IValue()));
        continue;
      }
      if (t->kind() == c10::TypeKind::TensorType) {
        AddTensorInput(ctx, in, name, embedding_indices.count(name) > 0, l.recorded, options);
        continue;
      }
      if (auto it = options.scalar_inputs.find(name); it != options.scalar_inputs.end()) {
        c10::IValue v = t->kind() == c10::TypeKind::IntType
                            ? c10::IValue(static_cast<int64_t>(it->second))
                        : t->kind() == c10::TypeKind::BoolType ? c10::IValue(it->second != 0)
                                                               : c10::IValue(it->second);
        ctx.slots_[in] = Slot::Const(v);
        continue;
      }
      ir::DType dt = t->kind() == c10::TypeKind::IntType     ? ir::DType::kInt64
                     : t->kind() == c10::TypeKind::FloatType ? ir::DType::kFloat32
                     : t->kind() == c10::TypeKind::BoolType  ? ir::DType::kBool
                                                             : ir::DType::kUndefined;
      if (dt == ir::DType::kUndefined)
        ThrowUnsupported(path + ": forward() argument '" + name + "' has type " + ArgTypeName(t) +
                         "; inputs must be tensors, int, float or bool");
      ctx.slots_[in] = Slot::Tensor(
          ctx.model_.graph->AddInput(name, ir::ValueType::Tensor(dt, ir::Shape{})), true);
    }
    SpecialiseForImport(*l.graph);
    torch::jit::RemoveListMutation(l.graph);
    torch::jit::RemoveTensorMutation(l.graph);
    torch::jit::PeepholeOptimize(l.graph);
    torch::jit::ConstantPropagation(l.graph);
    torch::jit::LowerSimpleTuples(l.graph);
    torch::jit::EliminateDeadCode(l.graph);
  } catch (const c10::Error& e) {
    ThrowUnsupported(path + ": preparing the graph failed in LibTorch: " + Brief(e));
  }
}

// Graph outputs: a tuple or list is flattened depth-first; names from the options, the
// recorded signature, or output / output_N.
void AddOutputs(Ctx& ctx, const Loaded& l, const std::string& path,
                const TorchScriptImportOptions& options) {
  ir::Model& model = ctx.model_;
  std::vector<Slot> flat;
  std::function<void(const Slot&)> flatten = [&](const Slot& s) {
    if (s.kind == Slot::Kind::kTuple || s.kind == Slot::Kind::kList) {
      for (const Slot& item : s.items) flatten(item);
    } else if (s.is_const() && (s.iv.isTuple() || s.iv.isList())) {
      auto items = s.iv.isTuple() ? s.iv.toTupleRef().elements().vec() : s.iv.toListRef().vec();
      for (const c10::IValue& item : items) flatten(Slot::Const(item));
    } else {
      flat.push_back(s);
    }
  };
  for (const torch::jit::Value* o : l.graph->outputs()) flatten(ctx.slots_.at(o));
  if (!options.output_names.empty() && options.output_names.size() != flat.size())
    ThrowInvalid(path + ": " + std::to_string(options.output_names.size()) +
                 " output names given for " + std::to_string(flat.size()) + " outputs");
  const std::vector<std::string>& out_names = !options.output_names.empty() ? options.output_names
                                              : l.recorded.outputs.size() == flat.size()
                                                  ? l.recorded.outputs
                                                  : options.output_names;
  for (size_t i = 0; i < flat.size(); ++i) {
    std::string name = !out_names.empty() ? out_names[i]
                       : flat.size() == 1 ? "output"
                                          : "output_" + std::to_string(i);
    if (flat[i].is_none()) ThrowUnsupported(path + ": output " + std::to_string(i) + " is None");
    ctx.node_ = l.graph->return_node();
    ir::Value* v = Driver(ctx).TensorOfSlot(flat[i], ir::DType::kUndefined);
    if (v->producer() == nullptr || v->is_graph_output()) v = ctx.Op("Identity", {v});
    if (ir::Value* other = model.graph->FindValue(name); other && other != v)
      model.graph->RenameValue(other, model.graph->UniqueName(name + "_inner"));
    model.graph->RenameValue(v, name);
    model.graph->AddOutput(v);
  }
}

}  // namespace
}  // namespace ts

std::unique_ptr<ir::Model> ImportTorchScript(const std::string& path,
                                             const TorchScriptImportOptions& options) {
  using namespace ts;
  Loaded l = LoadAndFreeze(path);
  auto model = std::make_unique<ir::Model>();
  model->producer_name = "edgepress (TorchScript import)";
  model->SetOpsetVersion("", 17);
  model->graph->name = "forward";
  Ctx ctx(*model, path);
  ctx.registry_ = &GlobalRegistry();
  AddInputsAndSimplify(ctx, l, path, options);

  Driver driver(ctx);
  driver.self_ = l.graph->inputs()[0];
  driver.module_ = &l.frozen;
  try {
    driver.ConvertBlock(l.graph->block());
    if (!driver.missing_.empty()) {
      std::ostringstream msg;
      msg << path << ": " << driver.missing_.size() << " TorchScript op(s) without a converter:";
      for (const auto& [op, locs] : driver.missing_) {
        msg << "\n  " << op << " at ";
        for (size_t i = 0; i < locs.size(); ++i) msg << (i ? "; " : "") << locs[i];
      }
      ThrowUnsupported(msg.str());
    }
    AddOutputs(ctx, l, path, options);
  } catch (const c10::Error& e) {
    ThrowUnsupported(path + ": LibTorch failed while converting: " + Brief(e));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    ThrowUnsupported(path +
                     ": LibTorch failed while converting: " + std::string(e.what()).substr(0, 600));
  }
  model->graph->RemoveDeadNodes();
  RanksFromConsumers(*model->graph);
  ir::InferShapes(*model);
  return model;
}

}  // namespace edgepress::formats
