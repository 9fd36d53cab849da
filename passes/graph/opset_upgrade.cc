#include "passes/graph/opset_upgrade.h"

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "ir/error.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

bool IsDefaultDomain(const ir::Node* n) { return n->domain().empty() || n->domain() == "ai.onnx"; }

std::string Base(const ir::Node* n) { return n->name.empty() ? n->op_type() : n->name; }

// Moves every use (and a graph-output name) of `from`'s outputs to `to`'s, then removes
// `from`. The new outputs take the old value types.
void Supersede(ir::Graph& g, ir::Node* from, ir::Node* to) {
  for (size_t i = 0; i < from->num_outputs() && i < to->num_outputs(); ++i) {
    ir::Value* old_v = from->output(i);
    ir::Value* new_v = to->output(i);
    if (!old_v || !new_v) continue;
    new_v->type = old_v->type;
    if (!ReplaceValue(old_v, new_v))
      throw Error(ErrorCode::kInternal,
                  "opset upgrade: cannot rewire the outputs of " + from->describe());
  }
  g.RemoveNode(from);
}

// A node of `op` with the inputs and attributes of `n`, inserted before it.
ir::Node* CloneAs(ir::Graph& g, ir::Node* n, const std::string& op,
                  const std::vector<ir::Value*>& inputs) {
  std::vector<std::string> outs;
  for (ir::Value* v : n->outputs()) outs.push_back(v ? g.UniqueName(v->name() + "_up") : "");
  ir::Node* m = g.InsertNode(n, op, inputs, outs, g.UniqueName(Base(n) + "_up"));
  for (const ir::Attribute& a : n->attributes()) m->set_attr(a);
  return m;
}

std::optional<int64_t> KnownRank(const ir::Value* v) {
  if (!v || !v->type.shape) return std::nullopt;
  return static_cast<int64_t>(v->type.shape->size());
}

// --- Softmax / LogSoftmax / Hardmax: 2-D coercion before opset 13 ----------------------

void UpgradeSoftmax(ir::Graph& g, ir::Node* n, OpsetUpgrade& up) {
  const int64_t axis = n->attr_int("axis", 1);
  ir::Value* x = n->input(0);
  std::optional<int64_t> rank = KnownRank(x);
  if (rank && *rank > 0 && (axis < 0 ? axis + *rank : axis) == *rank - 1) {
    // Coercing at the last axis normalises each last-axis row: the same as opset 13.
    n->set_attr(ir::Attribute::Int("axis", -1));
    ++up.rewrites[n->op_type() + ": axis -> -1"];
    return;
  }
  const std::string base = Base(n);
  ir::Node* flat = g.InsertNode(n, "Flatten", {x}, {g.UniqueName(base + "_2d_in")},
                                g.UniqueName(base + "_Flatten"));
  flat->set_attr(ir::Attribute::Int("axis", axis));
  const bool typed = x->type.is_tensor() && x->type.dtype != ir::DType::kUndefined;
  if (typed) flat->output(0)->type = ir::ValueType::Tensor(x->type.dtype);
  ir::Node* shape = g.InsertNode(n, "Shape", {x}, {g.UniqueName(base + "_shape")},
                                 g.UniqueName(base + "_Shape"));
  shape->output(0)->type = ir::ValueType::Tensor(ir::DType::kInt64);
  ir::Node* op = g.InsertNode(n, n->op_type(), {flat->output(0)},
                              {g.UniqueName(base + "_2d_out")}, g.UniqueName(base + "_2d"));
  op->set_attr(ir::Attribute::Int("axis", -1));
  if (typed) op->output(0)->type = ir::ValueType::Tensor(x->type.dtype);
  ir::Node* back = g.InsertNode(n, "Reshape", {op->output(0), shape->output(0)},
                                {g.UniqueName(base + "_nd")}, g.UniqueName(base + "_Reshape"));
  ++up.rewrites[n->op_type() + ": Flatten/" + op->op_type() + "/Reshape"];
  Supersede(g, n, back);  // deletes n
}

