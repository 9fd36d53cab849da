#include "ir/builder.h"

#include <cctype>
#include <stdexcept>

namespace edgepress::ir {

GraphBuilder::GraphBuilder() : model_(std::make_unique<Model>()) {
  graph_ = model_->graph.get();
  graph_->name = "main";
  model_->producer_name = "edgepress-builder";
  model_->SetOpsetVersion("", 17);
}

GraphBuilder::GraphBuilder(Graph* graph) : graph_(graph) {}

Value* GraphBuilder::Input(const std::string& name, DType dtype, const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d : dims) s.push_back(d >= 0 ? Dim::Known(d) : Dim{});
  return InputShape(name, dtype, std::move(s));
}

Value* GraphBuilder::InputShape(const std::string& name, DType dtype, Shape shape) {
  return graph_->AddInput(name, ValueType::Tensor(dtype, std::move(shape)));
}

Value* GraphBuilder::Const(const std::string& name, Tensor t) {
  return graph_->AddInitializer(graph_->UniqueName(name), std::move(t));
}

Value* GraphBuilder::ConstNode(const std::string& name, Tensor t) {
  Node* n = graph_->AddNode("Constant", {}, {graph_->UniqueName(name)}, name + "_const");
  n->set_attr(Attribute::TensorValue("value", std::move(t)));
  last_ = n;
  return n->output(0);
}

Value* GraphBuilder::Op(const std::string& op_type, const std::vector<Value*>& inputs,
                        std::vector<Attribute> attrs, const std::string& node_name) {
  return OpN(op_type, inputs, 1, std::move(attrs), node_name)[0];
}

std::vector<Value*> GraphBuilder::OpN(const std::string& op_type, const std::vector<Value*>& inputs,
                                      int num_outputs, std::vector<Attribute> attrs,
                                      const std::string& node_name) {
  std::string base;
  for (char c : op_type) base += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::vector<std::string> outs;
  for (int i = 0; i < num_outputs; ++i)
    outs.push_back(graph_->UniqueName(base + std::to_string(counter_[base]++)));
  std::string nn = node_name;
  if (nn.empty()) nn = op_type + "_" + std::to_string(counter_[op_type + "#node"]++);
  Node* n = graph_->AddNode(op_type, inputs, outs, nn);
  for (auto& a : attrs) n->set_attr(std::move(a));
  last_ = n;
  return n->outputs();
}

void GraphBuilder::Output(Value* v) { graph_->AddOutput(v); }

Model& GraphBuilder::model() {
  if (!model_) throw std::logic_error("GraphBuilder::model: subgraph builder has no model");
  return *model_;
}

std::unique_ptr<Model> GraphBuilder::Build() {
  if (!model_) throw std::logic_error("GraphBuilder::Build: subgraph builder has no model");
  return std::move(model_);
}

Tensor FloatTensor(std::vector<int64_t> shape, const std::vector<float>& values) {
  return Tensor::FromVector(DType::kFloat32, std::move(shape), values);
}

Tensor Int64Tensor(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  return Tensor::FromVector(DType::kInt64, std::move(shape), values);
}

Tensor Int64s(const std::vector<int64_t>& values) {
  return Int64Tensor({static_cast<int64_t>(values.size())}, values);
}

}  // namespace edgepress::ir
