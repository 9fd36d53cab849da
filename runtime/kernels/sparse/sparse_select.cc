// Measured choice between the dense GEMM and the sparse kernels (sparse_select.h).
#include "runtime/kernels/sparse/sparse_select.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace edgepress::runtime::sparse {

namespace {

constexpr double kMinZeros = 0.5;      // below this no sparse form can win on these CPUs
constexpr double kMargin = 0.9;        // a sparse form must take <= 90% of the dense time
constexpr double kMaxProbeMacs = 1.5e8;  // larger probes are not timed (dense kept)

// Which forms are worth timing at a probe M (bench/sparse_bench.cc, AVX-512: below these
// the sparse form lost by 1.25x or more), so that the costly large-M probes of a
// 50%-pruned model are skipped.
bool TryCsr(int64_t m, double zeros) { return m <= 16 ? zeros >= 0.5 : zeros >= 0.75; }
bool TryNM(int64_t m) { return m <= 8; }
bool TryQCsr(int64_t m, double zeros) { return m <= 2 && zeros >= 0.75; }

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// Fastest of a few runs (after one warm-up), in seconds; reps shrink for slow kernels so
// a layer's measurement stays within a few tens of milliseconds.
template <typename F>
double TimeMin(F&& f) {
  using Clock = std::chrono::steady_clock;
  auto once = [&] {
    const auto t0 = Clock::now();
    f();
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  double best = once();  // warm-up (also first-touch of buffers)
  best = std::min(best, once());
  const int reps = best < 1e-3 ? 7 : (best < 1e-2 ? 3 : 1);
  for (int r = 0; r < reps; ++r) best = std::min(best, once());
  return best;
}

// Index of the probe nearest to m on a log scale.
size_t NearestProbe(const std::vector<int64_t>& probes, int64_t m) {
  size_t best = 0;
  double dist = 1e300;
  for (size_t i = 0; i < probes.size(); ++i) {
    const double d = std::fabs(std::log(static_cast<double>(m)) - std::log(static_cast<double>(probes[i])));
    if (d < dist) {
      dist = d;
      best = i;
    }
  }
  return best;
}

std::vector<int64_t> Probes(std::optional<int64_t> static_m) {
  if (static_m && *static_m > 0) return {*static_m};
  return {1, 4, 16, 64};
}

// A - za widened to int32 (the sparse int8 kernels' activation form).
void WidenA(int64_t m, int64_t k, const QSource& a, int32_t* dst) {
  for (int64_t i = 0; i < m; ++i) {
    const int32_t za = a.zero_points ? a.zero_points[a.per_channel_zp ? i : 0] : 0;
    if (a.dtype == ir::DType::kInt8) {
      const int8_t* src = static_cast<const int8_t*>(a.data) + i * a.ld;
      for (int64_t kk = 0; kk < k; ++kk) dst[i * k + kk] = src[kk] - za;
    } else {
      const uint8_t* src = static_cast<const uint8_t*>(a.data) + i * a.ld;
      for (int64_t kk = 0; kk < k; ++kk) dst[i * k + kk] = src[kk] - za;
    }
  }
}

}  // namespace

double ZeroFraction(const float* b, int64_t ldb, bool trans, int64_t k, int64_t n) {
  if (k <= 0 || n <= 0) return 0;
  int64_t zeros = 0;
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t j = 0; j < n; ++j) zeros += (trans ? b[j * ldb + kk] : b[kk * ldb + j]) == 0.f;
  return static_cast<double>(zeros) / static_cast<double>(k * n);
}

