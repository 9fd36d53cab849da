#include "calibrate/dataset.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
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

std::string DimsOf(const ir::Tensor& t) { return ir::DTypeName(t.dtype()) + ShapeStr(t.shape()); }

// The layout an input takes when the caller does not say, or kAuto for "fixed dim 0 that
// the array's dim 0 equals" (decided once the other inputs are known).
InputLayout InferLayout(const ir::Value* in, const ir::Tensor& t) {
  if (t.rank() == 0) return InputLayout::kConstant;
  if (!in->type.shape) return InputLayout::kBatched;
  const ir::Shape& decl = *in->type.shape;
  if (static_cast<size_t>(t.rank()) == decl.size() + 1) return InputLayout::kStacked;
  if (decl.empty() || !decl[0].known()) return InputLayout::kBatched;
  return t.shape()[0] == decl[0].value ? InputLayout::kAuto : InputLayout::kBatched;
}

// Checks one array against its input for `layout`; returns its sample count (-1 for
// constant).
int64_t CheckArray(const ir::Value* in, const ir::Tensor& t, InputLayout layout,
                   const std::string& what) {
  if (layout != InputLayout::kConstant && t.rank() == 0)
    ThrowInvalid(what + ": a scalar has no sample dimension; it can only be a constant input "
                        "(--layout " + in->name() + "=constant)");
  if (!in->type.shape) return layout == InputLayout::kConstant ? -1 : t.shape()[0];
  const ir::Shape& decl = *in->type.shape;
  // The dims of one feed, against the declared ones from `first` on.
  std::vector<int64_t> feed = t.shape();
  size_t first = 0;
  if (layout == InputLayout::kStacked) feed.erase(feed.begin());
  if (layout == InputLayout::kBatched) first = 1;  // the batch dim is the caller's
  const char* how = layout == InputLayout::kStacked   ? " (stacked: dim 0 indexes samples of the input's shape)"
                    : layout == InputLayout::kBatched ? " (batched: dim 0 is the sample index and stays in every batch)"
                                                      : " (constant: fed as is)";
  if (feed.size() != decl.size())
    ThrowInvalid(what + ": shape " + ShapeStr(t.shape()) + " does not fit the model input " +
                 ir::ShapeToString(decl) + how);
  for (size_t d = first; d < decl.size(); ++d)
    if (decl[d].known() && decl[d].value != feed[d])
      ThrowInvalid(what + ": shape " + ShapeStr(t.shape()) + " does not match the model input " +
                   ir::ShapeToString(decl) + " at dim " +
                   std::to_string(d + (layout == InputLayout::kStacked ? 1 : 0)) + how);
  return layout == InputLayout::kConstant ? -1 : t.shape()[0];
}

// Checks the model inputs in one file's arrays and returns the file's sample count. The
// first file resolves `layouts` (empty on entry) from `requested` and the data; later
// files are checked against the same layouts.
int64_t ValidateArrays(const NamedTensors& arrays, const ir::Graph& graph, const std::string& file,
                       const DataLayout& requested, std::vector<InputLayout>* layouts) {
  std::vector<const ir::Value*> inputs = RequiredInputs(graph);
  std::vector<const ir::Tensor*> ts;
  for (const ir::Value* in : inputs) {
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
    ts.push_back(t);
  }
  if (layouts->empty()) {
    for (size_t i = 0; i < inputs.size(); ++i) {
      auto it = requested.find(inputs[i]->name());
      layouts->push_back(it != requested.end() && it->second != InputLayout::kAuto
                             ? it->second
                             : InferLayout(inputs[i], *ts[i]));
    }
    // A fixed dim 0 that the array matches is the whole input (constant), unless it is a
    // batch of one among batch-major inputs of one sample.
    int64_t n = -1;
    for (size_t i = 0; i < inputs.size(); ++i)
      if (n < 0 && ((*layouts)[i] == InputLayout::kBatched || (*layouts)[i] == InputLayout::kStacked))
        n = ts[i]->shape()[0];
    for (size_t i = 0; i < inputs.size(); ++i)
      if ((*layouts)[i] == InputLayout::kAuto)
        (*layouts)[i] = n == 1 && ts[i]->shape()[0] == 1 ? InputLayout::kBatched : InputLayout::kConstant;
  }
  int64_t samples = -1;
  std::string first, counts;
  bool disagree = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& name = inputs[i]->name();
    int64_t n = CheckArray(inputs[i], *ts[i], (*layouts)[i],
                           "calibration data '" + file + "', array '" + name + "'");
    if (n < 0) continue;
    counts += (counts.empty() ? "" : ", ") + std::string("'") + name + "' " + DimsOf(*ts[i]) +
              " has " + std::to_string(n) + " (" + InputLayoutName((*layouts)[i]) + ")";
    if (samples < 0) {
      samples = n;
      first = name;
    } else if (n != samples) {
      disagree = true;
    }
  }
  if (disagree)
    ThrowInvalid("calibration data '" + file + "': the inputs disagree on the number of samples "
                 "along dim 0: " + counts + "; give the layout of the inputs that are not "
                 "batch-major, e.g. --layout NAME=constant (recipe: calibration.layout / "
                 "evaluation.layout), or NAME=stacked when dim 0 stacks whole inputs");
  // Every input constant: the file is one feed.
  if (samples < 0) samples = inputs.empty() ? 0 : 1;
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

