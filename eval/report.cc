#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "eval/report_text.h"
#include "ir/error.h"

namespace edgepress::eval {

using namespace report_text;  // NOLINT: the report writers' shared formatting

namespace {

using Json = nlohmann::ordered_json;

// Non-finite numbers have no JSON form: they are written as null.
Json Num(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json MeasurementJson(const ModelMeasurement& m) {
  Json j;
  j["size_bytes"] = m.size_bytes;
  j["nodes"] = m.nodes;
  j["latency_ms"] = {{"p50", Num(m.latency_p50_ms)},
                     {"p90", Num(m.latency_p90_ms)},
                     {"p99", Num(m.latency_p99_ms)},
                     {"mean", Num(m.latency_mean_ms)},
                     {"runs", m.latency_runs}};
  j["metric"] = m.metric ? Num(*m.metric) : Json(nullptr);
  j["params"] = m.params;
  j["nonzero_params"] = m.nonzero_params;
  j["macs"] = m.macs;
  j["nonzero_macs"] = m.nonzero_macs;
  return j;
}

Json BudgetJson(const BudgetResult& b) {
  return Json{{"name", b.name},         {"unit", b.unit},     {"op", b.op},
              {"limit", Num(b.limit)},  {"measured", Num(b.measured)},
              {"passed", b.passed},     {"margin", Num(b.margin)}, {"timing", b.timing}};
}

Json VsOriginalJson(const VsOriginal& v) {
  return Json{{"original_p50_ms", Num(v.original_p50_ms)},
              {"p50_ms", Num(v.p50_ms)},
              {"ratio", Num(v.ratio)},
              {"ratio_low", Num(v.ratio_low)},
              {"ratio_high", Num(v.ratio_high)},
              {"coverage", Num(v.coverage)},
              {"tolerance", Num(v.tolerance)},
              {"limit", Num(v.limit)},
              {"rounds", v.rounds},
              {"runs_per_round", v.runs_per_round},
              {"slower", v.slower}};
}

Json ProfileJson(const ModelProfile& p) {
  Json ops = Json::array();
  for (const OpTime& o : p.op_types)
    ops.push_back({{"op", o.op}, {"nodes", o.nodes}, {"ms", Num(o.ms)}, {"share", Num(o.share)},
                   {"kernels", o.kernels}});
  return Json{{"runs", p.runs}, {"run_ms", Num(p.run_ms)}, {"op_types", ops}};
}

Json OptionsJson(const std::vector<std::pair<std::string, std::string>>& o) {
  Json j = Json::object();
  for (const auto& [k, v] : o) j[k] = v;
  return j;
}

Json InputJson(const Report::Input& in) {
  return Json{{"path", in.path}, {"sha256", in.sha256}, {"bytes", in.bytes}};
}

// ---- reading -------------------------------------------------------------------------

struct Reader {
  const std::string& file;
  [[noreturn]] void Fail(const std::string& field, const std::string& what) const {
    ThrowInvalid(file + ": field '" + field + "': " + what);
  }
  const Json& Get(const Json& j, const std::string& key, const std::string& path) const {
    if (!j.is_object()) Fail(path, "expected an object");
    auto it = j.find(key);
    if (it == j.end()) Fail(path + "." + key, "missing");
    return *it;
  }
  double Double(const Json& j, const std::string& key, const std::string& path) const {
    const Json& v = Get(j, key, path);
    if (v.is_null()) return NAN;
    if (!v.is_number()) Fail(path + "." + key, "expected a number");
    return v.get<double>();
  }
  int64_t Int(const Json& j, const std::string& key, const std::string& path) const {
    const Json& v = Get(j, key, path);
    if (!v.is_number_integer()) Fail(path + "." + key, "expected an integer");
    return v.get<int64_t>();
  }
  std::string Str(const Json& j, const std::string& key, const std::string& path) const {
    const Json& v = Get(j, key, path);
    if (!v.is_string()) Fail(path + "." + key, "expected a string");
    return v.get<std::string>();
  }
  bool Bool(const Json& j, const std::string& key, const std::string& path) const {
    const Json& v = Get(j, key, path);
    if (!v.is_boolean()) Fail(path + "." + key, "expected true or false");
    return v.get<bool>();
  }
  const Json& Array(const Json& j, const std::string& key, const std::string& path) const {
    const Json& v = Get(j, key, path);
    if (!v.is_array()) Fail(path + "." + key, "expected an array");
    return v;
  }
  ModelMeasurement Measurement(const Json& j, const std::string& path) const {
    ModelMeasurement m;
    m.size_bytes = Int(j, "size_bytes", path);
    m.nodes = Int(j, "nodes", path);
    const Json& l = Get(j, "latency_ms", path);
    m.latency_p50_ms = Double(l, "p50", path + ".latency_ms");
    m.latency_p90_ms = Double(l, "p90", path + ".latency_ms");
    m.latency_p99_ms = Double(l, "p99", path + ".latency_ms");
    m.latency_mean_ms = Double(l, "mean", path + ".latency_ms");
    m.latency_runs = Int(l, "runs", path + ".latency_ms");
    if (!Get(j, "metric", path).is_null()) m.metric = Double(j, "metric", path);
    // Added within schema 1; reports written before them read as 0 (not measured).
    if (j.contains("params")) m.params = Int(j, "params", path);
    if (j.contains("nonzero_params")) m.nonzero_params = Int(j, "nonzero_params", path);
    if (j.contains("macs")) m.macs = Int(j, "macs", path);
    if (j.contains("nonzero_macs")) m.nonzero_macs = Int(j, "nonzero_macs", path);
    return m;
  }
  VsOriginal Vs(const Json& j, const std::string& path) const {
    VsOriginal v;
    v.original_p50_ms = Double(j, "original_p50_ms", path);
    v.p50_ms = Double(j, "p50_ms", path);
    v.ratio = Double(j, "ratio", path);
    v.ratio_low = Double(j, "ratio_low", path);
    v.ratio_high = Double(j, "ratio_high", path);
    v.coverage = Double(j, "coverage", path);
    v.tolerance = Double(j, "tolerance", path);
    v.limit = Double(j, "limit", path);
    v.rounds = static_cast<int>(Int(j, "rounds", path));
    v.runs_per_round = static_cast<int>(Int(j, "runs_per_round", path));
    v.slower = Bool(j, "slower", path);
    return v;
  }
  ModelProfile Profile(const Json& j, const std::string& path) const {
    ModelProfile p;
    p.runs = Int(j, "runs", path);
    p.run_ms = Double(j, "run_ms", path);
    for (const Json& o : Array(j, "op_types", path)) {
      OpTime t;
      const std::string at = path + ".op_types[]";
      t.op = Str(o, "op", at);
      t.nodes = Int(o, "nodes", at);
      t.ms = Double(o, "ms", at);
      t.share = Double(o, "share", at);
      for (const Json& k : Array(o, "kernels", at)) {
        if (!k.is_string()) Fail(at + ".kernels[]", "expected a string");
        t.kernels.push_back(k.get<std::string>());
      }
      p.op_types.push_back(std::move(t));
    }
    return p;
  }
  BudgetResult Budget(const Json& j, const std::string& path) const {
    BudgetResult b;
    b.name = Str(j, "name", path);
    b.unit = Str(j, "unit", path);
    b.op = Str(j, "op", path);
    b.limit = Double(j, "limit", path);
    b.measured = Double(j, "measured", path);
    b.passed = Bool(j, "passed", path);
    b.margin = Double(j, "margin", path);
    b.timing = Bool(j, "timing", path);
    return b;
  }
  Report::Input Input(const Json& j, const std::string& path) const {
    return {Str(j, "path", path), Str(j, "sha256", path), Int(j, "bytes", path)};
  }
  std::vector<std::pair<std::string, std::string>> Options(const Json& j,
                                                           const std::string& path) const {
    if (!j.is_object()) Fail(path, "expected an object");
    std::vector<std::pair<std::string, std::string>> o;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it.value().is_string()) Fail(path + "." + it.key(), "expected a string");
      o.emplace_back(it.key(), it.value().get<std::string>());
    }
    return o;
  }
};

}  // namespace

