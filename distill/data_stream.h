// Training samples streamed from .npz files, shuffled through a bounded buffer.
//
// The data is a list of .npz files (a folder stands for its .npz files in name order).
// Every named array has the sample index as dim 0; a sample is row i of each array. Only
// one file's arrays and the shuffle buffer are in memory at a time: a data set larger
// than memory is given as several .npz files (shards); a single .npz is read whole.
//
// Shuffle semantics (deterministic from the seed; no state but the position):
//   epoch e draws from a SplitMix64 generator seeded with Mix(seed, e);
//   the files are visited in a permutation drawn first (Fisher-Yates);
//   their samples, in file order, flow through a buffer of `buffer` samples: once the
//   buffer is full (or the files are exhausted) each emitted sample is a uniformly drawn
//   slot, refilled from the stream (or, at the end, closed by moving the last slot in).
// Every epoch emits every sample exactly once; buffer >= the data set's size gives a
// uniform permutation, buffer 1 the file order. Batches run across epoch ends (the
// stream is endless), so steps need not divide an epoch. The state is (epoch, position):
// Seek() replays the epoch up to the position, reading files but computing nothing, which
// is how a resumed run gets the very same batches.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/tensor.h"

namespace edgepress::distill {

// SplitMix64 (Steele et al.): fully specified, so shuffles do not depend on the C++ library.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  uint64_t Below(uint64_t n);  // uniform in [0, n) (Lemire's multiply-shift with rejection)
  double Uniform();            // [0, 1)

 private:
  uint64_t state_;
};

// The files a --data/--eval list names: folders expanded to their .npz files in name order.
// Throws Error(kIo) naming a missing path and Error(kInvalidInput) for an empty folder.
std::vector<std::string> ExpandDataFiles(const std::vector<std::string>& paths,
                                         const std::string& option);

class DataStream {
 public:
  // Reads every file once to check that it holds `arrays` (same dtype and row shape in
  // every file, one sample count per file); throws Error(kInvalidInput) naming the file
  // and array. `optional` arrays are kept only when every file has them (has()).
  DataStream(std::vector<std::string> files, std::vector<std::string> arrays,
             std::vector<std::string> optional, int64_t buffer, uint64_t seed, bool shuffle);

  int64_t size() const { return size_; }  // samples in one epoch
  bool has(const std::string& array) const;
  // The next `count` samples, one batch tensor per kept array ([count, row...]), in the
  // order of names().
  std::vector<ir::Tensor> Next(int64_t count) { return Next(count, 0, count); }
  // The same `count` samples drawn, but only rows [first, first + keep) of them returned:
  // a data-parallel rank's share of a global batch. Every rank draws the whole batch, so
  // the stream's state (and a checkpoint's position) is the same on all of them.
  std::vector<ir::Tensor> Next(int64_t count, int64_t first, int64_t keep);
  const std::vector<std::string>& names() const { return names_; }
  // The row shape of array i (without the sample dim).
  const std::vector<int64_t>& row_shape(size_t i) const { return row_shapes_[i]; }
  ir::DType dtype(size_t i) const { return dtypes_[i]; }

  int64_t epoch() const { return epoch_; }
  int64_t position() const { return position_; }  // samples emitted in this epoch
  // Restarts epoch `epoch` and skips `position` samples of it.
  void Seek(int64_t epoch, int64_t position);

 private:
  using Sample = std::vector<ir::Tensor>;  // one row per kept array
  void StartEpoch(int64_t epoch);
  bool Pull(Sample* s);  // the next sample of the file stream; false at the epoch's end
  Sample Emit();         // one sample through the buffer (starting a new epoch as needed)

  std::vector<std::string> files_, names_;
  std::vector<ir::DType> dtypes_;
  std::vector<std::vector<int64_t>> row_shapes_;
  std::vector<int64_t> file_samples_;
  int64_t size_ = 0, buffer_size_ = 1;
  uint64_t seed_ = 0;
  bool shuffle_ = true;

  // Epoch state.
  SplitMix64 rng_{0};
  int64_t epoch_ = 0, position_ = 0;
  std::vector<size_t> order_;
  size_t next_file_ = 0;
  int64_t next_row_ = 0;
  std::vector<ir::Tensor> file_arrays_;  // the open file's arrays, in names_ order
  std::vector<Sample> buffer_;
};

}  // namespace edgepress::distill
