// prune-magnitude: unstructured pruning of the weights of Conv, ConvTranspose, Gemm, MatMul,
// FusedConv and FusedGemm (passes/prune/prune_util.h says which weights; embedding tables only
// when op-types names Gather). Zeros are written into the dense weight, which stays the
// authoritative form; the graph's ops, names and shapes do not change.
//
// How much: `sparsity` per layer (scope=layer: each weight loses that share of its
// elements), or one magnitude threshold across all selected weights (scope=global: the
// `sparsity` share of the smallest |w| of the whole model, so robust layers give up more),
// or, with sensitivity-file, each listed layer's largest measured sparsity whose error is
// within max-error (layers missing from the file use `sparsity`).
// Which: criterion=magnitude zeros the smallest |w| (ties broken by position, so the result
// is deterministic); criterion=hessian runs SparseGPT (passes/prune/sparsegpt.h) on 2-D
// MatMul/Gemm weights with calibration data, at the same per-layer sparsity, and falls back
// to magnitude for the rest (counted).
// schedule/initial-sparsity/begin-step/end-step/frequency describe a gradual schedule
// (prune_util.h Schedule) that the pass itself does not step through: it applies the final
// sparsity and reports the schedule in Details() for a training loop to follow.
//
// Does not fire on: sparsity 0 (and no sensitivity file), models without prunable float
// weights, weights excluded by glob, smaller than min-params, or shared with a reader that
// is not a prunable op. A weight that is already at least as sparse as asked is counted
// but not changed.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include <nlohmann/json.hpp>

#include "ir/error.h"
#include "ir/file_util.h"
#include "passes/all_passes.h"
#include "passes/prune/prune_util.h"
#include "passes/prune/sparsegpt.h"

namespace edgepress::passes {
namespace {

using json = nlohmann::json;

int64_t NonZero(const ir::Tensor& t) {
  const float* d = t.data<float>();
  return std::count_if(d, d + t.numel(), [](float v) { return v != 0.f; });
}

// Zeros the `k` elements of smallest |w| (ties: lower index first).
void ZeroSmallest(ir::Tensor& t, int64_t k) {
  int64_t count = static_cast<int64_t>(t.numel());
  k = std::min(k, count);
  if (k <= 0) return;
  float* d = t.mutable_data<float>();
  std::vector<int64_t> order(count);
  std::iota(order.begin(), order.end(), int64_t{0});
  auto less = [&](int64_t a, int64_t b) {
    float fa = std::fabs(d[a]), fb = std::fabs(d[b]);
    return fa < fb || (fa == fb && a < b);
  };
  if (k < count) std::nth_element(order.begin(), order.begin() + k, order.end(), less);
  for (int64_t i = 0; i < k; ++i) d[order[i]] = 0.f;
}

class PruneMagnitude : public Pass {
 public:
  explicit PruneMagnitude(const PassOptions& o)
      : sparsity_(o.GetFloat("sparsity")),
        global_(o.GetString("scope") == "global"),
        hessian_(o.GetString("criterion") == "hessian"),
        sensitivity_file_(o.GetString("sensitivity-file")),
        max_error_(o.GetFloat("max-error")),
        calib_samples_(o.GetInt("calib-samples")),
        damp_(o.GetFloat("damp")),
        block_(o.GetInt("block-size")) {
    find_.include = o.GetStringList("include");
    find_.exclude = o.GetStringList("exclude");
    find_.min_params = o.GetInt("min-params");
    find_.op_types = o.GetStringList("op-types");
    for (const std::string& op : find_.op_types) {
      const auto& ok = prune::DefaultOpTypes();
      if (op != "Gather" && std::find(ok.begin(), ok.end(), op) == ok.end())
        ThrowInvalid("pass 'prune-magnitude': option 'op-types' names '" + op +
                     "'; pruning handles Conv, ConvTranspose, Gemm, MatMul, FusedConv, "
                     "FusedGemm and Gather (embeddings)");
    }
    schedule_.kind = o.GetString("schedule");
    schedule_.initial = o.GetFloat("initial-sparsity");
    schedule_.final = sparsity_;
    schedule_.begin = o.GetInt("begin-step");
    schedule_.end = o.GetInt("end-step");
    schedule_.frequency = o.GetInt("frequency");
    if (schedule_.kind != "oneshot" && schedule_.end <= schedule_.begin)
      ThrowInvalid("pass 'prune-magnitude': schedule=" + schedule_.kind +
                   " needs end-step > begin-step");
    if (global_ && !sensitivity_file_.empty())
      ThrowInvalid("pass 'prune-magnitude': scope=global and sensitivity-file both choose the "
                   "per-layer sparsity; give one of them");
  }
  const PassInfo& info() const override { return PruneMagnitudePass().info; }
  std::string Details() const override { return details_.empty() ? "" : details_.dump(); }

