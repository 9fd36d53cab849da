// Layer-by-layer comparison of a model with its reference ("which layer broke it"), used by
// `edgepress compare` and by the per-layer section of compress reports.
//
// Both models run on the same samples; every float value computed by a node of the
// reference that has a namesake computed in the model is compared. Quantization passes
// keep the float output name of each quantized op (QDQ form), so load both models without
// the fusion pipeline for the names to line up. Values are read through
// SessionOptions::observer as each node runs; memory is one sample's reference activations
// (held while the model runs that sample) plus a few sums per value.
//
// Per value: SNR in dB (10 log10 of sum ref^2 over sum (model - ref)^2, over all samples
// and elements), cosine of the flattened tensors, max absolute error, NMSE, and the SNR
// drop from the node's worst compared input to its output — the error a layer introduces
// rather than inherits. Graph outputs also get their argmax agreement along the last axis.
// The drop is a heuristic: an input dominated by an exact term (attention scores plus a
// -10000 padding mask) has a high SNR, so the op after it shows a large drop although the
// error came with the scores.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/session.h"

namespace edgepress::eval {

struct LayerStats {
  std::string name, node, op;       // value, the reference's producer node and op
  std::vector<std::string> inputs;  // the reference node's input value names
  bool is_output = false;
  double sum_ref2 = 0, sum_model2 = 0, sum_dot = 0, sum_err2 = 0, max_abs = 0;
  uint64_t elements = 0, nonfinite = 0, samples = 0;
  uint64_t rows = 0, argmax_agree = 0;  // graph outputs of rank >= 1 with last dim > 1
  std::string mismatch;                 // first shape/dtype mismatch, if any
  double drop_db = 0;                   // SNR lost across the node (see above)

  double Snr() const;
  double Cosine() const;
  double Nmse() const { return sum_ref2 > 0 ? sum_err2 / sum_ref2 : (sum_err2 > 0 ? 1e300 : 0); }
  bool compared() const { return samples > 0; }
};

// Runs `ref` and `model` on samples 0..samples-1 (feed(i) gives sample i's inputs) and
// returns the shared float values in the reference's graph order (values never compared
// carry `mismatch` or were constants folded at planning). Throws Error(kInvalidInput) when
// the models take different inputs or share no computed float value; errors of a run name
// the model and the sample. `ref_name`/`model_name` name the models in messages.
std::vector<LayerStats> CompareLayers(std::shared_ptr<const ir::Model> ref,
                                      std::shared_ptr<const ir::Model> model, int64_t samples,
                                      const std::function<runtime::NamedTensors(int64_t)>& feed,
                                      int threads, const std::string& ref_name,
                                      const std::string& model_name);

}  // namespace edgepress::eval
