// fold-batchnorm: folds an inference BatchNormalization into the Conv, ConvTranspose or
// Gemm that feeds it: W'[c] = W[c] * s[c], b'[c] = (b[c] - mean[c]) * s[c] + beta[c], with
// s = gamma / sqrt(var + epsilon), computed in double. (ConvTranspose's weight is
// [Cin, M/group, k...]: output channel c = (ci / (Cin/group)) * M/group + axis-1 index.)
// Applies when the producer's output feeds only the BatchNormalization, its weights (and
// bias) and all four BN parameters are float32 initializers, and the BN is in inference
// form (one output, training_mode absent or 0). For Gemm, the BN channel axis must be the
// Gemm's output column axis (input rank 2). Weights shared with other nodes are copied,
// not modified. The result matches the unfolded graph up to float rounding.
#include <cmath>

#include "passes/all_passes.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

class FoldBatchNorm : public Pass {
 public:
  explicit FoldBatchNorm(const PassOptions&) {}
  const PassInfo& info() const override { return FoldBatchNormPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    bool changed = false;
    model.graph->Walk([&](ir::Graph& g) {
      for (ir::Node* bn : g.nodes()) {
        if (bn->op_type() != "BatchNormalization" || !bn->domain().empty()) continue;
        ir::Node* producer = bn->input(0) ? bn->input(0)->producer() : nullptr;
        if (!producer || !producer->domain().empty()) continue;
        const std::string& op = producer->op_type();
        if (op != "Conv" && op != "ConvTranspose" && op != "Gemm") continue;
        if (TryFold(g, producer, bn)) {
          Count(op == "Conv" ? "conv-folded" : op == "Gemm" ? "gemm-folded" : "conv-transpose-folded");
          changed = true;
        }
      }
    });
    return changed;
  }

 private:
  static const ir::Tensor* F32(const ir::Value* v) {
    const ir::Tensor* t = ConstantOf(v);
    return t && t->dtype() == ir::DType::kFloat32 ? t : nullptr;
  }

  bool TryFold(ir::Graph& g, ir::Node* p, ir::Node* bn) {
    if (!HasSingleUse(p->output(0)) || p->num_outputs() != 1) return false;
    for (size_t i = 1; i < bn->num_outputs(); ++i)
      if (bn->output(i)) return false;  // training outputs requested
    if (bn->attr_int("training_mode", 0) != 0) return false;
    const ir::Tensor* gamma = F32(bn->input(1));
    const ir::Tensor* beta = F32(bn->input(2));
    const ir::Tensor* mean = F32(bn->input(3));
    const ir::Tensor* var = F32(bn->input(4));
    const ir::Tensor* w = F32(p->input(1));
    if (!gamma || !beta || !mean || !var || !w) return false;
    const ir::Tensor* b = p->input(2) ? F32(p->input(2)) : nullptr;
    if (p->input(2) && !b) return false;

    const bool is_conv = p->op_type() == "Conv";
    const bool is_conv_t = p->op_type() == "ConvTranspose";
    const int64_t group = is_conv_t ? p->attr_int("group", 1) : 1;
    int64_t channels;
    if (is_conv) {
      if (w->rank() < 3) return false;
      channels = w->shape()[0];
    } else if (is_conv_t) {
      if (w->rank() < 3 || group < 1 || w->shape()[0] % group != 0) return false;
      channels = w->shape()[1] * group;
    } else {
      if (w->rank() != 2 || p->attr_int("transA", 0) != 0) return false;
      if (p->attr_float("alpha", 1.f) != 1.f || p->attr_float("beta", 1.f) != 1.f) return false;
      channels = p->attr_int("transB", 0) ? w->shape()[0] : w->shape()[1];
    }
    for (const ir::Tensor* t : {gamma, beta, mean, var})
      if (t->numel() != static_cast<uint64_t>(channels)) return false;
    if (b && b->numel() != static_cast<uint64_t>(channels)) return false;

    double eps = bn->attr_float("epsilon", 1e-5f);
    std::vector<double> s(channels), shift(channels);
    for (int64_t c = 0; c < channels; ++c) {
      s[c] = gamma->data<float>()[c] / std::sqrt(static_cast<double>(var->data<float>()[c]) + eps);
      double bias = b ? b->data<float>()[c] : 0.0;
      shift[c] = (bias - mean->data<float>()[c]) * s[c] + beta->data<float>()[c];
    }
    ir::Tensor nw(ir::DType::kFloat32, w->shape());
    const float* src = w->data<float>();
    float* dst = nw.mutable_data<float>();
    int64_t total = static_cast<int64_t>(w->numel());
    if (is_conv_t) {
      const int64_t mg = w->shape()[1], cg = w->shape()[0] / group;
      const int64_t per = total / (w->shape()[0] * mg);  // kernel taps
      for (int64_t i = 0; i < total; ++i) {
        const int64_t ci = i / (mg * per), j = (i / per) % mg;
        dst[i] = static_cast<float>(src[i] * s[(ci / cg) * mg + j]);
      }
    } else if (is_conv || p->attr_int("transB", 0)) {
      int64_t per = total / channels;  // output channel is the leading axis
      for (int64_t i = 0; i < total; ++i) dst[i] = static_cast<float>(src[i] * s[i / per]);
    } else {
      for (int64_t i = 0; i < total; ++i) dst[i] = static_cast<float>(src[i] * s[i % channels]);
    }
    ir::Tensor nb(ir::DType::kFloat32, {channels});
    for (int64_t c = 0; c < channels; ++c) nb.mutable_data<float>()[c] = static_cast<float>(shift[c]);

    ir::Value* out = bn->output(0);
    ir::Value* pout = p->output(0);
    // BN's output replaces the producer's; the producer now writes the folded result.
    ir::Value* wv = AddConstant(g, p->input(1)->name() + "_bnfolded", std::move(nw));
    ir::Value* bv = AddConstant(g, (p->input(2) ? p->input(2)->name() : p->name + "_bias") +
                                       "_bnfolded", std::move(nb));
    p->set_input(1, wv);
    if (p->num_inputs() < 3) p->add_input(bv); else p->set_input(2, bv);
    pout->type = out->type;
    bn->set_input(0, nullptr);
    if (!ReplaceValue(out, pout)) {
      return false;  // cannot happen: pout is a node output with no other use
    }
    g.RemoveNode(bn);
    return true;
  }
};

}  // namespace

const PassEntry& FoldBatchNormPass() {
  static const PassEntry entry = {{"fold-batchnorm", "Fold inference BatchNormalization into the preceding Conv, ConvTranspose or Gemm",
           {}, {"conv-folded", "conv-transpose-folded", "gemm-folded"}},
          [](const PassOptions& o) -> std::unique_ptr<Pass> {
            return std::make_unique<FoldBatchNorm>(o);
          }};
  return entry;
}

}  // namespace edgepress::passes
