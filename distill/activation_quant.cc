// Fake quantization of activations through the torch backend's value hook
// (distill/fake_quant.h).
#include <torch/torch.h>

#include <map>

#include "distill/fake_quant.h"

namespace edgepress::distill {

namespace {

class ActivationHook : public runtime::TorchValueHook {
 public:
  explicit ActivationHook(const std::vector<ActivationQuant>& q) {
    for (const ActivationQuant& a : q) ranges_[a.value] = a;
  }
  // fake_quantize_per_tensor_affine rounds half to even, as QuantizeLinear does, and its
  // gradient passes straight through inside [qmin, qmax] and is zero outside (clipped).
  at::Tensor Apply(const ir::Value& v, const at::Tensor& t) override {
    auto it = ranges_.find(v.name());
    if (it == ranges_.end() || !t.is_floating_point()) return t;
    const ActivationQuant& a = it->second;
    return at::fake_quantize_per_tensor_affine(t, a.scale, a.zero_point, a.qmin, a.qmax);
  }

 private:
  std::map<std::string, ActivationQuant> ranges_;
};

}  // namespace

std::shared_ptr<runtime::TorchValueHook> ActivationFakeQuantHook(
    const std::vector<ActivationQuant>& quants) {
  return std::make_shared<ActivationHook>(quants);
}

}  // namespace edgepress::distill
