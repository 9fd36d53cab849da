// TorchScript export of the recurrent, padding, control-flow, reduction and comparison ops, on the ONNX node tests of Debian's
// libonnx-testdata (the variants the fixture models do not reach: reverse and batchwise
// layouts, peepholes, initial states, sequence_lens, linear_before_reset 0, plain RNN;
// constant, edge and reflect Pad; If, Loop, ReduceSum/Max/Min, Greater, Less; Elu,
// LeakyRelu, Softplus, Floor, ArgMax, ConstantOfShape, Tile, InstanceNormalization,
// ConvTranspose). Each model.onnx is exported as .pt, loaded with
// torch::jit::load, run on test_data_set_0, and must give the ONNX reference outputs
// (scaled max error <= 1e-4, torch_test_util.h). sequence_lens shorter than the sequence
// is refused at run time with a message, as on the torch backend.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <torch/script.h>

#include <cstdio>
#include <cstring>

#include "formats/onnx/onnx.h"
#include "formats/torchscript/torchscript_export.h"
#include "ir/file_util.h"
#include "runtime/session.h"
#include "tests/runtime/torch/torch_test_util.h"

namespace edgepress {
namespace {

const std::string kNode = "/usr/share/libonnx-testdata/data/node/";

// The dtypes these node tests use.
const std::vector<std::pair<ir::DType, at::ScalarType>> kTypes = {
    {ir::DType::kFloat32, at::kFloat}, {ir::DType::kInt64, at::kLong}, {ir::DType::kInt32, at::kInt},
    {ir::DType::kBool, at::kBool}};

at::Tensor ToAt(const ir::Tensor& t) {
  at::ScalarType st = at::kByte;
  for (const auto& [d, s] : kTypes)
    if (d == t.dtype()) st = s;
  EXPECT_NE(st, at::kByte) << ir::DTypeName(t.dtype());
  at::Tensor a = at::empty(t.shape(), at::TensorOptions().dtype(st));
  if (t.nbytes()) std::memcpy(a.data_ptr(), t.raw(), t.nbytes());
  return a;
}

ir::Tensor FromAt(const at::Tensor& a) {
  at::Tensor c = a.contiguous();
  ir::DType dt = ir::DType::kUndefined;
  for (const auto& [d, s] : kTypes)
    if (s == c.scalar_type()) dt = d;
  EXPECT_NE(dt, ir::DType::kUndefined) << c.scalar_type();
  if (dt == ir::DType::kUndefined) return ir::Tensor();
  ir::Tensor t(dt, std::vector<int64_t>(c.sizes().begin(), c.sizes().end()));
  std::memcpy(t.mutable_raw(), c.data_ptr(), t.nbytes());
  return t;
}

bool Exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

// Runs the exported .pt of node test `name` on `inputs`; the outputs in graph order.
std::vector<std::pair<std::string, ir::Tensor>> RunExported(const std::string& name,
                                                            const std::vector<ir::Tensor>& inputs) {
  std::unique_ptr<ir::Model> model = formats::LoadOnnx(kNode + name + "/model.onnx");
  const std::string pt = ::testing::TempDir() + "/export_ops_" + name + ".pt";
  formats::SaveTorchScript(*model, pt);
  torch::jit::Module m = torch::jit::load(pt);
  std::vector<torch::jit::IValue> args;
  for (const ir::Tensor& t : inputs) args.emplace_back(ToAt(t));
  torch::jit::IValue out = m.forward(args);
  std::vector<std::pair<std::string, ir::Tensor>> got;
  const auto& outs = model->graph->outputs();
  if (out.isTuple()) {
    const auto& elems = out.toTuple()->elements();
    for (size_t i = 0; i < elems.size() && i < outs.size(); ++i) got.emplace_back(outs[i]->name(), FromAt(elems[i].toTensor()));
  } else {
    got.emplace_back(outs.at(0)->name(), FromAt(out.toTensor()));
  }
  std::remove(pt.c_str());
  return got;
}

class ExportNodeTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ExportNodeTest, TorchJitLoadGivesTheOnnxReference) {
  const std::string dir = kNode + GetParam() + "/test_data_set_0/";
  if (!Exists(dir)) GTEST_SKIP() << dir << " is missing (install libonnx-testdata)";
  std::vector<ir::Tensor> inputs;
  for (int i = 0; Exists(dir + "input_" + std::to_string(i) + ".pb"); ++i)
    inputs.push_back(formats::LoadTensorProtoFile(dir + "input_" + std::to_string(i) + ".pb"));
  std::vector<std::pair<std::string, ir::Tensor>> got = RunExported(GetParam(), inputs), want;
  for (size_t i = 0; i < got.size() && Exists(dir + "output_" + std::to_string(i) + ".pb"); ++i)
    want.emplace_back(got[i].first, formats::LoadTensorProtoFile(dir + "output_" + std::to_string(i) + ".pb"));
  ASSERT_FALSE(want.empty());
  test_util::Agreement a = test_util::CompareOutputs(got, want);
  std::printf("[ export ] %s: torch.jit.load of the .pt vs ONNX reference, scaled max error %.3g\n", GetParam(),
              a.error);
  EXPECT_LE(a.error, 1e-4) << a.detail;
}

INSTANTIATE_TEST_SUITE_P(
    Onnx, ExportNodeTest,
    ::testing::Values("test_lstm_defaults", "test_lstm_batchwise", "test_lstm_with_initial_bias",
                      "test_lstm_with_peepholes", "test_gru_defaults", "test_gru_batchwise", "test_gru_seq_length",
                      "test_gru_with_initial_bias", "test_simple_rnn_defaults", "test_simple_rnn_batchwise",
                      "test_simple_rnn_with_initial_bias", "test_rnn_seq_length", "test_constant_pad",
                      "test_edge_pad", "test_reflect_pad", "test_if", "test_loop11", "test_greater_bcast",
                      "test_less_bcast", "test_reduce_sum_keepdims_random", "test_reduce_sum_do_not_keepdims_random",
                      "test_reduce_sum_default_axes_keepdims_random", "test_reduce_sum_empty_axes_input_noop_random",
                      "test_reduce_max_negative_axes_keepdims_random", "test_reduce_min_do_not_keepdims_random",
                      "test_elu", "test_elu_default", "test_leakyrelu", "test_leakyrelu_default", "test_softplus",
                      "test_floor", "test_argmax_keepdims_random", "test_argmax_no_keepdims_random",
                      "test_argmax_negative_axis_keepdims_random_select_last_index",
                      "test_argmax_default_axis_example_select_last_index", "test_constantofshape_float_ones",
                      "test_constantofshape_int_zeros", "test_tile", "test_instancenorm_example",
                      "test_instancenorm_epsilon", "test_convtranspose", "test_convtranspose_1d",
                      "test_convtranspose_3d", "test_convtranspose_dilations", "test_convtranspose_pads",
                      "test_convtranspose_pad"),
    [](const auto& info) { return std::string(info.param).substr(5); });

// sequence_lens shorter than the sequence has no form in the helper: a run-time error
// that says so, never a silently wrong output.
TEST(ExportRecurrent, ShortSequenceLensIsRefusedAtRunTime) {
  const std::string dir = kNode + "test_lstm_with_peepholes/test_data_set_0/";
  if (!Exists(dir)) GTEST_SKIP() << dir << " is missing (install libonnx-testdata)";
  std::vector<ir::Tensor> inputs;
  for (int i = 0; Exists(dir + "input_" + std::to_string(i) + ".pb"); ++i)
    inputs.push_back(formats::LoadTensorProtoFile(dir + "input_" + std::to_string(i) + ".pb"));
  ASSERT_GE(inputs.size(), 5u);
  ASSERT_EQ(inputs[4].dtype(), ir::DType::kInt32);
  std::memset(inputs[4].mutable_raw(), 0, sizeof(int32_t));  // first batch row: length 0
  try {
    RunExported("test_lstm_with_peepholes", inputs);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("sequence_lens shorter than the sequence"), std::string::npos) << e.what();
  }
}

