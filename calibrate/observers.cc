// Streaming observers: minmax keeps two numbers per channel; percentile, entropy and mse
// keep a fixed-size histogram per channel on a power-of-two grid (see Histogram).
//
// How the histogram methods pick a range:
// - percentile: non-symmetric cuts (100 - p)/2 % of the values from each tail of x
//   (onnxruntime's rule); symmetric takes the p-th percentile of |x|. Interpolated
//   linearly within a bin.
// - entropy: TensorRT's KL-divergence search on a histogram of magnitudes: for each
//   candidate threshold i (in bins), the reference P is the first i bins with the outliers
//   folded into the last one, Q is P quantized to L levels and expanded back over P's
//   non-zero bins; the threshold with the smallest KL(P||Q) wins. Symmetric: one search on
//   |x| with L = 128. Non-symmetric data with both signs: the positive and the negative
//   side are searched independently (L = 128 each, as each side gets about half of the
//   256 codes); one-sided data (e.g. after ReLU): one search with L = 256 from zero,
//   because the quantizer's range includes zero anyway. The zero bin is flattened to its
//   neighbour's count before the search (as NVIDIA's pytorch-quantization does), and bin
//   k maps to level k·L/i (every level spans i/L bins, rounded).
// - mse: minimises the expected 8-bit quantization error over the histogram: values
//   outside [a, b] cost their clipping error (x - clamp(x))^2, values inside the rounding
//   noise step^2/12 with step = (max(b,0) - min(a,0)) / 255 (the quantizer's range
//   includes zero; exact zeros are represented exactly and cost nothing). Non-symmetric
//   searches every pair of bin edges (O(bins^2) with prefix sums); symmetric searches t
//   with step = 2t/254.
// Ranges are clamped to the values observed and are not widened to include zero: that is
// the quantizer's business.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "calibrate/calibrate.h"
#include "ir/error.h"

namespace edgepress::calibrate {

namespace {

constexpr int kMinExp = -160;  // 2^-160 is below the smallest float subnormal
constexpr int kRelExp = 40;    // bin width >= max|x| * 2^-40 keeps bin indices in int64
// The power-of-two grid holds this many times `bins` bins: data fills 1/2..1 of it, and
// zero-centred data splits it in two, so each side keeps at least `bins` bins, as
// TensorRT's |x| histogram has.
constexpr int kGridFactor = 4;

// floor(g / 2^shift) for shift >= 0.
int64_t FloorShift(int64_t g, int shift) {
  if (shift == 0) return g;
  if (shift >= 62) return g < 0 ? -1 : 0;
  return g >= 0 ? (g >> shift) : -(((-g) - 1) >> shift) - 1;
}

int64_t FloorScaled(double x, int e) {
  return static_cast<int64_t>(std::floor(std::ldexp(x, -e)));
}

// A streaming histogram on a power-of-two grid: bin i covers [(base+i)·2^e,
// (base+i+1)·2^e). The grid is the finest one (smallest e) whose bins cover every value
// seen, with e >= exponent(max|x|) - 40. That grid is a function of the observed
// [min, max] alone, and growing it merges whole bins exactly (2^e divides 2^e'), so
// feeding data in many batches gives the same counts as feeding it at once, and the
// memory is the bins, whatever the number of samples.
class Histogram {
 public:
  explicit Histogram(int bins) : counts_(static_cast<size_t>(bins), 0) {}

