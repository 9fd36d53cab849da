#include "calibrate/calibrate.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "ir/error.h"
#include "ir/file_util.h"
#include "runtime/session.h"

namespace edgepress::calibrate {

CalibrationResult Calibrate(const ir::Model& model, DataSet& data, const CalibrationOptions& o) {
  if (o.batch_size < 1)
    ThrowInvalid("calibration: batch size must be >= 1, got " + std::to_string(o.batch_size));
  int64_t total = data.size();
  if (o.max_samples >= 0) total = std::min(total, o.max_samples);
  if (total <= 0)
    ThrowInvalid("calibration: no samples to calibrate on (data set has " +
                 std::to_string(data.size()) + ", max samples " +
                 std::to_string(o.max_samples) + ")");
  // Fail before running anything on bad options.
  MakeObserver("", o.observer);
  ObserverOptions oo = o.observer;
  oo.samples = total;  // histogram methods fall back to min/max on too few samples

  const ir::Graph& g = *model.graph;
  // Explicitly named tensors must be graph inputs or node outputs of the main graph (the
  // observer does not see subgraph values or initializers).
  std::set<std::string> wanted(o.tensors.begin(), o.tensors.end());
  if (!wanted.empty()) {
    std::set<std::string> seen;
    for (const ir::Value* v : g.inputs()) seen.insert(v->name());
    for (const ir::Node* n : g.nodes())
      for (const ir::Value* v : n->outputs())
        if (v) seen.insert(v->name());
    for (const std::string& name : wanted)
      if (!seen.count(name))
        ThrowInvalid("calibration: tensor '" + name +
                     "' is not an input or a node output of the model's main graph");
  }
  auto observed = [&](const std::string& name) { return wanted.empty() || wanted.count(name); };

  std::map<std::string, std::unique_ptr<Observer>> observers;
  auto observe = [&](const std::string& name, const ir::Tensor& t) {
    if (!ir::IsFloat(t.dtype()) || !observed(name)) return;
    auto it = observers.find(name);
    if (it == observers.end()) it = observers.emplace(name, MakeObserver(name, oo)).first;
    it->second->Observe(t);
  };

  runtime::SessionOptions so;
  so.threads = o.threads;
  so.observer = [&](const ir::Node& n, const std::vector<const ir::Tensor*>& outs) {
    for (size_t i = 0; i < outs.size() && i < n.num_outputs(); ++i)
      if (outs[i] && n.output(i)) observe(n.output(i)->name(), *outs[i]);
  };
  auto session = runtime::Session::Create(std::shared_ptr<const ir::Model>(model.Clone()), so);

  CalibrationResult r;
  r.method = MethodName(o.observer.method);
  r.data_sha256 = data.Sha256();
  for (int64_t begin = 0; begin < total; begin += o.batch_size) {
    int64_t count = std::min(o.batch_size, total - begin);
    NamedTensors feeds = data.Batch(begin, count);
    for (const auto& [name, t] : feeds) observe(name, t);
    try {
      session->Run(feeds);
    } catch (const Error& e) {
      std::string hint = o.batch_size > 1
                             ? " (with batch size > 1 the model's first input dimension must "
                               "be symbolic; try batch size 1)"
                             : "";
      throw Error(e.code(), "calibration: samples [" + std::to_string(begin) + ", " +
                                std::to_string(begin + count) + "): " + e.what() + hint);
    }
    r.samples = begin + count;
    size_t bytes = 0;
    for (const auto& [name, obs] : observers) bytes += obs->MemoryBytes();
    r.peak_observer_bytes = std::max(r.peak_observer_bytes, bytes);
    if (o.progress) o.progress(r.samples, total);
  }
  for (const std::string& name : wanted)
    if (!observers.count(name))
      ThrowInvalid("calibration: tensor '" + name +
                   "' was never produced as a float tensor (it is not float, or it was "
                   "folded to a constant when the session was planned)");
  for (const auto& [name, obs] : observers) {
    TensorRange t = obs->Range();
    r.fallbacks += !t.fallback.empty();
    r.ranges.emplace(name, std::move(t));
  }
  return r;
}

// ---------------------------------------------------------------------------------------
// ranges.json

std::string RangesToJson(const CalibrationResult& r) {
  nlohmann::json ranges = nlohmann::json::object();
  for (const auto& [name, t] : r.ranges) {
    nlohmann::json e;
    e["min"] = t.min;
    e["max"] = t.max;
    e["axis"] = t.axis;
    if (t.axis >= 0) {
      e["channel_min"] = t.channel_min;
      e["channel_max"] = t.channel_max;
    }
    e["count"] = t.count;
    e["nonfinite"] = t.nonfinite;
    if (!t.fallback.empty()) e["fallback"] = t.fallback;
    ranges[name] = std::move(e);
  }
  nlohmann::json j;
  j["version"] = 1;
  j["method"] = r.method;
  j["data_sha256"] = r.data_sha256;
  j["samples"] = r.samples;
  j["ranges"] = std::move(ranges);
  return j.dump(1) + "\n";
}

namespace {

const nlohmann::json& Field(const nlohmann::json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) ThrowInvalid(where + ": missing field '" + key + "'");
  return *it;
}

float FiniteFloat(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number()) ThrowInvalid(where + " must be a number, got " + v.type_name());
  double d = v.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > 3.4028234663852886e38)
    ThrowInvalid(where + " must be a finite float32, got " + v.dump());
  return static_cast<float>(d);
}

