// Fake quantization of weights for distillation-aware quantization (QAT through the
// distiller; docs/distill.md, "Distillation-aware quantization").
//
// During training the student's Conv/Gemm/MatMul weights are replaced, for the forward and
// backward pass, by the values the export pass will store (quantized, then dequantized),
// and the gradient computed at those values updates the float latent weights: the
// straight-through estimator (Bengio et al. 2013; TernaryBERT, Zhang et al. 2020). After
// training the written weights are the fake-quantized ones, so the export pass finds them
// on its grid and stores them without further rounding:
//   int8     per output channel, symmetric (codes -127..127): the weights of
//            quantize-weights {bits: 8} and of quantize-static (same quantizer);
//   int4     MatMul/Gemm: blocks of `group` weights along K per output column, symmetric
//            with zero point 8 (quantize-weights {bits: 4, group-size: G}, MatMulNBits);
//            Conv: int8 per channel, as quantize-weights falls back for convolutions;
//   ternary  per output channel {-a, 0, +a}: TWN's threshold d = 0.7 * mean|w| and
//            a = mean of |w| over |w| > d (Li & Liu 2016, as TernaryBERT uses; the rule
//            is passes/quant/ternary.h's). Exported by pack-ternary (2-bit codes in edgepress
//            TernaryMatMul/TernaryConv, .epk), or for ONNX by quantize-weights {bits: 8},
//            which stores these three values exactly (codes -127, 0, 127).
// The int8 and int4 grids are computed by the passes' own quantizers
// (passes/quant/quant_util.h, passes/quant/weight_quant.h), so "matches the pass" holds by
// construction, not by a second implementation of the same formulas.
// Exact zeros stay zero in every mode (symmetric grids, |0| below the ternary threshold),
// so a pruned student keeps its sparsity.
//
// Activations (int8 with calibrated ranges): the ranges are those of quantize-static run on
// a copy of the student before training (ActivationQuantsOf reads them from its QDQ
// graph), so the trained student sees the activations the exported model will compute
// (until quantize-static recalibrates on the trained weights). The biases of those layers
// are rounded as quantize-static stores them: int32 with scale s_input * s_weight[c]
// (FakeQuantizeBias), which matters: without it ~1% of the activations land one code
// away from the exported model's. The trainer applies them with LibTorch's
// fake_quantize_per_tensor_affine, whose gradient is the straight-through one inside the range and
// zero outside.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/torch/torch_session.h"

namespace edgepress::distill {

enum class FakeQuantMode { kNone, kInt8, kInt4, kTernary };
// "none", "int8", "int4", "ternary"; throws Error(kUsage) naming the value otherwise.
FakeQuantMode ParseFakeQuantMode(const std::string& text);
const char* FakeQuantModeName(FakeQuantMode mode);

struct FakeQuantTarget {
  enum class Kind { kConv, kGemm, kMatMul } kind = Kind::kConv;
  std::string weight;       // initializer name
  bool transposed = false;  // Gemm transB=1: the weight is [N, K]
  bool int4 = false;        // MatMul/Gemm the int4 export packs as blocks
  std::string input;        // the node's activation input
  std::string bias;         // Conv/Gemm (alpha = beta = 1) float bias; empty if none
};

// The weights the export passes quantize: float32 initializers feeding input 1 of a Conv
// (rank >= 3), Gemm or 2-D MatMul in the main graph. A weight shared by several such nodes
// is listed once (its first use decides the layout).
std::vector<FakeQuantTarget> FindFakeQuantTargets(const ir::Graph& g);

// One activation's quantization: QuantizeLinear(value, scale, zero_point) to [qmin, qmax].
struct ActivationQuant {
  std::string value;
  float scale = 1;
  int32_t zero_point = 0;
  int32_t qmin = 0, qmax = 255;
};
// Every QuantizeLinear of a non-constant value in the main graph of a QDQ model (the
// output of quantize-static), with per-tensor constant scale and zero point.
std::vector<ActivationQuant> ActivationQuantsOf(const ir::Model& qdq);
// The torch backend hook that fake-quantizes those values (TorchSessionOptions::value_hook).
std::shared_ptr<runtime::TorchValueHook> ActivationFakeQuantHook(
    const std::vector<ActivationQuant>& quants);

// The bias `b` as quantize-static stores it for weight `w` (already on its int8 grid) and
// input scale `sx`: round(b / s) * s with s = sx * (max|w[c]| / 127) per output channel.
ir::Tensor FakeQuantizeBias(const ir::Tensor& b, const ir::Tensor& w, const FakeQuantTarget& t,
                            float sx);

// `w` as the export stores it: quantized with the mode's grid and dequantized.
// `group`: int4 weights per block along K.
ir::Tensor FakeQuantize(const ir::Tensor& w, const FakeQuantTarget& t, FakeQuantMode mode,
                        int64_t group);

}  // namespace edgepress::distill
