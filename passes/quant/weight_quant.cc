#include "passes/quant/weight_quant.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "ir/error.h"

namespace edgepress::passes::wq {
namespace {

struct BlockQ {
  quant::QParams p;
  int32_t qmin = 0, qmax = 0;
};

// Params of every column for the block of `rows` rows starting at w (row stride N).
std::vector<BlockQ> BlockParams(const float* w, int64_t rows, int64_t N, const Scheme& s) {
  std::vector<BlockQ> out(N);
  if (s.bits == 4 && s.symmetric) {
    std::vector<float> m(N, 0.f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t n = 0; n < N; ++n) {
        float v = w[r * N + n];
        if (std::fabs(v) > std::fabs(m[n])) m[n] = v;
      }
    for (int64_t n = 0; n < N; ++n) {
      out[n].qmin = 0;
      out[n].qmax = 15;
      out[n].p.zero_point = 8;
      out[n].p.scale = m[n] != 0.f && std::fabs(m[n] / 8.f) >= FLT_MIN ? m[n] / -8.f : 1.f;
    }
    return out;
  }
  std::vector<float> lo(N, 0.f), hi(N, 0.f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t n = 0; n < N; ++n) {
      float v = w[r * N + n];
      lo[n] = std::min(lo[n], v);
      hi[n] = std::max(hi[n], v);
    }
  ir::DType dt = s.bits == 4 ? ir::DType::kUInt4 : ir::DType::kInt8;
  bool sym = s.bits == 4 ? false : s.symmetric;
  int32_t qmin, qmax;
  quant::QRange(dt, sym, &qmin, &qmax);
  for (int64_t n = 0; n < N; ++n) {
    out[n].p = quant::ChooseQParams(lo[n], hi[n], dt, sym);
    out[n].qmin = qmin;
    out[n].qmax = qmax;
  }
  return out;
}

QuantizedMatrix Empty(int64_t K, int64_t N, const Scheme& s) {
  if (s.bits != 4 && s.bits != 8)
    ThrowUnsupported("weight quantization to " + std::to_string(s.bits) +
                     " bits is not supported (use 4 or 8)");
  if (K <= 0 || N <= 0) ThrowInvalid("cannot quantize an empty weight matrix");
  QuantizedMatrix q;
  q.K = K;
  q.N = N;
  q.group = s.group > 0 ? std::min(s.group, K) : K;
  if (s.bits == 4 && s.group > 0) q.group = s.group;  // MatMulNBits blocks keep their size
  q.bits = s.bits;
  q.symmetric = s.symmetric;
  q.codes.assign(K * N, 0);
  q.scales.assign(N * q.blocks(), 1.f);
  q.zero_points.assign(N * q.blocks(), 0);
  return q;
}

void CheckFinite(const float* w, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(w[i])) ThrowInvalid("cannot quantize a weight holding a non-finite value");
}

}  // namespace

bool DampedInverseCholesky(std::vector<double> h, int64_t n, double damp,
                           std::vector<double>* u) {
  if (static_cast<int64_t>(h.size()) != n * n || n <= 0)
    throw Error(ErrorCode::kInternal, "DampedInverseCholesky: Hessian size does not match");
  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<RowMajor> hm(h.data(), n, n);
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) {
    // An input channel that was always zero carries no information; a unit diagonal keeps
    // H invertible and leaves that row to the plain (unweighted) rule.
    if (!(hm(i, i) > 0)) hm(i, i) = 1;
    mean_diag += hm(i, i);
  }
  mean_diag /= n;
  if (!hm.allFinite()) return false;
  // With J the order reversal, the Cholesky factor of J·H·J = M·Mᵀ gives H = R·Rᵀ with
  // R = J·M·J upper, so H⁻¹ = (R⁻¹)ᵀ·R⁻¹ and U = R⁻¹ = J·M⁻¹·J: one factorisation and one
  // triangular solve (the papers' cholesky_inverse + cholesky costs ~2.5x more).
  Eigen::MatrixXd reversed = hm.reverse();
  double d = damp * mean_diag;
  for (int attempt = 0; attempt < 5; ++attempt, d *= 10) {
    Eigen::MatrixXd damped = reversed;
    damped.diagonal().array() += d;
    Eigen::LLT<Eigen::MatrixXd> llt(damped);
    if (llt.info() != Eigen::Success) continue;
    Eigen::MatrixXd minv = Eigen::MatrixXd::Identity(n, n);
    llt.matrixL().solveInPlace(minv);  // M⁻¹, lower triangular
    if (!minv.allFinite() || !(minv.diagonal().array() > 0).all()) continue;
    u->assign(n * n, 0.0);
    Eigen::Map<RowMajor> um(u->data(), n, n);
    um = minv.reverse();
    um.triangularView<Eigen::StrictlyLower>().setZero();
    return true;
  }
  return false;
}

