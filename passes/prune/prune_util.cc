#include "passes/prune/prune_util.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "ir/error.h"
#include "ir/file_util.h"
#include "ir/shape_inference.h"
#include "passes/quant/quant_util.h"
#include "passes/rewrite_util.h"
#include "passes/quant/weight_quant.h"

namespace edgepress::passes::prune {
namespace {

bool IsTargetOp(const ir::Node& n, const std::vector<std::string>& op_types) {
  const std::string& op = n.op_type();
  bool ms = n.domain() == "com.microsoft", onnx = n.domain().empty();
  if (!(onnx && (op == "Conv" || op == "ConvTranspose" || op == "Gemm" || op == "MatMul" ||
                 op == "Gather")) &&
      !(ms && (op == "FusedConv" || op == "FusedGemm")))
    return false;
  return std::find(op_types.begin(), op_types.end(), op) != op_types.end();
}

// The input slot holding the weight of a target op.
int WeightSlot(const ir::Node& n) { return n.op_type() == "Gather" ? 0 : 1; }

// Reduction axis of `n`'s weight of rank `rank` (see the header's table); -1 when the
// weight has no ReductionView (batched MatMul, Gather).
int AxisOf(const ir::Node& n, int rank) {
  const std::string& op = n.op_type();
  if (op == "MatMul") return rank == 2 ? 0 : -1;
  if (op == "Gemm" || op == "FusedGemm") return n.attr_int("transB", 0) ? 1 : 0;
  if (op == "Conv" || op == "FusedConv") return rank >= 2 ? 1 : -1;
  if (op == "ConvTranspose") return 0;
  return -1;
}

int64_t CountNonZero(const ir::Tensor& t) {
  if (t.dtype() == ir::DType::kFloat32) {
    const float* d = t.data<float>();
    return std::count_if(d, d + t.numel(), [](float v) { return v != 0.f; });
  }
  if (t.dtype() == ir::DType::kInt8) {
    const int8_t* d = t.data<int8_t>();
    return std::count_if(d, d + t.numel(), [](int8_t v) { return v != 0; });
  }
  std::vector<double> v = t.ToDouble();
  return std::count_if(v.begin(), v.end(), [](double x) { return x != 0; });
}

// Weights and non-zero weights of a com.microsoft MatMulNBits node (K·N logical weights,
// decoded from the packed blocks; counted dense when they cannot be read).
std::pair<int64_t, int64_t> NBitsCounts(const ir::Node& n) {
  int64_t K = n.attr_int("K", 0), N = n.attr_int("N", 0), block = n.attr_int("block_size", 0);
  const ir::Tensor* b = n.num_inputs() > 1 && n.input(1) ? ConstantOf(n.input(1)) : nullptr;
  const ir::Tensor* sc = n.num_inputs() > 2 && n.input(2) ? ConstantOf(n.input(2)) : nullptr;
  const ir::Tensor* zp = n.num_inputs() > 3 && n.input(3) ? ConstantOf(n.input(3)) : nullptr;
  try {
    if (!b || !sc) throw Error(ErrorCode::kInvalidInput, "not constant");
    std::vector<float> w = wq::UnpackMatMulNBits(*b, *sc, zp, K, N, block);
    return {K * N, std::count_if(w.begin(), w.end(), [](float x) { return x != 0.f; })};
  } catch (const Error&) {
    return {K * N, K * N};
  }
}

}  // namespace

const std::vector<std::string>& DefaultOpTypes() {
  static const std::vector<std::string> ops = {"Conv",    "ConvTranspose", "Gemm",
                                               "MatMul",  "FusedConv",     "FusedGemm"};
  return ops;
}

ReductionView ViewOf(const std::vector<int64_t>& shape, int axis) {
  ReductionView v;
  v.axis = axis;
  int rank = static_cast<int>(shape.size());
  if (rank == 0) return v;
  if (axis <= 0) {
    v.reduction = shape[0];
    for (int i = 1; i < rank; ++i) v.inner *= shape[i];
    return v;
  }
  for (int i = 0; i < axis && i < rank; ++i) v.outer *= shape[i];
  for (int i = axis; i < rank; ++i) v.reduction *= shape[i];
  return v;
}

std::string LayerName(const ir::Node& n) {
  if (!n.name.empty()) return n.name;
  return n.num_outputs() > 0 && n.output(0) ? n.output(0)->name() : n.op_type();
}

std::vector<PrunableWeight> FindPrunable(ir::Model& model, const FindOptions& o,
                                         FindCounts* counts) {
  FindCounts local;
  FindCounts& c = counts ? *counts : local;
  std::vector<PrunableWeight> out;
  std::set<const ir::Value*> seen;
  model.graph->Walk([&](ir::Graph& g) {
    for (ir::Node* n : g.nodes()) {
      if (!IsTargetOp(*n, o.op_types)) continue;
      ir::Value* w = n->input(WeightSlot(*n));
      if (!w || seen.count(w)) continue;
      seen.insert(w);
      std::string layer = LayerName(*n);
      if ((!o.include.empty() && !quant::MatchAnyGlob(o.include, layer)) ||
          quant::MatchAnyGlob(o.exclude, layer)) {
        ++c.excluded;
        continue;
      }
      const ir::Tensor* t = w->initializer();
      if (!t || w->is_graph_input() || t->dtype() != ir::DType::kFloat32 || t->numel() == 0) {
        ++c.not_constant;
        continue;
      }
      if (static_cast<int64_t>(t->numel()) < o.min_params) {
        ++c.too_small;
        continue;
      }
      PrunableWeight p;
      p.weight = w;
      p.layer = layer;
      p.op = n->op_type();
      p.axis = AxisOf(*n, t->rank());
      p.has_view = p.axis >= 0;
      p.in_main_graph = &g == model.graph.get();
      p.input = n->op_type() == "Gather" ? nullptr : n->input(0);
      bool ok = !w->is_graph_output();
      for (const ir::Use& u : w->uses()) {
        if (!IsTargetOp(*u.user, o.op_types) || u.index != WeightSlot(*u.user)) ok = false;
        else if (AxisOf(*u.user, t->rank()) != p.axis) p.has_view = false;
        if (std::find(p.users.begin(), p.users.end(), u.user) == p.users.end())
          p.users.push_back(u.user);
      }
      if (!ok) {
        ++c.shared;
        continue;
      }
      out.push_back(std::move(p));
    }
  });
  return out;
}

ParamCounts CountParams(const ir::Model& model) {
  ParamCounts pc;
  std::set<const ir::Value*> counted;
  auto add = [&](const ir::Value* v, const ir::Tensor& t) {
    if (!counted.insert(v).second) return;
    pc.params += static_cast<int64_t>(t.numel());
    pc.nonzero += CountNonZero(t);
  };
  model.graph->Walk([&](ir::Graph& g) {
    for (ir::Node* n : g.nodes()) {
      bool dq = n->domain().empty() &&
                (n->op_type() == "DequantizeLinear" || n->op_type() == "QuantizeLinear");
      bool nbits = n->domain() == "com.microsoft" && n->op_type() == "MatMulNBits";
      for (size_t i = 0; i < n->num_inputs(); ++i) {
        const ir::Value* v = n->input(i);
        const ir::Tensor* t = v ? ConstantOf(v) : nullptr;
        if (!t || t->dtype() == ir::DType::kString) continue;
        // Scales and zero points are quantization metadata, not parameters.
        if ((dq || nbits) && i != (nbits ? 1u : 0u)) continue;
        if (nbits) {
          if (!counted.insert(v).second) continue;
          auto [params, nonzero] = NBitsCounts(*n);
          pc.params += params;
          pc.nonzero += nonzero;
          continue;
        }
        if (!dq && !ir::IsFloat(t->dtype())) continue;  // shapes, indices, axes
        add(v, *t);
      }
    }
  });
  return pc;
}

FlopCounts CountMacs(const ir::Model& original) {
  FlopCounts fc;
  // Imported models rarely declare intermediate shapes: infer them on a copy (tensors are
  // shared, so the copy is cheap). A model the inference cannot follow keeps what it has.
  std::unique_ptr<ir::Model> copy = original.Clone();
  try {
    ir::InferShapes(*copy);
  } catch (const Error&) {
  }
  const ir::Model& model = *copy;
  model.graph->Walk([&](ir::Graph& g) {
    for (ir::Node* n : g.nodes()) {
      const std::string& op = n->op_type();
      bool onnx = n->domain().empty(), ms = n->domain() == "com.microsoft";
      bool conv = (onnx && (op == "Conv" || op == "ConvTranspose")) || (ms && op == "FusedConv");
      bool gemm = (onnx && (op == "Gemm" || op == "MatMul")) || (ms && op == "FusedGemm");
      bool nbits = ms && op == "MatMulNBits";
      if (!conv && !gemm && !nbits) continue;
      const ir::Value* y = n->num_outputs() ? n->output(0) : nullptr;
      const ir::Value* a = n->input(0);
      const ir::Value* b = n->num_inputs() > 1 ? n->input(1) : nullptr;
      auto numel = [](const ir::Shape& s) {
        int64_t n = 1;
        for (const ir::Dim& d : s) n *= d.known() ? d.value : 1;
        return n;
      };
      if (nbits && a && a->type.shape) {
        // Shape inference may not know the com.microsoft op: rows of A times N outputs.
        int64_t K = n->attr_int("K", 0);
        if (K <= 0) {
          ++fc.unknown;
          continue;
        }
        int64_t macs = numel(*a->type.shape) / K * n->attr_int("N", 0) * K;
        auto [params, nonzero] = NBitsCounts(*n);
        fc.dense_macs += macs;
        fc.sparse_macs += params ? static_cast<int64_t>(double(macs) * double(nonzero) / double(params) + 0.5) : macs;
        continue;
      }
      if (!y || !a || !b || !y->type.shape || !b->type.shape) {
        ++fc.unknown;
        continue;
      }
      int64_t out = numel(*y->type.shape);
      const ir::Shape& ws = *b->type.shape;
      int64_t reduce = 0;
      if (nbits) {
        reduce = n->attr_int("K", 0);
      } else if (op == "ConvTranspose") {
        // Each input element meets every weight of its group: MACs = |x| · O/g · k...
        int64_t in = 1;
        if (!a->type.shape) {
          ++fc.unknown;
          continue;
        }
        for (const ir::Dim& d : *a->type.shape) in *= d.known() ? d.value : 1;
        int64_t per = 1;
        for (size_t i = 1; i < ws.size(); ++i) per *= ws[i].known() ? ws[i].value : 1;
        out = in;
        reduce = per;
      } else if (conv) {
        reduce = 1;
        for (size_t i = 1; i < ws.size(); ++i) reduce *= ws[i].known() ? ws[i].value : 1;
      } else if (op == "MatMul") {
        reduce = ws.size() >= 2 ? ws[ws.size() - 2].value : (ws.empty() ? 0 : ws[0].value);
      } else {
        bool tb = n->attr_int("transB", 0) != 0;
        reduce = ws.size() == 2 ? ws[tb ? 1 : 0].value : -1;
      }
      if (reduce <= 0) {
        ++fc.unknown;
        continue;
      }
      int64_t macs = out * reduce;
      fc.dense_macs += macs;
      // Every weight element takes part in the same number of MACs (one per output
      // position it feeds), so the sparse count scales by the weight's density.
      double density = 1.0;
      const ir::Tensor* wt = ConstantOf(b);
      if (!wt && b->producer() && b->producer()->op_type() == "DequantizeLinear")
        wt = ConstantOf(b->producer()->input(0));
      if (wt && wt->numel() > 0 && wt->dtype() != ir::DType::kString && !nbits)
        density = double(CountNonZero(*wt)) / double(wt->numel());
      fc.sparse_macs += static_cast<int64_t>(double(macs) * density + 0.5);
    }
  });
  return fc;
}

double Schedule::At(int64_t step) const {
  if (kind == "oneshot" || end <= begin) return step >= begin ? final : initial;
  if (step < begin) return initial;
  if (step >= end) return final;
  int64_t f = std::max<int64_t>(1, frequency);
  int64_t t = begin + (step - begin) / f * f;  // the target changes every `frequency` steps
  double p = double(t - begin) / double(end - begin);
  double rest = 1 - p;
  if (kind == "cubic") rest = rest * rest * rest;
  return final + (initial - final) * rest;
}

std::map<std::string, double> SparsityFromSensitivity(const std::string& path, double max_error) {
  std::string text = ReadFileToString(path, 64ull << 20);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    ThrowInvalid(path + ": not a sensitivity JSON file: " + e.what());
  }
  if (!j.is_object() || !j.contains("layers") || !j["layers"].is_array())
    ThrowInvalid(path + ": expected an object with a 'layers' array (edgepress sensitivity --json)");
  std::map<std::string, double> out;
  for (size_t i = 0; i < j["layers"].size(); ++i) {
    const nlohmann::json& l = j["layers"][i];
    std::string where = path + ": layers[" + std::to_string(i) + "]";
    if (!l.is_object() || !l.contains("layer") || !l["layer"].is_string() ||
        !l.contains("results") || !l["results"].is_array())
      ThrowInvalid(where + ": expected {\"layer\": name, \"results\": [...]}");
    double best = 0;
    for (const nlohmann::json& r : l["results"]) {
      if (!r.is_object() || !r.contains("sparsity") || !r["sparsity"].is_number() ||
          !r.contains("error") || !r["error"].is_number())
        ThrowInvalid(where + ": each result needs numeric 'sparsity' and 'error'");
      double s = r["sparsity"].get<double>(), e = r["error"].get<double>();
      if (!(s >= 0 && s < 1)) ThrowInvalid(where + ": sparsity " + std::to_string(s) + " outside [0, 1)");
      if (e <= max_error) best = std::max(best, s);
    }
    out[l["layer"].get<std::string>()] = best;
  }
  return out;
}

}  // namespace edgepress::passes::prune
