// prune-nm: N:M semi-structured pruning (2:4, 4:8, any n < m): in every group of m
// consecutive weights along the reduction dimension at most n are non-zero — the pattern
// sparse tensor cores and N:M CPU kernels skip in fixed strides. The reduction layout per
// op (MatMul B [K, N] groups along K = axis 0; Gemm transB=1 [N, K] along the last axis;
// Conv [O, I/g, kh, kw] along each output channel's flattened I/g·kh·kw, the row of its
// im2col GEMM) is prune_util.h's ReductionView. Zeros are written into the dense weight,
// which stays authoritative, and the tensor is annotated
// `sparse = SparseEncoding{kNM, n, m, axis}` for sparse storage and kernels to use.
//
// criterion=magnitude keeps the n largest |w| of each group (ties: the lower index);
// criterion=hessian runs SparseGPT's N:M variant (passes/prune/sparsegpt.h) on 2-D MatMul/Gemm
// weights with calibration data and falls back to magnitude for the rest (counted).
//
// Does not fire on: weights whose reduction length is not a multiple of m (e.g. a first
// conv with 1·3·3 = 9 weights per channel; counted skipped-indivisible), batched MatMul
// weights and weights whose readers disagree on the reduction axis (skipped-no-layout),
// weights excluded by glob or min-params, and weights that already carry this N:M
// annotation.
#include <algorithm>
#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

#include "ir/error.h"
#include "passes/all_passes.h"
#include "passes/prune/prune_util.h"
#include "passes/prune/sparsegpt.h"

namespace edgepress::passes {
namespace {

using json = nlohmann::json;

// Keeps the n largest |w| of every group of m along the view's reduction.
void PruneGroups(ir::Tensor& t, const prune::ReductionView& v, int n, int m) {
  float* d = t.mutable_data<float>();
  std::vector<int64_t> idx(m);
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t i = 0; i < v.inner; ++i)
      for (int64_t g = 0; g < v.reduction; g += m) {
        for (int r = 0; r < m; ++r) idx[r] = v.Index(o, g + r, i);
        // Largest first; ties keep the lower index.
        std::nth_element(idx.begin(), idx.begin() + n, idx.end(), [&](int64_t a, int64_t b) {
          float fa = std::fabs(d[a]), fb = std::fabs(d[b]);
          return fa > fb || (fa == fb && a < b);
        });
        for (int r = n; r < m; ++r) d[idx[r]] = 0.f;
      }
}

// True when every group of m holds at most n non-zeros.
bool SatisfiesNM(const ir::Tensor& t, const prune::ReductionView& v, int n, int m) {
  const float* d = t.data<float>();
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t i = 0; i < v.inner; ++i)
      for (int64_t g = 0; g < v.reduction; g += m) {
        int nz = 0;
        for (int r = 0; r < m; ++r) nz += d[v.Index(o, g + r, i)] != 0.f;
        if (nz > n) return false;
      }
  return true;
}

int64_t NonZero(const ir::Tensor& t) {
  const float* d = t.data<float>();
  return std::count_if(d, d + t.numel(), [](float x) { return x != 0.f; });
}

class PruneNM : public Pass {
 public:
  explicit PruneNM(const PassOptions& o)
      : n_(static_cast<int>(o.GetInt("n"))),
        m_(static_cast<int>(o.GetInt("m"))),
        hessian_(o.GetString("criterion") == "hessian"),
        calib_samples_(o.GetInt("calib-samples")),
        damp_(o.GetFloat("damp")) {
    if (n_ >= m_)
      ThrowInvalid("pass 'prune-nm': n = " + std::to_string(n_) + " must be smaller than m = " +
                   std::to_string(m_) + " (e.g. n=2, m=4)");
    find_.include = o.GetStringList("include");
    find_.exclude = o.GetStringList("exclude");
    find_.min_params = o.GetInt("min-params");
    find_.op_types = o.GetStringList("op-types");
    const auto& ok = prune::DefaultOpTypes();
    for (const std::string& op : find_.op_types)
      if (std::find(ok.begin(), ok.end(), op) == ok.end())
        ThrowInvalid("pass 'prune-nm': option 'op-types' names '" + op +
                     "'; N:M pruning handles Conv, ConvTranspose, Gemm, MatMul, FusedConv and "
                     "FusedGemm");
  }
  const PassInfo& info() const override { return PruneNMPass().info; }
  std::string Details() const override { return details_.empty() ? "" : details_.dump(); }

