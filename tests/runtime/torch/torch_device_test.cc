// The torch backend on every device this machine has (issue 9, item 5): models built with
// the IR builder (no ONNX, so this suite also builds in the -DEDGEPRESS_WITH_ONNX=OFF
// configuration that scripts/gpu_check.sh uses against a pip LibTorch) run on the torch
// backend and must agree with the native runtime (scaled max error <= 1e-4,
// torch_test_util.h): a CNN (Conv, BatchNormalization, Relu, MaxPool, strided and
// depthwise Conv, GlobalAveragePool, Gemm, Softmax), a transformer block (Gather embedding,
// MatMul, head Reshape/Transpose, Softmax attention, LayerNormalization, erf GELU), an
// LSTM/GRU model, and the CNN/transformer after int8 and int4 weight quantization. One
// training step per device must lower the loss and write back into the IR.
//
// Devices: cpu always; cuda too when EDGEPRESS_TEST_CUDA=1 (then a missing GPU fails).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <random>

#include "ir/builder.h"
#include "ir/error.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "runtime/torch/torch_session.h"
#include "tests/runtime/torch/torch_test_util.h"

namespace edgepress::runtime {
namespace {

using ir::Attribute;
using ir::DType;
using ir::GraphBuilder;
using ir::Value;

std::vector<std::string> Devices() {
  std::vector<std::string> d{"cpu"};
  const char* cuda = std::getenv("EDGEPRESS_TEST_CUDA");
  if (cuda && std::string(cuda) == "1") d.push_back("cuda");
  return d;
}

ir::Tensor Random(std::vector<int64_t> shape, std::mt19937& rng, float scale = 0.3f) {
  ir::Tensor t(DType::kFloat32, shape);
  std::normal_distribution<float> dist(0.f, scale);
  float* p = t.mutable_data<float>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

ir::Tensor Positive(std::vector<int64_t> shape, std::mt19937& rng) {
  ir::Tensor t = Random(shape, rng);
  float* p = t.mutable_data<float>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = 0.5f + std::fabs(p[i]);
  return t;
}

std::unique_ptr<ir::Model> Cnn(std::mt19937& rng) {
  GraphBuilder b;
  Value* x = b.Input("image", DType::kFloat32, {-1, 3, 16, 16});
  Value* h = b.Op(
      "Conv", {x, b.Const("c1.w", Random({16, 3, 3, 3}, rng)), b.Const("c1.b", Random({16}, rng))},
      {Attribute::Ints("pads", {1, 1, 1, 1})});
  h = b.Op("BatchNormalization",
           {h, b.Const("bn.s", Positive({16}, rng)), b.Const("bn.b", Random({16}, rng)),
            b.Const("bn.m", Random({16}, rng)), b.Const("bn.v", Positive({16}, rng))});
  h = b.Op("Relu", {h});
  h = b.Op("MaxPool", {h},
           {Attribute::Ints("kernel_shape", {3, 3}), Attribute::Ints("strides", {2, 2}),
            Attribute::Ints("pads", {0, 0, 1, 1})});
  h = b.Op("Conv", {h, b.Const("dw.w", Random({16, 1, 3, 3}, rng))},
           {Attribute::Int("group", 16), Attribute::Ints("pads", {1, 1, 1, 1}),
            Attribute::Ints("strides", {2, 2})});
  h = b.Op("Clip", {h, b.Const("lo", ir::FloatTensor({}, {0.f})),
                    b.Const("hi", ir::FloatTensor({}, {6.f}))});
  h = b.Op("Conv",
           {h, b.Const("pw.w", Random({32, 16, 1, 1}, rng)), b.Const("pw.b", Random({32}, rng))});
  h = b.Op("AveragePool", {h},
           {Attribute::Ints("kernel_shape", {2, 2}), Attribute::Ints("pads", {0, 0, 1, 1})});
  h = b.Op("GlobalAveragePool", {h});
  h = b.Op("Flatten", {h});
  h = b.Op("Gemm", {h, b.Const("fc.w", Random({10, 32}, rng)), b.Const("fc.b", Random({10}, rng))},
           {Attribute::Int("transB", 1)});
  b.Output(b.Op("Softmax", {h}, {Attribute::Int("axis", -1)}));
  return b.Build();
}

// One pre-norm attention block over a token embedding; batch 2, sequence 5, width 16, 2 heads.
std::unique_ptr<ir::Model> Transformer(std::mt19937& rng) {
  GraphBuilder b;
  Value* ids = b.Input("ids", DType::kInt64, {2, 5});
  Value* x = b.Op("Gather", {b.Const("emb", Random({20, 16}, rng)), ids});
  Value* n = b.Op("LayerNormalization",
                  {x, b.Const("ln.s", Positive({16}, rng)), b.Const("ln.b", Random({16}, rng))},
                  {Attribute::Int("axis", -1), Attribute::Float("epsilon", 1e-5f)});
  auto proj = [&](const std::string& name, Value* in) {
    Value* y = b.Op("MatMul", {in, b.Const(name + ".w", Random({16, 16}, rng))});
    return b.Op("Add", {y, b.Const(name + ".b", Random({16}, rng))});
  };
  auto heads = [&](Value* v) {
    v = b.Op("Reshape", {v, b.Const(b.graph().UniqueName("shape"), ir::Int64s({2, 5, 2, 8}))});
    return b.Op("Transpose", {v}, {Attribute::Ints("perm", {0, 2, 1, 3})});
  };
  Value* q = heads(proj("q", n));
  Value* k = heads(proj("k", n));
  Value* v = heads(proj("v", n));
  Value* kt = b.Op("Transpose", {k}, {Attribute::Ints("perm", {0, 1, 3, 2})});
  Value* s = b.Op(
      "Div", {b.Op("MatMul", {q, kt}), b.Const("sqrt_d", ir::FloatTensor({}, {std::sqrt(8.f)}))});
  Value* a = b.Op("MatMul", {b.Op("Softmax", {s}, {Attribute::Int("axis", -1)}), v});
  a = b.Op("Transpose", {a}, {Attribute::Ints("perm", {0, 2, 1, 3})});
  a = b.Op("Reshape", {a, b.Const("merge", ir::Int64s({2, 5, 16}))});
  Value* r = b.Op("Add", {x, proj("o", a)});
  // erf GELU: 0.5 x (1 + erf(x / sqrt 2))
  Value* f = proj("ff", r);
  Value* g = b.Op(
      "Mul",
      {b.Op("Mul", {f, b.Const("half", ir::FloatTensor({}, {0.5f}))}),
       b.Op("Add",
            {b.Op("Erf", {b.Op("Div", {f, b.Const("rt2", ir::FloatTensor({}, {std::sqrt(2.f)}))})}),
             b.Const("one", ir::FloatTensor({}, {1.f}))})});
  b.Output(b.Op("Add", {r, g}));
  return b.Build();
}

std::unique_ptr<ir::Model> Recurrent(std::mt19937& rng) {
  GraphBuilder b;
  Value* x = b.Input("x", DType::kFloat32, {6, 2, 4});  // [seq, batch, input]
  std::vector<Value*> l =
      b.OpN("LSTM",
            {x, b.Const("lw", Random({2, 32, 4}, rng)), b.Const("lr", Random({2, 32, 8}, rng)),
             b.Const("lb", Random({2, 64}, rng))},
            3, {Attribute::Int("hidden_size", 8), Attribute::String("direction", "bidirectional")});
  Value* y = b.Op("Reshape", {b.Op("Transpose", {l[0]}, {Attribute::Ints("perm", {0, 2, 1, 3})}),
                              b.Const("s", ir::Int64s({6, 2, 16}))});
  std::vector<Value*> g =
      b.OpN("GRU",
            {y, b.Const("gw", Random({1, 18, 16}, rng)), b.Const("gr", Random({1, 18, 6}, rng)),
             b.Const("gb", Random({1, 36}, rng))},
            2, {Attribute::Int("hidden_size", 6), Attribute::Int("linear_before_reset", 1)});
  b.Output(g[0]);
  b.Output(g[1]);
  b.Output(l[2]);
  return b.Build();
}

NamedTensors FeedsFor(const ir::Model& m, std::mt19937& rng) {
  NamedTensors in;
  for (const ir::Value* v : m.graph->inputs()) {
    std::vector<int64_t> shape;
    for (const ir::Dim& d : *v->type.shape) shape.push_back(d.known() ? d.value : 3);
    if (v->type.dtype == DType::kInt64) {
      ir::Tensor t(DType::kInt64, shape);
      for (uint64_t i = 0; i < t.numel(); ++i)
        t.mutable_data<int64_t>()[i] = static_cast<int64_t>(rng() % 20);
      in.emplace_back(v->name(), t);
    } else {
      in.emplace_back(v->name(), Random(shape, rng, 1.f));
    }
  }
  return in;
}

void ExpectAgreement(const ir::Model& m, const std::string& what) {
  std::mt19937 rng(7);
  NamedTensors in = FeedsFor(m, rng);
  auto native = Session::Create(std::shared_ptr<const ir::Model>(m.Clone()));
  NamedTensors want = native->Run(in);
  for (const std::string& dev : Devices()) {
    TorchSessionOptions o;
    o.device = dev;
    auto ts = TorchSession::Create(std::shared_ptr<ir::Model>(m.Clone()), o);
    test_util::Agreement a = test_util::CompareOutputs(ts->Run(in), want);
    std::printf("%-28s %-5s scaled max error %.3g\n", what.c_str(), dev.c_str(), a.error);
    EXPECT_LE(a.error, 1e-4) << what << " on " << dev << ": " << a.detail;
  }
}

TEST(TorchDevices, BuiltModelsAgreeWithNative) {
  std::mt19937 rng(1);
  ExpectAgreement(*Cnn(rng), "cnn");
  ExpectAgreement(*Transformer(rng), "transformer");
  ExpectAgreement(*Recurrent(rng), "lstm+gru");
}

TEST(TorchDevices, OptimizedAndQuantizedModelsAgree) {
  // accuracy-level=0: LibTorch runs MatMulNBits in float, so the native side must too.
  for (const char* pipeline :
       {"fold-constants,fold-batchnorm,fuse-activation,fuse-gelu,fuse-layernorm",
        "quantize-weights{bits=8}", "quantize-weights{bits=4,group-size=16,accuracy-level=0}"}) {
    for (int which = 0; which < 2; ++which) {
      std::mt19937 rng(2);
      std::unique_ptr<ir::Model> m = which == 0 ? Cnn(rng) : Transformer(rng);
      passes::PassContext ctx;
      std::vector<passes::PassRun> runs =
          passes::RunPipeline(*m, passes::ParsePipeline(pipeline), ctx);
      bool changed = false;
      for (const auto& r : runs) changed |= r.changed;
      // int4 MatMulNBits applies to MatMul weights only: the CNN has none.
      if (!(which == 0 && std::string(pipeline).find("bits=4") != std::string::npos)) {
        EXPECT_TRUE(changed) << pipeline << " did not change model " << which;
      }
      ExpectAgreement(*m, std::string(which == 0 ? "cnn " : "transformer ") + pipeline);
    }
  }
}

// One optimizer step on the device lowers a loss and WriteBack() updates the IR, which the
// native runtime then runs exactly as the trained torch session does.
TEST(TorchDevices, TrainingStepOnEveryDevice) {
  for (const std::string& dev : Devices()) {
    std::mt19937 rng(3);
    std::shared_ptr<ir::Model> m = Cnn(rng);
    ir::Tensor before = *m->graph->FindValue("fc.w")->initializer();
    TorchSessionOptions o;
    o.device = dev;
    o.trainable = {"fc.w", "fc.b", "pw.w"};
    auto s = TorchSession::Create(m, o);
    ASSERT_EQ(s->Parameters().size(), 3u);
    torch::manual_seed(0);
    at::Tensor x = torch::randn({8, 3, 16, 16});
    at::Tensor y = torch::randint(0, 10, {8}, torch::kLong);
    torch::optim::SGD opt(s->Parameters(), torch::optim::SGDOptions(0.01));
    auto loss_of = [&] {
      at::Tensor p = s->Forward({{"image", x}})[0];
      return torch::nll_loss(torch::log(p), y.to(p.device()));
    };
    at::Tensor l0 = loss_of();
    opt.zero_grad();
    l0.backward();
    opt.step();
    double before_loss = l0.item<double>(), after_loss = loss_of().item<double>();
    std::printf("training step on %s: loss %.4f -> %.4f\n", dev.c_str(), before_loss, after_loss);
    EXPECT_LT(after_loss, before_loss);
    EXPECT_EQ(s->device().rfind(dev, 0), 0u);
    EXPECT_EQ(s->WriteBack(), 3);
    EXPECT_FALSE(*m->graph->FindValue("fc.w")->initializer() == before);
    ir::Tensor xi(DType::kFloat32, {8, 3, 16, 16});
    std::memcpy(xi.mutable_raw(), x.contiguous().data_ptr(), xi.nbytes());
    auto native = Session::Create(std::shared_ptr<const ir::Model>(m->Clone()));
    test_util::Agreement a =
        test_util::CompareOutputs(s->Run({{"image", xi}}), native->Run({{"image", xi}}));
    EXPECT_LE(a.error, 1e-4) << dev << ": " << a.detail;
  }
}

// Moving a session between devices keeps trainable leaves trainable.
TEST(TorchDevices, MoveBetweenDevices) {
  std::mt19937 rng(4);
  std::shared_ptr<ir::Model> m = Cnn(rng);
  TorchSessionOptions o;
  o.train_all_float = true;
  auto s = TorchSession::Create(m, o);
  for (const std::string& dev : Devices()) {
    s->To(dev);
    EXPECT_EQ(s->device().rfind(dev, 0), 0u);
    for (const at::Tensor& p : s->Parameters()) {
      EXPECT_TRUE(p.requires_grad());
      EXPECT_TRUE(p.is_leaf());
      EXPECT_EQ(p.device().is_cuda(), dev == "cuda");
    }
  }
  if (!TorchSession::CudaAvailable()) {
    EXPECT_THROW(s->To("cuda"), Error);
  }
}

}  // namespace
}  // namespace edgepress::runtime