  // Grows the grid to cover [lo, hi] (finite, lo <= hi) in addition to the data so far.
  void Extend(double lo, double hi) {
    double new_min = has_grid_ ? std::min(data_min_, lo) : lo;
    double new_max = has_grid_ ? std::max(data_max_, hi) : hi;
    double maxabs = std::max(std::fabs(new_min), std::fabs(new_max));
    int e = has_grid_ ? exp_ : kMinExp;
    if (maxabs > 0) e = std::max(e, std::ilogb(maxabs) - kRelExp);
    int64_t bins = static_cast<int64_t>(counts_.size());
    while (FloorScaled(new_max, e) - FloorScaled(new_min, e) > bins - 1) ++e;
    int64_t new_base = FloorScaled(new_min, e);
    if (has_grid_ && (e != exp_ || new_base != base_)) {
      std::vector<uint64_t> merged(counts_.size(), 0);
      for (size_t j = 0; j < counts_.size(); ++j) {
        if (!counts_[j]) continue;
        int64_t idx = FloorShift(base_ + static_cast<int64_t>(j), e - exp_) - new_base;
        idx = std::clamp<int64_t>(idx, 0, bins - 1);  // exact grids: always in range
        merged[static_cast<size_t>(idx)] += counts_[j];
      }
      counts_.swap(merged);
    }
    has_grid_ = true;
    exp_ = e;
    inv_width_ = std::ldexp(1.0, -e);
    base_ = new_base;
    data_min_ = new_min;
    data_max_ = new_max;
  }
  // `x` must lie in the range passed to Extend.
  void Add(float x) {
    // x·2^-e is exact in double (a power-of-two scale well inside double's range).
    int64_t idx = static_cast<int64_t>(std::floor(static_cast<double>(x) * inv_width_)) - base_;
    idx = std::clamp<int64_t>(idx, 0, static_cast<int64_t>(counts_.size()) - 1);
    ++counts_[static_cast<size_t>(idx)];
  }

  bool has_grid() const { return has_grid_; }
  double width() const { return std::ldexp(1.0, exp_); }
  int64_t base() const { return base_; }
  double data_min() const { return data_min_; }
  double data_max() const { return data_max_; }
  const std::vector<uint64_t>& counts() const { return counts_; }
  double edge(int64_t i) const { return std::ldexp(static_cast<double>(base_ + i), exp_); }
  size_t bytes() const { return counts_.capacity() * sizeof(uint64_t); }