std::vector<float> QuantizedMatrix::Dequantize() const {
  std::vector<float> out(K * N);
  int64_t nb = blocks();
  for (int64_t k = 0; k < K; ++k) {
    int64_t b = k / group;
    for (int64_t n = 0; n < N; ++n)
      out[k * N + n] = static_cast<float>(codes[k * N + n] - zero_points[n * nb + b]) *
                       scales[n * nb + b];
  }
  return out;
}

QuantizedMatrix QuantizeRtn(const float* w, int64_t K, int64_t N, const Scheme& s) {
  QuantizedMatrix q = Empty(K, N, s);
  CheckFinite(w, K * N);
  int64_t nb = q.blocks();
  for (int64_t b = 0; b < nb; ++b) {
    int64_t r0 = b * q.group, rows = std::min(q.group, K - r0);
    std::vector<BlockQ> params = BlockParams(w + r0 * N, rows, N, s);
    for (int64_t n = 0; n < N; ++n) {
      q.scales[n * nb + b] = params[n].p.scale;
      q.zero_points[n * nb + b] = params[n].p.zero_point;
    }
    for (int64_t r = r0; r < r0 + rows; ++r)
      for (int64_t n = 0; n < N; ++n)
        q.codes[r * N + n] =
            quant::QuantizeValue(w[r * N + n], params[n].p, params[n].qmin, params[n].qmax);
  }
  return q;
}

QuantizedMatrix QuantizeGptq(const float* w, int64_t K, int64_t N, const Scheme& s,
                             std::vector<double> h, double damp, bool* fell_back) {
  if (fell_back) *fell_back = false;
  if (static_cast<int64_t>(h.size()) != K * K)
    throw Error(ErrorCode::kInternal, "GPTQ: Hessian size does not match the weight");
  CheckFinite(w, K * N);
  std::vector<double> u;
  bool ok = DampedInverseCholesky(std::move(h), K, damp, &u);
  if (!ok) {
    if (fell_back) *fell_back = true;
    return QuantizeRtn(w, K, N, s);
  }

  QuantizedMatrix q = Empty(K, N, s);
  int64_t nb = q.blocks();
  std::vector<float> work(w, w + K * N);
  std::vector<BlockQ> params;
  std::vector<float> err(N);
  for (int64_t i = 0; i < K; ++i) {
    if (i % q.group == 0) {
      int64_t b = i / q.group;
      params = BlockParams(&work[i * N], std::min(q.group, K - i), N, s);
      for (int64_t n = 0; n < N; ++n) {
        q.scales[n * nb + b] = params[n].p.scale;
        q.zero_points[n * nb + b] = params[n].p.zero_point;
      }
    }
    const double* ui = &u[i * K];
    float dinv = static_cast<float>(1.0 / ui[i]);
    float* row = &work[i * N];
    for (int64_t n = 0; n < N; ++n) {
      int32_t c = quant::QuantizeValue(row[n], params[n].p, params[n].qmin, params[n].qmax);
      q.codes[i * N + n] = c;
      err[n] = (row[n] - quant::DequantizeValue(c, params[n].p)) * dinv;
    }
    for (int64_t j = i + 1; j < K; ++j) {
      float f = static_cast<float>(ui[j]);
      if (f == 0.f) continue;
      float* rj = &work[j * N];
      for (int64_t n = 0; n < N; ++n) rj[n] -= f * err[n];
    }
  }
  return q;
}

