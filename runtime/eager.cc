#include "runtime/eager.h"

#include "ir/error.h"
#include "runtime/session.h"

namespace edgepress::runtime {

namespace {
class EagerContext : public KernelContext {
 public:
  EagerContext(const ir::Node& node, const std::vector<const ir::Tensor*>& inputs,
               ThreadPool& pool)
      : node_(node), inputs_(inputs), pool_(pool), outputs_(node.num_outputs()) {}
  const ir::Node& node() const override { return node_; }
  size_t num_inputs() const override { return inputs_.size(); }
  const ir::Tensor* input(size_t i) const override {
    return i < inputs_.size() ? inputs_[i] : nullptr;
  }
  size_t num_outputs() const override { return outputs_.size(); }
  bool output_requested(size_t i) const override {
    return i < node_.num_outputs() && node_.output(i) != nullptr;
  }
  ir::Tensor& AllocateOutput(size_t i, ir::DType dtype, std::vector<int64_t> shape) override {
    Check(i);
    // Constant folding runs nodes here: a ConstantOfShape/Expand/Tile to a huge constant
    // shape must fail naming the node, not exhaust memory.
    CheckOutputSize(node_, i, dtype, shape, DefaultMaxMemoryBytes());
    outputs_[i] = ir::Tensor(dtype, std::move(shape));
    return outputs_[i];
  }
  void SetOutput(size_t i, ir::Tensor t) override {
    Check(i);
    outputs_[i] = std::move(t);
  }
  ThreadPool& pool() override { return pool_; }
  std::vector<ir::Tensor> RunSubgraph(const ir::Graph&, const std::vector<ir::Tensor>&) override {
    throw Error(ErrorCode::kUnsupported,
                node_.describe() + ": subgraphs run only inside a Session");
  }
  std::vector<ir::Tensor> Take() { return std::move(outputs_); }

 private:
  void Check(size_t i) const {
    if (i >= outputs_.size())
      throw Error(ErrorCode::kInternal, node_.describe() + ": kernel wrote output " +
                                            std::to_string(i) + " past the node's outputs");
  }
  const ir::Node& node_;
  const std::vector<const ir::Tensor*>& inputs_;
  ThreadPool& pool_;
  std::vector<ir::Tensor> outputs_;
};

ir::DType FirstInputDType(const std::vector<const ir::Tensor*>& inputs) {
  for (const ir::Tensor* t : inputs)
    if (t) return t->dtype();
  return ir::DType::kUndefined;
}
}  // namespace

std::vector<ir::Tensor> RunNode(const ir::Node& node, const std::vector<const ir::Tensor*>& inputs,
                                ThreadPool& pool, const KernelDef* def) {
  if (!def) {
    def = GlobalKernelRegistry().Find(node.op_type(), node.domain(), FirstInputDType(inputs),
                                      GetCpuFeatures(), ForceScalar());
    if (!def)
      throw Error(ErrorCode::kUnsupported, node.describe() + ": no kernel for dtype " +
                                               ir::DTypeName(FirstInputDType(inputs)));
  }
  KernelInit init{node, {}};
  for (size_t i = 0; i < node.num_inputs(); ++i) {
    const ir::Value* v = node.input(i);
    init.constant_inputs.push_back(v ? v->initializer() : nullptr);
  }
  std::unique_ptr<Kernel> kernel = def->create(init);
  EagerContext ctx(node, inputs, pool);
  kernel->Run(ctx);
  return ctx.Take();
}

std::vector<const KernelDef*> KernelsFor(const std::string& op_type, const std::string& domain,
                                         ir::DType dtype) {
  std::vector<const KernelDef*> out;
  const CpuFeatures& cpu = GetCpuFeatures();
  for (const KernelDef& d : GlobalKernelRegistry().defs()) {
    if (op_type != d.op_type || domain != d.domain) continue;
    if (d.dtype != ir::DType::kUndefined && d.dtype != dtype) continue;
    if (cpu.Has(d.isa)) out.push_back(&d);
  }
  return out;
}

}  // namespace edgepress::runtime
