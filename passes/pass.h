// The pass interface. A pass describes itself once (PassInfo: kebab-case name, one-line
// summary, typed options with defaults and help, statistics counters) and has one entry
// point, Run(), that says whether it changed the model. "Pattern not found" is not an
// error: Run() returns false. The CLI (`edgepress passes`, `apply`), recipes and reports
// all read the same PassInfo.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"

namespace edgepress::passes {

struct OptionInfo {
  enum class Type : uint8_t { kBool, kInt, kFloat, kString, kEnum, kStringList };
  std::string name;
  Type type = Type::kString;
  std::string default_value;         // as text, parsed like user input
  std::string help;
  std::vector<std::string> choices;  // kEnum
  double min = -1e300, max = 1e300;  // kInt/kFloat bounds (inclusive)
};
const char* OptionTypeName(OptionInfo::Type t);
// An OptionInfo in one expression, for the option tables of PassInfo.
OptionInfo Opt(std::string name, OptionInfo::Type type, std::string def, std::string help,
               std::vector<std::string> choices = {}, double min = -1e300, double max = 1e300);

struct PassInfo {
  std::string name;     // kebab-case, e.g. "fold-batchnorm"
  std::string summary;  // one line
  std::vector<OptionInfo> options;
  std::vector<std::string> statistics;  // counter names, in report order
  bool needs_data = false;              // wants calibration data in PassContext
};

// Validated option values of one pass instance. Built from text ("k=v" pairs) or YAML by
// ParseOptions, which checks names (suggesting the nearest valid one), types and bounds.
class PassOptions {
 public:
  bool GetBool(const std::string& name) const;
  int64_t GetInt(const std::string& name) const;
  double GetFloat(const std::string& name) const;
  std::string GetString(const std::string& name) const;
  std::vector<std::string> GetStringList(const std::string& name) const;
  // Values as given or defaulted, in declaration order (for reports and provenance).
  const std::vector<std::pair<std::string, std::string>>& values() const { return values_; }
  const std::string& pass_name() const { return pass_; }

 private:
  friend PassOptions ParseOptions(const PassInfo&, const std::vector<std::pair<std::string, std::string>>&);
  const std::string& Raw(const std::string& name) const;
  std::string pass_;
  std::vector<std::pair<std::string, std::string>> values_;
};

// Throws Error(kInvalidInput) naming the pass and option on an unknown name (with the
// nearest valid name), a value of the wrong type, or one out of range.
PassOptions ParseOptions(const PassInfo& info,
                         const std::vector<std::pair<std::string, std::string>>& given);

// What a pass may use besides the model.
struct PassContext {
  uint64_t seed = 0;
  int threads = 1;
  // Calibration data files (.npz/.npy, or folders of them) for passes with
  // PassInfo::needs_data, and how arrays feed inputs ("NAME=batched|stacked|constant",
  // calibrate::ParseDataLayout; inferred for inputs not named).
  std::vector<std::string> data_files;
  std::vector<std::string> data_layout;
  std::function<void(const std::string&)> log;  // optional progress lines
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual const PassInfo& info() const = 0;
  // Rewrites `model`; returns true when anything changed.
  virtual bool Run(ir::Model& model, PassContext& ctx) = 0;
  const std::map<std::string, int64_t>& stats() const { return stats_; }
  // Optional JSON object with details a report shows (e.g. per-layer sensitivities of a
  // quantization pass); empty when the pass has none.
  virtual std::string Details() const { return {}; }

 protected:
  void Count(const std::string& stat, int64_t n = 1) { stats_[stat] += n; }

 private:
  std::map<std::string, int64_t> stats_;
};

}  // namespace edgepress::passes
