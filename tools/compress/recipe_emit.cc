// RecipeToYaml: the resolved recipe (after `extends:`) written back as YAML, which loads
// again to the same Recipe (`edgepress recipe show`, the report's provenance).
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "ir/error.h"
#include "passes/registry.h"
#include "tools/compress/compress_distill.h"
#include "tools/compress/recipe.h"
#include "tools/compress/recipe_reader.h"

namespace edgepress::tools {

namespace {

using recipe_detail::Join;

std::string Num(double v) { return fmt::format("{}", v); }
std::string Samples(int64_t n) { return n < 0 ? "all" : std::to_string(n); }

void EmitLayout(YAML::Emitter& out, const std::vector<std::string>& specs) {
  if (specs.empty()) return;
  out << YAML::Key << "layout" << YAML::Value << YAML::BeginMap;
  for (const std::string& spec : specs) {
    size_t eq = spec.find('=');
    out << YAML::Key << spec.substr(0, eq) << YAML::Value << spec.substr(eq + 1);
  }
  out << YAML::EndMap;
}

// A pass option's value; list-typed options (comma- or |-separated) as YAML lists again.
void EmitOptionValue(YAML::Emitter& out, const std::string& pass, const std::string& option,
                     const std::string& value) {
  const passes::PassEntry* e = FindCompressStep(pass);
  bool is_list = false;
  if (e)
    for (const auto& o : e->info.options)
      is_list |= o.name == option && o.type == passes::OptionInfo::Type::kStringList;
  if (!is_list) {
    out << value;
    return;
  }
  out << YAML::Flow << YAML::BeginSeq;
  std::string cur;
  for (char c : value + ",") {
    if (c == ',' || c == '|') {
      if (!cur.empty()) out << cur;
      cur.clear();
    } else {
      cur += c;
    }
  }
  out << YAML::EndSeq;
}

void EmitTarget(YAML::Emitter& out, const Recipe& r) {
  out << YAML::Key << "target" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << r.target.name;
  out << YAML::Key << "arch" << YAML::Value << r.target.arch;
  out << YAML::Key << "backend" << YAML::Value << r.target.backend;
  out << YAML::Key << "device" << YAML::Value << r.target.device;
  out << YAML::Key << "isa" << YAML::Value << r.target.isa;
  out << YAML::Key << "threads" << YAML::Value << r.target.threads;
  out << YAML::Key << "memory_mb" << YAML::Value << r.target.memory_mb;
  out << YAML::EndMap;
}

// Only the budgets the recipe sets.
void EmitBudgets(YAML::Emitter& out, const Recipe& r) {
  out << YAML::Key << "budgets" << YAML::Value << YAML::BeginMap;
  const auto& b = r.budgets;
  auto budget = [&](const char* key, const std::optional<double>& v) {
    if (v) out << YAML::Key << key << YAML::Value << Num(*v);
  };
  budget("max_accuracy_drop", b.max_accuracy_drop);
  budget("max_accuracy_drop_relative", b.max_accuracy_drop_relative);
  budget("max_latency_p50_ms", b.max_latency_p50_ms);
  budget("max_latency_p99_ms", b.max_latency_p99_ms);
  if (b.max_size_bytes) out << YAML::Key << "max_size_bytes" << YAML::Value << *b.max_size_bytes;
  budget("max_size_ratio", b.max_size_ratio);
  budget("min_speedup", b.min_speedup);
  out << YAML::EndMap;
}

// A step without options as its bare pass name, else `pass: {option: value, ...}`.
void EmitPipeline(YAML::Emitter& out, const Recipe& r) {
  out << YAML::Key << "pipeline" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : r.pipeline) {
    if (s.options.empty()) {
      out << s.pass;
      continue;
    }
    out << YAML::BeginMap << YAML::Key << s.pass << YAML::Value << YAML::Flow << YAML::BeginMap;
    for (const auto& [k, v] : s.options) {
      out << YAML::Key << k << YAML::Value;
      EmitOptionValue(out, s.pass, k, v);
    }
    out << YAML::EndMap << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void EmitData(YAML::Emitter& out, const Recipe& r) {
  out << YAML::Key << "calibration" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "data" << YAML::Value << r.calibration.data;
  out << YAML::Key << "method" << YAML::Value << r.calibration.method;
  out << YAML::Key << "max_samples" << YAML::Value << Samples(r.calibration.max_samples);
  EmitLayout(out, r.calibration.layout);
  out << YAML::EndMap;

  const auto& e = r.evaluation;
  out << YAML::Key << "evaluation" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "metric" << YAML::Value << e.metric;
  out << YAML::Key << "k" << YAML::Value << e.k;
  out << YAML::Key << "data" << YAML::Value << e.data;
  out << YAML::Key << "input" << YAML::Value << e.input;
  out << YAML::Key << "label" << YAML::Value << e.label;
  out << YAML::Key << "output" << YAML::Value << e.output;
  out << YAML::Key << "max_samples" << YAML::Value << Samples(e.max_samples);
  out << YAML::Key << "latency_runs" << YAML::Value << e.latency_runs;
  out << YAML::Key << "warmup_runs" << YAML::Value << e.warmup_runs;
  EmitLayout(out, e.layout);
  out << YAML::EndMap;
}

void EmitExport(YAML::Emitter& out, const Recipe& r) {
  out << YAML::Key << "export" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "epk" << YAML::Value << r.exports.epk;
  out << YAML::Key << "onnx" << YAML::Value << r.exports.onnx;
  out << YAML::Key << "pt" << YAML::Value << r.exports.pt;
  out << YAML::EndMap;
}

// The tuning limits and each step's overrides as `pass.option: value`.
void EmitTuning(YAML::Emitter& out, const Recipe& r) {
  const auto& t = r.tuning;
  out << YAML::Key << "tuning" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "max_trials" << YAML::Value << t.max_trials;
  out << YAML::Key << "max_minutes" << YAML::Value << Num(t.max_minutes);
  out << YAML::Key << "objective" << YAML::Value << t.objective;
  out << YAML::Key << "allow_slower" << YAML::Value << t.allow_slower;
  out << YAML::Key << "steps" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : t.steps) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << s.name;
    out << YAML::Key << "set" << YAML::Value << YAML::Flow << YAML::BeginMap;
    for (const auto& o : s.overrides) {
      out << YAML::Key << o.pass + "." + o.option << YAML::Value;
      EmitOptionValue(out, o.pass, o.option, o.value);
    }
    out << YAML::EndMap << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::EndMap;
}

}  // namespace

std::string RecipeToYaml(const Recipe& r) {
  YAML::Emitter out;
  out.SetIndent(2);
  std::string header = "edgepress recipe '" + r.name + "', resolved";
  if (!r.extends_chain.empty()) header += " (extends " + Join(r.extends_chain, " <- ") + ")";
  out << YAML::Comment(header);
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << r.name;
  out << YAML::Key << "description" << YAML::Value << r.description;
  out << YAML::Key << "seed" << YAML::Value << r.seed;
  EmitTarget(out, r);
  EmitBudgets(out, r);
  EmitPipeline(out, r);
  EmitData(out, r);
  EmitExport(out, r);
  EmitTuning(out, r);
  out << YAML::EndMap;
  // The emitter stops at the first value it cannot write; never hand out half a recipe.
  if (!out.good())
    throw Error(ErrorCode::kInternal,
                "recipe '" + r.name + "' cannot be written as YAML: " + out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

}  // namespace edgepress::tools