double OutputError(const float* w, const std::vector<float>& dq, int64_t K, int64_t N,
                   const float* x, int64_t rows) {
  std::vector<float> e(K * N);
  for (int64_t i = 0; i < K * N; ++i) e[i] = w[i] - dq[i];
  std::vector<double> ye(N), yw(N);
  double num = 0, den = 0;
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(ye.begin(), ye.end(), 0.0);
    std::fill(yw.begin(), yw.end(), 0.0);
    const float* xr = x + r * K;
    for (int64_t k = 0; k < K; ++k) {
      double xv = xr[k];
      if (xv == 0) continue;
      const float* ek = &e[k * N];
      const float* wk = w + k * N;
      for (int64_t n = 0; n < N; ++n) {
        ye[n] += xv * ek[n];
        yw[n] += xv * wk[n];
      }
    }
    for (int64_t n = 0; n < N; ++n) {
      num += ye[n] * ye[n];
      den += yw[n] * yw[n];
    }
  }
  return den > 0 ? num / den : num;
}

AwqChoice SearchAwq(const float* w, int64_t K, int64_t N, const Scheme& s,
                    const std::vector<double>& mean_abs_x, const float* x, int64_t rows,
                    int grid) {
  if (static_cast<int64_t>(mean_abs_x.size()) != K)
    throw Error(ErrorCode::kInternal, "AWQ: activation statistics do not match the weight");
  AwqChoice best;
  best.s.assign(K, 1.f);
  std::vector<float> scaled(K * N);
  for (int gi = 0; gi <= grid; ++gi) {
    double alpha = static_cast<double>(gi) / grid;
    std::vector<float> sc(K);
    double smax = 0, smin = INFINITY;
    for (int64_t k = 0; k < K; ++k) {
      double v = std::pow(std::max(mean_abs_x[k], 1e-4), alpha);
      sc[k] = static_cast<float>(v);
      smax = std::max(smax, v);
      smin = std::min(smin, v);
    }
    float norm = static_cast<float>(std::sqrt(smax * smin));
    for (int64_t k = 0; k < K; ++k) sc[k] = std::max(sc[k] / norm, 1e-4f);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) scaled[k * N + n] = w[k * N + n] * sc[k];
    std::vector<float> dq = QuantizeRtn(scaled.data(), K, N, s).Dequantize();
    // The layer computes (x / s)·dq: fold 1/s into dq's rows to compare with x·W.
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) dq[k * N + n] /= sc[k];
    double err = OutputError(w, dq, K, N, x, rows);
    if (gi == 0) {
      best.rtn_error = err;
      best.error = err;
      best.s = sc;
      best.alpha = 0;
    } else if (err < best.error) {
      best.error = err;
      best.s = sc;
      best.alpha = alpha;
    }
  }
  return best;
}

NBitsTensors PackMatMulNBits(const QuantizedMatrix& q) {
  if (q.bits != 4 || q.group % 2 != 0)
    throw Error(ErrorCode::kInternal, "PackMatMulNBits: needs a 4-bit matrix with even blocks");
  int64_t nb = q.blocks(), blob = q.group / 2;
  NBitsTensors t;
  t.b = ir::Tensor(ir::DType::kUInt8, {q.N, nb, blob});
  uint8_t* b = t.b.mutable_data<uint8_t>();
  for (int64_t n = 0; n < q.N; ++n)
    for (int64_t blk = 0; blk < nb; ++blk) {
      uint8_t pad = static_cast<uint8_t>(q.zero_points[n * nb + blk]);
      for (int64_t j = 0; j < q.group; ++j) {
        int64_t k = blk * q.group + j;
        uint8_t c = k < q.K ? static_cast<uint8_t>(q.codes[k * q.N + n]) : pad;
        uint8_t& byte = b[(n * nb + blk) * blob + j / 2];
        byte |= (j % 2 == 0) ? (c & 0x0F) : static_cast<uint8_t>((c & 0x0F) << 4);
      }
    }
  t.scales = ir::Tensor(ir::DType::kFloat32, {q.N * nb});
  std::copy(q.scales.begin(), q.scales.end(), t.scales.mutable_data<float>());
  if (!q.symmetric) {
    int64_t per_col = (nb + 1) / 2;
    t.zero_points = ir::Tensor(ir::DType::kUInt8, {q.N * per_col});
    uint8_t* z = t.zero_points.mutable_data<uint8_t>();
    for (int64_t n = 0; n < q.N; ++n)
      for (int64_t blk = 0; blk < nb; ++blk) {
        uint8_t c = static_cast<uint8_t>(q.zero_points[n * nb + blk] & 0x0F);
        z[n * per_col + blk / 2] |= (blk % 2 == 0) ? c : static_cast<uint8_t>(c << 4);
      }
  }
  return t;
}

