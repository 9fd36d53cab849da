// A QLinearConv node over synthetic data for the int8 convolution benchmarks: uint8 x
// [1, c, h, h], int8 weights [m, c / group, k, k] (symmetric per channel, scales 0.001-0.005),
// an int32 bias, "same" pads for odd k and the given stride. Deterministic contents.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgepress::bench {

struct QConvNode {
  ir::Graph graph;
  ir::Node* node = nullptr;
  std::vector<ir::Tensor> tensors;  // RunNode's inputs, in QLinearConv's order
  std::vector<const ir::Tensor*> Inputs() const {
    std::vector<const ir::Tensor*> p;
    for (const ir::Tensor& t : tensors) p.push_back(&t);
    return p;
  }
};

// `x_zp`/`y_scale`/`y_zp` as in QLinearConv; x_scale is 0.02.
inline void MakeQConvNode(QConvNode& q, int64_t c, int64_t h, int64_t m, int64_t k, int64_t stride,
                          int64_t group, uint8_t x_zp, float y_scale, uint8_t y_zp) {
  ir::Tensor x(ir::DType::kUInt8, {1, c, h, h}), w(ir::DType::kInt8, {m, c / group, k, k});
  for (uint64_t i = 0; i < x.numel(); ++i) x.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(i * 7919 % 251);
  for (uint64_t i = 0; i < w.numel(); ++i)
    w.mutable_data<int8_t>()[i] = static_cast<int8_t>(static_cast<int64_t>(i * 31 % 201) - 100);
  std::vector<float> ws(static_cast<size_t>(m));
  std::vector<int32_t> bias(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) {
    ws[static_cast<size_t>(i)] = 0.001f * static_cast<float>(1 + i % 5);
    bias[static_cast<size_t>(i)] = static_cast<int32_t>(i * 37 % 2001) - 1000;
  }
  const auto f32 = [](float v) { return ir::Tensor::FromVector(ir::DType::kFloat32, {}, std::vector<float>{v}); };
  const auto u8 = [](uint8_t v) { return ir::Tensor::FromVector(ir::DType::kUInt8, {}, std::vector<uint8_t>{v}); };
  q.tensors = {x, f32(0.02f), u8(x_zp), w,
               ir::Tensor::FromVector(ir::DType::kFloat32, {m}, ws),
               ir::Tensor::FromVector(ir::DType::kInt8, {m}, std::vector<int8_t>(static_cast<size_t>(m), 0)),
               f32(y_scale), u8(y_zp),
               ir::Tensor::FromVector(ir::DType::kInt32, {m}, bias)};
  std::vector<ir::Value*> in;
  for (size_t i = 0; i < q.tensors.size(); ++i)
    in.push_back(i == 0 ? q.graph.AddInput("x", ir::ValueType::Tensor(q.tensors[0].dtype()))
                        : q.graph.AddInitializer("c" + std::to_string(i), q.tensors[i]));
  q.node = q.graph.AddNode("QLinearConv", in, {"y"}, "n");
  const int64_t p = k / 2;
  q.node->set_attr(ir::Attribute::Ints("pads", {p, p, p, p}));
  q.node->set_attr(ir::Attribute::Ints("strides", {stride, stride}));
  if (group != 1) q.node->set_attr(ir::Attribute::Int("group", group));
}

}  // namespace edgepress::bench
