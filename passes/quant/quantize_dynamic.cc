// quantize-dynamic: dynamic int8 quantization of MatMul/Gemm with constant float weights,
// as com.microsoft DynamicQuantizeMatMul(A, B, b_scale, b_zero_point, bias), the contrib
// op onnxruntime runs (and the native runtime implements): A stays float and is
// quantized to uint8 at run time from its own range; B is int8 symmetric, one scale per
// column of B [K, N] (per-channel=false: one scale), zero points 0 (int8).
//
// Applies to MatMul(A, B) with B a constant float32 [K, N], and to Gemm(A, B, C) with
// transA = 0 and B constant (transB = 1 is transposed into [K, N]); Gemm's alpha is folded
// into B before quantization and beta * C into the float bias when C is a constant [N]
// or [1, N] (other C shapes leave the Gemm alone). Needs no data. The node's output keeps
// its name; the weight becomes `B_quantized`, `B_scale`, `B_zero_point`. Other nodes,
// excluded ones (`exclude` globs of node names) and ops not in `op-types` stay as they are.
//
// Gather (in the default `op-types`) with a constant float32 rank-2 table as its data —
// word and position embeddings — stores the table as int8 with one symmetric scale per
// row, read through a DequantizeLinear (axis 0), as onnxruntime's quantize_dynamic does:
// embeddings are often the largest tensors of a transformer, and a row-wise int8 lookup
// loses about as little as the MatMul weights do. The runtime folds the DequantizeLinear
// of a constant at load, so this saves file size, not run-time memory. Needs opset 13.
#include <cmath>
#include <set>

#include "ir/error.h"
#include "passes/all_passes.h"
#include "passes/quant/quant_util.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

class QuantizeDynamic : public Pass {
 public:
  explicit QuantizeDynamic(const PassOptions& o)
      : exclude_(o.GetStringList("exclude")),
        op_types_(o.GetStringList("op-types")),
        per_channel_(o.GetBool("per-channel")) {}
  const PassInfo& info() const override { return QuantizeDynamicPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    ir::Graph& g = *model.graph;
    int64_t done = 0;
    int64_t gathers = 0;
    for (ir::Node* n : g.nodes()) {
      if (!n->domain().empty()) continue;
      if (!Listed(n->op_type()) || quant::MatchAnyGlob(exclude_, n->name)) continue;
      if (n->op_type() == "Gather") {
        if (!GatherTable(n)) continue;
        quant::EnsureOpset(model, 13);
        ir::Value* table = n->input(0);
        n->set_input(0, quant::AddWeightDequantize(
                            g, n, table->name(),
                            quant::QuantizeWeightPerChannel(*ConstantOf(table), 0,
                                                            /*symmetric=*/true, table->name())));
        replaced_.insert(table);
        ++gathers;
        continue;
      }
      if (n->op_type() != "MatMul" && n->op_type() != "Gemm") continue;
      if (Rewrite(g, n)) ++done;
    }
    if (done == 0 && gathers == 0) return false;
    if (done) Count("nodes-quantized", done);
    if (gathers) Count("gathers-quantized", gathers);
    if (model.OpsetVersion("com.microsoft") < 1) model.SetOpsetVersion("com.microsoft", 1);
    for (ir::Value* v : std::vector<ir::Value*>(replaced_.begin(), replaced_.end()))
      if (v->uses().empty() && !v->is_graph_output() && v->is_initializer() &&
          !v->is_graph_input())
        g.RemoveInitializer(v);
    return true;
  }

 private:
  bool Listed(const std::string& op) const {
    for (const auto& t : op_types_)
      if (t == op) return true;
    return false;
  }

  // A Gather whose data is a constant float32 table [rows, cols] of at least 1 KiB.
  static bool GatherTable(const ir::Node* n) {
    if (n->num_inputs() < 2 || !n->input(0) || n->attr_int("axis", 0) != 0) return false;
    const ir::Tensor* t = ConstantOf(n->input(0));
    return t && t->dtype() == ir::DType::kFloat32 && t->rank() == 2 && t->numel() >= 256 &&
           !n->input(0)->is_graph_input() && !n->input(0)->is_graph_output();
  }