std::unique_ptr<SparseMatMul> SparseMatMul::Create(Isa isa, const float* b, int64_t ldb,
                                                   bool trans, int64_t k, int64_t n,
                                                   const PackedMatrix& dense,
                                                   std::optional<int64_t> static_m,
                                                   const std::string& node_desc) {
  const std::string mode = Env("EDGEPRESS_SPARSE");
  if (mode == "off" || mode == "0" || ForceScalar() || isa == Isa::kScalar) return nullptr;
  if (k <= 0 || n <= 0 || k > INT32_MAX || k * n > INT32_MAX) return nullptr;
  const double zeros = ZeroFraction(b, ldb, trans, k, n);
  if (zeros < kMinZeros) return nullptr;

  std::unique_ptr<SparseMatMul> s(new SparseMatMul());
  s->ks_ = &SparseKernelsFor(isa);
  s->zeros_ = zeros;
  s->csr_ = std::make_unique<CsrWeight>(PackCsr(b, ldb, trans, k, n));
  auto nm = std::make_unique<NMWeight>();
  if (PackNM(b, ldb, trans, k, n, nm.get())) s->nm_ = std::move(nm);
  s->probes_ = Probes(static_m);

  if (mode == "on" || mode == "1") {
    s->choice_.assign(s->probes_.size(), s->nm_ ? Form::kNM : Form::kCsr);
  } else {
    const int64_t max_m = *std::max_element(s->probes_.begin(), s->probes_.end());
    std::vector<float> a(static_cast<size_t>(max_m * k)), c(static_cast<size_t>(max_m * n));
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    for (float& x : a) x = dist(rng);
    SparseOut o;
    o.c = c.data();
    o.ldc = n;
    for (int64_t m : s->probes_) {
      Form best = Form::kDense;
      const bool try_csr = TryCsr(m, zeros), try_nm = s->nm_ && TryNM(m);
      if ((try_csr || try_nm) && static_cast<double>(m) * k * n <= kMaxProbeMacs) {
        const double t_dense = TimeMin([&] {
          SgemmEx(isa, m, n, k, 1.f, GemmOperand::Raw(a.data(), k), GemmOperand::Packed(dense),
                  0.f, c.data(), n, nullptr);
        });
        double t_best = t_dense * kMargin;
        const double t_csr =
            try_csr ? TimeMin([&] { SpmmCsr(*s->ks_, m, a.data(), k, *s->csr_, o, nullptr); }) : 1e300;
        if (t_csr < t_best) {
          best = Form::kCsr;
          t_best = t_csr;
        }
        if (try_nm) {
          const double t_nm = TimeMin([&] { SpmmNM(*s->ks_, m, a.data(), k, *s->nm_, o, nullptr); });
          if (t_nm < t_best) best = Form::kNM;
        }
      }
      s->choice_.push_back(best);
    }
  }
  bool any_csr = false, any_nm = false;
  for (Form f : s->choice_) {
    any_csr = any_csr || f == Form::kCsr;
    any_nm = any_nm || f == Form::kNM;
  }
  if (Env("EDGEPRESS_SPARSE_LOG") == "1")
    std::fprintf(stderr, "edgepress: %s: %s\n", node_desc.c_str(), s->Describe().c_str());
  if (!any_csr) s->csr_.reset();
  if (!any_nm) s->nm_.reset();
  if (!any_csr && !any_nm) return nullptr;
  return s;
}

SparseMatMul::Form SparseMatMul::FormFor(int64_t m) const {
  return choice_[NearestProbe(probes_, m)];
}

bool SparseMatMul::Run(int64_t m, const float* a, int64_t lda, float* c, int64_t ldc, float alpha,
                       const GemmEpilogue* ep, ThreadPool* pool) const {
  if (m <= 0) return false;
  const Form f = FormFor(m);
  if (f == Form::kDense) return false;
  SparseOut o;
  o.c = c;
  o.ldc = ldc;
  o.alpha = alpha;
  if (ep) {
    if (ep->bias_kind == GemmEpilogue::Bias::kPerRow) return false;
    if (ep->bias_kind == GemmEpilogue::Bias::kPerCol) o.col_bias = ep->bias;
    o.clamp = ep->clamp;
    o.lo = ep->lo;
    o.hi = ep->hi;
  }
  if (f == Form::kNM)
    SpmmNM(*ks_, m, a, lda, *nm_, o, pool);
  else
    SpmmCsr(*ks_, m, a, lda, *csr_, o, pool);
  return true;
}

std::string SparseMatMul::Describe() const {
  char zeros[32];
  std::snprintf(zeros, sizeof(zeros), "%.1f%% zeros", 100.0 * zeros_);
  std::string out;
  for (size_t i = 0; i < probes_.size(); ++i) {
    const char* name = choice_[i] == Form::kCsr  ? ks_->csr_name
                       : choice_[i] == Form::kNM ? ks_->nm_name
                                                 : "dense";
    out += (i ? ", " : "") + std::string(name) + " at M=" + std::to_string(probes_[i]);
  }
  out += " (" + std::string(zeros);
  if (nm_) out += ", " + std::to_string(nm_->nn) + ":" + std::to_string(nm_->m);
  return out + ")";
}

