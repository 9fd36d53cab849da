// upgrade-opset: raises the model's ai.onnx opset (default 13), rewriting every node whose
// meaning changed on the way (passes/graph/opset_upgrade.h lists them). Quantization passes do
// the same on their own when they need opset 13; as a pass it lets a user upgrade an old
// model explicitly (`edgepress apply old.onnx --passes upgrade-opset -o new.onnx`). Does not
// apply when the opset is already at or above the target.
#include "passes/all_passes.h"
#include "passes/graph/opset_upgrade.h"

namespace edgepress::passes {
namespace {

class UpgradeOpsetPass_ : public Pass {
 public:
  explicit UpgradeOpsetPass_(const PassOptions& o) : target_(o.GetInt("opset")) {}
  const PassInfo& info() const override { return UpgradeOpsetPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    OpsetUpgrade up = UpgradeOpset(model, target_);
    for (const auto& [what, n] : up.rewrites) Count("rewritten", n);
    if (up.changed()) Count("opset-raised");
    return up.changed();
  }

 private:
  int64_t target_;
};

}  // namespace

const PassEntry& UpgradeOpsetPass() {
  static const PassEntry entry = {
      {"upgrade-opset",
       "Raise the ai.onnx opset, rewriting ops whose meaning changed (Softmax 2-D coercion, Upsample, ...)",
       {{"opset", OptionInfo::Type::kInt, "13", "target ai.onnx opset (7..17)", {}, 7, 17}},
       {"opset-raised", "rewritten"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<UpgradeOpsetPass_>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