 private:
  std::vector<uint64_t> counts_;
  bool has_grid_ = false;
  int exp_ = kMinExp;
  double inv_width_ = 1;
  int64_t base_ = 0;
  double data_min_ = 0, data_max_ = 0;
};

// Counts on a grid of width w: c[i] covers [(base+i)·w, (base+i+1)·w). Signed values, or
// magnitudes |x| (then bin m covers |x| in [m·w, (m+1)·w)).
struct Bins {
  int64_t base = 0;
  double w = 1;
  std::vector<double> c;
  double edge(size_t i) const { return static_cast<double>(base + static_cast<int64_t>(i)) * w; }
  int64_t end() const { return base + static_cast<int64_t>(c.size()); }
  // Merges aligned pairs of bins (exact on the power-of-two grid).
  void Halve() {
    int64_t nb = FloorShift(base, 1), ne = FloorShift(end() - 1, 1) + 1;
    std::vector<double> merged(static_cast<size_t>(ne - nb), 0.0);
    for (size_t i = 0; i < c.size(); ++i)
      merged[static_cast<size_t>(FloorShift(base + static_cast<int64_t>(i), 1) - nb)] += c[i];
    base = nb;
    w *= 2;
    c.swap(merged);
  }
};

// The signed histogram trimmed to its non-empty bins.
Bins SignedBins(const Histogram& h) {
  const auto& counts = h.counts();
  size_t first = counts.size(), last = 0;
  for (size_t j = 0; j < counts.size(); ++j)
    if (counts[j]) first = std::min(first, j), last = j;
  Bins b;
  b.w = h.width();
  if (first > last) return b;
  b.base = h.base() + static_cast<int64_t>(first);
  b.c.assign(counts.begin() + first, counts.begin() + last + 1);
  return b;
}

// Magnitude histogram of the positive side (x >= 0), the negative side (x < 0), or both;
// the grid is aligned at zero, so x < 0 in bin g has |x| in bin -g-1.
enum class Side { kPositive, kNegative, kBoth };
Bins MagnitudesOf(const Histogram& h, Side side) {
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = -1;
  auto mag = [](int64_t g) { return g >= 0 ? g : -g - 1; };
  auto take = [&](int64_t g) { return side == Side::kBoth || (side == Side::kPositive) == (g >= 0); };
  const auto& counts = h.counts();
  for (size_t j = 0; j < counts.size(); ++j) {
    int64_t g = h.base() + static_cast<int64_t>(j);
    if (!take(g) || !counts[j]) continue;
    lo = std::min(lo, mag(g));
    hi = std::max(hi, mag(g));
  }
  Bins m;
  m.w = h.width();
  if (hi < 0) return m;
  m.base = lo;
  m.c.assign(static_cast<size_t>(hi - lo + 1), 0.0);
  for (size_t j = 0; j < counts.size(); ++j) {
    int64_t g = h.base() + static_cast<int64_t>(j);
    if (take(g) && counts[j]) m.c[static_cast<size_t>(mag(g) - lo)] += static_cast<double>(counts[j]);
  }
  return m;
}

// The value below which a share `q` (0..1) of the counts lie, interpolated in its bin.
double Quantile(const Bins& b, double q) {
  double total = 0;
  for (double x : b.c) total += x;
  double target = q * total, cum = 0;
  for (size_t i = 0; i < b.c.size(); ++i) {
    if (b.c[i] > 0 && cum + b.c[i] >= target) return b.edge(i) + (target - cum) / b.c[i] * b.w;
    cum += b.c[i];
  }
  return b.edge(b.c.size());
}

// MXNet/TensorRT smoothing: move a little mass onto empty bins so KL stays finite.
bool Smooth(std::vector<double>& p) {
  constexpr double kEps = 1e-4;
  size_t zeros = 0;
  for (double x : p) zeros += x == 0;
  size_t nonzeros = p.size() - zeros;
  if (nonzeros == 0) return false;
  double eps1 = kEps * static_cast<double>(zeros) / static_cast<double>(nonzeros);
  for (double& x : p) x = x == 0 ? kEps : x - eps1;
  for (double x : p)
    if (x <= 0) return false;
  return true;
}

double KlDivergence(const std::vector<double>& p, const std::vector<double>& q) {
  double sp = 0, sq = 0;
  for (size_t i = 0; i < p.size(); ++i) sp += p[i], sq += q[i];
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    double pi = p[i] / sp, qi = q[i] / sq;
    if (pi > 0) kl += pi * std::log(pi / qi);
  }
  return kl;
}

// TensorRT's entropy calibration on a magnitude histogram: the threshold |x| minimising
// KL(P||Q) with `levels` quantization levels. Like TensorRT, the search runs on at most
// `bins` bins from zero to the largest magnitude (coarsened exactly from the finer grid,
// to between bins/2 and bins).
double KlThreshold(Bins m, int levels, int bins) {
  while (m.end() > static_cast<int64_t>(bins)) m.Halve();
  int64_t n = m.end();
  if (n <= levels) return static_cast<double>(n) * m.w;
  std::vector<double> h(static_cast<size_t>(n), 0.0);
  for (size_t i = 0; i < m.c.size(); ++i) h[static_cast<size_t>(m.base) + i] = m.c[i];
  // The first bin holds the exact zeros (ReLU outputs: often half the values); a spike
  // that no level can represent apart from its neighbours would dominate KL and pull
  // the threshold down. NVIDIA's pytorch-quantization flattens it the same way.
  h[0] = h[1];
  std::vector<double> suffix(static_cast<size_t>(n) + 1, 0.0);
  for (int64_t i = n - 1; i >= 0; --i) suffix[i] = suffix[i + 1] + h[i];
  double best_kl = std::numeric_limits<double>::infinity();
  int64_t best = n;
  std::vector<double> p, q, sum;
  std::vector<int64_t> nonzero;
  for (int64_t i = levels; i <= n; ++i) {
    p.assign(h.begin(), h.begin() + i);
    p[i - 1] += suffix[i];  // outliers clip into the last bin
    // Bin k goes to level k·L/i, so every level spans i/L bins rounded either way (not
    // a remainder piled onto the last level, which favours thresholds just below a
    // multiple of L).
    sum.assign(static_cast<size_t>(levels), 0.0);
    nonzero.assign(static_cast<size_t>(levels), 0);
    for (int64_t k = 0; k < i; ++k) {
      size_t l = static_cast<size_t>(k * levels / i);
      sum[l] += h[k];
      nonzero[l] += p[k] != 0;
    }
    q.assign(static_cast<size_t>(i), 0.0);
    for (int64_t k = 0; k < i; ++k) {
      size_t l = static_cast<size_t>(k * levels / i);
      if (p[k] != 0) q[k] = sum[l] / static_cast<double>(nonzero[l]);
    }
    if (!Smooth(p) || !Smooth(q)) continue;
    double kl = KlDivergence(p, q);
    if (kl < best_kl) {
      best_kl = kl;
      best = i;
    }
  }
  return static_cast<double>(best) * m.w;
}

// Prefix sums over bins of count, count·x, count·x² with x the bin centre.
struct Prefix {
  std::vector<double> s0, s1, s2;
  explicit Prefix(size_t n) : s0(n + 1, 0), s1(n + 1, 0), s2(n + 1, 0) {}
  void Set(size_t i, double c, double x) {
    s0[i + 1] = s0[i] + c;
    s1[i + 1] = s1[i] + c * x;
    s2[i + 1] = s2[i] + c * x * x;
  }
  // Σ c (x - t)^2 over bins [i, j).
  double Sq(size_t i, size_t j, double t) const {
    double n = s0[j] - s0[i], a = s1[j] - s1[i], b = s2[j] - s2[i];
    return std::max(0.0, b - 2 * t * a + t * t * n);
  }
};

struct Group {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  uint64_t count = 0, nonfinite = 0, zeros = 0;
};

class StreamObserver final : public Observer {
 public:
  StreamObserver(std::string name, const ObserverOptions& o) : name_(std::move(name)), o_(o) {}