  bool Rewrite(ir::Graph& g, ir::Node* n) {
    if (n->num_outputs() != 1 || !n->output(0) || !n->input(0) || ConstantOf(n->input(0)))
      return false;
    if (n->input(0)->type.dtype != ir::DType::kFloat32 &&
        n->input(0)->type.dtype != ir::DType::kUndefined)
      return false;
    const ir::Tensor* b = ConstantOf(n->input(1));
    if (!b || b->dtype() != ir::DType::kFloat32 || b->rank() != 2) return false;
    bool gemm = n->op_type() == "Gemm";
    ir::Tensor w = *b;
    ir::Value* bias = nullptr;
    int64_t k = b->shape()[0], cols = b->shape()[1];
    if (gemm) {
      if (n->attr_int("transA", 0) != 0) return false;
      bool trans_b = n->attr_int("transB", 0) != 0;
      if (trans_b) std::swap(k, cols);
      float alpha = n->attr_float("alpha", 1.f);
      float beta = n->attr_float("beta", 1.f);
      ir::Value* c = n->num_inputs() > 2 ? n->input(2) : nullptr;
      const ir::Tensor* ct = c ? ConstantOf(c) : nullptr;
      if (c && (!ct || ct->dtype() != ir::DType::kFloat32 || ct->numel() != static_cast<uint64_t>(cols) ||
                (ct->rank() == 2 && ct->shape()[0] != 1) || ct->rank() > 2 || ct->rank() == 0))
        return false;
      if (trans_b || alpha != 1.f) {
        ir::Tensor t(ir::DType::kFloat32, {k, cols});
        const float* src = b->data<float>();
        float* dst = t.mutable_data<float>();
        for (int64_t i = 0; i < k; ++i)
          for (int64_t j = 0; j < cols; ++j)
            dst[i * cols + j] = alpha * (trans_b ? src[j * k + i] : src[i * cols + j]);
        w = std::move(t);
      }
      if (ct) {
        ir::Tensor bt(ir::DType::kFloat32, {cols});
        for (int64_t j = 0; j < cols; ++j) bt.mutable_data<float>()[j] = beta * ct->data<float>()[j];
        if (beta == 1.f && ct->rank() == 1) {
          bias = c;
        } else {
          bias = AddConstant(g, c->name() + "_bias", std::move(bt));
          replaced_.insert(c);
        }
      }
    }
    ir::Value* wv = n->input(1);
    quant::QuantizedTensor q =
        per_channel_ ? quant::QuantizeWeightPerChannel(w, 1, /*symmetric=*/true, wv->name())
                     : quant::QuantizePerTensor(w, ir::DType::kInt8, /*symmetric=*/true, wv->name());
    ir::Value* data = AddConstant(g, wv->name() + "_quantized", std::move(q.data));
    ir::Value* scale = AddConstant(g, wv->name() + "_scale", std::move(q.scale));
    ir::Value* zp = AddConstant(g, wv->name() + "_zero_point", std::move(q.zero_point));
    replaced_.insert(wv);
    std::vector<ir::Value*> ins = {n->input(0), data, scale, zp};
    if (bias) ins.push_back(bias);
    ir::Value* out = n->output(0);
    std::string out_name = out->name();
    ir::Node* dq = g.InsertNode(n, "DynamicQuantizeMatMul", ins,
                                {g.UniqueName(out_name + "_dynq")}, n->name, "com.microsoft");
    dq->output(0)->type = out->type;
    g.ReplaceAllUsesWith(out, dq->output(0));
    for (size_t i = 0; i < n->num_inputs(); ++i) n->set_input(i, nullptr);
    g.RemoveNode(n);
    g.RenameValue(dq->output(0), out_name);  // the layer keeps its output name
    return true;
  }

  std::vector<std::string> exclude_;
  std::vector<std::string> op_types_;
  bool per_channel_;
  std::set<ir::Value*> replaced_;
};

}  // namespace

const PassEntry& QuantizeDynamicPass() {
  using T = OptionInfo::Type;
  static const PassEntry entry = {
      {"quantize-dynamic",
       "Dynamic int8 quantization: MatMul/Gemm with constant weights become com.microsoft "
       "DynamicQuantizeMatMul",
       {
           Opt("exclude", T::kStringList, "", "node-name globs left float"),
           Opt("op-types", T::kStringList, "MatMul,Gemm,Gather",
               "op types to quantize (Gather: constant embedding tables, int8 per row)"),
           Opt("per-channel", T::kBool, "true", "one weight scale per column of B"),
       },
       {"nodes-quantized", "gathers-quantized"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<QuantizeDynamic>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
