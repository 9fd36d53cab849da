// `edgepress bench MODEL`: latency of the native runtime (or --backend torch [--device
// cuda]: the LibTorch backend, timed up to its outputs being back on the host) on one model. Inputs come from a
// tensor file or are generated from the declared shapes (symbolic dims set with
// --dim name=value; a deterministic seed, so runs are comparable). Reports the first
// run separately (it sizes the buffer arena and warms caches), then mean, percentiles,
// standard deviation and throughput over the timed runs, with peak RSS, the thread count
// and the CPU model so that a number always travels with its machine. The timing loop is
// eval/latency (shared with `compress`). --profile (native runtime) also times every node
// over the timed runs and prints time per op type and the slowest nodes with the kernel
// each ran (tools/compress/profile_report.h); warm-up runs are left out of the profile.
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>

#include "eval/latency.h"
#include "formats/npy/npy.h"
#include "ir/error.h"
#include "runtime/session.h"
#include "tools/backend.h"
#include "tools/cli.h"
#include "tools/input_files.h"
#include "tools/compress/recipe.h"
#include "tools/model_io.h"
#include "tools/compress/profile_report.h"

namespace edgepress::tools {

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", c);
    else out += c;
  }
  return out;
}

struct Options {
  std::string model, input;
  std::vector<std::string> dims;
  int threads = 1, warmup = 3, iters = 0;
  bool no_optimize = false;
  double seconds = 0;
  bool json = false;
  bool profile = false;
  int profile_top = 10;
  BackendChoice backend;
};

// --dim name=N, each N >= 0.
std::map<std::string, int64_t> ParseDims(const std::vector<std::string>& args) {
  std::map<std::string, int64_t> dims;
  for (const std::string& d : args) {
    auto eq = d.find('=');
    int64_t v = -1;
    try {
      if (eq != std::string::npos) v = std::stoll(d.substr(eq + 1));
    } catch (const std::exception&) {
    }
    if (eq == std::string::npos || eq == 0 || v < 0)
      throw Error(ErrorCode::kUsage, "--dim expects name=N with N >= 0, got '" + d + "'");
    dims[d.substr(0, eq)] = v;
  }
  return dims;
}

// The --input file's arrays the model takes (labels beside them are ignored, as in `run`),
// or seeded random inputs from the declared shapes.
runtime::NamedTensors BenchInputs(const Options& o, Runner& session) {
  runtime::NamedTensors inputs;
  if (!o.input.empty()) {
    std::vector<std::string> wanted;
    for (const ir::Value* v : session.inputs()) wanted.push_back(v->name());
    return KeepModelInputs(formats::LoadTensorFile(o.input), wanted, o.input);
  }
  const std::map<std::string, int64_t> dims = ParseDims(o.dims);
  std::mt19937 rng(12345);
  for (const ir::Value* v : session.inputs())
    inputs.emplace_back(v->name(), eval::RandomInput(*v, dims, rng));
  return inputs;
}

struct BenchResult {
  eval::LatencyStats st;
  double load_ms = 0, peak_rss_mb = 0;
};

void PrintJson(const Options& o, Runner& session, const BenchResult& r) {
  const eval::LatencyStats& st = r.st;
  runtime::Session* native = session.native_session();
  fmt::print(
      "{{\"model\": \"{}\", \"backend\": \"{}\", \"device\": \"{}\", \"threads\": {}, "
      "\"cpu\": \"{}\", \"load_ms\": {:.4f}, "
      "\"first_run_ms\": {:.4f}, \"warmup\": {}, \"iterations\": {}, \"mean_ms\": {:.4f}, "
      "\"p50_ms\": {:.4f}, \"p90_ms\": {:.4f}, \"p99_ms\": {:.4f}, \"min_ms\": {:.4f}, "
      "\"max_ms\": {:.4f}, \"stddev_ms\": {:.4f}, \"throughput_per_s\": {:.3f}, "
      "\"peak_rss_mb\": {:.1f}{}}}\n",
      JsonEscape(o.model), session.backend(), session.device(), st.threads,
      JsonEscape(runtime::GetCpuFeatures().model_name), r.load_ms, st.first_ms, st.warmup, st.runs,
      st.mean_ms, st.p50_ms, st.p90_ms, st.p99_ms, st.min_ms, st.max_ms, st.stddev_ms,
      st.throughput_per_s, r.peak_rss_mb,
      o.profile && native ? ", \"profile\": " + ProfileJson(native->Profile()) : std::string());
}

