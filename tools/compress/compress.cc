// The compress engine. Trials: trial 0 runs the recipe's pipeline as written; each
// tuning step then adds its option overrides to those of the steps before it, and a
// trial runs only when its resolved pipeline differs from every trial run so far and no
// trial has met every budget yet (steps are fallbacks; with objective latency every step
// runs). Every trial is exported, evaluated and checked against the budgets, and its
// latency is measured interleaved with the original's: unless the recipe sets
// tuning.allow_slower, a trial slower than the original beyond that measurement's noise
// misses the implicit budget not_slower_than_original. The smallest (objective size) or
// fastest (objective latency) trial that meets every budget is kept, or, when none does,
// the one with the fewest misses (then the smallest relative miss), with exit 3.
//
// Determinism: passes get the seed and the thread count; the .epk metadata and
// manifest.json hold no timings, so the same inputs give byte-identical artifacts.
#include "tools/compress/compress.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "ir/error.h"
#include "ir/file_util.h"
#include "ir/sha256.h"
#include "passes/registry.h"
#include "tools/backend.h"
#include "tools/compress/compress_choice.h"
#include "tools/compress/compress_distill.h"
#include "tools/compress/compress_eval.h"
#include "tools/model_io.h"
#include "tools/progress.h"
#include "tools/compress/recipe.h"