std::string BudgetResult::Message() const {
  std::string cmp = passed ? op : (op == "<=" ? ">" : "<");
  std::string s = "measured " + Value(unit, measured) + " " + cmp + " limit " + Value(unit, limit);
  if (!passed) s += " (missed by " + Value(unit, std::fabs(margin)) + ")";
  return s;
}

std::string ReportToJson(const Report& r) {
  Json j;
  j["schema_version"] = r.schema_version;
  j["tool"] = {{"name", "edgepress"}, {"version", r.tool_version}};
  j["status"] = r.status;
  j["exit_code"] = r.exit_code;
  j["reasons"] = r.reasons;
  Json calib = Json::array();
  for (const auto& c : r.calibration) calib.push_back(InputJson(c));
  j["provenance"] = {{"model", InputJson(r.model)},
                     {"recipe", {{"name", r.recipe_name}, {"path", r.recipe.path},
                                 {"sha256", r.recipe.sha256}, {"bytes", r.recipe.bytes}}},
                     {"calibration", {{"sha256", r.calibration_sha256}, {"files", calib}}},
                     {"evaluation", InputJson(r.evaluation)},
                     {"seed", r.seed}};
  j["target"] = {{"name", r.target.name},       {"arch", r.target.arch},
                 {"backend", r.target.backend}, {"device", r.target.device}, {"isa", r.target.isa},
                 {"threads", r.target.threads}, {"host_cpu", r.target.host_cpu}};
  j["evaluation"] = {{"metric", r.metric},
                     {"higher_is_better", r.metric_higher_is_better},
                     {"samples", r.eval_samples}};
  j["baseline"] = MeasurementJson(r.baseline);
  j["compressed"] = MeasurementJson(r.compressed);
  Json budgets = Json::array();
  for (const auto& b : r.budgets) budgets.push_back(BudgetJson(b));
  j["budgets"] = budgets;
  Json passes = Json::array();
  for (const auto& p : r.passes) {
    Json stats = Json::object();
    for (const auto& [k, v] : p.stats) stats[k] = v;
    passes.push_back({{"pass", p.pass},
                      {"options", OptionsJson(p.options)},
                      {"changed", p.changed},
                      {"stats", stats},
                      {"seconds", Num(p.seconds)}});
    if (!p.details.empty()) passes.back()["details"] = Json::parse(p.details, nullptr, false);
  }
  j["passes"] = passes;
  Json layers = Json::array();
  for (const auto& l : r.layers)
    layers.push_back({{"name", l.name}, {"op", l.op}, {"nmse", Num(l.nmse)}, {"cosine", Num(l.cosine)}});
  j["layers"] = layers;
  Json trials = Json::array();
  for (const auto& t : r.trials) {
    Json ov = Json::array();
    for (const auto& o : t.overrides)
      ov.push_back({{"pass", o.pass}, {"option", o.option}, {"value", o.value}});
    Json tb = Json::array();
    for (const auto& b : t.budgets) tb.push_back(BudgetJson(b));
    trials.push_back({{"index", t.index},
                      {"name", t.name},
                      {"overrides", ov},
                      {"result", MeasurementJson(t.result)},
                      {"budgets", tb},
                      {"passed", t.passed},
                      {"chosen", t.chosen},
                      {"error", t.error},
                      {"seconds", Num(t.seconds)}});
    if (t.vs_original) trials.back()["vs_original"] = VsOriginalJson(*t.vs_original);
  }
  j["trials"] = trials;
  Json rejected = Json::array();
  for (const auto& x : r.rejected_slower)
    rejected.push_back({{"trial", x.trial}, {"name", x.name}, {"message", x.message}});
  j["rejected_slower"] = rejected;
  if (r.original_profile.runs || r.compressed_profile.runs)
    j["profile"] = {{"original", ProfileJson(r.original_profile)},
                    {"compressed", ProfileJson(r.compressed_profile)}};
  Json artifacts = Json::array();
  for (const auto& a : r.artifacts)
    artifacts.push_back({{"path", a.path}, {"sha256", a.sha256}, {"bytes", a.bytes}});
  j["artifacts"] = artifacts;
  Json regs = Json::array();
  for (const auto& g : r.regressions)
    regs.push_back({{"field", g.field},
                    {"baseline", Num(g.baseline)},
                    {"current", Num(g.current)},
                    {"tolerance", Num(g.tolerance)},
                    {"message", g.message}});
  j["comparison"] = {{"baseline_report", r.baseline_report}, {"regressions", regs}};
  j["notes"] = r.notes;
  j["duration_s"] = Num(r.duration_s);
  return j.dump(2) + "\n";
}