void PrintText(const Options& o, Runner& session, const BenchResult& r) {
  const eval::LatencyStats& st = r.st;
  const std::string& cpu = runtime::GetCpuFeatures().model_name;
  fmt::print("model:       {}\n", o.model);
  fmt::print("backend:     {} on {}\n", session.backend(), session.device());
  fmt::print("cpu:         {} ({} thread(s))\n", cpu.empty() ? "unknown" : cpu, st.threads);
  fmt::print("load+plan:   {:.3f} ms\n", r.load_ms);
  fmt::print("first run:   {:.3f} ms\n", st.first_ms);
  fmt::print("runs:        {} timed after {} warmup\n", st.runs, st.warmup);
  fmt::print("mean:        {:.3f} ms (stddev {:.3f})\n", st.mean_ms, st.stddev_ms);
  fmt::print("p50/p90/p99: {:.3f} / {:.3f} / {:.3f} ms\n", st.p50_ms, st.p90_ms, st.p99_ms);
  fmt::print("min/max:     {:.3f} / {:.3f} ms\n", st.min_ms, st.max_ms);
  fmt::print("throughput:  {:.2f} inferences/s\n", st.throughput_per_s);
  fmt::print("peak RSS:    {:.1f} MiB\n", r.peak_rss_mb);
  runtime::Session* native = session.native_session();
  if (o.profile && native)
    fmt::print("\n{}", ProfileTable(native->Profile(), static_cast<size_t>(o.profile_top)));
}

int RunBench(const Options& o) {
  if (o.profile && o.backend.backend != "native")
    throw Error(ErrorCode::kUsage, "--profile times the native runtime's kernels; it "
                                   "cannot be used with --backend " + o.backend.backend);
  ParseDims(o.dims);  // usage errors before the model loads
  runtime::SessionOptions so;
  so.threads = o.threads;
  so.profile = o.profile;
  BenchResult r;
  auto t0 = Clock::now();
  auto session = MakeRunner(o.model, !o.no_optimize, o.backend, so);
  r.load_ms = Ms(Clock::now() - t0);
  const runtime::NamedTensors inputs = BenchInputs(o, *session);
  eval::LatencyOptions lo;
  lo.warmup = o.warmup;
  lo.runs = o.iters > 0 ? o.iters : 20;
  lo.seconds = o.seconds;
  runtime::Session* native = session->native_session();
  // The harness runs once, then `warmup` times, then the timed runs: the profile
  // starts at the first timed run.
  int64_t started = 0;
  auto run_once = [&] {
    if (o.profile && native && started++ == 1 + lo.warmup) native->ResetProfile();
    session->Run(inputs);
  };
  try {
    r.st = eval::MeasureLatencyOf(run_once, session->threads(), lo);
  } catch (const Error& e) {
    throw Error(e.code(), o.model + ": " + e.what());
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  r.peak_rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: KiB
  if (o.json)
    PrintJson(o, *session, r);
  else
    PrintText(o, *session, r);
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure the latency of a model on the native runtime");
  cmd->add_option("MODEL", o->model, "model file (.onnx, .epk)")->required();
  AddBackendOptions(cmd, o->backend);
  cmd->add_option("--input", o->input, "inputs by name (.npz); default: random data");
  cmd->add_option("--dim", o->dims, "size of a symbolic dimension for random inputs (name=N)");
  AddMaxMemoryOption(cmd);
  AddInputShapeOption(cmd);
  cmd->add_option("--threads", o->threads, "worker threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  cmd->add_flag("--no-optimize", o->no_optimize,
                "run the model as given, without the default cleanup/fusion passes");
  cmd->add_option("--warmup", o->warmup, "untimed runs after the first")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  auto* iters = cmd->add_option("--iters", o->iters, "timed runs (default 20)")
                    ->check(CLI::Range(1, 100000000));
  cmd->add_option("--seconds", o->seconds, "time budget for the timed runs instead of --iters")
      ->check(CLI::Range(0.001, 86400.0))
      ->excludes(iters);
  cmd->add_flag("--json", o->json, "print the result as JSON");
  cmd->add_flag("--profile", o->profile,
                "time every node over the timed runs: time per op type and the slowest "
                "nodes, with the kernel each ran (native backend)");
  cmd->add_option("--profile-top", o->profile_top, "nodes listed in the --profile table")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  cmd->callback([o, &action] {
    action = [o] { return RunBench(*o); };
  });
}

}  // namespace edgepress::tools