  void Observe(const ir::Tensor& t) override {
    if (!ir::IsFloat(t.dtype()))
      ThrowInvalid("calibration: tensor '" + name_ + "' is " + ir::DTypeName(t.dtype()) +
                   ", only float tensors can be observed");
    int64_t channels = 1, inner = static_cast<int64_t>(t.numel());
    if (o_.per_channel_axis >= 0) {
      if (o_.per_channel_axis >= t.rank())
        ThrowInvalid("calibration: per-channel axis " + std::to_string(o_.per_channel_axis) +
                     " is out of range for tensor '" + name_ + "' of rank " +
                     std::to_string(t.rank()));
      channels = t.shape()[o_.per_channel_axis];
      inner = 1;
      for (int d = o_.per_channel_axis + 1; d < t.rank(); ++d) inner *= t.shape()[d];
    }
    if (groups_.empty()) {
      if (channels == 0) return;  // nothing to size the channels by yet
      groups_.resize(static_cast<size_t>(channels));
      if (o_.method != Method::kMinMax)
        hists_.assign(static_cast<size_t>(channels), Histogram(kGridFactor * o_.bins));
    } else if (static_cast<int64_t>(groups_.size()) != channels) {
      ThrowInvalid("calibration: tensor '" + name_ + "' has " + std::to_string(channels) +
                   " channels along axis " + std::to_string(o_.per_channel_axis) +
                   ", earlier batches had " + std::to_string(groups_.size()));
    }
    if (t.numel() == 0) return;

    std::vector<float> converted;
    const float* x = t.data<float>();
    if (t.dtype() != ir::DType::kFloat32) {
      std::vector<double> d = t.ToDouble();  // f64 beyond float range becomes inf: skipped
      converted.assign(d.begin(), d.end());
      x = converted.data();
    }
    int64_t outer = static_cast<int64_t>(t.numel()) / (channels * inner);
    std::vector<Group> batch(groups_.size());
    ForEachChunk(outer, channels, inner, x, [&](size_t c, const float* v, int64_t n) {
      Group& g = batch[c];
      for (int64_t i = 0; i < n; ++i) {
        float f = v[i];
        if (!std::isfinite(f)) {
          ++g.nonfinite;
          continue;
        }
        ++g.count;
        g.zeros += f == 0;
        g.min = std::min<double>(g.min, f);
        g.max = std::max<double>(g.max, f);
      }
    });
    for (size_t c = 0; c < groups_.size(); ++c) {
      Group& g = groups_[c];
      const Group& b = batch[c];
      g.count += b.count;
      g.nonfinite += b.nonfinite;
      g.zeros += b.zeros;
      g.min = std::min(g.min, b.min);
      g.max = std::max(g.max, b.max);
      if (!hists_.empty() && b.count) hists_[c].Extend(b.min, b.max);
    }
    if (hists_.empty()) return;
    ForEachChunk(outer, channels, inner, x, [&](size_t c, const float* v, int64_t n) {
      Histogram& h = hists_[c];
      for (int64_t i = 0; i < n; ++i)
        if (std::isfinite(v[i])) h.Add(v[i]);
    });
  }