// --- Upsample (7, 9) and Resize-10 -> Resize-13 -----------------------------------------

// Constant scales of an Upsample/Resize-10 node, when known.
std::optional<std::vector<float>> LegacyScales(const ir::Node* n) {
  if (n->op_type() == "Upsample" && n->num_inputs() < 2) return n->attr_floats("scales");
  const ir::Tensor* t = ConstantOf(n->input(1));
  if (!t) return std::nullopt;
  std::vector<double> d = t->ToDouble();
  return std::vector<float>(d.begin(), d.end());
}

// The legacy nearest rule is trunc(x) when upsampling and ceil(x) when downsampling
// (onnxruntime's Upsample): Resize-13's "floor"/"ceil" with asymmetric coordinates.
// Scales that mix both directions, or are not constant with a downsampling axis possible,
// have no single nearest_mode.
std::string LegacyNearestMode(const ir::Node* n) {
  std::optional<std::vector<float>> s = LegacyScales(n);
  if (!s) return "floor";  // scales computed at run time: Upsample only enlarges in practice
  bool up = false, down = false;
  for (float v : *s) {
    if (v > 1.f) up = true;
    if (v < 1.f) down = true;
  }
  if (up && down) return "";
  return down ? "ceil" : "floor";
}

void CheckLegacyResize(const ir::Node* n) {
  const std::string mode = n->attr_string("mode", "nearest");
  if (mode == "nearest" && LegacyNearestMode(n).empty())
    ThrowUnsupported(n->describe() + ": nearest mode with scales that enlarge some axes and "
                     "shrink others has no Resize-13 equivalent");
}

void UpgradeLegacyResize(ir::Graph& g, ir::Node* n, OpsetUpgrade& up) {
  const std::string base = Base(n);
  ir::Value* scales = nullptr;
  if (n->op_type() == "Upsample" && n->num_inputs() < 2) {
    std::vector<float> s = n->attr_floats("scales");
    scales = AddConstant(g, base + "_scales",
                         ir::Tensor::FromVector(ir::DType::kFloat32,
                                                {static_cast<int64_t>(s.size())}, s));
  } else {
    scales = n->input(1);
  }
  std::string mode = n->attr_string("mode", "nearest");
  if (mode == "bilinear" || mode == "trilinear") mode = "linear";
  std::vector<std::string> outs = {g.UniqueName(n->output(0)->name() + "_up")};
  ir::Node* r = g.InsertNode(n, "Resize", {n->input(0), nullptr, scales}, outs,
                             g.UniqueName(base + "_Resize"));
  r->set_attr(ir::Attribute::String("mode", mode));
  r->set_attr(ir::Attribute::String("coordinate_transformation_mode", "asymmetric"));
  if (mode == "nearest") r->set_attr(ir::Attribute::String("nearest_mode", LegacyNearestMode(n)));
  ++up.rewrites[n->op_type() + (n->op_type() == "Resize" ? "-10" : "") + ": Resize-13"];
  Supersede(g, n, r);
}

// --- Scan-8 -> Loop over the batch running a Scan-9 -------------------------------------

void CheckScan8(const ir::Node* n) {
  if (n->input(0) && !(n->input(0)->name().empty()))
    ThrowUnsupported(n->describe() + ": opset-8 Scan with a sequence_lens input (per-entry "
                     "sequence lengths) has no opset-9+ form");
}

