// The recipe schema and the checks of single YAML values (recipe_reader.h): each check
// names file:line:col, the key path and what was expected, and suggests the nearest valid
// name where there is one.
#include "tools/compress/recipe_reader.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "ir/error.h"
#include "passes/registry.h"
#include "tools/compress/compress_distill.h"

namespace edgepress::tools::recipe_detail {

const std::vector<std::pair<std::string, std::vector<std::string>>>& Schema() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> schema = {
      {"",
       {"name", "description", "extends", "seed", "target", "budgets", "pipeline", "calibration",
        "evaluation", "export", "tuning"}},
      {"target", {"name", "arch", "backend", "device", "isa", "threads", "memory_mb"}},
      {"budgets",
       {"max_accuracy_drop", "max_accuracy_drop_relative", "max_latency_p50_ms",
        "max_latency_p99_ms", "max_size_bytes", "max_size_ratio", "min_speedup"}},
      {"calibration", {"data", "method", "max_samples", "layout"}},
      {"evaluation",
       {"metric", "k", "data", "input", "label", "output", "max_samples", "latency_runs",
        "warmup_runs", "layout"}},
      {"export", {"epk", "onnx", "pt"}},
      {"tuning", {"max_trials", "max_minutes", "objective", "allow_slower", "steps"}},
      {"tuning.steps[]", {"name", "set"}},
  };
  return schema;
}
const std::vector<std::string>& KeysOf(const std::string& section) {
  for (const auto& [name, keys] : Schema())
    if (name == section) return keys;
  throw std::logic_error("recipe schema has no section '" + section + "'");
}

bool IsPlannedPass(const std::string& name) {
  auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
  return name == "prune-structured" || starts("distill") || starts("sparsify") || name == "qat" ||
         name == "quantize-aware-training";
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

namespace {
std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}
}  // namespace

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool ParseSize(const std::string& text, int64_t* out) {
  std::string s = Trim(text);
  if (s.empty() || s[0] == '-' || s[0] == '+') return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno || end == s.c_str() || !std::isfinite(v) || v < 0) return false;
  std::string unit = Lower(Trim(end));
  static const std::vector<std::pair<std::string, double>> units = {
      {"", 1},         {"b", 1},    {"k", 1e3},           {"kb", 1e3},           {"ki", 1024.0},
      {"kib", 1024.0}, {"m", 1e6},  {"mb", 1e6},          {"mi", 1048576.0},     {"mib", 1048576.0},
      {"g", 1e9},      {"gb", 1e9}, {"gi", 1073741824.0}, {"gib", 1073741824.0},
  };
  for (const auto& [name, mult] : units) {
    if (unit != name) continue;
    double bytes = std::round(v * mult);
    if (bytes > 4.0e18) return false;
    *out = static_cast<int64_t>(bytes);
    return true;
  }
  return false;
}

void EraseUnder(Locations* loc, const std::string& prefix) {
  for (auto it = loc->lower_bound(prefix); it != loc->end() && it->first.rfind(prefix, 0) == 0;)
    it = loc->erase(it);
}

std::string FileReader::Where(const YAML::Node& n) const {
  YAML::Mark m = n.Mark();
  if (m.is_null()) return file_;
  return fmt::format("{}:{}:{}", file_, m.line + 1, m.column + 1);
}

void FileReader::Fail(const YAML::Node& n, const std::string& msg) const {
  ThrowInvalid(Where(n) + ": " + msg);
}

void FileReader::CheckKeys(const YAML::Node& map, const std::string& section) const {
  const std::vector<std::string>& keys = KeysOf(section);
  std::set<std::string> seen;
  std::string in = section.empty() ? "" : " in '" + section + "'";
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) Fail(kv.first, "a key" + in + " must be a plain name");
    std::string k = kv.first.Scalar();
    if (!seen.insert(k).second) Fail(kv.first, "key '" + k + "'" + in + " given twice");
    if (std::find(keys.begin(), keys.end(), k) != keys.end()) continue;
    std::string hint;
    std::string near = passes::Nearest(k, keys);
    if (!near.empty()) hint = " (did you mean '" + near + "'?)";
    for (const auto& [other, other_keys] : Schema()) {  // a key at the wrong level
      if (!hint.empty() || other == section || other.find('[') != std::string::npos) continue;
      if (std::find(other_keys.begin(), other_keys.end(), k) != other_keys.end())
        hint = " (did you mean '" + (other.empty() ? k : other + "." + k) + "'? '" + k +
               "' belongs " + (other.empty() ? "at the top level" : "in '" + other + "'") + ")";
    }
    if (hint.empty()) hint = "; valid keys: " + Join(keys);
    Fail(kv.first, "unknown key '" + k + "'" + in + hint);
  }
}

