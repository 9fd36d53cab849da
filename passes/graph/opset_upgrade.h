// Raising a model's ai.onnx opset (today: to 13, what QDQ with per-axis scales needs),
// rewriting every node whose meaning changed on the way, as ONNX's version converter does.
// The importer already turns attribute forms that became inputs (Squeeze/Unsqueeze/Split/
// ReduceSum axes, Clip, Pad, Slice, TopK, Dropout) into the opset-13 input form, so what
// is left are the real semantic changes:
//   - Softmax/LogSoftmax/Hardmax before 13 coerce the input to 2-D at `axis`: the axis
//     is rewritten to -1 when it is the last one of a known rank, else the node becomes
//     Flatten(axis) -> op(axis=-1) -> Reshape(Shape(x)), which also holds for unknown rank;
//   - Upsample (removed in 10) and opset-10 Resize become Resize-13 with the legacy
//     coordinates (asymmetric; nearest rounds down when upsampling, up when downsampling);
//   - Scatter (removed in 11) becomes ScatterElements (same meaning);
//   - BatchNormalization loses the `spatial` attribute (gone in 9; spatial=0 is refused
//     by name, as no runtime implements it);
//   - from opsets before 7: `broadcast`/`axis` on arithmetic (a B aligned at `axis`
//     gains trailing unit dims by Unsqueeze, so numpy's rule agrees), a per-channel [C]
//     PRelu slope (Unsqueeze to [C,1,..]), Concat's implicit axis 1, and the training-only
//     `is_test`/`consumed_inputs` attributes;
//   - Scan-8 (a batch axis and an optional sequence_lens) becomes a Loop over the batch
//     whose body runs a Scan-9 on one batch entry; sequence_lens given as a non-empty
//     input is refused by name (its per-entry lengths have no Scan-9 form).
// Every node is checked before any is changed, so a refusal leaves the model as it was.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "ir/graph.h"

namespace edgepress::passes {

struct OpsetUpgrade {
  int64_t from = 0, to = 0;
  std::map<std::string, int64_t> rewrites;  // "Softmax->Flatten/Softmax/Reshape": count
  bool changed() const { return from != to; }
};

// Raises the default-domain opset to `target` (no-op when already there or above; models
// without a default-domain opset are left alone). Throws Error(kUnsupported) naming the
// node when a node has no equivalent at `target`.
OpsetUpgrade UpgradeOpset(ir::Model& model, int64_t target);

}  // namespace edgepress::passes
