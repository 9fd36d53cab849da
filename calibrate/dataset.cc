#include "calibrate/dataset.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <set>

#include "formats/npy/npy.h"
#include "ir/error.h"
#include "ir/file_util.h"
#include "ir/sha256.h"

namespace edgepress::calibrate {

namespace {

// The inputs a caller must feed: graph inputs without an initializer default.
std::vector<const ir::Value*> RequiredInputs(const ir::Graph& graph) {
  std::vector<const ir::Value*> out;
  for (const ir::Value* v : graph.inputs())
    if (!v->is_initializer()) out.push_back(v);
  return out;
}

std::string ShapeStr(const std::vector<int64_t>& shape) {
  return ir::ShapeToString(ir::MakeShape(shape));
}

std::string ListNames(const NamedTensors& arrays) {
  if (arrays.empty()) return "no arrays";
  std::string s;
  for (const auto& [name, t] : arrays) {
    if (!s.empty()) s += ", ";
    s += "'" + name + "' " + ir::DTypeName(t.dtype()) + ShapeStr(t.shape());
  }
  return s;
}

bool IsNpyBytes(const std::string& bytes) {
  return bytes.size() >= 6 && bytes.compare(0, 6, "\x93NUMPY") == 0;
}

// Parses a .npz or .npy file's bytes; a .npy's one array is named after the model's only
// input (the file stem would rarely match it).
NamedTensors ParseArrays(const std::string& bytes, const std::string& file,
                         const std::vector<std::string>& inputs) {
  if (!IsNpyBytes(bytes)) return formats::ParseNpz(bytes, file);
  if (inputs.size() != 1)
    ThrowInvalid("calibration data '" + file + "': a .npy file holds one array, but the model has " +
                 std::to_string(inputs.size()) + " inputs; use a .npz with one array per input");
  NamedTensors out;
  out.emplace_back(inputs[0], formats::ParseNpy(bytes, file));
  return out;
}

const ir::Tensor* Find(const NamedTensors& arrays, const std::string& name) {
  for (const auto& [n, t] : arrays)
    if (n == name) return &t;
  return nullptr;
}

// Checks the model inputs in one file's arrays; returns the file's sample count.
int64_t ValidateArrays(const NamedTensors& arrays, const ir::Graph& graph,
                       const std::string& file) {
  int64_t samples = -1;
  std::string first;
  for (const ir::Value* in : RequiredInputs(graph)) {
    const std::string& name = in->name();
    if (!in->type.is_tensor())
      ThrowUnsupported("calibration data '" + file + "': model input '" + name +
                       "' is a " + in->type.ToString() + ", only tensor inputs can be fed");
    const ir::Tensor* t = Find(arrays, name);
    if (!t)
      ThrowInvalid("calibration data '" + file + "' has no array for model input '" + name +
                   "' (it has " + ListNames(arrays) + ")");
    std::string what = "calibration data '" + file + "', array '" + name + "'";
    if (in->type.dtype != ir::DType::kUndefined && t->dtype() != in->type.dtype)
      ThrowInvalid(what + ": element type " + ir::DTypeName(t->dtype()) +
                   " does not match the model input's " + ir::DTypeName(in->type.dtype));
    if (t->dtype() == ir::DType::kString || ir::IsPacked(t->dtype()))
      ThrowUnsupported(what + ": element type " + std::string(ir::DTypeName(t->dtype())) +
                       " cannot be sliced into samples");
    if (t->rank() == 0)
      ThrowInvalid(what + ": a scalar has no sample dimension (dim 0 is the sample index)");
    if (in->type.shape) {
      const ir::Shape& decl = *in->type.shape;
      if (static_cast<int>(decl.size()) != t->rank())
        ThrowInvalid(what + ": shape " + ShapeStr(t->shape()) + " has rank " +
                     std::to_string(t->rank()) + ", the model input " +
                     ir::ShapeToString(decl) + " has rank " + std::to_string(decl.size()) +
                     " (dim 0 is the sample index and stays in every batch)");
      for (size_t d = 1; d < decl.size(); ++d)
        if (decl[d].known() && decl[d].value != t->shape()[d])
          ThrowInvalid(what + ": shape " + ShapeStr(t->shape()) + " does not match the model input " +
                       ir::ShapeToString(decl) + " at dim " + std::to_string(d));
    }
    int64_t n = t->shape()[0];
    if (samples < 0) {
      samples = n;
      first = name;
    } else if (n != samples) {
      ThrowInvalid(what + ": " + std::to_string(n) + " samples (dim 0) but array '" + first +
                   "' has " + std::to_string(samples));
    }
  }
  if (samples < 0) samples = 0;  // a model without inputs: nothing to feed
  return samples;
}

// Bytes of one sample (row along dim 0).
uint64_t RowBytes(const ir::Tensor& t) {
  return t.shape()[0] == 0 ? 0 : t.nbytes() / static_cast<uint64_t>(t.shape()[0]);
}

// Rows [begin, begin+count) of `t` as a view sharing its buffer.
ir::Tensor SliceRows(const ir::Tensor& t, int64_t begin, int64_t count) {
  std::vector<int64_t> shape = t.shape();
  shape[0] = count;
  if (begin == 0 && count == t.shape()[0]) return t;
  return ir::Tensor(t.dtype(), shape, t.buffer(),
                    t.offset() + RowBytes(t) * static_cast<uint64_t>(begin));
}

}  // namespace

DataSet DataSet::Open(const std::vector<std::string>& files, const ir::Graph& graph) {
  if (files.empty()) ThrowInvalid("calibration data: no files given");
  DataSet ds;
  for (const ir::Value* v : RequiredInputs(graph)) ds.input_names_.push_back(v->name());
  edgepress::Sha256 sha;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& file = files[i];
    // One read serves the hash and the parse; the bytes are dropped before the next file.
    NamedTensors arrays;
    {
      std::string bytes = ReadFileToString(file);
      sha.Update(bytes);
      arrays = ParseArrays(bytes, file, ds.input_names_);
    }
    Part p;
    p.file = file;
    p.samples = ValidateArrays(arrays, graph, file);
    for (const auto& [name, t] : arrays) p.names.push_back(name);
    ds.parts_.push_back(std::move(p));
    if (files.size() == 1) {  // keep the only file: the first Batch() needs it anyway
      ds.cache_ = std::move(arrays);
      ds.cached_part_ = 0;
    }
  }
  ds.sha256_ = sha.HexDigest();
  return ds;
}

