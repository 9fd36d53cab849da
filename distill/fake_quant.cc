#include "distill/fake_quant.h"

#include <cfloat>
#include <cmath>
#include <set>

#include "ir/error.h"
#include "passes/quant/quant_util.h"
#include "passes/quant/ternary.h"
#include "passes/quant/weight_quant.h"

namespace edgepress::distill {

namespace {

using Kind = FakeQuantTarget::Kind;

// The logical [K][N] matrix of a Gemm/MatMul weight (N = output channels).
void Dims(const ir::Tensor& w, const FakeQuantTarget& t, int64_t* K, int64_t* N) {
  *K = t.transposed ? w.shape()[1] : w.shape()[0];
  *N = t.transposed ? w.shape()[0] : w.shape()[1];
}
std::vector<float> Logical(const ir::Tensor& w, const FakeQuantTarget& t, int64_t K, int64_t N) {
  const float* src = w.data<float>();
  std::vector<float> out(static_cast<size_t>(K * N));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) out[k * N + n] = t.transposed ? src[n * K + k] : src[k * N + n];
  return out;
}
ir::Tensor FromLogical(const std::vector<float>& m, const ir::Tensor& like,
                       const FakeQuantTarget& t, int64_t K, int64_t N) {
  ir::Tensor out(ir::DType::kFloat32, like.shape());
  float* dst = out.mutable_data<float>();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) (t.transposed ? dst[n * K + k] : dst[k * N + n]) = m[k * N + n];
  return out;
}

// TWN per channel: channel c holds the values v[c*stride_c + i*stride_i], i < len. The
// pack-ternary pass's own rule, so the export finds exactly these values.
void Ternarize(float* v, int64_t channels, int64_t len, int64_t stride_c, int64_t stride_i) {
  passes::ternary::TernarizeTwn(v, channels, len, stride_c, stride_i);
}

}  // namespace

FakeQuantMode ParseFakeQuantMode(const std::string& text) {
  if (text == "none") return FakeQuantMode::kNone;
  if (text == "int8") return FakeQuantMode::kInt8;
  if (text == "int4") return FakeQuantMode::kInt4;
  if (text == "ternary") return FakeQuantMode::kTernary;
  throw Error(ErrorCode::kUsage,
              "fake quantization '" + text + "': expected none, int8, int4 or ternary");
}

const char* FakeQuantModeName(FakeQuantMode mode) {
  switch (mode) {
    case FakeQuantMode::kNone:
      return "none";
    case FakeQuantMode::kInt8:
      return "int8";
    case FakeQuantMode::kInt4:
      return "int4";
    case FakeQuantMode::kTernary:
      return "ternary";
  }
  return "?";
}

std::vector<FakeQuantTarget> FindFakeQuantTargets(const ir::Graph& g) {
  std::vector<FakeQuantTarget> out;
  std::set<const ir::Value*> seen;
  for (const ir::Node* n : g.nodes()) {
    if (!n->domain().empty() || n->num_inputs() < 2) continue;
    const std::string& op = n->op_type();
    if (op != "Conv" && op != "Gemm" && op != "MatMul") continue;
    const ir::Value* w = n->input(1);
    if (!w || !w->is_initializer() || !seen.insert(w).second) continue;
    const ir::Tensor* t = w->initializer();
    if (t->dtype() != ir::DType::kFloat32 || t->numel() == 0) continue;
    FakeQuantTarget ft;
    ft.weight = w->name();
    if (n->input(0)) ft.input = n->input(0)->name();
    const ir::Value* b = n->num_inputs() > 2 ? n->input(2) : nullptr;
    if (b && b->is_initializer() && b->initializer()->dtype() == ir::DType::kFloat32 &&
        b->initializer()->rank() == 1 &&
        (op == "Conv" ||
         (op == "Gemm" && n->attr_float("alpha", 1.f) == 1.f && n->attr_float("beta", 1.f) == 1.f)))
      ft.bias = b->name();
    if (op == "Conv") {
      if (t->rank() < 3) continue;
      ft.kind = Kind::kConv;
    } else if (op == "MatMul") {
      if (t->rank() != 2) continue;  // batched weights: per-channel int8 of another axis
      ft.kind = Kind::kMatMul;
      ft.int4 = true;
    } else {
      if (t->rank() != 2) continue;
      ft.kind = Kind::kGemm;
      ft.transposed = n->attr_int("transB", 0) != 0;
      // quantize-weights packs a Gemm as MatMulNBits only in these cases (int8 otherwise).
      bool ok = n->attr_int("transA", 0) == 0 && n->attr_float("alpha", 1.f) == 1.f;
      if (const ir::Value* c = n->num_inputs() > 2 ? n->input(2) : nullptr)
        ok = ok && (n->attr_float("beta", 1.f) == 1.f ||
                    (c->is_initializer() && c->initializer()->dtype() == ir::DType::kFloat32));
      ft.int4 = ok;
    }
    out.push_back(ft);
  }
  return out;
}