bool FileReader::Section(const YAML::Node& root, const std::string& key, YAML::Node* out) const {
  YAML::Node n = root[key];
  if (!n || n.IsNull()) return false;
  if (!n.IsMap()) Fail(n, "'" + key + "' must be a map of keys, got " + Kind(n));
  CheckKeys(n, key);
  *out = n;
  return true;
}

std::string FileReader::Kind(const YAML::Node& n) {
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  if (n.IsNull()) return "nothing";
  return "'" + n.Scalar() + "'";
}

std::string FileReader::Scalar(const YAML::Node& n, const std::string& path,
                               const char* what) const {
  if (!n.IsScalar()) Fail(n, "'" + path + "' must be " + what + ", got " + Kind(n));
  // YAML allows only printable characters (plus tab and line breaks); yaml-cpp passes
  // others through, and a NUL would cut RecipeToYaml's output short. A carriage return
  // only reaches a scalar alone (CR LF is a line break, also inside block scalars) or
  // escaped, and yaml-cpp's emitter writes it raw, where it reads back as a line end.
  for (unsigned char c : n.Scalar()) {
    if (c == '\r')
      Fail(n, "'" + path +
                  "' contains a carriage return (0x0d) that is not part of a "
                  "CR LF line break");
    if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
      Fail(n, "'" + path + "' contains the control character " + fmt::format("0x{:02x}", c) +
                  " (not allowed in YAML)");
  }
  // YAML text is UTF-8: yaml-cpp's emitter decodes an invalid or overlong sequence (C0 92
  // is an overlong U+0012) into a character the reader then refuses (fuzz finding 6).
  const std::string& t = n.Scalar();
  for (size_t i = 0; i < t.size();) {
    const unsigned char c = static_cast<unsigned char>(t[i]);
    const size_t len = c < 0x80         ? 1
                       : (c >> 5) == 6  ? 2
                       : (c >> 4) == 14 ? 3
                       : (c >> 3) == 30 ? 4
                                        : 0;
    bool ok = len > 0 && i + len <= t.size() && !(len == 2 && c < 0xc2) && !(c > 0xf4);
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(t[i + k]) & 0xc0) == 0x80;
    if (ok && len == 3) {
      const unsigned char c1 = static_cast<unsigned char>(t[i + 1]);
      ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);  // overlong, surrogates
    }
    if (ok && len == 4) {
      const unsigned char c1 = static_cast<unsigned char>(t[i + 1]);
      ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);  // overlong, > U+10FFFF
    }
    if (!ok)
      Fail(n, "'" + path + "' is not valid UTF-8 (byte " + std::to_string(i) + ": " +
                  fmt::format("0x{:02x}", c) + ")");
    i += len;
  }
  return n.Scalar();
}

std::string FileReader::String(const YAML::Node& n, const std::string& path) const {
  if (n.IsNull()) return "";
  return Scalar(n, path, "a string");
}

bool FileReader::Bool(const YAML::Node& n, const std::string& path) const {
  std::string s = Lower(Scalar(n, path, "true or false"));
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  Fail(n, "'" + path + "' must be true or false, got '" + n.Scalar() + "'");
}

int64_t FileReader::Int(const YAML::Node& n, const std::string& path, int64_t min,
                        int64_t max) const {
  std::string s = Scalar(n, path, "an integer");
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || errno || *end) Fail(n, "'" + path + "' must be an integer, got '" + s + "'");
  if (v < min || v > max)
    Fail(n,
         "'" + path + "' must be " +
             (max == INT64_MAX ? ">= " + std::to_string(min)
                               : "in [" + std::to_string(min) + ", " + std::to_string(max) + "]") +
             ", got " + s);
  return v;
}