std::vector<float> UnpackMatMulNBits(const ir::Tensor& b, const ir::Tensor& scales,
                                     const ir::Tensor* zero_points, int64_t K, int64_t N,
                                     int64_t block_size) {
  if (block_size < 2 || block_size % 2 || K <= 0 || N <= 0)
    ThrowInvalid("MatMulNBits: bad K, N or block_size");
  int64_t nb = (K + block_size - 1) / block_size, blob = block_size / 2;
  if (b.dtype() != ir::DType::kUInt8 || static_cast<int64_t>(b.numel()) != N * nb * blob)
    ThrowInvalid("MatMulNBits: B must be uint8 [N, k_blocks, block_size/2]");
  if (scales.dtype() != ir::DType::kFloat32 || static_cast<int64_t>(scales.numel()) != N * nb)
    ThrowInvalid("MatMulNBits: scales must be float [N * k_blocks]");
  int64_t per_col = (nb + 1) / 2;
  if (zero_points && (zero_points->dtype() != ir::DType::kUInt8 ||
                      static_cast<int64_t>(zero_points->numel()) != N * per_col))
    ThrowInvalid("MatMulNBits: zero_points must be uint8 [N * ceil(k_blocks / 2)]");
  std::vector<float> out(K * N);
  const uint8_t* bd = b.data<uint8_t>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t blk = 0; blk < nb; ++blk) {
      int32_t zp = 8;
      if (zero_points) {
        uint8_t z = zero_points->data<uint8_t>()[n * per_col + blk / 2];
        zp = blk % 2 == 0 ? (z & 0x0F) : (z >> 4);
      }
      float sc = scales.data<float>()[n * nb + blk];
      for (int64_t j = 0; j < block_size && blk * block_size + j < K; ++j) {
        uint8_t byte = bd[(n * nb + blk) * blob + j / 2];
        int32_t c = j % 2 == 0 ? (byte & 0x0F) : (byte >> 4);
        out[(blk * block_size + j) * N + n] = static_cast<float>(c - zp) * sc;
      }
    }
  return out;
}

quant::QuantizedTensor ToPerChannelInt8(const QuantizedMatrix& q, bool transposed) {
  if (q.bits != 8 || q.blocks() != 1)
    throw Error(ErrorCode::kInternal, "ToPerChannelInt8: needs an 8-bit per-channel matrix");
  quant::QuantizedTensor t;
  t.axis = transposed ? 0 : 1;
  t.data = transposed ? ir::Tensor(ir::DType::kInt8, {q.N, q.K})
                      : ir::Tensor(ir::DType::kInt8, {q.K, q.N});
  int8_t* d = t.data.mutable_data<int8_t>();
  for (int64_t k = 0; k < q.K; ++k)
    for (int64_t n = 0; n < q.N; ++n)
      d[transposed ? n * q.K + k : k * q.N + n] = static_cast<int8_t>(q.codes[k * q.N + n]);
  t.scale = ir::Tensor(ir::DType::kFloat32, {q.N});
  t.zero_point = ir::Tensor(ir::DType::kInt8, {q.N});
  for (int64_t n = 0; n < q.N; ++n) {
    t.scale.mutable_data<float>()[n] = q.scales[n];
    t.zero_point.mutable_data<int8_t>()[n] = static_cast<int8_t>(q.zero_points[n]);
  }
  return t;
}

}  // namespace edgepress::passes::wq