DataSet DataSet::FromTensors(NamedTensors arrays, const ir::Graph& graph,
                             const std::string& name_for_errors) {
  DataSet ds;
  for (const ir::Value* v : RequiredInputs(graph)) ds.input_names_.push_back(v->name());
  Part p;
  p.samples = ValidateArrays(arrays, graph, name_for_errors);
  // The hash covers each array's name, type, shape and bytes, so equal data hashes equal.
  edgepress::Sha256 sha;
  for (const auto& [name, t] : arrays) {
    p.names.push_back(name);
    std::string header = name + '\0' + ir::DTypeName(t.dtype()) + ShapeStr(t.shape()) + '\0';
    sha.Update(header);
    if (t.dtype() != ir::DType::kString && t.nbytes() > 0) sha.Update(t.raw(), t.nbytes());
  }
  ds.sha256_ = sha.HexDigest();
  p.file_label = name_for_errors;
  p.arrays = std::move(arrays);
  ds.parts_.push_back(std::move(p));
  return ds;
}

int64_t DataSet::size() const {
  int64_t n = 0;
  for (const Part& p : parts_) n += p.samples;
  return n;
}

const NamedTensors& DataSet::ArraysOf(size_t part) const {
  const Part& p = parts_[part];
  if (p.file.empty()) return p.arrays;
  if (cached_part_ == part) return cache_;
  cache_.clear();  // free the previous file before reading the next
  cached_part_ = static_cast<size_t>(-1);
  NamedTensors arrays = ParseArrays(ReadFileToString(p.file), p.file, input_names_);
  for (const std::string& name : input_names_) {
    const ir::Tensor* t = Find(arrays, name);
    if (!t || t->rank() == 0 || t->shape()[0] != p.samples)
      ThrowInvalid("calibration data '" + p.file + "' changed since it was opened (array '" +
                   name + "')");
  }
  cache_ = std::move(arrays);
  cached_part_ = part;
  return cache_;
}