Report ReportFromJson(const std::string& text, const std::string& name) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    ThrowInvalid(name + ": not valid JSON: " + e.what());
  }
  Reader rd{name};
  Report r;
  r.schema_version = static_cast<int>(rd.Int(j, "schema_version", ""));
  if (r.schema_version < 1 || r.schema_version > kReportSchemaVersion)
    rd.Fail("schema_version", "version " + std::to_string(r.schema_version) +
                                  " is not supported (this edgepress reads 1.." +
                                  std::to_string(kReportSchemaVersion) + ")");
  r.tool_version = rd.Str(rd.Get(j, "tool", ""), "version", "tool");
  r.status = rd.Str(j, "status", "");
  r.exit_code = static_cast<int>(rd.Int(j, "exit_code", ""));
  for (const Json& s : rd.Array(j, "reasons", "")) r.reasons.push_back(s.is_string() ? s.get<std::string>() : s.dump());
  const Json& prov = rd.Get(j, "provenance", "");
  r.model = rd.Input(rd.Get(prov, "model", "provenance"), "provenance.model");
  const Json& rec = rd.Get(prov, "recipe", "provenance");
  r.recipe = rd.Input(rec, "provenance.recipe");
  r.recipe_name = rd.Str(rec, "name", "provenance.recipe");
  const Json& cal = rd.Get(prov, "calibration", "provenance");
  r.calibration_sha256 = rd.Str(cal, "sha256", "provenance.calibration");
  for (const Json& f : rd.Array(cal, "files", "provenance.calibration"))
    r.calibration.push_back(rd.Input(f, "provenance.calibration.files[]"));
  r.evaluation = rd.Input(rd.Get(prov, "evaluation", "provenance"), "provenance.evaluation");
  r.seed = static_cast<uint64_t>(rd.Int(prov, "seed", "provenance"));
  const Json& t = rd.Get(j, "target", "");
  r.target.name = rd.Str(t, "name", "target");
  r.target.arch = rd.Str(t, "arch", "target");
  r.target.backend = rd.Str(t, "backend", "target");
  // Reports written before the torch backend have no device: they measured on the CPU.
  if (t.contains("device")) r.target.device = rd.Str(t, "device", "target");
  r.target.isa = rd.Str(t, "isa", "target");
  r.target.threads = static_cast<int>(rd.Int(t, "threads", "target"));
  r.target.host_cpu = rd.Str(t, "host_cpu", "target");
  const Json& ev = rd.Get(j, "evaluation", "");
  r.metric = rd.Str(ev, "metric", "evaluation");
  r.metric_higher_is_better = rd.Bool(ev, "higher_is_better", "evaluation");
  r.eval_samples = rd.Int(ev, "samples", "evaluation");
  r.baseline = rd.Measurement(rd.Get(j, "baseline", ""), "baseline");
  r.compressed = rd.Measurement(rd.Get(j, "compressed", ""), "compressed");
  for (const Json& b : rd.Array(j, "budgets", "")) r.budgets.push_back(rd.Budget(b, "budgets[]"));
  for (const Json& p : rd.Array(j, "passes", "")) {
    PassRecord pr;
    pr.pass = rd.Str(p, "pass", "passes[]");
    pr.options = rd.Options(rd.Get(p, "options", "passes[]"), "passes[].options");
    pr.changed = rd.Bool(p, "changed", "passes[]");
    const Json& st = rd.Get(p, "stats", "passes[]");
    if (!st.is_object()) rd.Fail("passes[].stats", "expected an object");
    for (auto it = st.begin(); it != st.end(); ++it) pr.stats[it.key()] = rd.Int(st, it.key(), "passes[].stats");
    pr.seconds = rd.Double(p, "seconds", "passes[]");
    if (p.contains("details")) pr.details = p["details"].dump();
    r.passes.push_back(std::move(pr));
  }
  for (const Json& l : rd.Array(j, "layers", ""))
    r.layers.push_back({rd.Str(l, "name", "layers[]"), rd.Str(l, "op", "layers[]"),
                        rd.Double(l, "nmse", "layers[]"), rd.Double(l, "cosine", "layers[]")});
  for (const Json& tj : rd.Array(j, "trials", "")) {
    Trial tr;
    tr.index = static_cast<int>(rd.Int(tj, "index", "trials[]"));
    tr.name = rd.Str(tj, "name", "trials[]");
    for (const Json& o : rd.Array(tj, "overrides", "trials[]"))
      tr.overrides.push_back({rd.Str(o, "pass", "trials[].overrides[]"),
                              rd.Str(o, "option", "trials[].overrides[]"),
                              rd.Str(o, "value", "trials[].overrides[]")});
    tr.result = rd.Measurement(rd.Get(tj, "result", "trials[]"), "trials[].result");
    for (const Json& b : rd.Array(tj, "budgets", "trials[]")) tr.budgets.push_back(rd.Budget(b, "trials[].budgets[]"));
    tr.passed = rd.Bool(tj, "passed", "trials[]");
    tr.chosen = rd.Bool(tj, "chosen", "trials[]");
    tr.error = rd.Str(tj, "error", "trials[]");
    tr.seconds = rd.Double(tj, "seconds", "trials[]");
    // Added within schema 1 (the "not slower than the original" check): optional.
    if (tj.contains("vs_original")) tr.vs_original = rd.Vs(tj["vs_original"], "trials[].vs_original");
    r.trials.push_back(std::move(tr));
  }
  if (j.contains("rejected_slower"))
    for (const Json& x : rd.Array(j, "rejected_slower", ""))
      r.rejected_slower.push_back({static_cast<int>(rd.Int(x, "trial", "rejected_slower[]")),
                                   rd.Str(x, "name", "rejected_slower[]"),
                                   rd.Str(x, "message", "rejected_slower[]")});
  // Added within schema 1 (per-op-type profile): optional.
  if (j.contains("profile")) {
    const Json& pj = rd.Get(j, "profile", "");
    r.original_profile = rd.Profile(rd.Get(pj, "original", "profile"), "profile.original");
    r.compressed_profile = rd.Profile(rd.Get(pj, "compressed", "profile"), "profile.compressed");
  }
  for (const Json& a : rd.Array(j, "artifacts", ""))
    r.artifacts.push_back({rd.Str(a, "path", "artifacts[]"), rd.Str(a, "sha256", "artifacts[]"),
                           rd.Int(a, "bytes", "artifacts[]")});
  const Json& cmp = rd.Get(j, "comparison", "");
  r.baseline_report = rd.Str(cmp, "baseline_report", "comparison");
  for (const Json& g : rd.Array(cmp, "regressions", "comparison"))
    r.regressions.push_back({rd.Str(g, "field", "comparison.regressions[]"),
                             rd.Double(g, "baseline", "comparison.regressions[]"),
                             rd.Double(g, "current", "comparison.regressions[]"),
                             rd.Double(g, "tolerance", "comparison.regressions[]"),
                             rd.Str(g, "message", "comparison.regressions[]")});
  for (const Json& s : rd.Array(j, "notes", "")) r.notes.push_back(s.is_string() ? s.get<std::string>() : s.dump());
  r.duration_s = rd.Double(j, "duration_s", "");
  return r;
}