std::unique_ptr<QSparseMatMul> QSparseMatMul::Create(Isa isa, const QSource& b, int64_t k,
                                                     int64_t n, const QPacked& dense,
                                                     std::optional<int64_t> static_m,
                                                     const std::string& node_desc) {
  const std::string mode = Env("EDGEPRESS_SPARSE");
  if (mode == "off" || mode == "0" || ForceScalar() || isa == Isa::kScalar) return nullptr;
  if (k <= 0 || n <= 0 || k > INT32_MAX || k * n > INT32_MAX) return nullptr;
  std::unique_ptr<QSparseMatMul> s(new QSparseMatMul());
  s->csr_ = PackQCsr(b.data, b.dtype == ir::DType::kInt8, b.ld, b.trans, k, n, b.zero_points,
                     b.per_channel_zp);
  s->zeros_ = 1.0 - static_cast<double>(s->csr_.nnz()) / static_cast<double>(k * n);
  if (s->zeros_ < kMinZeros) return nullptr;
  s->ks_ = &SparseKernelsFor(isa == Isa::kAvx512 ? Isa::kAvx512Vnni : isa);
  s->probes_ = Probes(static_m);
  if (mode == "on" || mode == "1") {
    s->sparse_.assign(s->probes_.size(), true);
  } else {
    const int64_t max_m = *std::max_element(s->probes_.begin(), s->probes_.end());
    std::vector<uint8_t> a(static_cast<size_t>(max_m * k));
    std::mt19937 rng(7);
    for (uint8_t& x : a) x = static_cast<uint8_t>(rng());
    std::vector<int32_t> acc(static_cast<size_t>(max_m * n));
    std::vector<int16_t> apack(static_cast<size_t>(QPackedASize(isa, max_m, k)));
    const int32_t za = 128;
    const QSource as{a.data(), ir::DType::kUInt8, k, false, &za, false};
    QOutput out;
    out.kind = QOutput::Kind::kInt32;
    out.data = acc.data();
    out.ld = n;
    for (int64_t m : s->probes_) {
      bool use = false;
      if (TryQCsr(m, s->zeros_) && static_cast<double>(m) * k * n <= kMaxProbeMacs) {
        const int64_t panels = (m + QGemmMr(isa) - 1) / QGemmMr(isa);
        const double t_dense = TimeMin([&] {
          QPackAPanels(isa, m, k, as, 0, panels, apack.data());
          QGemm(isa, m, n, k, QOperand{apack.data(), isa, m, k}, QOperand::Of(dense), out, nullptr);
        });
        const double t_sparse = TimeMin([&] { s->Accumulate(m, as, acc.data(), nullptr); });
        use = t_sparse < t_dense * kMargin;
      }
      s->sparse_.push_back(use);
    }
  }
  if (Env("EDGEPRESS_SPARSE_LOG") == "1")
    std::fprintf(stderr, "edgepress: %s: %s\n", node_desc.c_str(), s->Describe().c_str());
  if (std::find(s->sparse_.begin(), s->sparse_.end(), true) == s->sparse_.end()) return nullptr;
  return s;
}

bool QSparseMatMul::Accumulate(int64_t m, const QSource& a, int32_t* acc, ThreadPool* pool) const {
  if (m <= 0) return false;
  // Called from Create() before the choice exists: always run then.
  if (sparse_.size() == probes_.size() && !sparse_[NearestProbe(probes_, m)]) return false;
  thread_local std::vector<int32_t> widened;
  const int64_t k = csr_.k;
  if (widened.size() < static_cast<size_t>(m * k)) widened.resize(static_cast<size_t>(m * k));
  WidenA(m, k, a, widened.data());
  QSpmmCsr(*ks_, m, widened.data(), k, csr_, acc, csr_.n, pool);
  return true;
}

std::string QSparseMatMul::Describe() const {
  char zeros[32];
  std::snprintf(zeros, sizeof(zeros), "%.1f%% zeros", 100.0 * zeros_);
  std::string out;
  for (size_t i = 0; i < probes_.size(); ++i)
    out += (i ? ", " : "") + std::string(sparse_[i] ? ks_->qcsr_name : "dense") +
           " at M=" + std::to_string(probes_[i]);
  return out + " (" + zeros + ")";
}

}  // namespace edgepress::runtime::sparse
