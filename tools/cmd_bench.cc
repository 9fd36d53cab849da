// `edgepress bench MODEL`: latency of the native runtime on one model. Inputs come from a
// tensor file or are generated from the declared shapes (symbolic dims set with
// --dim name=value; a deterministic seed, so runs are comparable). Reports the first
// run separately (it sizes the buffer arena and warms caches), then mean, percentiles,
// standard deviation and throughput over the timed runs, with peak RSS, the thread count
// and the CPU model so that a number always travels with its machine.
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>

#include "formats/npy/npy.h"
#include "ir/error.h"
#include "runtime/session.h"
#include "tools/cli.h"
#include "tools/model_io.h"

namespace edgepress::tools {

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

template <typename T, typename Dist>
void Fill(ir::Tensor& t, Dist dist, std::mt19937& rng) {
  T* p = t.mutable_data<T>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(dist(rng));
}

ir::Tensor RandomInput(const ir::Value& v, const std::map<std::string, int64_t>& dims,
                       std::mt19937& rng) {
  if (!v.type.is_tensor() || !v.type.shape)
    throw Error(ErrorCode::kUsage, "input '" + v.name() +
                                       "' has no declared shape; pass --input with real data");
  std::vector<int64_t> shape;
  for (const ir::Dim& d : *v.type.shape) {
    if (d.known()) {
      shape.push_back(d.value);
      continue;
    }
    auto it = dims.find(d.symbol);
    if (d.symbol.empty() || it == dims.end())
      throw Error(ErrorCode::kUsage,
                  "input '" + v.name() + "' has the unresolved dimension " +
                      (d.symbol.empty() ? std::string("?") : "'" + d.symbol + "'") + " in " +
                      v.type.ToString() + "; set it with --dim " +
                      (d.symbol.empty() ? std::string("NAME") : d.symbol) + "=N or pass --input");
    shape.push_back(it->second);
  }
  ir::Tensor t(v.type.dtype, shape);
  switch (v.type.dtype) {
    case ir::DType::kFloat32: Fill<float>(t, std::uniform_real_distribution<float>(-1, 1), rng); break;
    case ir::DType::kFloat64: Fill<double>(t, std::uniform_real_distribution<double>(-1, 1), rng); break;
    // Integer inputs are usually indices (token ids, positions): keep them small.
    case ir::DType::kInt64: Fill<int64_t>(t, std::uniform_int_distribution<int>(0, 9), rng); break;
    case ir::DType::kInt32: Fill<int32_t>(t, std::uniform_int_distribution<int>(0, 9), rng); break;
    case ir::DType::kUInt8: Fill<uint8_t>(t, std::uniform_int_distribution<int>(0, 255), rng); break;
    case ir::DType::kInt8: Fill<int8_t>(t, std::uniform_int_distribution<int>(-128, 127), rng); break;
    case ir::DType::kBool: Fill<uint8_t>(t, std::uniform_int_distribution<int>(0, 1), rng); break;
    default:
      throw Error(ErrorCode::kUnsupported, "input '" + v.name() + "': cannot generate random " +
                                               ir::DTypeName(v.type.dtype) +
                                               " data; pass --input");
  }
  return t;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(sorted.size() - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", c);
    else out += c;
  }
  return out;
}

}  // namespace

