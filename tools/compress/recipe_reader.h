// Internal to tools/compress: the reader of one recipe file, shared by recipe.cc (loading,
// `extends:`, whole-recipe checks), recipe_reader.cc (the schema and the checks of single
// values) and recipe_apply.cc (applying a file's sections on top of its base's values).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tools/compress/recipe.h"

namespace edgepress::passes {
struct PassEntry;
}

namespace edgepress::tools::recipe_detail {

// Where each applied value came from ("file:line:col"), by key path ("target.isa",
// "pipeline[2]", "tuning.steps[0].set[1]"), for the checks that run after extends.
using Locations = std::map<std::string, std::string>;
// Forgets the locations of every key path under `prefix` (a list that was replaced).
void EraseUnder(Locations* loc, const std::string& prefix);

// The schema: the keys of each map. "" is the top level.
const std::vector<std::pair<std::string, std::vector<std::string>>>& Schema();
const std::vector<std::string>& KeysOf(const std::string& section);
// Passes the roadmap names that this version does not have yet; a recipe naming one gets
// "does not exist yet (planned)" instead of a guess at a similar name. Only consulted for
// names the pass registry lacks, so a pass that lands there is valid at once.
bool IsPlannedPass(const std::string& name);
std::string Join(const std::vector<std::string>& v, const char* sep = ", ");
std::string Lower(std::string s);
// "1500000", "1.5MB", "2 MiB", "500kB", "64k": decimal units are powers of 1000, *iB of 1024.
bool ParseSize(const std::string& text, int64_t* out);

// Reads one file's YAML nodes into a Recipe; every error names file:line:col and the key.
class FileReader {
 public:
  explicit FileReader(std::string file) : file_(std::move(file)) {}

  std::string Where(const YAML::Node& n) const;
  [[noreturn]] void Fail(const YAML::Node& n, const std::string& msg) const;
  // Every key of `map` must be in the schema's section; no key twice.
  void CheckKeys(const YAML::Node& map, const std::string& section) const;
  // A section map; null (an empty `budgets:`) counts as empty.
  bool Section(const YAML::Node& root, const std::string& key, YAML::Node* out) const;
  static std::string Kind(const YAML::Node& n);
  std::string Scalar(const YAML::Node& n, const std::string& path, const char* what) const;
  std::string String(const YAML::Node& n, const std::string& path) const;
  bool Bool(const YAML::Node& n, const std::string& path) const;
  int64_t Int(const YAML::Node& n, const std::string& path, int64_t min,
              int64_t max = INT64_MAX) const;
  // A number in (min, max] when min_exclusive, else [min, max].
  double Float(const YAML::Node& n, const std::string& path, double min, bool min_exclusive,
               double max = 1e300) const;
  std::string Enum(const YAML::Node& n, const std::string& path,
                   const std::vector<std::string>& choices,
                   const std::map<std::string, std::string>& aliases = {}) const;
  // `layout: {input_name: batched|stacked|constant|auto}` as "name=kind" specs.
  std::vector<std::string> Layout(const YAML::Node& n, const std::string& path) const;
  int64_t Size(const YAML::Node& n, const std::string& path) const;
  // The text form of an option value: scalars as written, lists joined with ','.
  std::string OptionText(const YAML::Node& n, const std::string& what) const;
  // The pass named by `n`, or an error that says why there is none.
  const passes::PassEntry& Pass(const YAML::Node& n, const std::string& name) const;
  // Checks one option of a pass: its name (key node) and its value (value node).
  void CheckOption(const passes::PassEntry& e, const YAML::Node& key, const std::string& option,
                   const YAML::Node& value, const std::string& text) const;
  void Apply(const YAML::Node& root, Recipe* r, Locations* loc) const;

 private:
  int64_t Samples(const YAML::Node& n, const std::string& path) const;
  // One recipe section each, merged into *r (Apply's phases).
  void ApplySeed(const YAML::Node& n, Recipe* r) const;
  void ApplyTarget(const YAML::Node& sec, Recipe* r, Locations* loc) const;
  void ApplyBudgets(const YAML::Node& sec, Recipe* r) const;
  void ApplyCalibration(const YAML::Node& sec, Recipe* r) const;
  void ApplyEvaluation(const YAML::Node& sec, Recipe* r, Locations* loc) const;
  void ApplyTuning(const YAML::Node& sec, Recipe* r, Locations* loc) const;
  std::vector<RecipeStep> Pipeline(const YAML::Node& seq, Locations* loc) const;
  // steps:
  //   - name: keep the most sensitive layer in float
  //     set: {quantize-static.keep-float: 1}          # pass.option: value
  //   - set: {quantize-static: {method: entropy}}      # or pass: {option: value}
  std::vector<TuningStep> Steps(const YAML::Node& seq, Locations* loc) const;

  std::string file_;
};

}  // namespace edgepress::tools::recipe_detail
