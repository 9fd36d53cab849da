#include "passes/quant/input_stats.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "calibrate/dataset.h"
#include "ir/error.h"
#include "runtime/session.h"

namespace edgepress::passes {
namespace {

void Observe(std::map<std::string, InputStats>& stats, const std::string& name,
             const ir::Tensor& t, std::mt19937_64& rng) {
  auto it = stats.find(name);
  if (it == stats.end() || t.dtype() != ir::DType::kFloat32 || t.rank() < 1) return;
  InputStats& s = it->second;
  if (t.shape().back() != s.K) return;
  int64_t rows = static_cast<int64_t>(t.numel()) / s.K;
  const float* x = t.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * s.K;
    if (!s.xtx.empty()) {
      // Upper triangle only while collecting; mirrored once at the end.
      for (int64_t i = 0; i < s.K; ++i) {
        double xi = xr[i];
        if (xi == 0) continue;
        double* row = &s.xtx[i * s.K];
        for (int64_t j = i; j < s.K; ++j) row[j] += xi * xr[j];
      }
    }
    if (!s.abs_sum.empty()) {
      for (int64_t i = 0; i < s.K; ++i) s.abs_sum[i] += std::fabs(xr[i]);
      // Reservoir sampling: every row seen so far is kept with equal probability.
      int64_t slot = s.sample_rows < kReservoirRows
                         ? s.sample_rows
                         : static_cast<int64_t>(rng() % static_cast<uint64_t>(s.rows + 1));
      if (slot < kReservoirRows) std::copy(xr, xr + s.K, &s.sample[slot * s.K]);
      if (s.sample_rows < kReservoirRows) ++s.sample_rows;
    }
    ++s.rows;
  }
}

}  // namespace

void CollectInputStats(const ir::Model& model, std::map<std::string, InputStats>& stats,
                       const CollectOptions& o, PassContext& ctx) {
  if (stats.empty()) return;
  for (auto& [name, s] : stats) {
    if (o.xtx) s.xtx.assign(s.K * s.K, 0.0);
    if (o.awq) {
      s.abs_sum.assign(s.K, 0.0);
      s.sample.assign(kReservoirRows * s.K, 0.f);
    }
  }
  calibrate::DataSet data = calibrate::DataSet::Open(
      ctx.data_files, *model.graph, calibrate::ParseDataLayout(ctx.data_layout, "--layout"));
  int64_t samples = std::min<int64_t>(data.size(), o.samples);
  if (samples <= 0) ThrowInvalid("pass '" + o.pass + "': the calibration data set is empty");
  std::mt19937_64 rng(ctx.seed);
  runtime::SessionOptions so;
  so.threads = std::max(1, ctx.threads);
  so.observer = [&](const ir::Node& n, const std::vector<const ir::Tensor*>& outs) {
    for (size_t i = 0; i < n.num_outputs() && i < outs.size(); ++i)
      if (n.output(i) && outs[i]) Observe(stats, n.output(i)->name(), *outs[i], rng);
  };
  std::shared_ptr<const ir::Model> copy = model.Clone();
  auto session = runtime::Session::Create(copy, so);
  for (int64_t i = 0; i < samples; ++i) {
    calibrate::NamedTensors feeds = data.Batch(i, 1);
    for (const auto& [name, t] : feeds) Observe(stats, name, t, rng);
    session->Run(feeds);
    if (ctx.log && (i + 1) % 16 == 0)
      ctx.log(o.pass + ": calibrated " + std::to_string(i + 1) + "/" + std::to_string(samples) +
              " samples");
  }
  for (auto& [name, s] : stats)
    for (int64_t i = 0; i < s.K && !s.xtx.empty(); ++i)
      for (int64_t j = 0; j < i; ++j) s.xtx[i * s.K + j] = s.xtx[j * s.K + i];
}

}  // namespace edgepress::passes
