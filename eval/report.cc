#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "eval/report_distill.h"
#include "ir/error.h"

namespace edgepress::eval {

namespace {

using Json = nlohmann::ordered_json;

// Non-finite numbers have no JSON form: they are written as null.
Json Num(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
std::string G(double v) { return Fmt("%.6g", v); }

std::string HumanBytes(double b) {
  if (b >= 1024.0 * 1024) return Fmt("%.2f MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return Fmt("%.1f KiB", b / 1024.0);
  return Fmt("%.0f B", b);
}

std::string Value(const std::string& unit, double v) {
  if (unit == "bytes") return HumanBytes(v) + " (" + Fmt("%.0f", v) + ")";
  if (unit == "ms") return Fmt("%.3f ms", v);
  if (unit == "x") return Fmt("%.3fx", v);
  return G(v);
}

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

// ---- HTML ----------------------------------------------------------------------------

std::string Esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

struct Bar {
  std::string label;
  double value = 0;
  std::string cls;      // CSS class: base, comp, pass, fail
  std::string display;  // text after the bar
};

// A horizontal bar chart. Every bar is a <rect data-value> with its label and value, so
// the numbers survive in the DOM (and in a screen reader's <title>).
std::string BarChart(const std::string& id, const std::string& title, const std::string& unit,
                     const std::vector<Bar>& bars) {
  const int label_w = 220, bar_w = 340, row = 26, top = 30, width = label_w + bar_w + 260;
  const int height = top + row * static_cast<int>(bars.size()) + 10;
  double mx = 0;
  for (const Bar& b : bars)
    if (std::isfinite(b.value)) mx = std::max(mx, std::fabs(b.value));
  std::string s = "<figure>\n<svg data-chart=\"" + Esc(id) + "\" data-unit=\"" + Esc(unit) +
                  "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) +
                  "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " +
                  std::to_string(width) + " " + std::to_string(height) + "\" role=\"img\">\n";
  s += "<title>" + Esc(title) + "</title>\n";
  s += "<text x=\"0\" y=\"18\" class=\"title\">" + Esc(title) + "</text>\n";
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    const int y = top + row * static_cast<int>(i);
    const double frac = mx > 0 && std::isfinite(b.value) ? std::fabs(b.value) / mx : 0;
    const double w = std::max(frac * bar_w, 1.0);
    // Long value names keep their informative end; the full label is in data-label.
    const std::string shown = b.label.size() > 30 ? "..." + b.label.substr(b.label.size() - 27) : b.label;
    s += "<text x=\"" + std::to_string(label_w - 6) + "\" y=\"" + std::to_string(y + 17) +
         "\" text-anchor=\"end\">" + Esc(shown) + "</text>\n";
    s += "<rect class=\"" + Esc(b.cls) + "\" x=\"" + std::to_string(label_w) + "\" y=\"" +
         std::to_string(y + 4) + "\" width=\"" + Fmt("%.2f", w) + "\" height=\"" +
         std::to_string(row - 8) + "\" data-label=\"" + Esc(b.label) + "\" data-value=\"" +
         Fmt("%.9g", b.value) + "\"><title>" + Esc(b.label + ": " + b.display) + "</title></rect>\n";
    s += "<text x=\"" + Fmt("%.2f", label_w + w + 6) + "\" y=\"" + std::to_string(y + 17) +
         "\">" + Esc(b.display) + "</text>\n";
  }
  s += "</svg>\n</figure>\n";
  return s;
}

std::string MetricText(const std::optional<double>& m) { return m ? G(*m) : "n/a"; }

// 1234567 -> "1.23M"; small counts stay exact.
std::string Count(int64_t n) {
  double v = static_cast<double>(n);
  if (n >= 1000000000) return Fmt("%.2fG", v / 1e9);
  if (n >= 1000000) return Fmt("%.2fM", v / 1e6);
  if (n >= 10000) return Fmt("%.1fk", v / 1e3);
  return std::to_string(n);
}
std::string NonZeroText(int64_t nonzero, int64_t total) {
  return Count(nonzero) + " (" + (total > 0 ? Fmt("%.1f%%", 100.0 * (1.0 - double(nonzero) / double(total))) : "n/a") + ")";
}

// The per-op-type profiles of the original and the compressed model side by side: every op
// type of either, the slowest (in either model) first; ms < 0 where a model has no such op.
struct ProfileRow {
  std::string op;
  double original_ms = -1, original_share = 0, compressed_ms = -1, compressed_share = 0;
  std::vector<std::string> kernels;  // of the compressed model
};
std::vector<ProfileRow> ProfileRows(const Report& r) {
  std::vector<ProfileRow> rows;
  auto row = [&](const std::string& op) -> ProfileRow& {
    for (auto& x : rows)
      if (x.op == op) return x;
    rows.push_back({op});
    return rows.back();
  };
  for (const OpTime& o : r.original_profile.op_types) {
    ProfileRow& x = row(o.op);
    x.original_ms = o.ms;
    x.original_share = o.share;
  }
  for (const OpTime& o : r.compressed_profile.op_types) {
    ProfileRow& x = row(o.op);
    x.compressed_ms = o.ms;
    x.compressed_share = o.share;
    x.kernels = o.kernels;
  }
  std::stable_sort(rows.begin(), rows.end(), [](const ProfileRow& a, const ProfileRow& b) {
    return std::max(a.original_ms, a.compressed_ms) > std::max(b.original_ms, b.compressed_ms);
  });
  return rows;
}
std::string MsShare(double ms, double share) {
  return ms < 0 ? "-" : Fmt("%.3f ms", ms) + Fmt(" (%.0f%%)", share);
}
std::string JoinKernels(const std::vector<std::string>& k) {
  std::string s;
  for (const auto& x : k) s += (s.empty() ? "" : ", ") + x;
  return s;
}
constexpr size_t kProfileRows = 15;

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

std::string ReportToMarkdown(const Report& r) {
  std::string s = "# edgepress compress report\n\n";
  s += std::string("**Status: ") + (r.status == "passed" ? "passed" : r.status) + "** (exit code " +
       std::to_string(r.exit_code) + ")\n\n";
  for (const auto& why : r.reasons) s += "- " + why + "\n";
  if (!r.reasons.empty()) s += "\n";
  s += "| | |\n|---|---|\n";
  s += "| model | `" + r.model.path + "` (" + HumanBytes(static_cast<double>(r.model.bytes)) +
       ", sha256 `" + r.model.sha256.substr(0, 16) + "…`) |\n";
  s += "| recipe | " + r.recipe_name + " (`" + r.recipe.path + "`) |\n";
  s += "| target | " + r.target.name + " (" + r.target.arch + ", " + r.target.backend + " on " + r.target.device + ", isa " +
       r.target.isa + ", " + std::to_string(r.target.threads) + " thread(s)) |\n";
  s += "| measured on | " + (r.target.host_cpu.empty() ? "unknown CPU" : r.target.host_cpu) + " |\n";
  if (!r.calibration_sha256.empty())
    s += "| calibration data | sha256 `" + r.calibration_sha256.substr(0, 16) + "…` |\n";
  if (!r.evaluation.path.empty())
    s += "| evaluation data | `" + r.evaluation.path + "` (" + std::to_string(r.eval_samples) +
         " samples) |\n";
  s += "| tool | edgepress " + r.tool_version + ", seed " + std::to_string(r.seed) + " |\n\n";

  s += "## Original vs compressed\n\n| | original | compressed | change |\n|---|---:|---:|---:|\n";
  const auto& a = r.baseline;
  const auto& b = r.compressed;
  s += "| size | " + HumanBytes(static_cast<double>(a.size_bytes)) + " | " +
       HumanBytes(static_cast<double>(b.size_bytes)) + " | " +
       (a.size_bytes ? Fmt("%.3fx", static_cast<double>(b.size_bytes) / static_cast<double>(a.size_bytes)) : "n/a") + " |\n";
  s += "| latency p50 | " + Fmt("%.3f ms", a.latency_p50_ms) + " | " + Fmt("%.3f ms", b.latency_p50_ms) +
       " | " + (b.latency_p50_ms > 0 ? Fmt("%.2fx faster", a.latency_p50_ms / b.latency_p50_ms) : "n/a") + " |\n";
  s += "| latency p99 | " + Fmt("%.3f ms", a.latency_p99_ms) + " | " + Fmt("%.3f ms", b.latency_p99_ms) + " | |\n";
  if (!r.metric.empty())
    s += "| " + r.metric + " | " + MetricText(a.metric) + " | " + MetricText(b.metric) + " | " +
         (a.metric && b.metric ? G(*b.metric - *a.metric) : "n/a") + " |\n";
  s += "| nodes | " + std::to_string(a.nodes) + " | " + std::to_string(b.nodes) + " | |\n";
  if (a.params > 0 && b.params > 0) {
    s += "| parameters | " + Count(a.params) + " | " + Count(b.params) + " | " +
         Fmt("%.3fx", double(b.params) / double(a.params)) + " |\n";
    s += "| non-zero parameters (sparsity) | " + NonZeroText(a.nonzero_params, a.params) + " | " +
         NonZeroText(b.nonzero_params, b.params) + " | " +
         (a.nonzero_params ? Fmt("%.3fx", double(b.nonzero_params) / double(a.nonzero_params)) : "n/a") + " |\n";
  }
  if (a.macs > 0 && b.macs > 0)
    s += "| MACs, batch 1 (non-zero) | " + Count(a.macs) + " (" + Count(a.nonzero_macs) + ") | " +
         Count(b.macs) + " (" + Count(b.nonzero_macs) + ") | " +
         (a.nonzero_macs ? Fmt("%.3fx", double(b.nonzero_macs) / double(a.nonzero_macs)) : "n/a") + " |\n";
  s += "\n";

  s += "## Budgets\n\n";
  if (r.budgets.empty()) s += "The recipe sets no budgets.\n\n";
  else {
    s += "| budget | limit | measured | margin | result |\n|---|---:|---:|---:|---|\n";
    for (const auto& bu : r.budgets)
      s += "| " + bu.name + " | " + bu.op + " " + Value(bu.unit, bu.limit) + " | " +
           Value(bu.unit, bu.measured) + " | " + G(bu.margin) + " | " +
           (bu.passed ? "pass" : "**MISSED**: " + bu.Message()) + " |\n";
    s += "\n";
  }
  s += DistillMarkdown(r);
  s += "## Passes\n\n| pass | changed | statistics |\n|---|---|---|\n";
  for (const auto& p : r.passes) {
    std::string st;
    for (const auto& [k, v] : p.stats) st += (st.empty() ? "" : ", ") + k + "=" + std::to_string(v);
    s += "| " + p.pass + " | " + (p.changed ? "yes" : "no") + " | " + st + " |\n";
  }
  s += "\n";
  if (!r.trials.empty()) {
    s += "## Tuning trials\n\n| # | trial | size | " + (r.metric.empty() ? std::string("metric") : r.metric) +
         " | p50 | vs original | budgets | chosen |\n|---:|---|---:|---:|---:|---:|---|---|\n";
    for (const auto& t : r.trials) {
      std::string missed;
      for (const auto& bu : t.budgets)
        if (!bu.passed) missed += (missed.empty() ? "" : ", ") + bu.name;
      s += "| " + std::to_string(t.index) + " | " + t.name + " | " +
           (t.error.empty() ? HumanBytes(static_cast<double>(t.result.size_bytes)) : "-") + " | " +
           MetricText(t.result.metric) + " | " + Fmt("%.3f ms", t.result.latency_p50_ms) + " | " +
           (t.vs_original ? Fmt("%.2fx", t.vs_original->ratio) + (t.vs_original->slower ? " (slower)" : "") : "") +
           " | " + (!t.error.empty() ? "error: " + t.error : t.passed ? "all met" : "missed " + missed) +
           " | " + (t.chosen ? "yes" : "") + " |\n";
    }
    s += "\n";
  }
  if (!r.rejected_slower.empty()) {
    s += "## Rejected: slower than the original\n\n";
    for (const auto& x : r.rejected_slower) s += "- " + x.message + "\n";
    s += "\n";
  }
  if (!r.layers.empty()) {
    s += "## Per-layer error (largest first)\n\n| value | op | NMSE | cosine |\n|---|---|---:|---:|\n";
    for (size_t i = 0; i < r.layers.size() && i < 20; ++i)
      s += "| " + r.layers[i].name + " | " + r.layers[i].op + " | " + G(r.layers[i].nmse) + " | " +
           G(r.layers[i].cosine) + " |\n";
    s += "\n";
  }
  if (r.original_profile.runs && r.compressed_profile.runs) {
    s += "## Where the time goes (per op type, " + std::to_string(r.compressed_profile.runs) +
         " profiled runs each)\n\n";
    s += "| op type | original | compressed | kernels (compressed) |\n|---|---:|---:|---|\n";
    std::vector<ProfileRow> rows = ProfileRows(r);
    for (size_t i = 0; i < rows.size() && i < kProfileRows; ++i)
      s += "| " + rows[i].op + " | " + MsShare(rows[i].original_ms, rows[i].original_share) + " | " +
           MsShare(rows[i].compressed_ms, rows[i].compressed_share) + " | " + JoinKernels(rows[i].kernels) + " |\n";
    s += "\n";
  }
  if (!r.baseline_report.empty()) {
    s += "## Against `" + r.baseline_report + "`\n\n";
    if (r.regressions.empty()) s += "No regressions.\n";
    for (const auto& g : r.regressions) s += "- regression: " + g.message + "\n";
    s += "\n";
  }
  if (!r.notes.empty()) {
    s += "## Notes\n\n";
    for (const auto& n : r.notes) s += "- " + n + "\n";
    s += "\n";
  }
  s += "## Artifacts\n\n| file | bytes | sha256 |\n|---|---:|---|\n";
  for (const auto& ar : r.artifacts)
    s += "| `" + ar.path + "` | " + std::to_string(ar.bytes) + " | `" + ar.sha256 + "` |\n";
  return s;
}

std::string ReportToHtml(const Report& r) {
  std::string s =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>edgepress report: " + Esc(r.model.path) + "</title>\n<style>\n"
      "body{font-family:sans-serif;margin:2em;max-width:60em;color:#222}\n"
      "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\n"
      ".passed{color:#1a7f37}.missed{color:#c62828;font-weight:bold}\n"
      "svg text{font-size:13px;fill:#222}svg text.title{font-weight:bold;font-size:14px}\n"
      "rect.base{fill:#90a4ae}rect.comp{fill:#1e88e5}rect.pass{fill:#43a047}rect.fail{fill:#e53935}"
      "rect.chosen{fill:#1e88e5}rect.err{fill:#fb8c00}\n"
      "figure{margin:1em 0}\n</style>\n</head>\n<body>\n";
  s += "<h1>edgepress compress report</h1>\n";
  const bool ok = r.status == "passed";
  s += "<p class=\"" + std::string(ok ? "passed" : "missed") + "\" id=\"status\">Status: " +
       Esc(r.status) + " (exit code " + std::to_string(r.exit_code) + ")</p>\n";
  if (!r.reasons.empty()) {
    s += "<ul id=\"reasons\">\n";
    for (const auto& why : r.reasons) s += "<li>" + Esc(why) + "</li>\n";
    s += "</ul>\n";
  }
  s += "<table>\n<tr><th>model</th><td>" + Esc(r.model.path) + " (" +
       Esc(HumanBytes(static_cast<double>(r.model.bytes))) + ", sha256 " + Esc(r.model.sha256) + ")</td></tr>\n";
  s += "<tr><th>recipe</th><td>" + Esc(r.recipe_name) + " (" + Esc(r.recipe.path) + ")</td></tr>\n";
  s += "<tr><th>target</th><td>" + Esc(r.target.name + " (" + r.target.arch + ", " + r.target.backend + " on " + r.target.device +
                                       ", isa " + r.target.isa + ", " + std::to_string(r.target.threads) +
                                       " thread(s))") + "</td></tr>\n";
  s += "<tr><th>measured on</th><td>" + Esc(r.target.host_cpu) + "</td></tr>\n";
  s += "<tr><th>tool</th><td>edgepress " + Esc(r.tool_version) + ", seed " + std::to_string(r.seed) + "</td></tr>\n</table>\n";

  s += "<h2>Budgets</h2>\n";
  if (r.budgets.empty()) s += "<p>The recipe sets no budgets.</p>\n";
  else {
    s += "<table id=\"budgets\">\n<tr><th>budget</th><th>limit</th><th>measured</th><th>margin</th><th>result</th></tr>\n";
    for (const auto& b : r.budgets)
      s += "<tr data-budget=\"" + Esc(b.name) + "\" data-passed=\"" + (b.passed ? "true" : "false") +
           "\"><td>" + Esc(b.name) + "</td><td>" + Esc(b.op + " " + Value(b.unit, b.limit)) + "</td><td>" +
           Esc(Value(b.unit, b.measured)) + "</td><td>" + Esc(G(b.margin)) + "</td><td class=\"" +
           (b.passed ? "passed\">pass" : "missed\">MISSED: " + Esc(b.Message())) + "</td></tr>\n";
    s += "</table>\n";
  }

  const auto& a = r.baseline;
  const auto& c = r.compressed;
  if (a.params > 0 && c.params > 0) {
    s += "<h2>Parameters and compute</h2>\n<table id=\"params\">\n<tr><th></th><th>original</th><th>compressed</th></tr>\n";
    s += "<tr><th>parameters</th><td data-value=\"" + std::to_string(a.params) + "\">" + Esc(Count(a.params)) +
         "</td><td data-value=\"" + std::to_string(c.params) + "\">" + Esc(Count(c.params)) + "</td></tr>\n";
    s += "<tr><th>non-zero parameters (sparsity)</th><td data-value=\"" + std::to_string(a.nonzero_params) + "\">" +
         Esc(NonZeroText(a.nonzero_params, a.params)) + "</td><td data-value=\"" + std::to_string(c.nonzero_params) +
         "\">" + Esc(NonZeroText(c.nonzero_params, c.params)) + "</td></tr>\n";
    if (a.macs > 0 && c.macs > 0)
      s += "<tr><th>MACs, batch 1 (non-zero)</th><td data-value=\"" + std::to_string(a.nonzero_macs) + "\">" +
           Esc(Count(a.macs) + " (" + Count(a.nonzero_macs) + ")") + "</td><td data-value=\"" +
           std::to_string(c.nonzero_macs) + "\">" + Esc(Count(c.macs) + " (" + Count(c.nonzero_macs) + ")") +
           "</td></tr>\n";
    s += "</table>\n";
  }
  s += "<h2>Charts</h2>\n";
  s += BarChart("size", "Artifact size (bytes)", "bytes",
                {{"original", static_cast<double>(a.size_bytes), "base", HumanBytes(static_cast<double>(a.size_bytes))},
                 {"compressed", static_cast<double>(c.size_bytes), "comp", HumanBytes(static_cast<double>(c.size_bytes))}});
  s += BarChart("latency", "Latency at batch 1 (ms)", "ms",
                {{"original p50", a.latency_p50_ms, "base", Fmt("%.3f ms", a.latency_p50_ms)},
                 {"compressed p50", c.latency_p50_ms, "comp", Fmt("%.3f ms", c.latency_p50_ms)},
                 {"original p99", a.latency_p99_ms, "base", Fmt("%.3f ms", a.latency_p99_ms)},
                 {"compressed p99", c.latency_p99_ms, "comp", Fmt("%.3f ms", c.latency_p99_ms)}});
  if (!r.metric.empty() && a.metric && c.metric)
    s += BarChart("accuracy", "Accuracy: " + r.metric + (r.metric_higher_is_better ? " (higher is better)" : " (lower is better)"),
                  r.metric,
                  {{"original", *a.metric, "base", G(*a.metric)},
                   {"compressed", *c.metric, "comp", G(*c.metric)}});
  if (!r.layers.empty()) {
    std::vector<Bar> bars;
    for (size_t i = 0; i < r.layers.size() && i < 25; ++i)
      bars.push_back({r.layers[i].name, r.layers[i].nmse, "comp", "NMSE " + G(r.layers[i].nmse)});
    s += BarChart("layers", "Per-layer error vs the original (NMSE, largest first)", "nmse", bars);
  }
  // Per-layer sensitivity a pass measured (quantize-static: SNR of each layer quantized
  // alone, most sensitive first).
  for (const auto& p : r.passes) {
    if (p.details.empty()) continue;
    Json d = Json::parse(p.details, nullptr, false);
    if (!d.is_object() || !d.contains("layers") || !d["layers"].is_array()) continue;
    std::vector<Bar> bars;
    for (const Json& l : d["layers"]) {
      if (bars.size() >= 25) break;
      if (!l.is_object() || !l.contains("snr_db") || !l["snr_db"].is_number()) continue;
      std::string name = l.contains("name") && l["name"].is_string() ? l["name"].get<std::string>() : "?";
      bool kept = l.contains("float") && l["float"].is_boolean() && l["float"].get<bool>();
      double snr = l["snr_db"].get<double>();
      bars.push_back({name, snr, kept ? "base" : "comp", Fmt("%.1f dB", snr) + (kept ? " (kept in float)" : "")});
    }
    if (!bars.empty()) {
      s += BarChart("sensitivity", p.pass + ": per-layer SNR when quantized alone (dB, most sensitive first; grey = kept in float)",
                    "dB", bars);
      break;
    }
  }
  // Pruning sensitivity a pass was given (prune-magnitude sensitivity-file): each layer's
  // error at each sparsity of the ladder; blue = the sparsity the pass chose.
  for (const auto& p : r.passes) {
    if (p.details.empty()) continue;
    Json d = Json::parse(p.details, nullptr, false);
    if (!d.is_object() || !d.contains("sensitivity") || !d["sensitivity"].is_object()) continue;
    const Json& sens = d["sensitivity"];
    if (!sens.contains("layers") || !sens["layers"].is_array()) continue;
    std::vector<Bar> bars;
    for (const Json& l : sens["layers"]) {
      if (!l.is_object() || !l.contains("results") || !l["results"].is_array()) continue;
      std::string name = l.contains("layer") && l["layer"].is_string() ? l["layer"].get<std::string>() : "?";
      double chosen = l.contains("chosen") && l["chosen"].is_number() ? l["chosen"].get<double>() : -1;
      for (const Json& res : l["results"]) {
        if (bars.size() >= 60 || !res.is_object() || !res.contains("sparsity") || !res.contains("error") ||
            !res["sparsity"].is_number() || !res["error"].is_number())
          continue;
        double sp = res["sparsity"].get<double>(), e = res["error"].get<double>();
        bool is_chosen = std::fabs(sp - chosen) < 1e-9;
        bars.push_back({name + " @" + Fmt("%.2f", sp), e, is_chosen ? "chosen" : "base",
                        G(e) + (is_chosen ? " (chosen)" : "")});
      }
    }
    if (!bars.empty()) {
      std::string metric = sens.contains("metric") && sens["metric"].is_string() ? sens["metric"].get<std::string>() : "error";
      s += BarChart("prune-sensitivity", p.pass + ": " + metric + " error of each layer pruned alone, per sparsity (blue = chosen)",
                    metric, bars);
      break;
    }
  }
  if (!r.trials.empty()) {
    std::vector<Bar> bars;
    for (const auto& t : r.trials)
      bars.push_back({"#" + std::to_string(t.index) + " " + t.name,
                      static_cast<double>(t.result.size_bytes),
                      !t.error.empty() ? "err" : t.chosen ? "chosen" : t.passed ? "pass" : "fail",
                      (t.error.empty() ? HumanBytes(static_cast<double>(t.result.size_bytes)) +
                                             (t.result.metric ? ", " + r.metric + " " + G(*t.result.metric) : "") +
                                             (t.passed ? ", met" : ", missed") +
                                             (t.vs_original && t.vs_original->slower
                                                  ? Fmt(", %.2fx slower than the original", t.vs_original->ratio)
                                                  : "") +
                                             (t.chosen ? " (chosen)" : "")
                                       : "error")});
    s += BarChart("trials", "Tuning trials: artifact size (blue = chosen, green = met all budgets, red = missed)",
                  "bytes", bars);
  }
  if (!r.rejected_slower.empty()) {
    s += "<h2>Rejected: slower than the original</h2>\n<ul>\n";
    for (const auto& x : r.rejected_slower)
      s += "<li class=\"missed\" data-rejected-trial=\"" + std::to_string(x.trial) + "\">" + Esc(x.message) + "</li>\n";
    s += "</ul>\n";
  }
  if (r.original_profile.runs && r.compressed_profile.runs) {
    s += "<h2>Where the time goes</h2>\n<p>ms per run by op type (share of the time inside nodes), " +
         std::to_string(r.compressed_profile.runs) + " profiled runs of each model.</p>\n";
    s += "<table id=\"profile\">\n<tr><th>op type</th><th>original</th><th>compressed</th>"
         "<th>kernels (compressed)</th></tr>\n";
    std::vector<ProfileRow> rows = ProfileRows(r);
    for (size_t i = 0; i < rows.size() && i < kProfileRows; ++i)
      s += "<tr><td>" + Esc(rows[i].op) + "</td><td>" + MsShare(rows[i].original_ms, rows[i].original_share) +
           "</td><td>" + MsShare(rows[i].compressed_ms, rows[i].compressed_share) + "</td><td>" +
           Esc(JoinKernels(rows[i].kernels)) + "</td></tr>\n";
    s += "</table>\n";
  }
  s += DistillHtml(r);
  s += "<h2>Passes</h2>\n<table>\n<tr><th>pass</th><th>changed</th><th>statistics</th></tr>\n";
  for (const auto& p : r.passes) {
    std::string st;
    for (const auto& [k, v] : p.stats) st += (st.empty() ? "" : ", ") + k + "=" + std::to_string(v);
    s += "<tr><td>" + Esc(p.pass) + "</td><td>" + (p.changed ? "yes" : "no") + "</td><td>" + Esc(st) + "</td></tr>\n";
  }
  s += "</table>\n";
  if (!r.regressions.empty() || !r.baseline_report.empty()) {
    s += "<h2>Against " + Esc(r.baseline_report) + "</h2>\n<ul>\n";
    if (r.regressions.empty()) s += "<li>No regressions.</li>\n";
    for (const auto& g : r.regressions) s += "<li class=\"missed\">" + Esc(g.message) + "</li>\n";
    s += "</ul>\n";
  }
  if (!r.notes.empty()) {
    s += "<h2>Notes</h2>\n<ul>\n";
    for (const auto& n : r.notes) s += "<li>" + Esc(n) + "</li>\n";
    s += "</ul>\n";
  }
  s += "<h2>Artifacts</h2>\n<table>\n<tr><th>file</th><th>bytes</th><th>sha256</th></tr>\n";
  for (const auto& ar : r.artifacts)
    s += "<tr><td>" + Esc(ar.path) + "</td><td>" + std::to_string(ar.bytes) + "</td><td>" + Esc(ar.sha256) + "</td></tr>\n";
  s += "</table>\n</body>\n</html>\n";
  return s;
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