std::vector<ActivationQuant> ActivationQuantsOf(const ir::Model& qdq) {
  std::vector<ActivationQuant> out;
  for (const ir::Node* n : qdq.graph->nodes()) {
    if (n->op_type() != "QuantizeLinear" || !n->domain().empty() || n->num_inputs() < 3) continue;
    const ir::Value *x = n->input(0), *scale = n->input(1), *zp = n->input(2);
    if (!x || x->is_initializer() || !scale || !scale->is_initializer() || !zp ||
        !zp->is_initializer())
      continue;
    const ir::Tensor &s = *scale->initializer(), &z = *zp->initializer();
    if (s.numel() != 1 || z.numel() != 1 || s.dtype() != ir::DType::kFloat32) continue;
    ActivationQuant a;
    a.value = x->name();
    a.scale = s.data<float>()[0];
    if (z.dtype() == ir::DType::kUInt8) {
      a.zero_point = z.data<uint8_t>()[0];
    } else if (z.dtype() == ir::DType::kInt8) {
      a.zero_point = z.data<int8_t>()[0];
      a.qmin = -128;
      a.qmax = 127;
    } else {
      continue;
    }
    out.push_back(a);
  }
  return out;
}

ir::Tensor FakeQuantizeBias(const ir::Tensor& b, const ir::Tensor& w, const FakeQuantTarget& t,
                            float sx) {
  const int axis = t.kind == Kind::kGemm && !t.transposed ? 1 : t.kind == Kind::kMatMul ? 1 : 0;
  const ir::Tensor sw =
      passes::quant::QuantizeWeightPerChannel(w, axis, /*symmetric=*/true, t.weight).scale;
  if (static_cast<int64_t>(sw.numel()) != b.shape()[0]) return b;
  ir::Tensor out = b;  // copy on write
  float* v = out.mutable_data<float>();
  for (int64_t c = 0; c < b.shape()[0]; ++c) {
    // The float product and the double division of quantize-static's QuantizeBias.
    const float s = sx * sw.data<float>()[c];
    if (!(s >= FLT_MIN) || !std::isfinite(s)) return b;  // the pass keeps that bias float
    v[c] = static_cast<float>(std::nearbyint(static_cast<double>(v[c]) / s)) * s;
  }
  return out;
}

ir::Tensor FakeQuantize(const ir::Tensor& w, const FakeQuantTarget& t, FakeQuantMode mode,
                        int64_t group) {
  if (mode == FakeQuantMode::kNone) return w;
  if (w.dtype() != ir::DType::kFloat32)
    ThrowInvalid("fake quantization of '" + t.weight + "': the weight is not float32");
  if (t.kind == Kind::kConv) {
    if (mode == FakeQuantMode::kTernary) {
      ir::Tensor out = w;  // copy on write
      const int64_t channels = w.shape()[0], len = static_cast<int64_t>(w.numel()) / channels;
      Ternarize(out.mutable_data<float>(), channels, len, len, 1);
      return out;
    }
    // int8 per output channel (int4 falls back to it for convolutions, as the pass does).
    return passes::quant::Dequantize(
        passes::quant::QuantizeWeightPerChannel(w, 0, /*symmetric=*/true, t.weight));
  }
  int64_t K, N;
  Dims(w, t, &K, &N);
  std::vector<float> m = Logical(w, t, K, N);
  if (mode == FakeQuantMode::kTernary) {
    Ternarize(m.data(), N, K, 1, N);  // column n: m[k * N + n]
    return FromLogical(m, w, t, K, N);
  }
  passes::wq::Scheme s;
  s.bits = mode == FakeQuantMode::kInt4 && t.int4 ? 4 : 8;
  s.group = s.bits == 4 ? group : 0;
  s.symmetric = true;
  return FromLogical(passes::wq::QuantizeRtn(m.data(), K, N, s).Dequantize(), w, t, K, N);
}

}  // namespace edgepress::distill