namespace {

// Rows [begin, begin+count) of the arrays `names` over the parts, concatenated across
// part boundaries. Each part is visited once for all names, so a batch that spans files
// reads each file once.
std::vector<ir::Tensor> Gather(const std::vector<std::string>& names, int64_t begin,
                               int64_t count, const std::vector<int64_t>& part_samples,
                               const std::function<const NamedTensors&(size_t)>& arrays_of,
                               const std::function<std::string(size_t)>& label) {
  struct Piece {
    ir::Tensor t;
    size_t part;
  };
  std::vector<std::vector<Piece>> pieces(names.size());
  int64_t start = 0;
  for (size_t i = 0; i < part_samples.size(); ++i) {
    int64_t n = part_samples[i];
    if (begin < start + n && begin + count > start) {
      const NamedTensors& arrays = arrays_of(i);
      int64_t lo = std::max(begin, start) - start;
      int64_t hi = std::min(begin + count, start + n) - start;
      for (size_t k = 0; k < names.size(); ++k) {
        const std::string& name = names[k];
        const ir::Tensor* t = Find(arrays, name);
        if (!t)
          ThrowInvalid("calibration data '" + label(i) + "' has no array '" + name +
                       "' (it has " + ListNames(arrays) + ")");
        if (t->rank() == 0 || t->shape()[0] != n)
          ThrowInvalid("calibration data '" + label(i) + "', array '" + name + "': shape " +
                       ShapeStr(t->shape()) + " does not have the file's " + std::to_string(n) +
                       " samples in dim 0");
        if (t->dtype() == ir::DType::kString || ir::IsPacked(t->dtype()))
          ThrowUnsupported("calibration data '" + label(i) + "', array '" + name +
                           "': element type " + ir::DTypeName(t->dtype()) +
                           " cannot be sliced into samples");
        // A view shares the file's buffer, which keeps it alive after the cache moves on.
        pieces[k].push_back({SliceRows(*t, lo, hi - lo), i});
      }
    }
    start += n;
  }
  std::vector<ir::Tensor> out;
  for (size_t k = 0; k < names.size(); ++k) {
    const std::vector<Piece>& ps = pieces[k];
    if (ps.size() == 1) {
      out.push_back(ps[0].t);
      continue;
    }
    const ir::Tensor& first = ps[0].t;
    std::vector<int64_t> tail0(first.shape().begin() + 1, first.shape().end());
    for (const Piece& p : ps) {
      std::vector<int64_t> tail(p.t.shape().begin() + 1, p.t.shape().end());
      if (p.t.dtype() != first.dtype() || tail != tail0)
        ThrowInvalid("calibration data: array '" + names[k] + "' is " +
                     ir::DTypeName(first.dtype()) + ShapeStr(first.shape()) + " in '" +
                     label(ps[0].part) + "' but " + ir::DTypeName(p.t.dtype()) +
                     ShapeStr(p.t.shape()) + " in '" + label(p.part) +
                     "'; a batch spanning both cannot be concatenated (use batch size 1)");
    }
    std::vector<int64_t> shape = first.shape();
    shape[0] = count;
    ir::Tensor t(first.dtype(), shape);
    uint8_t* dst = static_cast<uint8_t*>(t.mutable_raw());
    for (const Piece& p : ps) {
      if (p.t.nbytes() > 0) std::memcpy(dst, p.t.raw(), p.t.nbytes());
      dst += p.t.nbytes();
    }
    out.push_back(std::move(t));
  }
  return out;
}

void CheckRange(int64_t begin, int64_t count, int64_t total, const std::string& what) {
  if (begin < 0 || count <= 0 || begin > total || count > total - begin)
    ThrowInvalid("calibration data: samples [" + std::to_string(begin) + ", " +
                 std::to_string(begin + count) + ")" + what + " are outside the data set's " +
                 std::to_string(total) + " samples");
}

}  // namespace

std::vector<int64_t> DataSet::PartSamples() const {
  std::vector<int64_t> samples;
  for (const Part& p : parts_) samples.push_back(p.samples);
  return samples;
}

NamedTensors DataSet::Batch(int64_t begin, int64_t count) const {
  CheckRange(begin, count, size(), "");
  std::vector<ir::Tensor> ts =
      Gather(input_names_, begin, count, PartSamples(),
             [&](size_t i) -> const NamedTensors& { return ArraysOf(i); },
             [&](size_t i) { return Label(i); });
  NamedTensors out;
  for (size_t k = 0; k < ts.size(); ++k) out.emplace_back(input_names_[k], std::move(ts[k]));
  return out;
}

ir::Tensor DataSet::Extra(const std::string& name, int64_t begin, int64_t count) const {
  if (!HasArray(name)) {
    std::string files;
    for (size_t i = 0; i < parts_.size(); ++i) files += (i ? ", '" : "'") + Label(i) + "'";
    ThrowInvalid("calibration data: no array '" + name + "' in " + files);
  }
  CheckRange(begin, count, size(), " of '" + name + "'");
  return Gather({name}, begin, count, PartSamples(),
                [&](size_t i) -> const NamedTensors& { return ArraysOf(i); },
                [&](size_t i) { return Label(i); })[0];
}

bool DataSet::HasArray(const std::string& name) const {
  for (const Part& p : parts_)
    if (std::find(p.names.begin(), p.names.end(), name) != p.names.end()) return true;
  return false;
}

std::string DataSet::Label(size_t part) const {
  return parts_[part].file.empty() ? parts_[part].file_label : parts_[part].file;
}

}  // namespace edgepress::calibrate