void AddBenchCommand(CLI::App& app, Action& action) {
  struct Options {
    std::string model, input;
    std::vector<std::string> dims;
    int threads = 1, warmup = 3, iters = 0;
    bool no_optimize = false;
    double seconds = 0;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure the latency of a model on the native runtime");
  cmd->add_option("MODEL", o->model, "model file (.onnx, .epk)")->required();
  cmd->add_option("--input", o->input, "inputs by name (.npz); default: random data");
  cmd->add_option("--dim", o->dims, "size of a symbolic dimension for random inputs (name=N)");
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
  cmd->callback([o, &action] {
    action = [o] {
      std::map<std::string, int64_t> dims;
      for (const std::string& d : o->dims) {
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
      runtime::SessionOptions so;
      so.threads = o->threads;
      auto t0 = Clock::now();
      auto session =
          runtime::Session::Create(std::shared_ptr<const ir::Model>(LoadModelForRun(o->model, !o->no_optimize)), so);
      double load_ms = Ms(Clock::now() - t0);
      runtime::NamedTensors inputs;
      if (!o->input.empty()) {
        inputs = formats::LoadTensorFile(o->input);
      } else {
        std::mt19937 rng(12345);
        for (const ir::Value* v : session->inputs()) inputs.emplace_back(v->name(), RandomInput(*v, dims, rng));
      }
      auto run = [&] {
        try {
          session->Run(inputs);
        } catch (const Error& e) {
          throw Error(e.code(), o->model + ": " + e.what());
        }
      };
      t0 = Clock::now();
      run();
      double first_ms = Ms(Clock::now() - t0);
      for (int i = 0; i < o->warmup; ++i) run();
      std::vector<double> times;
      int64_t want = o->seconds > 0 ? 0 : (o->iters > 0 ? o->iters : 20);
      auto start = Clock::now();
      while (want > 0 ? static_cast<int64_t>(times.size()) < want
                      : times.empty() || Ms(Clock::now() - start) < o->seconds * 1000) {
        auto s = Clock::now();
        run();
        times.push_back(Ms(Clock::now() - s));
      }
      std::vector<double> sorted = times;
      std::sort(sorted.begin(), sorted.end());
      double mean = 0;
      for (double t : times) mean += t;
      mean /= static_cast<double>(times.size());
      double var = 0;
      for (double t : times) var += (t - mean) * (t - mean);
      double stddev = times.size() > 1 ? std::sqrt(var / static_cast<double>(times.size() - 1)) : 0;
      struct rusage ru {};
      getrusage(RUSAGE_SELF, &ru);
      double peak_rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: KiB
      const std::string& cpu = runtime::GetCpuFeatures().model_name;
      double p50 = Percentile(sorted, 50), p90 = Percentile(sorted, 90), p99 = Percentile(sorted, 99);
      double throughput = mean > 0 ? 1000.0 / mean : 0;
      if (o->json) {
        fmt::print(
            "{{\"model\": \"{}\", \"threads\": {}, \"cpu\": \"{}\", \"load_ms\": {:.4f}, "
            "\"first_run_ms\": {:.4f}, \"warmup\": {}, \"iterations\": {}, \"mean_ms\": {:.4f}, "
            "\"p50_ms\": {:.4f}, \"p90_ms\": {:.4f}, \"p99_ms\": {:.4f}, \"min_ms\": {:.4f}, "
            "\"max_ms\": {:.4f}, \"stddev_ms\": {:.4f}, \"throughput_per_s\": {:.3f}, "
            "\"peak_rss_mb\": {:.1f}}}\n",
            JsonEscape(o->model), session->num_threads(), JsonEscape(cpu), load_ms, first_ms,
            o->warmup, times.size(), mean, p50, p90, p99, sorted.front(), sorted.back(), stddev,
            throughput, peak_rss_mb);
        return 0;
      }
      fmt::print("model:       {}\n", o->model);
      fmt::print("cpu:         {} ({} thread(s))\n", cpu.empty() ? "unknown" : cpu,
                 session->num_threads());
      fmt::print("load+plan:   {:.3f} ms\n", load_ms);
      fmt::print("first run:   {:.3f} ms\n", first_ms);
      fmt::print("runs:        {} timed after {} warmup\n", times.size(), o->warmup);
      fmt::print("mean:        {:.3f} ms (stddev {:.3f})\n", mean, stddev);
      fmt::print("p50/p90/p99: {:.3f} / {:.3f} / {:.3f} ms\n", p50, p90, p99);
      fmt::print("min/max:     {:.3f} / {:.3f} ms\n", sorted.front(), sorted.back());
      fmt::print("throughput:  {:.2f} inferences/s\n", throughput);
      fmt::print("peak RSS:    {:.1f} MiB\n", peak_rss_mb);
      return 0;
    };
  });
}

}  // namespace edgepress::tools