std::vector<Regression> FindRegressions(const Report& prev, const Report& cur) {
  std::vector<Regression> out;
  const ModelMeasurement& a = prev.compressed;
  const ModelMeasurement& b = cur.compressed;
  auto rel = [&](const char* field, double before, double now, double tol, const std::string& unit) {
    if (before > 0 && now > before * (1 + tol))
      out.push_back({field, before, now, tol,
                     std::string(field) + " grew from " + Value(unit, before) + " to " + Value(unit, now) +
                         Fmt(" (+%.1f%%, tolerance ", (now / before - 1) * 100) + Fmt("%.0f%%)", tol * 100)});
  };
  rel("size_bytes", static_cast<double>(a.size_bytes), static_cast<double>(b.size_bytes), 0.01, "bytes");
  if (a.latency_runs > 0 && b.latency_runs > 0) {
    rel("latency_p50_ms", a.latency_p50_ms, b.latency_p50_ms, 0.10, "ms");
    rel("latency_p99_ms", a.latency_p99_ms, b.latency_p99_ms, 0.10, "ms");
  }
  if (a.metric && b.metric && prev.metric == cur.metric && !cur.metric.empty()) {
    constexpr double kTol = 0.002;
    double worse = cur.metric_higher_is_better ? *a.metric - *b.metric : *b.metric - *a.metric;
    if (worse > kTol)
      out.push_back({"metric", *a.metric, *b.metric, kTol,
                     cur.metric + " went from " + G(*a.metric) + " to " + G(*b.metric) +
                         " (worse by " + G(worse) + ", tolerance " + G(kTol) + ")"});
  }
  return out;
}