// A folder stands for its .npz/.npy files in name order.
std::vector<std::string> ExpandFolders(const std::vector<std::string>& given) {
  std::vector<std::string> files;
  for (const std::string& f : given) {
    std::error_code ec;
    if (!std::filesystem::is_directory(f, ec)) {
      files.push_back(f);
      continue;
    }
    std::vector<std::string> inside;
    for (const auto& e : std::filesystem::directory_iterator(f, ec)) {
      std::string ext = e.path().extension().string();
      if (e.is_regular_file(ec) && (ext == ".npz" || ext == ".npy")) inside.push_back(e.path().string());
    }
    if (ec) ThrowInvalid("calibration data: cannot list the folder '" + f + "': " + ec.message());
    if (inside.empty()) ThrowInvalid("calibration data: the folder '" + f + "' has no .npz/.npy files");
    std::sort(inside.begin(), inside.end());
    files.insert(files.end(), inside.begin(), inside.end());
  }
  return files;
}

void CheckLayoutNames(const DataLayout& layout, const ir::Graph& graph) {
  std::vector<const ir::Value*> inputs = RequiredInputs(graph);
  for (const auto& [name, l] : layout) {
    bool found = false;
    std::string all;
    for (const ir::Value* v : inputs) {
      found = found || v->name() == name;
      all += (all.empty() ? "'" : ", '") + v->name() + "'";
    }
    if (!found)
      throw Error(ErrorCode::kUsage, "data layout for '" + name + "': the model has no such input "
                                     "(its inputs: " + (all.empty() ? "none" : all) + ")");
  }
}

}  // namespace

const char* InputLayoutName(InputLayout l) {
  switch (l) {
    case InputLayout::kAuto: return "auto";
    case InputLayout::kBatched: return "batched";
    case InputLayout::kStacked: return "stacked";
    case InputLayout::kConstant: return "constant";
  }
  return "?";
}

DataLayout ParseDataLayout(const std::vector<std::string>& specs, const std::string& where) {
  DataLayout out;
  for (const std::string& spec : specs) {
    size_t eq = spec.find('=');
    std::string name = eq == std::string::npos ? "" : spec.substr(0, eq);
    std::string kind = eq == std::string::npos ? "" : spec.substr(eq + 1);
    InputLayout l = InputLayout::kAuto;
    if (kind == "batched") l = InputLayout::kBatched;
    else if (kind == "stacked") l = InputLayout::kStacked;
    else if (kind == "constant") l = InputLayout::kConstant;
    else if (kind == "auto") l = InputLayout::kAuto;
    if (name.empty() || (l == InputLayout::kAuto && kind != "auto"))
      throw Error(ErrorCode::kUsage, where + ": '" + spec + "': expected INPUT=batched|stacked|constant|auto");
    out[name] = l;
  }
  return out;
}

DataSet DataSet::Open(const std::vector<std::string>& given, const ir::Graph& graph,
                      const DataLayout& layout) {
  std::vector<std::string> files = ExpandFolders(given);
  if (files.empty()) ThrowInvalid("calibration data: no files given");
  CheckLayoutNames(layout, graph);
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
    p.samples = ValidateArrays(arrays, graph, file, layout, &ds.layouts_);
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
                             const std::string& name_for_errors, const DataLayout& layout) {
  CheckLayoutNames(layout, graph);
  DataSet ds;
  for (const ir::Value* v : RequiredInputs(graph)) ds.input_names_.push_back(v->name());
  Part p;
  p.samples = ValidateArrays(arrays, graph, name_for_errors, layout, &ds.layouts_);
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
  for (size_t k = 0; k < input_names_.size(); ++k) {
    const std::string& name = input_names_[k];
    const ir::Tensor* t = Find(arrays, name);
    bool constant = layouts_[k] == InputLayout::kConstant;
    if (!t || (!constant && (t->rank() == 0 || t->shape()[0] != p.samples)))
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
  std::vector<std::string> sliced;
  for (size_t k = 0; k < input_names_.size(); ++k)
    if (layouts_[k] != InputLayout::kConstant) sliced.push_back(input_names_[k]);
  std::vector<ir::Tensor> ts =
      Gather(sliced, begin, count, PartSamples(),
             [&](size_t i) -> const NamedTensors& { return ArraysOf(i); },
             [&](size_t i) { return Label(i); });
  // Constants come from the file that holds sample `begin`.
  size_t part = 0;
  for (int64_t start = 0; part + 1 < parts_.size() && begin >= start + parts_[part].samples; ++part)
    start += parts_[part].samples;
  NamedTensors out;
  size_t next = 0;
  for (size_t k = 0; k < input_names_.size(); ++k) {
    if (layouts_[k] == InputLayout::kConstant) {
      out.emplace_back(input_names_[k], *Find(ArraysOf(part), input_names_[k]));
      continue;
    }
    ir::Tensor t = std::move(ts[next++]);
    if (layouts_[k] == InputLayout::kStacked && t.rank() == 1 && count == 1) {
      t = ir::Tensor(t.dtype(), {}, t.buffer(), t.offset());  // one scalar sample
    } else if (layouts_[k] == InputLayout::kStacked && t.rank() >= 2) {
      // count samples of the input's shape, joined along its dim 0 (a view: rows are
      // contiguous).
      std::vector<int64_t> shape(t.shape().begin() + 1, t.shape().end());
      shape[0] *= t.shape()[0];
      t = ir::Tensor(t.dtype(), shape, t.buffer(), t.offset());
    }
    out.emplace_back(input_names_[k], std::move(t));
  }
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