void UpgradeScan8(ir::Graph& g, ir::Node* n, OpsetUpgrade& up) {
  const std::string base = Base(n);
  const int64_t num_scan = n->attr_int("num_scan_inputs", 1);
  std::vector<ir::Value*> batched(n->inputs().begin() + 1, n->inputs().end());
  if (batched.empty()) ThrowInvalid(n->describe() + ": a Scan needs inputs");
  // M = the batch size, read at run time.
  ir::Node* shape = g.InsertNode(n, "Shape", {batched[0]}, {g.UniqueName(base + "_shape")},
                                 g.UniqueName(base + "_Shape"));
  ir::Value* zero = AddConstant(g, base + "_zero",
                                ir::Tensor::FromVector(ir::DType::kInt64, {}, std::vector<int64_t>{0}));
  ir::Node* batch = g.InsertNode(n, "Gather", {shape->output(0), zero},
                                 {g.UniqueName(base + "_batch")}, g.UniqueName(base + "_Gather"));
  batch->set_attr(ir::Attribute::Int("axis", 0));
  std::vector<std::string> outs;
  for (ir::Value* v : n->outputs()) outs.push_back(g.UniqueName((v ? v->name() : base) + "_up"));
  ir::Value* yes = AddConstant(g, base + "_true",
                               ir::Tensor::FromVector(ir::DType::kBool, {}, std::vector<uint8_t>{1}));
  ir::Node* loop = g.InsertNode(n, "Loop", {batch->output(0), yes}, outs,
                                g.UniqueName(base + "_Loop"));
  loop->set_attr(ir::Attribute::GraphValue("body", std::make_shared<ir::Graph>()));
  ir::Graph& body = *loop->subgraphs()[0];
  body.name = g.UniqueName(base + "_batch_body");
  ir::Value* iter = body.AddInput(body.UniqueName(base + "_b"),
                                  ir::ValueType::Tensor(ir::DType::kInt64, ir::MakeShape(std::vector<int64_t>{})));
  ir::Value* cond = body.AddInput(body.UniqueName(base + "_cond"),
                                  ir::ValueType::Tensor(ir::DType::kBool, ir::MakeShape(std::vector<int64_t>{})));
  ir::Node* keep = body.AddNode("Identity", {cond}, {body.UniqueName(base + "_cond_out")});
  std::vector<ir::Value*> entries;  // each batched input at batch entry `iter`
  for (ir::Value* v : batched) {
    ir::Node* gather = body.AddNode("Gather", {v, iter}, {body.UniqueName(v->name() + "_entry")});
    gather->set_attr(ir::Attribute::Int("axis", 0));
    entries.push_back(gather->output(0));
  }
  std::vector<std::string> scan_outs;
  for (ir::Value* v : n->outputs()) scan_outs.push_back(body.UniqueName((v ? v->name() : base) + "_entry"));
  ir::Node* scan = body.AddNode("Scan", entries, scan_outs, body.UniqueName(base + "_Scan9"));
  // The body graph moves as is: its outer-scope references still resolve upwards.
  scan->set_attr(*n->attr("body"));
  scan->set_attr(ir::Attribute::Int("num_scan_inputs", num_scan));
  if (n->has_attr("directions"))
    scan->set_attr(ir::Attribute::Ints("scan_input_directions", n->attr_ints("directions")));
  body.AddOutput(keep->output(0));
  for (ir::Value* v : scan->outputs()) body.AddOutput(v);
  n->remove_attr("body");
  ++up.rewrites["Scan-8: Loop/Scan-9"];
  Supersede(g, n, loop);
}


// --- opsets 1..6 ------------------------------------------------------------------------

// Attributes that only ever steered training or in-place buffers and were dropped in 6/7.
const char* const kLegacyAttrs[] = {"consumed_inputs", "is_test"};

bool IsLegacyBroadcastOp(const std::string& op) {
  return op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow" ||
         op == "And" || op == "Or" || op == "Xor" || op == "Equal" || op == "Greater" ||
         op == "Less";
}

// Before opset 7, `broadcast=1` aligned B with A's dims from `axis` on (default: the
// trailing dims, which is numpy's rule). The Unsqueeze axes that make numpy's rule agree,
// or empty when none are needed.
std::vector<int64_t> LegacyBroadcastAxes(const ir::Node* n) {
  if (n->attr_int("broadcast", 0) == 0 || !n->has_attr("axis")) return {};
  std::optional<int64_t> ra = KnownRank(n->input(0)), rb = KnownRank(n->input(1));
  if (!ra || !rb)
    ThrowUnsupported(n->describe() + ": legacy broadcast at axis " +
                     std::to_string(n->attr_int("axis", 0)) + " needs both input ranks");
  int64_t axis = n->attr_int("axis", 0);
  if (axis < 0) axis += *ra;
  std::vector<int64_t> axes;
  for (int64_t d = *rb; d < *ra - axis; ++d) axes.push_back(d);
  return axes;
}