std::string ReportToJunit(const Report& r) {
  int failures = 0;
  for (const auto& b : r.budgets) failures += b.passed ? 0 : 1;
  const bool with_reg = !r.baseline_report.empty();
  const int tests = static_cast<int>(r.budgets.size()) + (with_reg ? 1 : 0);
  const int all_failures = failures + (with_reg && !r.regressions.empty() ? 1 : 0);
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<testsuites name=\"edgepress compress\" tests=\"" + std::to_string(tests) + "\" failures=\"" +
       std::to_string(all_failures) + "\" errors=\"0\">\n";
  s += "  <testsuite name=\"budgets\" tests=\"" + std::to_string(r.budgets.size()) + "\" failures=\"" +
       std::to_string(failures) + "\" errors=\"0\" skipped=\"0\">\n";
  s += "    <properties>\n      <property name=\"model\" value=\"" + Esc(r.model.path) +
       "\"/>\n      <property name=\"recipe\" value=\"" + Esc(r.recipe_name) + "\"/>\n    </properties>\n";
  for (const auto& b : r.budgets) {
    s += "    <testcase classname=\"edgepress.budgets\" name=\"" + Esc(b.name) + "\"";
    if (b.passed) {
      s += "/>\n";
      continue;
    }
    s += ">\n      <failure type=\"budget\" message=\"" + Esc(b.name + ": " + b.Message()) + "\">" +
         Esc("limit " + b.op + " " + Value(b.unit, b.limit) + "\nmeasured " + Value(b.unit, b.measured) +
             "\nmargin " + G(b.margin)) +
         "</failure>\n    </testcase>\n";
  }
  s += "  </testsuite>\n";
  if (with_reg) {
    s += "  <testsuite name=\"regressions\" tests=\"1\" failures=\"" +
         std::to_string(r.regressions.empty() ? 0 : 1) + "\" errors=\"0\" skipped=\"0\">\n";
    s += "    <testcase classname=\"edgepress.regressions\" name=\"against " + Esc(r.baseline_report) + "\"";
    if (r.regressions.empty()) s += "/>\n";
    else {
      std::string msg;
      for (const auto& g : r.regressions) msg += (msg.empty() ? "" : "\n") + g.message;
      s += ">\n      <failure type=\"regression\" message=\"" + Esc(r.regressions.front().message) + "\">" +
           Esc(msg) + "</failure>\n    </testcase>\n";
    }
    s += "  </testsuite>\n";
  }
  s += "</testsuites>\n";
  return s;
}

}  // namespace edgepress::eval