namespace edgepress::tools {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;
using Steps = std::vector<passes::PipelineStep>;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string StepsText(const Steps& steps) {
  std::string s;
  for (const auto& st : steps) {
    s += (s.empty() ? "" : ",") + st.pass;
    if (st.options.empty()) continue;
    s += "{";
    for (size_t i = 0; i < st.options.size(); ++i)
      s += (i ? "," : "") + st.options[i].first + "=" + st.options[i].second;
    s += "}";
  }
  return s;
}

// Options as resolved by the pass (defaults filled in), to tell whether two pipelines
// differ.
std::vector<std::vector<std::pair<std::string, std::string>>> Resolved(const Steps& steps) {
  std::vector<std::vector<std::pair<std::string, std::string>>> out;
  for (const auto& st : steps) {
    const passes::PassEntry* e = FindCompressStep(st.pass);
    if (!e) passes::CreatePass(st.pass, {});  // throws "unknown pass ... did you mean"
    out.push_back(passes::ParseOptions(e->info, st.options).values());
  }
  return out;
}

Steps ApplyOverrides(Steps steps, const std::vector<eval::Override>& overrides) {
  for (const auto& o : overrides) {
    bool found = false;
    for (auto& st : steps) {
      if (st.pass != o.pass) continue;
      found = true;
      bool set = false;
      for (auto& kv : st.options)
        if (kv.first == o.option) kv.second = o.value, set = true;
      if (!set) st.options.emplace_back(o.option, o.value);
    }
    if (!found)
      ThrowInvalid("tuning override " + o.pass + "." + o.option + ": the pipeline has no pass '" +
                   o.pass + "'");
  }
  return steps;
}

std::string PassStatsJson(const std::vector<passes::PassRun>& runs) {
  Json j = Json::array();
  for (const auto& r : runs) {
    Json stats = Json::object();
    for (const auto& [k, v] : r.stats) stats[k] = v;
    j.push_back({{"pass", r.pass}, {"changed", r.changed}, {"stats", stats}});
  }
  return j.dump();
}

std::string Rel(const std::string& path, const std::string& dir) {
  return fs::path(path).lexically_relative(dir).string();
}

// What the command line and the recipe resolve to, checked before any work.
struct Plan {
  Recipe recipe;
  std::string recipe_yaml;  // the resolved recipe, as the artifact's metadata keeps it
  int threads = 1;
  uint64_t seed = 0;
  std::string calib, eval_file;
  std::optional<eval::Metric> metric;
  Steps pipeline;
};

// Phase 1: the recipe against this build and the options; unknown passes, bad options and
// missing data fail here, before the model is read.
Plan ResolvePlan(const CompressOptions& o) {
  Plan p;
  p.recipe = LoadRecipe(o.recipe);
  const Recipe& recipe = p.recipe;
  if (recipe.target.backend == "torch" && !HaveTorch())
    ThrowUnsupported(recipe.path + ": target.backend 'torch': this edgepress was built without "
                     "LibTorch (configure with -DEDGEPRESS_WITH_TORCH=ON), or use backend: native");
  if (recipe.target.backend == "native" && recipe.target.device != "cpu")
    ThrowInvalid(recipe.path + ": target.device '" + recipe.target.device +
                 "' needs target.backend: torch (the native runtime runs on the CPU)");
  if (recipe.exports.pt && !HaveTorch())
    ThrowUnsupported(recipe.path + ": export.pt: this edgepress was built without LibTorch "
                     "(configure with -DEDGEPRESS_WITH_TORCH=ON), or set pt: false");
  if (!recipe.exports.epk && !recipe.exports.onnx)
    ThrowInvalid(recipe.path + ": export: nothing to write; enable epk or onnx");
  // An empty pipeline is allowed: the float model is exported and measured against itself.
  p.threads = o.threads ? *o.threads : recipe.target.threads;
  p.seed = o.seed ? *o.seed : recipe.seed;
  p.calib = !o.calib.empty() ? o.calib : recipe.calibration.data;
  p.eval_file = !o.eval.empty() ? o.eval : recipe.evaluation.data;
  for (const std::string& f : {o.model, p.calib, p.eval_file})
    if (!f.empty() && !FileExists(f)) throw Error(ErrorCode::kIo, "cannot open '" + f + "'");
  if (!recipe.evaluation.metric.empty()) {
    try {
      p.metric = eval::ParseMetric(recipe.evaluation.metric);
    } catch (const Error& e) {
      ThrowInvalid(recipe.path + ": evaluation.metric: " + e.what());
    }
  }
  for (const auto& st : recipe.pipeline) p.pipeline.push_back({st.pass, st.options});
  Resolved(p.pipeline);  // unknown passes and bad options fail before any work
  bool needs_data = false;
  for (const auto& st : p.pipeline) needs_data |= FindCompressStep(st.pass)->info.needs_data;
  CheckDistillSteps(p.pipeline, p.calib, recipe.path);
  if (needs_data && p.calib.empty())
    ThrowInvalid(recipe.path + ": the pipeline has a pass that needs calibration data; pass --calib or set calibration.data");
  const bool accuracy_budget = recipe.budgets.max_accuracy_drop || recipe.budgets.max_accuracy_drop_relative;
  if (accuracy_budget && p.eval_file.empty())
    ThrowInvalid(recipe.path + ": budgets.max_accuracy_drop needs evaluation data; pass --eval or set evaluation.data");
  if (accuracy_budget && !p.metric) ThrowInvalid(recipe.path + ": accuracy budgets need evaluation.metric");
  p.recipe_yaml = RecipeToYaml(recipe);
  return p;
}

// The report's header: tool, recipe (with its hash), seed, target and the inputs' hashes.
void DescribeRun(const CompressOptions& o, const Plan& p, eval::Report* rep) {
  rep->tool_version = EDGEPRESS_VERSION;
  rep->recipe_name = p.recipe.name;
  Sha256 h;
  h.Update(p.recipe_yaml);
  rep->recipe = {p.recipe.path, h.HexDigest(), static_cast<int64_t>(p.recipe_yaml.size())};
  rep->seed = p.seed;
  const Recipe::Target& t = p.recipe.target;
  rep->target = {t.name, t.arch, t.backend, t.isa, p.threads, runtime::GetCpuFeatures().model_name};
  rep->model = {o.model, Sha256File(o.model), ModelBytes(o.model)};
  if (!p.calib.empty()) {
    rep->calibration.push_back({p.calib, Sha256File(p.calib), static_cast<int64_t>(FileSize(p.calib))});
    rep->calibration_sha256 = rep->calibration.back().sha256;
  }
}

// One tuning trial to try: its name and the option overrides accumulated up to it.
struct TrialPlan {
  std::string name;
  std::vector<eval::Override> overrides;
};

std::vector<TrialPlan> TrialPlans(const Recipe& recipe) {
  std::vector<TrialPlan> plans{{"as written", {}}};
  for (const auto& step : recipe.tuning.steps) {
    TrialPlan p{step.name, plans.back().overrides};
    for (const auto& ov : step.overrides) p.overrides.push_back({ov.pass, ov.option, ov.value});
    plans.push_back(std::move(p));
  }
  return plans;
}

// Runs `steps` on a clone of the original, one pass at a time with a progress line each, and
// writes the result with its provenance to `path`. Returns the pass runs.
std::vector<passes::PassRun> RunTrialPipeline(const CompressOptions& o, const Plan& p,
                                              const ir::Model& original, const Steps& steps,
                                              const DistillStepContext& distill_ctx,
                                              const eval::Report& rep, const std::string& path,
                                              Progress& progress) {
  std::vector<passes::PassRun> runs;
  std::unique_ptr<ir::Model> m = original.Clone();
  passes::PassContext ctx;
  ctx.seed = p.seed;
  ctx.threads = p.threads;
  if (!p.calib.empty()) ctx.data_files = {p.calib};
  ctx.data_layout = p.recipe.calibration.layout;
  ctx.data_layout.insert(ctx.data_layout.end(), o.layout.begin(), o.layout.end());
  // RunPipeline's own "<pass>: changed" lines are replaced by the richer one below.
  ctx.log = [&](const std::string& line) {
    for (const auto& st : steps)
      if (line == st.pass + ": changed" || line == st.pass + ": unchanged") return;
    progress.Log("  " + line);
  };
  for (const auto& st : steps) {
    auto r = IsDistillStep(st.pass) ? std::vector{RunDistillStep(*m, st, steps, distill_ctx)}
                                    : passes::RunPipeline(*m, {st}, ctx, /*verify=*/true);
    runs.insert(runs.end(), r.begin(), r.end());
    const auto& last = runs.back();
    std::string stats;
    for (const auto& [k, v] : last.stats)
      if (v) stats += fmt::format(" {}={}", k, v);
    progress.Log(fmt::format("  {:<22} {:<9} {:7.1f} ms{}", last.pass,
                             last.changed ? "changed" : "unchanged", last.seconds * 1e3, stats));
  }
  SaveModelOptions so;
  so.metadata = ProvenanceFor(o.model);
  so.metadata.emplace_back("recipe_name", p.recipe.name);
  so.metadata.emplace_back("recipe", p.recipe_yaml);
  if (!rep.calibration_sha256.empty())
    so.metadata.emplace_back("calibration_data_sha256", rep.calibration_sha256);
  so.metadata.emplace_back("seed", std::to_string(p.seed));
  so.metadata.emplace_back("pipeline", StepsText(steps));
  so.metadata.emplace_back("pass_statistics", PassStatsJson(runs));
  SaveModel(*m, path, so);
  return runs;
}

// The trials' files (empty for a failed trial) and pass runs, by trial index.
struct TrialFiles {
  std::vector<std::string> paths;
  std::vector<std::vector<passes::PassRun>> runs;
};

// Phase 3: trial 0 runs the pipeline as written; tuning steps follow while TuningStop allows.
// Each trial is written into OUTDIR as a hidden file, measured against the original and
// checked against the budgets; the results land in rep->trials.
TrialFiles RunTrials(const CompressOptions& o, const Plan& p, const ir::Model& original,
                     const std::string& outdir, const std::string& ext, EvalSetup& ev,
                     Progress& progress, Clock::time_point t_start, eval::Report* rep) {
  const std::vector<TrialPlan> plans = TrialPlans(p.recipe);
  std::vector<std::vector<std::vector<std::pair<std::string, std::string>>>> run_pipelines;
  TrialFiles files;
  const int max_trials = std::max(1, p.recipe.tuning.max_trials);
  // The distill step's teacher is the model as given; it evaluates on the recipe's data
  // when that feeds the inputs by name.
  const DistillStepContext distill_ctx{&original, o.model, p.calib,
                                       p.recipe.evaluation.input.empty() ? p.eval_file : "",
                                       p.recipe.evaluation.label, p.seed, &progress};
  for (size_t pi = 0; pi < plans.size(); ++pi) {
    const TrialPlan& plan = plans[pi];
    if (pi > 0) {
      const std::string stop = TuningStop(*rep, p.recipe, Seconds(t_start));
      if (!stop.empty()) {
        rep->notes.push_back(stop);
        break;
      }
    }
    Steps steps = ApplyOverrides(p.pipeline, plan.overrides);
    auto resolved = Resolved(steps);
    if (std::find(run_pipelines.begin(), run_pipelines.end(), resolved) != run_pipelines.end()) {
      rep->notes.push_back("tuning step '" + plan.name + "' changes nothing; skipped");
      continue;
    }
    run_pipelines.push_back(resolved);
    eval::Trial t;
    t.index = static_cast<int>(rep->trials.size());
    t.name = plan.name;
    t.overrides = plan.overrides;
    const auto t0 = Clock::now();
    if (plans.size() > 1) {
      // Tuning progress: trials left at most, and an ETA from the mean trial time so far.
      const size_t left = std::min(plans.size() - pi, static_cast<size_t>(max_trials) - rep->trials.size());
      std::string eta;
      if (!rep->trials.empty()) {
        double mean = 0;
        for (const auto& done : rep->trials) mean += done.seconds;
        mean /= static_cast<double>(rep->trials.size());
        eta = fmt::format(", ETA {:.0f}s for at most {} trial(s)", mean * static_cast<double>(left), left);
      }
      progress.Log(fmt::format("trial {} (tuning step {} of {}{}): {}", t.index, pi, plans.size() - 1, eta, t.name));
    }
    const std::string path = (fs::path(outdir) / fmt::format(".trial-{}{}", t.index, ext)).string();
    std::vector<passes::PassRun> runs;
    try {
      runs = RunTrialPipeline(o, p, original, steps, distill_ctx, *rep, path, progress);
    } catch (const Error& e) {
      if (t.index == 0) throw;  // the recipe as written must work
      t.error = e.what();
      t.seconds = Seconds(t0);
      progress.Log("  trial failed: " + t.error);
      rep->trials.push_back(std::move(t));
      files.paths.push_back("");
      files.runs.push_back({});
      continue;
    }
    eval::VsOriginal vs;
    t.result = Measure(path, ev, progress, plans.size() > 1 ? fmt::format("trial {}", t.index) : "compressed",
                       false, &vs);
    t.vs_original = vs;
    t.budgets = CheckBudgets(p.recipe, rep->baseline, t.result, t.vs_original, ev.metric);
    t.passed = std::all_of(t.budgets.begin(), t.budgets.end(), [](const auto& b) { return b.passed; });
    t.seconds = Seconds(t0);
    rep->trials.push_back(std::move(t));
    files.paths.push_back(path);
    files.runs.push_back(std::move(runs));
  }
  return files;
}

// Phase 5: the kept trial becomes OUTDIR/model.<ext> (the others are removed), plus the
// ONNX/TorchScript exports the recipe asks for; their hashes go into rep->artifacts.
// Returns the primary artifact's path.
std::string WriteArtifacts(const Recipe& recipe, const TrialFiles& files, int chosen,
                           const std::string& outdir, const std::string& ext, Progress& progress,
                           eval::Report* rep) {
  const std::string primary = (fs::path(outdir) / ("model" + ext)).string();
  fs::rename(files.paths[chosen], primary);
  for (size_t i = 0; i < files.paths.size(); ++i)
    if (static_cast<int>(i) != chosen && !files.paths[i].empty()) fs::remove(files.paths[i]);
  std::vector<std::string> written{primary};
  if (recipe.exports.epk && recipe.exports.onnx) {
    const std::string onnx = (fs::path(outdir) / "model.onnx").string();
    progress.Log("exporting " + onnx);
    SaveModel(*LoadModel(primary), onnx, {});
    written.push_back(onnx);
  }
  if (recipe.exports.pt) {
    const std::string pt = (fs::path(outdir) / "model.pt").string();
    progress.Log("exporting " + pt);
    SaveModel(*LoadModel(primary), pt, {});
    written.push_back(pt);
  }
  for (const auto& f : written)
    rep->artifacts.push_back({Rel(f, outdir), Sha256File(f), static_cast<int64_t>(FileSize(f))});
  return primary;
}

// Phase 6: the reasons, regressions against --baseline, the exit code and the status.
void Verdict(const CompressOptions& o, int chosen, eval::Report* rep) {
  for (const auto& b : rep->budgets)
    if (!b.passed) rep->reasons.push_back("budget " + b.name + " missed: " + b.Message());
  if (!rep->reasons.empty() && rep->trials.size() > 1)
    rep->reasons.push_back(fmt::format("no trial of {} met every budget; kept trial {} ('{}'), the closest",
                                       rep->trials.size(), chosen, rep->trials[chosen].name));
  if (!o.baseline.empty()) {
    rep->baseline_report = o.baseline;
    eval::Report prev = eval::ReportFromJson(ReadFileToString(o.baseline, 64u << 20), o.baseline);
    rep->regressions = eval::FindRegressions(prev, *rep);
  }
  const bool missed = std::any_of(rep->budgets.begin(), rep->budgets.end(), [](const auto& b) { return !b.passed; });
  const bool regressed = o.fail_on_regression && !rep->regressions.empty();
  if (regressed)
    for (const auto& g : rep->regressions) rep->reasons.push_back("regression: " + g.message);
  rep->exit_code = missed || regressed ? 3 : 0;
  rep->status = missed ? "budget_missed" : regressed ? "regressed" : "passed";
}

// manifest.json: what produced the artifact, without timings (byte-identical for the same
// inputs).
std::string Manifest(const Plan& p, const eval::Report& rep, int chosen,
                     const std::vector<passes::PassRun>& runs) {
  Json man;
  man["schema_version"] = 1;
  man["tool"] = {{"name", "edgepress"}, {"version", EDGEPRESS_VERSION}};
  man["model"] = {{"path", rep.model.path}, {"sha256", rep.model.sha256}, {"bytes", rep.model.bytes}};
  man["recipe"] = {{"name", p.recipe.name}, {"path", p.recipe.path}, {"sha256", rep.recipe.sha256}, {"yaml", p.recipe_yaml}};
  Json cal = Json::array();
  for (const auto& c : rep.calibration) cal.push_back({{"path", c.path}, {"sha256", c.sha256}, {"bytes", c.bytes}});
  man["calibration"] = {{"sha256", rep.calibration_sha256}, {"files", cal}};
  man["evaluation"] = {{"path", rep.evaluation.path}, {"sha256", rep.evaluation.sha256}};
  man["seed"] = p.seed;
  man["threads"] = p.threads;
  man["chosen_trial"] = {{"index", chosen}, {"name", rep.trials[chosen].name}};
  Json passes_j = Json::array();
  for (const auto& r : runs) {
    Json opts = Json::object(), stats = Json::object();
    for (const auto& [k, v] : r.options) opts[k] = v;
    for (const auto& [k, v] : r.stats) stats[k] = v;
    passes_j.push_back({{"pass", r.pass}, {"options", opts}, {"changed", r.changed}, {"stats", stats}});
  }
  man["passes"] = passes_j;
  Json arts = Json::array();
  for (const auto& a : rep.artifacts) arts.push_back({{"path", a.path}, {"sha256", a.sha256}, {"bytes", a.bytes}});
  man["artifacts"] = arts;
  return man.dump(2) + "\n";
}

}  // namespace

