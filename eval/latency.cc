#include "eval/latency.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "ir/error.h"

namespace edgepress::eval {

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

template <typename T, typename Dist>
void Fill(ir::Tensor& t, Dist dist, std::mt19937& rng) {
  T* p = t.mutable_data<T>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(dist(rng));
}

}  // namespace

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(sorted.size() - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

LatencyStats MeasureLatency(runtime::Session& session, const runtime::NamedTensors& inputs,
                            const LatencyOptions& o) {
  return MeasureLatencyOf([&] { session.Run(inputs); }, session.num_threads(), o);
}

LatencyStats MeasureLatencyOf(const std::function<void()>& run_once, int threads,
                              const LatencyOptions& o) {
  LatencyStats s;
  s.threads = threads;
  s.warmup = std::max(0, o.warmup);
  auto t0 = Clock::now();
  run_once();
  s.first_ms = Ms(Clock::now() - t0);
  for (int i = 0; i < s.warmup; ++i) run_once();
  const int64_t want = o.seconds > 0 ? 0 : std::max<int64_t>(1, o.runs);
  std::vector<double> times;
  auto start = Clock::now();
  while (want > 0 ? static_cast<int64_t>(times.size()) < want
                  : times.empty() || Ms(Clock::now() - start) < o.seconds * 1000) {
    auto t = Clock::now();
    run_once();
    times.push_back(Ms(Clock::now() - t));
    if (o.progress) o.progress(static_cast<int64_t>(times.size()), want);
  }
  LatencyStats out = SummarizeLatency(times);
  out.threads = s.threads;
  out.warmup = s.warmup;
  out.first_ms = s.first_ms;
  return out;
}

LatencyStats SummarizeLatency(const std::vector<double>& times) {
  LatencyStats s;
  if (times.empty()) return s;
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  double mean = 0;
  for (double t : times) mean += t;
  mean /= static_cast<double>(times.size());
  double var = 0;
  for (double t : times) var += (t - mean) * (t - mean);
  s.runs = static_cast<int64_t>(times.size());
  s.mean_ms = mean;
  s.stddev_ms = times.size() > 1 ? std::sqrt(var / static_cast<double>(times.size() - 1)) : 0;
  s.p50_ms = Percentile(sorted, 50);
  s.p90_ms = Percentile(sorted, 90);
  s.p99_ms = Percentile(sorted, 99);
  s.min_ms = sorted.front();
  s.max_ms = sorted.back();
  s.throughput_per_s = mean > 0 ? 1000.0 / mean : 0;
  return s;
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

}  // namespace edgepress::eval