  bool Run(ir::Model& model, PassContext& ctx) override {
    prune::ParamCounts before = prune::CountParams(model);
    Count("params", before.params);
    Count("nonzero-before", before.nonzero);
    details_ = json::object();
    details_["criterion"] = hessian_ ? "hessian" : "magnitude";
    details_["scope"] = global_ ? "global" : "layer";
    details_["schedule"] = {{"kind", schedule_.kind},     {"initial_sparsity", schedule_.initial},
                            {"final_sparsity", sparsity_}, {"begin_step", schedule_.begin},
                            {"end_step", schedule_.end},   {"frequency", schedule_.frequency}};
    details_["layers"] = json::array();

    prune::FindCounts fc;
    std::vector<prune::PrunableWeight> ws = prune::FindPrunable(model, find_, &fc);
    Count("skipped-excluded", fc.excluded);
    Count("skipped-not-constant", fc.not_constant);
    Count("skipped-small", fc.too_small);
    Count("skipped-shared", fc.shared);

    std::vector<double> targets = Targets(ws);
    bool any = false;
    for (double t : targets) any |= t > 0;
    if (!any) {
      Count("nonzero-after", before.nonzero);
      return false;
    }
    std::map<std::string, InputStats> hs;
    if (hessian_) {
      if (ctx.data_files.empty())
        throw Error(ErrorCode::kUsage, "pass 'prune-magnitude' with criterion=hessian needs "
                                       "calibration data: give --data FILE.npz");
      hs = sgpt::CollectHessians(model, ws, calib_samples_, "prune-magnitude", ctx);
    }

    bool changed = false;
    for (size_t i = 0; i < ws.size(); ++i) {
      const prune::PrunableWeight& p = ws[i];
      ir::Tensor& t = *p.weight->mutable_initializer();
      int64_t numel = static_cast<int64_t>(t.numel()), nz0 = NonZero(t);
      int64_t want_zeros = static_cast<int64_t>(std::llround(targets[i] * double(numel)));
      std::string how = "magnitude";
      if (want_zeros > numel - nz0) {
        bool done = false;
        if (hessian_) {
          sgpt::Pattern pat;
          pat.sparsity = targets[i];
          done = sgpt::PruneWeight(p, hs, pat, damp_, block_);
          Count(done ? "hessian-layers" : "hessian-fallback-magnitude");
          if (done) how = "hessian";
        }
        if (!done) ZeroSmallest(t, want_zeros);
        Count("layers-pruned");
        changed = true;
      } else {
        how = "unchanged";
        Count("layers-already-sparse");
      }
      int64_t nz1 = NonZero(t);
      details_["layers"].push_back({{"layer", p.layer},
                                    {"op", p.op},
                                    {"weight", p.weight->name()},
                                    {"params", numel},
                                    {"target_sparsity", targets[i]},
                                    {"nonzero_before", nz0},
                                    {"nonzero_after", nz1},
                                    {"sparsity", 1.0 - double(nz1) / double(numel)},
                                    {"source", sources_[i]},
                                    {"criterion", how}});
    }
    prune::ParamCounts after = prune::CountParams(model);
    Count("nonzero-after", after.nonzero);
    details_["params"] = before.params;
    details_["nonzero_before"] = before.nonzero;
    details_["nonzero_after"] = after.nonzero;
    return changed;
  }

 private:
  // The sparsity each weight is pruned to, and where that number came from (sources_).
  std::vector<double> Targets(const std::vector<prune::PrunableWeight>& ws) {
    std::vector<double> out(ws.size(), sparsity_);
    sources_.assign(ws.size(), "sparsity");
    if (!sensitivity_file_.empty()) {
      std::map<std::string, double> table =
          prune::SparsityFromSensitivity(sensitivity_file_, max_error_);
      SensitivityDetails(table);
      for (size_t i = 0; i < ws.size(); ++i) {
        auto it = table.find(ws[i].layer);
        if (it == table.end()) continue;
        out[i] = it->second;
        sources_[i] = "sensitivity";
        Count("sensitivity-layers");
      }
      return out;
    }
    if (!global_ || ws.empty() || sparsity_ <= 0) return out;
    // One threshold over every selected weight: the k-th smallest |w| of all of them.
    std::vector<float> all;
    for (const auto& p : ws) {
      const ir::Tensor& t = *p.weight->initializer();
      const float* d = t.data<float>();
      for (uint64_t i = 0; i < t.numel(); ++i) all.push_back(std::fabs(d[i]));
    }
    int64_t k = static_cast<int64_t>(std::llround(sparsity_ * double(all.size())));
    if (k <= 0) return std::vector<double>(ws.size(), 0.0);
    std::nth_element(all.begin(), all.begin() + (k - 1), all.end());
    float thr = all[k - 1];
    // Below the threshold everything goes; elements equal to it fill the remaining quota
    // in layer order, so exactly k elements are pruned.
    int64_t below_total = 0;
    std::vector<int64_t> below(ws.size()), equal(ws.size());
    for (size_t i = 0; i < ws.size(); ++i) {
      const ir::Tensor& t = *ws[i].weight->initializer();
      const float* d = t.data<float>();
      for (uint64_t j = 0; j < t.numel(); ++j) {
        float a = std::fabs(d[j]);
        below[i] += a < thr;
        equal[i] += a == thr;
      }
      below_total += below[i];
    }
    int64_t quota = k - below_total;
    for (size_t i = 0; i < ws.size(); ++i) {
      int64_t take = std::min(equal[i], std::max<int64_t>(0, quota));
      quota -= take;
      double numel = double(ws[i].weight->initializer()->numel());
      out[i] = double(below[i] + take) / numel;
      sources_[i] = "global";
    }
    return out;
  }

