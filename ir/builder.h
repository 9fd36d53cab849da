// GraphBuilder: a compact way for tests (and small fixtures) to write an IR model by
// hand. Value and node names are generated deterministically from the op type so that
// golden dumps stay stable; the model imports ai.onnx opset 17, the opset the IR
// normalises to. Nothing here is needed by importers or passes.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgepress::ir {

class GraphBuilder {
 public:
  GraphBuilder();
  // Builds into an existing graph (e.g. an If branch); no model is owned then.
  explicit GraphBuilder(Graph* graph);

  // A graph input with known dims; -1 marks an unknown dim.
  Value* Input(const std::string& name, DType dtype, const std::vector<int64_t>& dims);
  // A graph input with arbitrary (e.g. symbolic) dims.
  Value* InputShape(const std::string& name, DType dtype, Shape shape);
  // An initializer.
  Value* Const(const std::string& name, Tensor t);
  // A Constant node producing `t` (as exporters such as PaddleOCR's write weights).
  Value* ConstNode(const std::string& name, Tensor t);
  // A single-output node.
  Value* Op(const std::string& op_type, const std::vector<Value*>& inputs,
            std::vector<Attribute> attrs = {}, const std::string& node_name = "");
  // A node with `num_outputs` outputs.
  std::vector<Value*> OpN(const std::string& op_type, const std::vector<Value*>& inputs,
                          int num_outputs, std::vector<Attribute> attrs = {},
                          const std::string& node_name = "");
  // The node that produced the last Op/OpN result.
  Node* last_node() const { return last_; }
  void Output(Value* v);

  Graph& graph() { return *graph_; }
  // The model under construction; throws std::logic_error for a subgraph builder.
  Model& model();
  // Hands over the finished model; the builder must not be used afterwards.
  std::unique_ptr<Model> Build();

 private:
  std::unique_ptr<Model> model_;
  Graph* graph_;
  Node* last_ = nullptr;
  std::map<std::string, int> counter_;  // per op type, for generated names
};

// Small tensor helpers for tests.
Tensor FloatTensor(std::vector<int64_t> shape, const std::vector<float>& values);
Tensor Int64Tensor(std::vector<int64_t> shape, const std::vector<int64_t>& values);
// A 1-D int64 tensor, as Reshape/Slice/Unsqueeze shape and axes inputs use.
Tensor Int64s(const std::vector<int64_t>& values);

}  // namespace edgepress::ir