  bool Run(ir::Model& model, PassContext& ctx) override {
    prune::ParamCounts before = prune::CountParams(model);
    Count("params", before.params);
    Count("nonzero-before", before.nonzero);
    details_ = {{"criterion", hessian_ ? "hessian" : "magnitude"},
                {"n", n_},
                {"m", m_},
                {"layers", json::array()}};
    prune::FindCounts fc;
    std::vector<prune::PrunableWeight> all = prune::FindPrunable(model, find_, &fc);
    Count("skipped-excluded", fc.excluded);
    Count("skipped-not-constant", fc.not_constant);
    Count("skipped-small", fc.too_small);
    Count("skipped-shared", fc.shared);

    ir::SparseEncoding enc;
    enc.kind = ir::SparseEncoding::Kind::kNM;
    enc.n = n_;
    enc.m = m_;
    std::vector<prune::PrunableWeight> ws;
    for (const prune::PrunableWeight& p : all) {
      if (!p.has_view) {
        Count("skipped-no-layout");
        continue;
      }
      const ir::Tensor& t = *p.weight->initializer();
      prune::ReductionView v = prune::ViewOf(t.shape(), p.axis);
      if (v.reduction % m_ != 0) {
        Count("skipped-indivisible");
        continue;
      }
      enc.axis = p.axis;
      if (t.sparse && *t.sparse == enc) {
        Count("skipped-already-nm");
        continue;
      }
      ws.push_back(p);
    }
    if (ws.empty()) {
      Count("nonzero-after", before.nonzero);
      return false;
    }
    std::map<std::string, InputStats> hs;
    if (hessian_) {
      if (ctx.data_files.empty())
        throw Error(ErrorCode::kUsage, "pass 'prune-nm' with criterion=hessian needs "
                                       "calibration data: give --data FILE.npz");
      hs = sgpt::CollectHessians(model, ws, calib_samples_, "prune-nm", ctx);
    }
    for (const prune::PrunableWeight& p : ws) {
      ir::Tensor& t = *p.weight->mutable_initializer();
      prune::ReductionView v = prune::ViewOf(t.shape(), p.axis);
      int64_t nz0 = NonZero(t);
      std::string how = "magnitude";
      if (!SatisfiesNM(t, v, n_, m_)) {
        bool done = false;
        if (hessian_) {
          sgpt::Pattern pat;
          pat.n = n_;
          pat.m = m_;
          done = sgpt::PruneWeight(p, hs, pat, damp_, /*block=*/128);
          Count(done ? "hessian-layers" : "hessian-fallback-magnitude");
          if (done) how = "hessian";
        }
        if (!done) PruneGroups(t, v, n_, m_);
        Count("layers-pruned");
      } else {
        how = "annotated";  // already N:M by value: only the encoding is added
        Count("layers-annotated");
      }
      enc.axis = p.axis;
      t.sparse = enc;
      int64_t nz1 = NonZero(t);
      details_["layers"].push_back({{"layer", p.layer},
                                    {"op", p.op},
                                    {"weight", p.weight->name()},
                                    {"params", static_cast<int64_t>(t.numel())},
                                    {"axis", p.axis},
                                    {"nonzero_before", nz0},
                                    {"nonzero_after", nz1},
                                    {"sparsity", 1.0 - double(nz1) / double(t.numel())},
                                    {"criterion", how}});
    }
    prune::ParamCounts after = prune::CountParams(model);
    Count("nonzero-after", after.nonzero);
    details_["params"] = before.params;
    details_["nonzero_before"] = before.nonzero;
    details_["nonzero_after"] = after.nonzero;
    return true;
  }

 private:
  int n_, m_;
  bool hessian_;
  int64_t calib_samples_;
  double damp_;
  prune::FindOptions find_;
  json details_;
};

}  // namespace

const PassEntry& PruneNMPass() {
  using T = OptionInfo::Type;
  static const PassEntry entry = {
      {"prune-nm",
       "N:M semi-structured pruning (2:4, 4:8) along the reduction dimension of "
       "Conv/Gemm/MatMul weights, by magnitude or SparseGPT (hessian); annotates the tensors",
       {
           {"n", T::kInt, "2", "non-zeros kept in every group", {}, 1, 64},
           {"m", T::kInt, "4", "group length along the reduction dimension", {}, 2, 128},
           {"criterion", T::kEnum, "magnitude", "magnitude (largest |w| kept) or hessian (SparseGPT, needs --data)", {"magnitude", "hessian"}},
           {"include", T::kStringList, "", "node-name globs to prune (empty: all)", {}},
           {"exclude", T::kStringList, "", "node-name globs to leave dense (* and ?)", {}},
           {"min-params", T::kInt, "0", "leave weights with fewer elements dense", {}, 0, 1e15},
           {"op-types", T::kStringList, "Conv,ConvTranspose,Gemm,MatMul,FusedConv,FusedGemm", "op types whose weights to prune", {}},
           {"calib-samples", T::kInt, "128", "criterion=hessian: calibration samples", {}, 1, 1e9},
           {"damp", T::kFloat, "0.01", "criterion=hessian: share of the mean Hessian diagonal added to it", {}, 0, 10},
       },
       {"layers-pruned", "layers-annotated", "hessian-layers", "hessian-fallback-magnitude",
        "skipped-indivisible", "skipped-no-layout", "skipped-already-nm", "skipped-excluded",
        "skipped-not-constant", "skipped-small", "skipped-shared", "params", "nonzero-before",
        "nonzero-after"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> { return std::make_unique<PruneNM>(o); }};
  return entry;
}

}  // namespace edgepress::passes