  TensorRange Range() const override {
    TensorRange r;
    for (const Group& g : groups_) {
      r.count += g.count;
      r.nonfinite += g.nonfinite;
    }
    if (r.count == 0)
      ThrowInvalid("calibration: tensor '" + name_ + "' had no finite value in " +
                   std::to_string(r.nonfinite) + " observed value(s) (all NaN/Inf or empty)");
    std::vector<std::pair<double, double>> ranges;
    for (size_t c = 0; c < groups_.size(); ++c) {
      if (groups_[c].count == 0)
        ThrowInvalid("calibration: tensor '" + name_ + "', channel " + std::to_string(c) +
                     " along axis " + std::to_string(o_.per_channel_axis) +
                     " had no finite value");
      ranges.push_back(GroupRange(c));
      std::string why = ThinReason(c, ranges.back());
      if (!why.empty()) {
        ranges.back() = MinMaxRange(c);
        if (r.fallback.empty())
          r.fallback = (groups_.size() > 1 ? "channel " + std::to_string(c) + ": " : "") + why;
      }
    }
    double lo = ranges[0].first, hi = ranges[0].second;
    for (const auto& [a, b] : ranges) lo = std::min(lo, a), hi = std::max(hi, b);
    r.min = static_cast<float>(lo);
    r.max = static_cast<float>(hi);
    if (o_.per_channel_axis >= 0) {
      r.axis = o_.per_channel_axis;
      for (const auto& [a, b] : ranges) {
        r.channel_min.push_back(static_cast<float>(a));
        r.channel_max.push_back(static_cast<float>(b));
      }
    }
    return r;
  }

  size_t MemoryBytes() const override {
    size_t n = sizeof(*this) + name_.capacity() + groups_.capacity() * sizeof(Group) +
               hists_.capacity() * sizeof(Histogram);
    for (const Histogram& h : hists_) n += h.bytes();
    return n;
  }

 private:
  template <typename Fn>
  static void ForEachChunk(int64_t outer, int64_t channels, int64_t inner, const float* x,
                           Fn fn) {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < channels; ++c)
        fn(static_cast<size_t>(c), x + (o * channels + c) * inner, inner);
  }

  std::pair<double, double> MinMaxRange(size_t c) const {
    const Group& g = groups_[c];
    double lo = g.min, hi = g.max;
    if (o_.symmetric) {
      double a = std::max(std::fabs(lo), std::fabs(hi));
      lo = -a, hi = a;
    }
    return {lo, hi};
  }