  // The curves of the sensitivity file and each layer's chosen sparsity, for the report's
  // chart (the file was validated by SparsityFromSensitivity).
  void SensitivityDetails(const std::map<std::string, double>& chosen) {
    json f = json::parse(ReadFileToString(sensitivity_file_));
    json out = {{"file", sensitivity_file_}, {"max_error", max_error_}, {"layers", json::array()}};
    if (f.contains("metric") && f["metric"].is_string()) out["metric"] = f["metric"];
    for (const json& l : f["layers"]) {
      json lj = {{"layer", l["layer"]}, {"chosen", chosen.at(l["layer"].get<std::string>())},
                 {"results", json::array()}};
      for (const json& r : l["results"])
        lj["results"].push_back({{"sparsity", r["sparsity"]}, {"error", r["error"]}});
      out["layers"].push_back(lj);
    }
    details_["sensitivity"] = out;
  }

  double sparsity_;
  bool global_, hessian_;
  std::string sensitivity_file_;
  double max_error_;
  int64_t calib_samples_;
  double damp_;
  int64_t block_;
  prune::FindOptions find_;
  prune::Schedule schedule_;
  std::vector<std::string> sources_;
  json details_;
};

}  // namespace

const PassEntry& PruneMagnitudePass() {
  using T = OptionInfo::Type;
  static const PassEntry entry = {
      {"prune-magnitude",
       "Unstructured pruning of Conv/Gemm/MatMul weights: per-layer or global sparsity, "
       "by magnitude or SparseGPT (hessian), optionally per layer from a sensitivity file",
       {
           {"sparsity", T::kFloat, "0.5", "share of weights to zero (per layer, or of all selected weights with scope=global)", {}, 0, 0.999},
           {"scope", T::kEnum, "layer", "layer: each weight loses `sparsity`; global: one magnitude threshold across all", {"layer", "global"}},
           {"criterion", T::kEnum, "magnitude", "magnitude (smallest |w|) or hessian (SparseGPT, needs --data)", {"magnitude", "hessian"}},
           {"include", T::kStringList, "", "node-name globs to prune (empty: all)", {}},
           {"exclude", T::kStringList, "", "node-name globs to leave dense (* and ?)", {}},
           {"min-params", T::kInt, "0", "leave weights with fewer elements dense", {}, 0, 1e15},
           {"op-types", T::kStringList, "Conv,ConvTranspose,Gemm,MatMul,FusedConv,FusedGemm", "op types whose weights to prune (add Gather for embeddings)", {}},
           {"sensitivity-file", T::kString, "", "per-layer sparsity from `edgepress sensitivity --json -o FILE`", {}},
           {"max-error", T::kFloat, "0.01", "with sensitivity-file: largest error (metric degradation) a layer may reach", {}, 0, 1e30},
           {"schedule", T::kEnum, "oneshot", "gradual schedule reported for training loops: oneshot, linear, cubic", {"oneshot", "linear", "cubic"}},
           {"initial-sparsity", T::kFloat, "0", "schedule: sparsity at begin-step", {}, 0, 0.999},
           {"begin-step", T::kInt, "0", "schedule: first step that prunes", {}, 0, 1e15},
           {"end-step", T::kInt, "0", "schedule: step where `sparsity` is reached", {}, 0, 1e15},
           {"frequency", T::kInt, "1", "schedule: steps between sparsity updates", {}, 1, 1e15},
           {"calib-samples", T::kInt, "128", "criterion=hessian: calibration samples", {}, 1, 1e9},
           {"damp", T::kFloat, "0.01", "criterion=hessian: share of the mean Hessian diagonal added to it", {}, 0, 10},
           {"block-size", T::kInt, "128", "criterion=hessian: rows per mask-selection block", {}, 1, 1e9},
       },
       {"layers-pruned", "layers-already-sparse", "hessian-layers", "hessian-fallback-magnitude",
        "sensitivity-layers", "skipped-excluded", "skipped-not-constant", "skipped-small",
        "skipped-shared", "params", "nonzero-before", "nonzero-after"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<PruneMagnitude>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
