#include "distill/data_stream.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "formats/npy/npy.h"
#include "ir/error.h"

namespace edgepress::distill {

namespace fs = std::filesystem;

uint64_t SplitMix64::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::Below(uint64_t n) {
  // Lemire (2019): the high half of a 128-bit product, rejecting the biased low band.
  unsigned __int128 m = static_cast<unsigned __int128>(Next()) * n;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < n) {
    uint64_t threshold = -n % n;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(Next()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

double SplitMix64::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

std::vector<std::string> ExpandDataFiles(const std::vector<std::string>& paths,
                                         const std::string& option) {
  std::vector<std::string> files;
  for (const std::string& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> in;
      for (const auto& e : fs::directory_iterator(p, ec))
        if (e.path().extension() == ".npz") in.push_back(e.path().string());
      std::sort(in.begin(), in.end());
      if (in.empty()) ThrowInvalid(option + " " + p + ": the folder holds no .npz files");
      files.insert(files.end(), in.begin(), in.end());
    } else if (fs::exists(p, ec)) {
      files.push_back(p);
    } else {
      throw Error(ErrorCode::kIo, option + ": cannot open data file '" + p + "'");
    }
  }
  if (files.empty()) throw Error(ErrorCode::kUsage, option + ": no data files given");
  return files;
}

namespace {

// The arrays `names` of one file, in that order; the file's sample count in *samples.
std::vector<ir::Tensor> ReadArrays(const std::string& file, const std::vector<std::string>& names,
                                   int64_t* samples) {
  formats::NamedTensors all = formats::LoadNpz(file);
  std::vector<ir::Tensor> out;
  *samples = -1;
  for (const std::string& n : names) {
    auto it = std::find_if(all.begin(), all.end(), [&](const auto& a) { return a.first == n; });
    if (it == all.end()) {
      std::string have;
      for (const auto& a : all) have += (have.empty() ? "" : ", ") + a.first;
      ThrowInvalid(file + ": no array '" + n + "' (the file has: " + have + ")");
    }
    const ir::Tensor& t = it->second;
    if (t.rank() == 0)
      ThrowInvalid(file + ": array '" + n + "' is a scalar; dim 0 must index the samples");
    if (*samples >= 0 && t.shape()[0] != *samples)
      ThrowInvalid(file + ": array '" + n + "' has " + std::to_string(t.shape()[0]) +
                   " samples, the file's other arrays " + std::to_string(*samples));
    *samples = t.shape()[0];
    out.push_back(t);
  }
  return out;
}

std::vector<std::string> ArrayNames(const std::string& file) {
  std::vector<std::string> names;
  for (const auto& a : formats::LoadNpz(file)) names.push_back(a.first);
  return names;
}

}  // namespace

DataStream::DataStream(std::vector<std::string> files, std::vector<std::string> arrays,
                       std::vector<std::string> optional, int64_t buffer, uint64_t seed,
                       bool shuffle)
    : files_(std::move(files)),
      buffer_size_(std::max<int64_t>(1, buffer)),
      seed_(seed),
      shuffle_(shuffle) {
  names_ = arrays;
  for (const std::string& o : optional) {
    bool everywhere = true;
    for (const std::string& f : files_) {
      std::vector<std::string> have = ArrayNames(f);
      everywhere = everywhere && std::find(have.begin(), have.end(), o) != have.end();
    }
    if (everywhere) names_.push_back(o);
  }
  for (const std::string& f : files_) {
    int64_t n = 0;
    std::vector<ir::Tensor> a = ReadArrays(f, names_, &n);
    for (size_t i = 0; i < a.size(); ++i) {
      std::vector<int64_t> row(a[i].shape().begin() + 1, a[i].shape().end());
      if (dtypes_.size() <= i) {
        dtypes_.push_back(a[i].dtype());
        row_shapes_.push_back(row);
      } else if (dtypes_[i] != a[i].dtype() || row_shapes_[i] != row) {
        ThrowInvalid(f + ": array '" + names_[i] + "' differs in dtype or row shape from " +
                     files_[0]);
      }
    }
    file_samples_.push_back(n);
    size_ += n;
  }
  if (size_ == 0) ThrowInvalid(files_[0] + ": the data has no samples");
  StartEpoch(0);
}

bool DataStream::has(const std::string& array) const {
  return std::find(names_.begin(), names_.end(), array) != names_.end();
}

void DataStream::StartEpoch(int64_t epoch) {
  epoch_ = epoch;
  position_ = 0;
  // Mix the epoch into the seed through one SplitMix step so neighbouring seeds and
  // epochs give unrelated streams.
  rng_ = SplitMix64(
      SplitMix64(seed_ ^ (0x5851f42d4c957f2dull * (static_cast<uint64_t>(epoch) + 1))).Next());
  order_.resize(files_.size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
  if (shuffle_)
    for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng_.Below(i)]);
  next_file_ = 0;
  next_row_ = 0;
  file_arrays_.clear();
  buffer_.clear();
}

bool DataStream::Pull(Sample* s) {
  while (file_arrays_.empty() || next_row_ >= file_samples_[order_[next_file_ - 1]]) {
    if (next_file_ >= order_.size()) return false;
    int64_t n = 0;
    file_arrays_.clear();  // release the previous file before reading the next
    file_arrays_ = ReadArrays(files_[order_[next_file_]], names_, &n);
    ++next_file_;
    next_row_ = 0;
  }
  s->clear();
  for (size_t i = 0; i < file_arrays_.size(); ++i) {
    const ir::Tensor& a = file_arrays_[i];
    ir::Tensor row(a.dtype(), row_shapes_[i]);
    std::memcpy(row.mutable_raw(), static_cast<const uint8_t*>(a.raw()) + next_row_ * row.nbytes(),
                row.nbytes());
    s->push_back(std::move(row));
  }
  ++next_row_;
  return true;
}

DataStream::Sample DataStream::Emit() {
  Sample incoming;
  while (static_cast<int64_t>(buffer_.size()) < buffer_size_ && Pull(&incoming))
    buffer_.push_back(std::move(incoming));
  if (buffer_.empty()) {  // the epoch is over
    StartEpoch(epoch_ + 1);
    return Emit();
  }
  size_t slot = shuffle_ ? static_cast<size_t>(rng_.Below(buffer_.size())) : 0;
  Sample out = std::move(buffer_[slot]);
  if (Pull(&incoming)) {
    buffer_[slot] = std::move(incoming);
  } else {
    buffer_[slot] = std::move(buffer_.back());
    buffer_.pop_back();
  }
  ++position_;
  return out;
}

std::vector<ir::Tensor> DataStream::Next(int64_t count, int64_t first, int64_t keep) {
  std::vector<ir::Tensor> batch;
  for (size_t i = 0; i < names_.size(); ++i) {
    std::vector<int64_t> shape = row_shapes_[i];
    shape.insert(shape.begin(), keep);
    batch.emplace_back(dtypes_[i], shape);
  }
  for (int64_t k = 0; k < count; ++k) {
    if (position_ == size_) StartEpoch(epoch_ + 1);
    Sample s = Emit();
    if (k < first || k >= first + keep) continue;
    for (size_t i = 0; i < s.size(); ++i)
      std::memcpy(static_cast<uint8_t*>(batch[i].mutable_raw()) + (k - first) * s[i].nbytes(),
                  s[i].raw(), s[i].nbytes());
  }
  return batch;
}

void DataStream::Seek(int64_t epoch, int64_t position) {
  if (epoch < 0 || position < 0 || position > size_)
    ThrowInvalid("data position (epoch " + std::to_string(epoch) + ", sample " +
                 std::to_string(position) + ") is outside the data (" + std::to_string(size_) +
                 " samples per epoch)");
  StartEpoch(epoch);
  for (int64_t i = 0; i < position; ++i) Emit();
}

}  // namespace edgepress::distill