  // Why the method's range for group `c` cannot be trusted (empty when it can): see
  // ObserverOptions::min_samples/min_values/max_clip.
  std::string ThinReason(size_t c, std::pair<double, double> range) const {
    if (o_.method == Method::kMinMax) return "";
    const Group& g = groups_[c];
    const char* m = MethodName(o_.method);
    if (o_.samples >= 0 && o_.samples < o_.min_samples)
      return std::string(m) + " needs at least " + std::to_string(o_.min_samples) +
             " calibration samples, got " + std::to_string(o_.samples);
    if (static_cast<int64_t>(g.count) < o_.min_values)
      return std::string(m) + " saw only " + std::to_string(g.count) + " values (fewer than " +
             std::to_string(o_.min_values) + ")";
    double clipped = ClippedShare(hists_[c], range.first, range.second);
    if (clipped > o_.max_clip)
      return std::string(m) + " range [" + std::to_string(range.first) + ", " +
             std::to_string(range.second) + "] clips " + std::to_string(100 * clipped) +
             "% of the observed values (more than " + std::to_string(100 * o_.max_clip) + "%)";
    return "";
  }

  // The share of the histogram's values in bins wholly outside [lo, hi].
  static double ClippedShare(const Histogram& h, double lo, double hi) {
    const auto& counts = h.counts();
    double w = h.width(), total = 0, out = 0;
    for (size_t j = 0; j < counts.size(); ++j) {
      if (!counts[j]) continue;
      double left = static_cast<double>(h.base() + static_cast<int64_t>(j)) * w;
      total += static_cast<double>(counts[j]);
      if (left > hi || left + w <= lo) out += static_cast<double>(counts[j]);
    }
    return total > 0 ? out / total : 0.0;
  }

  std::pair<double, double> GroupRange(size_t c) const {
    const Group& g = groups_[c];
    auto [lo, hi] = MinMaxRange(c);
    if (o_.method == Method::kMinMax || g.min == g.max) return {lo, hi};
    const Histogram& h = hists_[c];
    switch (o_.method) {
      case Method::kPercentile: return PercentileRange(h);
      case Method::kEntropy: return EntropyRange(h);
      case Method::kMse: return MseRange(h, g.zeros);
      case Method::kMinMax: break;
    }
    return {lo, hi};
  }

  std::pair<double, double> PercentileRange(const Histogram& h) const {
    double p = o_.percentile / 100.0;
    if (o_.symmetric) {
      double t = Quantile(MagnitudesOf(h, Side::kBoth), p);
      t = std::min(t, std::max(std::fabs(h.data_min()), std::fabs(h.data_max())));
      return {-t, t};
    }
    Bins b = SignedBins(h);
    double cut = (1.0 - p) / 2.0;
    double lo = std::clamp(Quantile(b, cut), h.data_min(), h.data_max());
    double hi = std::clamp(Quantile(b, 1.0 - cut), lo, h.data_max());
    return {lo, hi};
  }

  std::pair<double, double> EntropyRange(const Histogram& h) const {
    double lo = h.data_min(), hi = h.data_max();
    if (o_.symmetric) {
      double t = KlThreshold(MagnitudesOf(h, Side::kBoth), 128, o_.bins);
      t = std::min(t, std::max(std::fabs(lo), std::fabs(hi)));
      return {-t, t};
    }
    bool two_sided = lo < 0 && hi > 0;
    int levels = two_sided ? 128 : 256;
    if (hi > 0) hi = std::min(hi, KlThreshold(MagnitudesOf(h, Side::kPositive), levels, o_.bins));
    if (lo < 0) lo = std::max(lo, -KlThreshold(MagnitudesOf(h, Side::kNegative), levels, o_.bins));
    // One-sided data away from zero: the search measured from zero, so never clip inside
    // the smallest magnitude observed.
    if (!two_sided) hi = std::max(hi, lo), lo = std::min(lo, hi);
    return {std::max(lo, h.data_min()), std::min(hi, h.data_max())};
  }