// PRelu before 7 applied a [C] slope per channel of [N, C, ...]; numpy's rule needs
// [C, 1, ..., 1]. The trailing axes to add, or empty.
std::vector<int64_t> LegacyPReluAxes(const ir::Node* n) {
  const ir::Value* x = n->input(0);
  const ir::Value* slope = n->input(1);
  std::optional<int64_t> rx = KnownRank(x), rs = KnownRank(slope);
  if (!rx || !rs || *rs != 1 || *rx <= 2) return {};
  const ir::Dim& c = (*x->type.shape)[1];
  const ir::Dim& last = x->type.shape->back();
  const ir::Dim& s = (*slope->type.shape)[0];
  if (!s.known() || s.value == 1 || !c.known() || c.value != s.value) return {};
  if (last.known() && last.value == s.value) return {};
  std::vector<int64_t> axes;
  for (int64_t d = 1; d < *rx - 1; ++d) axes.push_back(d);
  return axes;
}

// Input `i` of `n` gains trailing unit dims through an Unsqueeze (axes as an input: the
// model is being raised to 13).
void UnsqueezeInput(ir::Graph& g, ir::Node* n, size_t i, const std::vector<int64_t>& axes) {
  const int64_t k = static_cast<int64_t>(axes.size());
  ir::Value* a = AddConstant(g, Base(n) + "_axes", ir::Tensor::FromVector(ir::DType::kInt64, {k}, axes));
  ir::Node* u = g.InsertNode(n, "Unsqueeze", {n->input(i), a},
                             {g.UniqueName(n->input(i)->name() + "_aligned")},
                             g.UniqueName(Base(n) + "_Unsqueeze"));
  n->set_input(i, u->output(0));
}

bool HasLegacyForm(const ir::Node* n, int64_t from) {
  if (from >= 7) return false;
  for (const char* a : kLegacyAttrs)
    if (n->has_attr(a)) return true;
  const std::string& op = n->op_type();
  if (n->has_attr("broadcast")) return true;
  if (op == "PRelu") return !LegacyPReluAxes(n).empty();
  if (op == "Concat") return !n->has_attr("axis");
  return false;
}

void UpgradeLegacyForm(ir::Graph& g, ir::Node* n, OpsetUpgrade& up) {
  for (const char* a : kLegacyAttrs)
    if (n->remove_attr(a)) ++up.rewrites[n->op_type() + ": " + a + " dropped"];
  const std::string& op = n->op_type();
  if (n->has_attr("broadcast")) {
    if (IsLegacyBroadcastOp(op)) {
      std::vector<int64_t> axes = LegacyBroadcastAxes(n);
      if (!axes.empty()) {
        UnsqueezeInput(g, n, 1, axes);
        ++up.rewrites[op + ": legacy axis broadcast -> Unsqueeze"];
      }
      n->remove_attr("axis");
    }
    n->remove_attr("broadcast");  // Gemm's C broadcasts unidirectionally from 7 on
    ++up.rewrites[op + ": broadcast attribute dropped"];
  }
  if (op == "PRelu") {
    std::vector<int64_t> axes = LegacyPReluAxes(n);
    if (!axes.empty()) {
      UnsqueezeInput(g, n, 1, axes);
      ++up.rewrites["PRelu: per-channel slope -> Unsqueeze"];
    }
  }
  if (op == "Concat" && !n->has_attr("axis")) {
    n->set_attr(ir::Attribute::Int("axis", 1));  // the default before opset 4
    ++up.rewrites["Concat: default axis 1 made explicit"];
  }
}

// --- the sweep --------------------------------------------------------------------------

