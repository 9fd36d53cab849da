#include "ir/constant_value.h"

namespace edgepress::ir {

std::optional<Tensor> ConstantAttributeValue(const Node& n) {
  using K = Attribute::Kind;
  for (const Attribute& a : n.attributes()) {
    if (a.name == "value" && a.kind == K::kTensor) return a.t;
    if (a.name == "value_float" && a.kind == K::kFloat)
      return Tensor::FromVector<float>(DType::kFloat32, {}, {a.f});
    if (a.name == "value_floats" && a.kind == K::kFloats)
      return Tensor::FromVector<float>(DType::kFloat32, {static_cast<int64_t>(a.floats.size())},
                                       a.floats);
    if (a.name == "value_int" && a.kind == K::kInt)
      return Tensor::FromVector<int64_t>(DType::kInt64, {}, {a.i});
    if (a.name == "value_ints" && a.kind == K::kInts)
      return Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(a.ints.size())},
                                         a.ints);
    if (a.name == "value_string" && a.kind == K::kString) return Tensor::Strings({}, {a.s});
    if (a.name == "value_strings" && a.kind == K::kStrings)
      return Tensor::Strings({static_cast<int64_t>(a.strings.size())}, a.strings);
  }
  return std::nullopt;
}

}  // namespace edgepress::ir