// Both branches of an If survive export: the .pt follows the condition it is given, as
// the native runtime does.
TEST(ExportControlFlow, IfTakesTheBranchItIsGiven) {
  const std::string dir = kNode + "test_if/";
  if (!Exists(dir + "model.onnx")) GTEST_SKIP() << dir << " is missing (install libonnx-testdata)";
  auto native = runtime::Session::Create(std::shared_ptr<const ir::Model>(formats::LoadOnnx(dir + "model.onnx")));
  std::vector<std::vector<double>> seen;
  for (bool cond : {true, false}) {
    ir::Tensor c(ir::DType::kBool, {});
    *static_cast<bool*>(c.mutable_raw()) = cond;
    std::vector<std::pair<std::string, ir::Tensor>> got = RunExported("test_if", {c});
    runtime::NamedTensors want = native->Run({{native->inputs()[0]->name(), c}});
    ASSERT_EQ(got.size(), want.size());
    got[0].first = want[0].first;
    test_util::Agreement a = test_util::CompareOutputs(got, want);
    EXPECT_EQ(a.error, 0) << "cond " << cond << ": " << a.detail;
    seen.push_back(got[0].second.ToDouble());
  }
  EXPECT_NE(seen[0], seen[1]);
}

}  // namespace
}  // namespace edgepress
