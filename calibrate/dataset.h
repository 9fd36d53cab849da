// A data set of model inputs from .npz/.npy files, read one sample at a time.
//
// Each .npz holds arrays named after the model's inputs (extra arrays, e.g. "label", are
// available to evaluation by name); the first dimension is the sample index and must
// agree across the arrays of one file. A .npy file holds one array and needs a model with
// exactly one input. Files are read in the order given; samples are yielded in file
// order, so the same files give the same sequence (deterministic calibration).
// Only one file's arrays are held in memory at a time (files are validated once when
// opened, then re-read on demand), so memory is bounded by the largest file, not by the
// size of the data set.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace edgepress::calibrate {

using NamedTensors = std::vector<std::pair<std::string, ir::Tensor>>;

class DataSet {
 public:
  // Opens the files and checks that every input the model requires is present with a matching element type
  // and a consistent sample count. Throws Error(kInvalidInput) naming the file and array.
  static DataSet Open(const std::vector<std::string>& files, const ir::Graph& graph);
  // For tests: data from tensors in memory (same checks; "name_for_errors" as the file).
  static DataSet FromTensors(NamedTensors arrays, const ir::Graph& graph,
                             const std::string& name_for_errors = "<memory>");

  int64_t size() const;  // total samples over all files
  // Samples [begin, begin+count) as model feeds: each input array sliced along dim 0
  // (count rows; the batch dim is kept). Crosses file boundaries by concatenating.
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
  std::string sha256_;
};

}  // namespace edgepress::calibrate