uint64_t Count(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number_integer() || (v.is_number_integer() && !v.is_number_unsigned() &&
                                  v.get<int64_t>() < 0))
    ThrowInvalid(where + " must be a non-negative integer, got " + v.dump());
  return v.get<uint64_t>();
}

}  // namespace

CalibrationResult RangesFromJson(const std::string& json, const std::string& name_for_errors) {
  const std::string& file = name_for_errors;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    ThrowInvalid(file + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) ThrowInvalid(file + ": expected a JSON object at the top level");
  const nlohmann::json& version = Field(j, "version", file);
  if (!version.is_number_integer() || version.get<int64_t>() != 1)
    ThrowInvalid(file + ": unsupported ranges version " + version.dump() + " (expected 1)");
  CalibrationResult r;
  const nlohmann::json& method = Field(j, "method", file);
  if (!method.is_string()) ThrowInvalid(file + ": field 'method' must be a string");
  try {
    r.method = MethodName(ParseMethod(method.get<std::string>()));
  } catch (const Error& e) {
    ThrowInvalid(file + ": field 'method': " + e.what());
  }
  const nlohmann::json& sha = Field(j, "data_sha256", file);
  if (!sha.is_string()) ThrowInvalid(file + ": field 'data_sha256' must be a string");
  r.data_sha256 = sha.get<std::string>();
  r.samples = static_cast<int64_t>(Count(Field(j, "samples", file), file + ": field 'samples'"));
  const nlohmann::json& ranges = Field(j, "ranges", file);
  if (!ranges.is_object()) ThrowInvalid(file + ": field 'ranges' must be an object");
  for (const auto& [name, e] : ranges.items()) {
    std::string where = file + ": tensor '" + name + "'";
    if (!e.is_object()) ThrowInvalid(where + ": expected an object, got " + e.type_name());
    TensorRange t;
    t.min = FiniteFloat(Field(e, "min", where), where + ": 'min'");
    t.max = FiniteFloat(Field(e, "max", where), where + ": 'max'");
    if (t.min > t.max)
      ThrowInvalid(where + ": min " + std::to_string(t.min) + " is greater than max " +
                   std::to_string(t.max));
    const nlohmann::json& axis = Field(e, "axis", where);
    if (!axis.is_number_integer() || axis.get<int64_t>() < -1 || axis.get<int64_t>() > 64)
      ThrowInvalid(where + ": 'axis' must be an integer >= -1, got " + axis.dump());
    t.axis = static_cast<int>(axis.get<int64_t>());
    if (t.axis >= 0) {
      const nlohmann::json& cmin = Field(e, "channel_min", where);
      const nlohmann::json& cmax = Field(e, "channel_max", where);
      if (!cmin.is_array() || !cmax.is_array() || cmin.size() != cmax.size() || cmin.empty())
        ThrowInvalid(where + ": 'channel_min' and 'channel_max' must be non-empty arrays of "
                     "the same length");
      for (size_t c = 0; c < cmin.size(); ++c) {
        std::string at = where + ", channel " + std::to_string(c);
        float lo = FiniteFloat(cmin[c], at + ": 'channel_min'");
        float hi = FiniteFloat(cmax[c], at + ": 'channel_max'");
        if (lo > hi)
          ThrowInvalid(at + ": min " + std::to_string(lo) + " is greater than max " +
                       std::to_string(hi));
        t.channel_min.push_back(lo);
        t.channel_max.push_back(hi);
      }
    }
    t.count = Count(Field(e, "count", where), where + ": 'count'");
    t.nonfinite = Count(Field(e, "nonfinite", where), where + ": 'nonfinite'");
    if (auto f = e.find("fallback"); f != e.end()) {
      if (!f->is_string()) ThrowInvalid(where + ": 'fallback' must be a string");
      t.fallback = f->get<std::string>();
    }
    r.ranges.emplace(name, std::move(t));
  }
  return r;
}

void SaveRanges(const CalibrationResult& r, const std::string& path) {
  WriteFileAtomic(path, RangesToJson(r));
}

CalibrationResult LoadRanges(const std::string& path) {
  return RangesFromJson(ReadFileToString(path, uint64_t{1} << 30), path);
}

}  // namespace edgepress::calibrate