double FileReader::Float(const YAML::Node& n, const std::string& path, double min,
                         bool min_exclusive, double max) const {
  std::string s = Scalar(n, path, "a number");
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || errno || *end || !std::isfinite(v))
    Fail(n, "'" + path + "' must be a number, got '" + s + "'");
  if (min_exclusive ? v <= min : v < min)
    Fail(n, fmt::format("'{}' must be {} {}, got {}", path, min_exclusive ? ">" : ">=", min, s));
  if (v > max) Fail(n, fmt::format("'{}' must be <= {}, got {}", path, max, s));
  return v;
}

std::string FileReader::Enum(const YAML::Node& n, const std::string& path,
                             const std::vector<std::string>& choices,
                             const std::map<std::string, std::string>& aliases) const {
  std::string s = Scalar(n, path, "a name");
  if (std::find(choices.begin(), choices.end(), s) != choices.end()) return s;
  std::string near = passes::Nearest(s, choices);
  auto alias = aliases.find(Lower(s));
  if (alias != aliases.end()) near = alias->second;
  Fail(n, "'" + path + "' must be one of " + Join(choices) + ", got '" + s + "'" +
              (near.empty() ? "" : " (did you mean '" + near + "'?)"));
}

std::vector<std::string> FileReader::Layout(const YAML::Node& n, const std::string& path) const {
  if (!n.IsMap())
    Fail(n, "'" + path +
                "' must be a map of input name to batched, stacked, constant or auto, got " +
                Kind(n));
  std::vector<std::string> specs;
  for (const auto& kv : n) {
    std::string name = Scalar(kv.first, path, "an input name");
    specs.push_back(name + "=" +
                    Enum(kv.second, path + "." + name, {"batched", "stacked", "constant", "auto"}));
  }
  return specs;
}

int64_t FileReader::Size(const YAML::Node& n, const std::string& path) const {
  std::string s = Scalar(n, path, "a size");
  int64_t v = 0;
  if (!ParseSize(s, &v))
    Fail(n, "'" + path +
                "' must be a size in bytes (1500000, \"1.5MB\", \"2 MiB\", "
                "\"500kB\"), got '" +
                s + "'");
  if (v <= 0) Fail(n, "'" + path + "' must be > 0 bytes, got '" + s + "'");
  return v;
}

std::string FileReader::OptionText(const YAML::Node& n, const std::string& what) const {
  if (n.IsScalar()) return n.Scalar();
  if (n.IsSequence()) {
    std::vector<std::string> items;
    for (const auto& item : n) {
      if (!item.IsScalar()) Fail(item, what + ": list items must be plain values");
      items.push_back(item.Scalar());
    }
    return Join(items, ",");
  }
  Fail(n, what + " needs a value (a number, name, true/false or a list), got " + Kind(n));
}

const passes::PassEntry& FileReader::Pass(const YAML::Node& n, const std::string& name) const {
  if (const passes::PassEntry* e = FindCompressStep(name)) return *e;
  if (IsPlannedPass(name))
    Fail(n, "pass '" + name +
                "' does not exist yet (planned); `edgepress passes` lists the "
                "passes this version has");
  std::vector<std::string> names;
  for (const auto& e : passes::AllPasses()) names.push_back(e.info.name);
  names.push_back("distill");  // the compress step (tools/compress/compress_distill.h)
  std::string near = passes::Nearest(name, names);
  Fail(n, "unknown pass '" + name + "'" + (near.empty() ? "" : " (did you mean '" + near + "'?)") +
              "; `edgepress passes` lists the passes this version has");
}

void FileReader::CheckOption(const passes::PassEntry& e, const YAML::Node& key,
                             const std::string& option, const YAML::Node& value,
                             const std::string& text) const {
  std::vector<std::string> names;
  for (const auto& o : e.info.options) names.push_back(o.name);
  if (std::find(names.begin(), names.end(), option) == names.end()) {
    std::string near = passes::Nearest(option, names);
    Fail(key, "pass '" + e.info.name + "' has no option '" + option + "'" +
                  (near.empty()
                       ? (names.empty() ? " (it has no options)" : "; its options: " + Join(names))
                       : " (did you mean '" + near + "'?)"));
  }
  try {
    passes::ParseOptions(e.info, {{option, text}});
  } catch (const Error& err) {
    Fail(value, err.what());
  }
}

}  // namespace edgepress::tools::recipe_detail