  std::pair<double, double> MseRange(const Histogram& h, uint64_t zeros) const {
    double dmin = h.data_min(), dmax = h.data_max();
    double nz = static_cast<double>(zeros);
    // The O(n^2) search runs on at most `bins` bins.
    if (o_.symmetric) {
      Bins m = MagnitudesOf(h, Side::kBoth);
      while (m.c.size() > static_cast<size_t>(o_.bins)) m.Halve();
      size_t n = m.c.size();
      Prefix pre(n);
      for (size_t i = 0; i < n; ++i) pre.Set(i, m.c[i], m.edge(i) + 0.5 * m.w);
      double amax = std::max(std::fabs(dmin), std::fabs(dmax));
      double best = std::numeric_limits<double>::infinity(), best_t = amax;
      for (size_t i = 1; i <= n; ++i) {
        double t = std::min(amax, m.edge(i));
        double step = 2 * t / 254;
        double err = pre.Sq(i, n, t) + std::max(0.0, pre.s0[i] - nz) * step * step / 12;
        if (err < best) best = err, best_t = t;
      }
      return {-best_t, best_t};
    }
    Bins b = SignedBins(h);
    while (b.c.size() > static_cast<size_t>(o_.bins)) b.Halve();
    size_t n = b.c.size();
    Prefix pre(n);
    for (size_t i = 0; i < n; ++i) pre.Set(i, b.c[i], b.edge(i) + 0.5 * b.w);
    double best = std::numeric_limits<double>::infinity();
    std::pair<double, double> best_r{dmin, dmax};
    // a = edge k (k = 0: the observed min), b = edge j (j = n: the observed max); bins
    // [0, k) clip to a, bins [j, n) clip to b.
    for (size_t k = 0; k < n; ++k) {
      double lo = k == 0 ? dmin : b.edge(k);
      double below = pre.Sq(0, k, lo);
      if (below >= best) break;  // clipping more from below only adds error
      for (size_t j = n; j > k; --j) {
        double hi = j == n ? dmax : b.edge(j);
        double step = (std::max(hi, 0.0) - std::min(lo, 0.0)) / 255;
        double inside = pre.s0[j] - pre.s0[k];
        // Exact zeros inside the range are exact codes.
        if (lo <= 0 && hi >= 0) inside = std::max(0.0, inside - nz);
        double err = below + pre.Sq(j, n, hi) + inside * step * step / 12;
        if (err < best) best = err, best_r = {lo, hi};
      }
    }
    return best_r;
  }

  std::string name_;
  ObserverOptions o_;
  std::vector<Group> groups_;     // one per channel (one when per-tensor)
  std::vector<Histogram> hists_;  // histogram methods: one per channel
};

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

const char* MethodName(Method m) {
  switch (m) {
    case Method::kMinMax: return "minmax";
    case Method::kPercentile: return "percentile";
    case Method::kEntropy: return "entropy";
    case Method::kMse: return "mse";
  }
  return "?";
}

Method ParseMethod(const std::string& name) {
  const Method all[] = {Method::kMinMax, Method::kPercentile, Method::kEntropy, Method::kMse};
  for (Method m : all)
    if (name == MethodName(m)) return m;
  std::string valid, nearest;
  size_t best = std::string::npos;
  for (Method m : all) {
    valid += std::string(valid.empty() ? "" : ", ") + MethodName(m);
    size_t d = EditDistance(name, MethodName(m));
    if (d < best) best = d, nearest = MethodName(m);
  }
  std::string msg = "unknown calibration method '" + name + "' (valid: " + valid + ")";
  if (best <= std::max<size_t>(2, name.size() / 3)) msg += "; did you mean '" + nearest + "'?";
  ThrowInvalid(msg);
}

std::unique_ptr<Observer> MakeObserver(const std::string& tensor_name, const ObserverOptions& o) {
  if (o.method != Method::kMinMax && (o.bins < 16 || o.bins > (1 << 20)))
    ThrowInvalid("calibration: histogram bins must be in [16, 1048576], got " +
                 std::to_string(o.bins));
  if (o.method == Method::kPercentile && !(o.percentile > 0 && o.percentile <= 100))
    ThrowInvalid("calibration: percentile must be in (0, 100], got " +
                 std::to_string(o.percentile));
  if (o.per_channel_axis < -1)
    ThrowInvalid("calibration: per-channel axis must be >= 0 (or -1 for per-tensor), got " +
                 std::to_string(o.per_channel_axis));
  return std::make_unique<StreamObserver>(tensor_name, o);
}

}  // namespace edgepress::calibrate
