#include "passes/prune/sparsegpt.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "ir/error.h"
#include "passes/quant/weight_quant.h"

namespace edgepress::passes::sgpt {

bool Prune(float* w, int64_t K, int64_t N, std::vector<double> h, const Pattern& p, double damp,
           int64_t block) {
  if (static_cast<int64_t>(h.size()) != K * K)
    throw Error(ErrorCode::kInternal, "SparseGPT: Hessian size does not match the weight");
  if (p.n > 0 && (p.m <= p.n || K % p.m != 0))
    throw Error(ErrorCode::kInternal, "SparseGPT: N:M groups do not tile K");
  std::vector<double> u;
  if (!wq::DampedInverseCholesky(std::move(h), K, damp, &u)) return false;
  block = std::max<int64_t>(1, block);

  std::vector<float> work(w, w + K * N);
  std::vector<uint8_t> pruned(K * N, 0);
  std::vector<float> err(N);
  std::vector<int64_t> order;
  std::vector<double> score;
  for (int64_t i = 0; i < K; ++i) {
    if (p.n == 0 && i % block == 0) {
      int64_t rows = std::min(block, K - i), count = rows * N;
      int64_t k = static_cast<int64_t>(std::floor(p.sparsity * double(count)));
      score.resize(count);
      for (int64_t r = 0; r < rows; ++r) {
        double d = u[(i + r) * K + i + r];
        for (int64_t n = 0; n < N; ++n) {
          double v = work[(i + r) * N + n];
          score[r * N + n] = v * v / (d * d);
        }
      }
      order.resize(count);
      std::iota(order.begin(), order.end(), int64_t{0});
      if (k > 0 && k < count)
        std::nth_element(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
          return score[a] < score[b] || (score[a] == score[b] && a < b);
        });
      for (int64_t j = 0; j < std::min(k, count); ++j) pruned[i * N + order[j]] = 1;
    }
    if (p.n > 0 && i % p.m == 0) {
      int64_t drop = p.m - p.n;
      std::vector<std::pair<double, int64_t>> group(p.m);
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t r = 0; r < p.m; ++r) {
          double d = u[(i + r) * K + i + r];
          double v = work[(i + r) * N + n];
          group[r] = {v * v / (d * d), r};
        }
        std::nth_element(group.begin(), group.begin() + drop, group.end());
        for (int64_t j = 0; j < drop; ++j) pruned[(i + group[j].second) * N + n] = 1;
      }
    }
    const double* ui = &u[i * K];
    float dinv = static_cast<float>(1.0 / ui[i]);
    float* row = &work[i * N];
    for (int64_t n = 0; n < N; ++n) {
      float q = pruned[i * N + n] ? 0.f : row[n];
      err[n] = (row[n] - q) * dinv;
      row[n] = q;
    }
    for (int64_t j = i + 1; j < K; ++j) {
      float f = static_cast<float>(ui[j]);
      if (f == 0.f) continue;
      float* rj = &work[j * N];
      for (int64_t n = 0; n < N; ++n) rj[n] -= f * err[n];
    }
  }
  for (float v : work)
    if (!std::isfinite(v)) return false;
  std::copy(work.begin(), work.end(), w);
  return true;
}

bool Eligible(const prune::PrunableWeight& p, int64_t* K) {
  if (!p.in_main_graph || !p.has_view || p.users.size() != 1 || !p.input) return false;
  const ir::Node* n = p.users[0];
  const ir::Tensor* t = p.weight->initializer();
  if (!t || t->rank() != 2) return false;
  bool gemm = p.op == "Gemm" || p.op == "FusedGemm";
  if (p.op != "MatMul" && !gemm) return false;
  if (gemm && n->attr_int("transA", 0) != 0) return false;
  if (K) *K = p.axis == 0 ? t->shape()[0] : t->shape()[1];
  return true;
}

std::map<std::string, InputStats> CollectHessians(const ir::Model& model,
                                                  const std::vector<prune::PrunableWeight>& ws,
                                                  int64_t samples, const std::string& pass,
                                                  PassContext& ctx) {
  std::map<std::string, InputStats> stats;
  std::map<std::string, bool> conflict;
  for (const prune::PrunableWeight& p : ws) {
    int64_t K = 0;
    if (!Eligible(p, &K)) continue;
    InputStats& s = stats[p.input->name()];
    if (s.K != 0 && s.K != K) conflict[p.input->name()] = true;  // inconsistent model
    s.K = K;
  }
  for (const auto& [name, bad] : conflict) stats.erase(name);
  CollectOptions co;
  co.xtx = true;
  co.samples = samples;
  co.pass = pass;
  CollectInputStats(model, stats, co, ctx);
  return stats;
}

bool PruneWeight(const prune::PrunableWeight& p, const std::map<std::string, InputStats>& hs,
                 const Pattern& pattern, double damp, int64_t block) {
  int64_t K = 0;
  if (!Eligible(p, &K)) return false;
  auto it = hs.find(p.input->name());
  if (it == hs.end() || it->second.K != K || it->second.rows == 0) return false;
  ir::Tensor* t = p.weight->mutable_initializer();
  int64_t N = static_cast<int64_t>(t->numel()) / K;
  bool transposed = p.axis == 1;  // Gemm transB=1: stored [N, K]
  const float* src = t->data<float>();
  std::vector<float> w(K * N);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) w[k * N + n] = transposed ? src[n * K + k] : src[k * N + n];
  if (!Prune(w.data(), K, N, it->second.xtx, pattern, damp, block)) return false;
  float* dst = t->mutable_data<float>();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) (transposed ? dst[n * K + k] : dst[k * N + n]) = w[k * N + n];
  return true;
}

}  // namespace edgepress::passes::sgpt