enum class Change { kNone, kSoftmax, kLegacyResize, kScatter, kBatchNormSpatial, kScan8 };

Change Classify(const ir::Node* n, int64_t from, int64_t to) {
  if (!IsDefaultDomain(n)) return Change::kNone;
  const std::string& op = n->op_type();
  if ((op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") && from < 13 && to >= 13)
    return Change::kSoftmax;
  if (op == "Upsample" && to >= 10) return Change::kLegacyResize;
  if (op == "Resize" && from == 10 && to >= 11 && n->num_inputs() <= 2) return Change::kLegacyResize;
  if (op == "Scatter" && to >= 11) return Change::kScatter;
  if (op == "BatchNormalization" && n->has_attr("spatial") && to >= 9) return Change::kBatchNormSpatial;
  if (op == "Scan" && from == 8 && to >= 9) return Change::kScan8;
  return Change::kNone;
}

}  // namespace

OpsetUpgrade UpgradeOpset(ir::Model& model, int64_t target) {
  OpsetUpgrade up;
  up.from = up.to = model.OpsetVersion("");
  if (up.from <= 0 || up.from >= target) return up;
  // Check every node first, so a refusal changes nothing.
  std::vector<std::pair<ir::Node*, Change>> work;
  std::vector<ir::Node*> legacy;  // opset < 7 forms, rewritten first
  model.graph->Walk([&](ir::Graph& g) {
    for (ir::Node* n : g.nodes()) {
      if (IsDefaultDomain(n) && HasLegacyForm(n, up.from)) {
        try {
          if (IsLegacyBroadcastOp(n->op_type())) LegacyBroadcastAxes(n);
        } catch (const Error& e) {
          throw Error(e.code(), "cannot raise the model's opset from " + std::to_string(up.from) +
                                    " to " + std::to_string(target) + ": " + e.what());
        }
        legacy.push_back(n);
      }
      Change c = Classify(n, up.from, target);
      if (c == Change::kNone) continue;
      try {
        if (c == Change::kLegacyResize) CheckLegacyResize(n);
        if (c == Change::kScan8) CheckScan8(n);
        if (c == Change::kBatchNormSpatial && n->attr_int("spatial", 1) != 1)
          ThrowUnsupported(n->describe() + ": spatial=0 (per-activation statistics, removed in "
                           "opset 9) has no later form");
      } catch (const Error& e) {
        throw Error(e.code(), "cannot raise the model's opset from " + std::to_string(up.from) +
                                  " to " + std::to_string(target) + ": " + e.what());
      }
      work.emplace_back(n, c);
    }
  });
  for (ir::Node* n : legacy) UpgradeLegacyForm(*n->graph(), n, up);
  for (auto& [n, c] : work) {
    ir::Graph& g = *n->graph();
    switch (c) {
      case Change::kSoftmax: UpgradeSoftmax(g, n, up); break;
      case Change::kLegacyResize: UpgradeLegacyResize(g, n, up); break;
      case Change::kScatter: {
        ir::Node* m = CloneAs(g, n, "ScatterElements", n->inputs());
        Supersede(g, n, m);
        ++up.rewrites["Scatter: ScatterElements"];
        break;
      }
      case Change::kBatchNormSpatial:
        n->remove_attr("spatial");
        ++up.rewrites["BatchNormalization: spatial attribute dropped"];
        break;
      case Change::kScan8: UpgradeScan8(g, n, up); break;
      case Change::kNone: break;
    }
  }
  model.SetOpsetVersion("", target);
  // Models before IR version 4 list every initializer as a graph input too; the upgraded
  // graph adds initializers, so it needs the IR version of its new opset (ONNX's table:
  // opset 9 -> 4, 10 -> 5, 11 -> 6, 12..14 -> 7, 15.. -> 8).
  const int64_t ir = target >= 15 ? 8 : target >= 12 ? 7 : target >= 9 ? target - 5 : 3;
  if (model.ir_version < ir) model.ir_version = ir;
  up.to = target;
  return up;
}

}  // namespace edgepress::passes
