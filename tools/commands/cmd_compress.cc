// `edgepress compress MODEL --recipe R -o OUTDIR`: the command CI runs. It writes the
// artifact and the reports, and its exit code is the gate: 0 every budget held, 3 a
// budget was missed (the reports say which and by how much), 1 invalid input or an
// unsupported model, 2 usage. See tools/compress/compress.h for the flow, docs/ci.md for CI use.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "eval/report.h"
#include "ir/error.h"
#include "tools/cli.h"
#include "tools/compress/compress.h"
#include "tools/progress.h"

namespace edgepress::tools {

void AddCompressCommand(CLI::App& app, Action& action) {
  struct Options {
    CompressOptions c;
    int threads = 0;
    uint64_t seed = 0;
    bool quiet = false, json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "compress", "Compress a model with a recipe, evaluate it against the original and gate on budgets");
  cmd->add_option("MODEL", o->c.model, "model file (.onnx, .epk)")->required();
  cmd->add_option("--recipe", o->c.recipe, "recipe: a shipped name or a .yaml file")->required();
  cmd->add_option("--calib", o->c.calib, "calibration data (.npz/.npy); overrides calibration.data");
  cmd->add_option("--eval", o->c.eval, "evaluation data (.npz with inputs and labels); overrides evaluation.data");
  cmd->add_option("--layout", o->c.layout,
                  "how an array feeds an input, for both data sets: NAME=batched|stacked|constant "
                  "(repeatable; adds to the recipe's calibration/evaluation.layout)");
  cmd->add_option("-o,--output", o->c.outdir, "output folder (created if missing)")->required();
  cmd->add_option("--baseline", o->c.baseline, "an earlier report.json to compare against (regressions)");
  cmd->add_flag("--fail-on-regression", o->c.fail_on_regression,
                "exit 3 when --baseline finds a regression (default: reported only)");
  cmd->add_option("--junit", o->c.junit, "write the budgets as JUnit XML to this file");
  auto* threads = cmd->add_option("--threads", o->threads, "threads (default: the recipe's target.threads)")
                      ->check(CLI::Range(1, 1024));
  auto* seed = cmd->add_option("--seed", o->seed, "seed for passes that sample (default: the recipe's)");
  AddMaxMemoryOption(cmd);
  AddInputShapeOption(cmd);
  cmd->add_flag("-q,--quiet", o->quiet, "no progress output");
  cmd->add_flag("--json", o->json, "print report.json on stdout");
  cmd->callback([o, threads, seed, &action] {
    action = [o, threads, seed] {
      if (threads->count()) o->c.threads = o->threads;
      if (seed->count()) o->c.seed = o->seed;
      Progress progress(Progress::Detect(o->quiet || o->json));
      eval::Report rep = RunCompress(o->c, progress);
      const std::string dir = o->c.outdir;
      if (o->json) std::fputs(eval::ReportToJson(rep).c_str(), stdout);
      for (const auto& why : rep.reasons) std::fprintf(stderr, "edgepress: %s\n", why.c_str());
      for (const auto& g : rep.regressions)
        std::fprintf(stderr, "edgepress: regression against %s: %s\n", rep.baseline_report.c_str(),
                     g.message.c_str());
      if (!o->quiet && !o->json) {
        for (const auto& x : rep.rejected_slower) fmt::print("rejected {}\n", x.message);
        const auto& a = rep.baseline;
        const auto& c = rep.compressed;
        std::string metric;
        if (a.metric && c.metric)
          metric = fmt::format(", {} {:.4g} -> {:.4g}", rep.metric, *a.metric, *c.metric);
        fmt::print("{}: {} -> {} bytes, p50 {:.3f} -> {:.3f} ms{}\n", rep.status, a.size_bytes,
                   c.size_bytes, a.latency_p50_ms, c.latency_p50_ms, metric);
        fmt::print("report: {}\n", (std::filesystem::path(dir) / "report.html").string());
        fmt::print("        {}\n", (std::filesystem::path(dir) / "report.json").string());
        if (!o->c.junit.empty()) fmt::print("junit:  {}\n", o->c.junit);
      }
      return rep.exit_code;
    };
  });
}

}  // namespace edgepress::tools
