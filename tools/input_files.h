// Input files given to `run`, `bench` and friends: evaluation files often carry labels next
// to the inputs, so every subcommand treats extra arrays the same way.
#pragma once

#include <string>
#include <vector>

#include "formats/npy/npy.h"

namespace edgepress::tools {

// When every name in `wanted` is present in `inputs`, the other arrays are dropped, each
// with a note on stderr naming it and `file`; otherwise `inputs` is returned as is, so the
// session's error names the unknown arrays (which catches typos).
formats::NamedTensors KeepModelInputs(formats::NamedTensors inputs,
                                      const std::vector<std::string>& wanted,
                                      const std::string& file);

}  // namespace edgepress::tools
