// A data set of model inputs from .npz/.npy files, read one sample at a time.
//
// Each .npz holds arrays named after the model's inputs (extra arrays, e.g. "label", are
// available to evaluation by name). A .npy file holds one array and needs a model with
// exactly one input. A folder stands for the .npz/.npy files in it, in name order. Files
// are read in the order given; samples are yielded in file order, so the same files give
// the same sequence (deterministic calibration).
//
// How an array feeds its input (InputLayout), as onnxruntime's calibration readers allow:
//   batched   dim 0 is the sample index; a batch is rows of it (the input's dim 0);
//   stacked   one more dim than the input: dim 0 is the sample index and each sample has
//             the input's full shape (a fixed-batch model, e.g. [N, 1, 512] for [1, 512]);
//   constant  the array is the input as is, for every sample of its file (a recurrent
//             state [2, 1, 128], a scalar sample rate, a fixed attention mask); a file
//             whose arrays are all constant is one sample (one feed per file).
// The default is inferred from the model's input shapes: a scalar is constant; one dim
// more than the input is stacked; an input with a symbolic or unknown dim 0 is batched;
// an input with a fixed dim 0 that the array's dim 0 equals is constant when the other
// inputs say a different sample count (or there are none), else batched. Batched and
// stacked inputs must agree on the sample count; when they do not, the error names the
// inputs and the option (`--layout NAME=constant|batched|stacked`) that resolves it.
// Only one file's arrays are held in memory at a time (files are validated once when
// opened, then re-read on demand), so memory is bounded by the largest file, not by the
// size of the data set.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace edgepress::calibrate {

using NamedTensors = std::vector<std::pair<std::string, ir::Tensor>>;

enum class InputLayout : uint8_t { kAuto, kBatched, kStacked, kConstant };
using DataLayout = std::map<std::string, InputLayout>;  // by model input name
const char* InputLayoutName(InputLayout l);
// "NAME=batched|stacked|constant" specs (CLI --layout, recipe `layout:` maps); throws
// Error(kUsage) naming `where` and the spec for a malformed one.
DataLayout ParseDataLayout(const std::vector<std::string>& specs, const std::string& where);

class DataSet {
 public:
  // Opens the files (a folder: its .npz/.npy files) and checks that every input the model
  // requires is present with a matching element type, shape and a consistent sample
  // count. `layout` overrides the inferred layout of the inputs it names (a name that is
  // not a model input is an error). Throws Error(kInvalidInput) naming the file and array.
  static DataSet Open(const std::vector<std::string>& files, const ir::Graph& graph,
                      const DataLayout& layout = {});
  // For tests: data from tensors in memory (same checks; "name_for_errors" as the file).
  static DataSet FromTensors(NamedTensors arrays, const ir::Graph& graph,
                             const std::string& name_for_errors = "<memory>",
                             const DataLayout& layout = {});
  // The layout each model input resolved to (never kAuto), in input order.
  const std::vector<InputLayout>& layouts() const { return layouts_; }

  int64_t size() const;  // total samples over all files
  // Samples [begin, begin+count) as model feeds: batched arrays sliced along dim 0 (count
  // rows; the batch dim is kept), stacked ones as count samples joined along the input's
  // dim 0, constant ones as they are (from the file that holds sample `begin`). Crosses
  // file boundaries by concatenating.
  NamedTensors Batch(int64_t begin, int64_t count) const;
  // An extra array (not a model input), e.g. "label", for samples [begin, begin+count).
  // Throws Error(kInvalidInput) naming the files when no file has it.
  ir::Tensor Extra(const std::string& name, int64_t begin, int64_t count) const;
  bool HasArray(const std::string& name) const;
  // SHA-256 over the files' bytes in order (hex); for FromTensors, over the arrays.
  const std::string& Sha256() const { return sha256_; }
  const std::vector<std::string>& input_names() const { return input_names_; }

 private:
  struct Part {
    std::string file;             // empty for FromTensors (arrays always held)
    NamedTensors arrays;          // held for FromTensors; else loaded into cache_
    int64_t samples = 0;
    std::vector<std::string> names;  // every array of the file, in order
    std::string file_label;          // FromTensors: name_for_errors
  };
  const NamedTensors& ArraysOf(size_t part) const;  // loads through the one-file cache
  std::string Label(size_t part) const;             // the file (or name_for_errors)
  std::vector<int64_t> PartSamples() const;
  std::vector<Part> parts_;
  mutable size_t cached_part_ = static_cast<size_t>(-1);
  mutable NamedTensors cache_;
  std::vector<std::string> input_names_;
  std::vector<InputLayout> layouts_;  // per input_names_
  std::string sha256_;
};

}  // namespace edgepress::calibrate