eval::Report RunCompress(const CompressOptions& o, Progress& progress) {
  const auto t_start = Clock::now();
  // 1. inputs
  const Plan plan = ResolvePlan(o);
  eval::Report rep;
  DescribeRun(o, plan, &rep);
  progress.Log("loading " + o.model);
  std::unique_ptr<ir::Model> original = LoadModel(o.model);

  // 2. evaluation set-up and the original's measurement
  EvalSetup ev = SetupEvaluation(plan.recipe, plan.threads, plan.seed, plan.eval_file, o.layout,
                                 plan.metric, *original, &rep);
  fs::create_directories(o.outdir);
  const std::string outdir = fs::path(o.outdir).lexically_normal().string();
  rep.baseline = Measure(o.model, ev, progress, "original", /*keep_reference=*/true);

  // 3. trials
  const std::string ext = plan.recipe.exports.epk ? ".epk" : ".onnx";
  TrialFiles files = RunTrials(o, plan, *original, outdir, ext, ev, progress, t_start, &rep);

  // 4. choose
  const int chosen = ChooseTrial(rep.trials, plan.recipe.tuning.objective == "latency");
  ExplainSlower(plan.recipe, chosen, &rep);
  eval::Trial& best = rep.trials[chosen];
  best.chosen = true;
  rep.compressed = best.result;
  rep.budgets = best.budgets;
  for (const auto& r : files.runs[chosen])
    rep.passes.push_back({r.pass, r.options, r.changed, r.stats, r.seconds, r.details});

  // 5. artifacts; the per-layer error on a few samples (bounded: one model's activations of
  // one sample at a time) and where each model's time goes per op type
  const std::string primary = WriteArtifacts(plan.recipe, files, chosen, outdir, ext, progress, &rep);
  progress.Start("per-layer error", 0);
  rep.layers = LayerErrors(o.model, primary, ev, ev.data ? std::min<int64_t>(ev.samples, 4) : 1);
  progress.Finish(fmt::format("{} layers compared", rep.layers.size()));
  rep.original_profile = ProfileModel(o.model, ev, progress, "original");
  rep.compressed_profile = ProfileModel(primary, ev, progress, "compressed");

  // 6. verdict, manifest and reports
  Verdict(o, chosen, &rep);
  rep.duration_s = Seconds(t_start);
  WriteFileAtomic((fs::path(outdir) / "manifest.json").string(), Manifest(plan, rep, chosen, files.runs[chosen]));
  WriteFileAtomic((fs::path(outdir) / "report.json").string(), eval::ReportToJson(rep));
  WriteFileAtomic((fs::path(outdir) / "report.md").string(), eval::ReportToMarkdown(rep));
  WriteFileAtomic((fs::path(outdir) / "report.html").string(), eval::ReportToHtml(rep));
  if (!o.junit.empty()) WriteFileAtomic(o.junit, eval::ReportToJunit(rep));
  return rep;
}

}  // namespace edgepress::tools
