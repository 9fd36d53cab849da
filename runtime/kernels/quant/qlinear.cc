// Integer matrix products on the int8 GEMM (qgemm.h):
//   MatMulInteger            A, B (uint8/int8), a_zero_point, b_zero_point -> int32
//   QLinearMatMul            a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp -> y (y_zp type)
//   com.microsoft QGemm      A, a_scale, a_zp, B, b_scale, b_zp, C (int32 bias), y_scale?,
//                            y_zp? -> quantized y, or float when y_scale is omitted
//   edgepress QGemm          QGemm that also takes N-D A (leading dims fold into M), an
//                            `activation` = "Relu" attribute and, with a float output, a
//                            float32 C added after scaling (docs/ops.md); fuse-qdq emits it
//   com.microsoft DynamicQuantizeMatMul  A float (quantized per call to uint8 with
//                            DynamicQuantizeLinear's parameters), B int8/uint8 constant,
//                            b_scale, b_zero_point?, bias? -> float
// MatMul broadcasting follows numpy (N-D batches, 1-D operands promoted). A constant 2-D B
// is packed once in create() with its zero point subtracted; A is packed per call.
// Scales: y = acc * (a_scale * b_scale[n] / y_scale) computed in float32 as onnxruntime
// does, so requantized outputs agree with it bit for bit.
// A constant B that equals its zero point at least half the time may also run the sparse
// int8 kernel (kernels/sparse/sparse_select.h) at the M where it was timed faster; the
// accumulators are exact either way, so outputs are identical.
#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/gemm/gemm_op_util.h"
#include "runtime/kernels/qgemm/qgemm.h"
#include "runtime/kernels/quant/quantize_util.h"
#include "runtime/kernels/quant/requant.h"
#include "runtime/kernels/sparse/sparse_select.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

namespace {

using gemm_util::BatchIndices;
using gemm_util::BroadcastBatch;
using gemm_util::DimsToString;

const ir::Tensor* Opt(KernelContext& ctx, size_t i) {
  const ir::Tensor* t = ctx.input(i);
  return t && !t->empty() ? t : nullptr;
}

const ir::Tensor& QInput(KernelContext& ctx, size_t i, const char* what) {
  const ir::Tensor* t = Opt(ctx, i);
  if (!t)
    ThrowInvalid(ctx.node().describe() + ": missing input " + std::to_string(i) + " (" + what +
                 ")");
  if (t->dtype() != ir::DType::kUInt8 && t->dtype() != ir::DType::kInt8)
    ThrowUnsupported(ctx.node().describe() + ": input " + std::to_string(i) + " (" + what +
                     ") has dtype " + ir::DTypeName(t->dtype()) + ", expected uint8 or int8");
  return *t;
}

// Zero points of an operand: one value, or `per` values (per row of A / column of B).
std::vector<int32_t> ReadZp(const ir::Node& node, const ir::Tensor* zp, int64_t per, ir::DType want,
                            const char* what) {
  if (!zp) return {0};
  if (zp->dtype() != want)
    ThrowInvalid(node.describe() + ": " + what + " has dtype " + ir::DTypeName(zp->dtype()) +
                 ", expected " + ir::DTypeName(want));
  if (zp->numel() != 1 && static_cast<int64_t>(zp->numel()) != per)
    ThrowInvalid(node.describe() + ": " + what + " has " + std::to_string(zp->numel()) +
                 " values, expected 1 or " + std::to_string(per));
  return qutil::ZeroPoints(node, zp, zp->numel());
}

std::vector<float> ReadScale(const ir::Node& node, const ir::Tensor* s, int64_t per,
                             const char* what) {
  if (!s) ThrowInvalid(node.describe() + ": missing " + std::string(what));
  if (s->numel() != 1 && static_cast<int64_t>(s->numel()) != per)
    ThrowInvalid(node.describe() + ": " + what + " has " + std::to_string(s->numel()) +
                 " values, expected 1 or " + std::to_string(per));
  return qutil::Scales(node, *s);
}


// DynamicQuantizeMatMul's float A and its uint8 quantization: quantized in the product's
// packing tasks while the rows are in cache, straight into the panels where the ISA can
// (QGemmQuantizesInPack), else into `bytes` (m x k), which are then packed.
struct FloatA {
  const float* x;
  float scale;
  int32_t zp;
  uint8_t* bytes;
};

// One product C[m, n] = A[m, k] B[k, n] with A packed here (threads split the panels:
// BERT's 128-row A is 4 panels of 32, which a grain of 8 had left to one thread).
void RunProduct(Isa isa, int64_t m, int64_t n, int64_t k, const QSource& a, const QOperand& b,
                const QOutput& out, ThreadPool& pool, const FloatA* fa = nullptr) {
  thread_local std::vector<int16_t> a_buf;
  const int64_t need = QPackedASize(isa, m, k);
  if (a_buf.size() < static_cast<size_t>(need)) a_buf.resize(static_cast<size_t>(need));
  int16_t* dst = a_buf.data();
  const int64_t mr = QGemmMr(isa), panels = (m + mr - 1) / mr;
  const bool in_pack = fa && QGemmQuantizesInPack(isa);
  auto pack = [&](int64_t lo, int64_t hi) {
    if (in_pack)
      return QPackAPanelsQuantized(isa, m, k, fa->x, k, fa->scale, fa->zp, lo, hi, dst);
    if (fa) {
      const int64_t r0 = lo * mr, r1 = std::min(m, hi * mr);
      qutil::QuantizeU8(fa->x + r0 * k, (r1 - r0) * k, fa->scale, fa->zp, fa->bytes + r0 * k);
    }
    QPackAPanels(isa, m, k, a, lo, hi, dst);
  };
  if (pool.num_threads() > 1 && m * k > 16384)
    pool.ParallelFor(panels, std::max<int64_t>(1, 8192 / (mr * k)), pack);
  else
    pack(0, panels);
  QOperand oa{dst, isa, m, k};
  QGemm(isa, m, n, k, oa, b, out, &pool);
}

// How the kernel reads its inputs; the ops differ only in the input slots and epilogue.
enum class Mode { kMatMulInteger, kQLinearMatMul, kQGemm, kDynamic };

template <Isa kIsa, Mode kMode>
class QMatMulKernel : public Kernel {
 public:
  explicit QMatMulKernel(const KernelInit& init) {
    const ir::Node& node = init.node;
    if (kMode == Mode::kQGemm) {
      trans_b_ = node.attr_int("transB", 0) != 0;
      if (node.attr_int("transA", 0) != 0)
        ThrowUnsupported(node.describe() + ": transA=1 is not supported");
      if (node.attr_float("alpha", 1.f) != 1.f)
        ThrowUnsupported(node.describe() + ": alpha != 1 is not supported");
      act_ = qutil::ReadActivation(node);
    }
    // Prepack a constant 2-D B with a constant zero point.
    const size_t bi = BIndex(), bzi = BZpIndex();
    auto cst = [&](size_t i) -> const ir::Tensor* {
      return i < init.constant_inputs.size() ? init.constant_inputs[i] : nullptr;
    };
    const ir::Tensor* b = cst(bi);
    if (!b || b->rank() != 2 || b->numel() == 0 ||
        (b->dtype() != ir::DType::kUInt8 && b->dtype() != ir::DType::kInt8))
      return;
    const bool has_zp = bzi < node.num_inputs() && node.input(bzi) != nullptr;
    const ir::Tensor* bz = cst(bzi);
    if (has_zp && !bz) return;
    const int64_t k = trans_b_ ? b->shape()[1] : b->shape()[0];
    const int64_t n = trans_b_ ? b->shape()[0] : b->shape()[1];
    if (bz &&
        (bz->dtype() != b->dtype() || (bz->numel() != 1 && static_cast<int64_t>(bz->numel()) != n)))
      return;  // Run() reports it
    b_zp_ = bz ? qutil::ZeroPoints(node, bz, bz->numel()) : std::vector<int32_t>{0};
    QSource src{b->data<void>(), b->dtype(),   b->shape()[1],
                trans_b_,        b_zp_.data(), b_zp_.size() > 1};
    packed_ = std::make_unique<QPacked>(QPackB(kIsa, k, n, src));
    packed_shape_ = b->shape();
    packed_dtype_ = b->dtype();
    std::optional<int64_t> rows;
    const ir::Value* av = node.num_inputs() > 0 ? node.input(0) : nullptr;
    if (av && av->type.shape && av->type.shape->size() >= 2) {
      rows = 1;
      for (size_t i = 0; i + 1 < av->type.shape->size(); ++i) {
        const ir::Dim& d = (*av->type.shape)[i];
        if (!d.known()) {
          rows.reset();
          break;
        }
        *rows *= d.value;
      }
    }
    sparse_ = sparse::QSparseMatMul::Create(kIsa, src, k, n, *packed_, rows, node.describe());
  }

  std::string Variant() const override { return sparse_ ? sparse_->Describe() : std::string(); }

  static size_t BIndex() {
    return kMode == Mode::kMatMulInteger || kMode == Mode::kDynamic ? 1 : 3;
  }
  static size_t BZpIndex() {
    switch (kMode) {
      case Mode::kMatMulInteger:
        return 3;
      case Mode::kDynamic:
        return 3;
      default:
        return 5;
    }
  }

  // The product's shapes after numpy broadcasting (a 1-D operand is promoted to a matrix
  // and its dimension dropped from the output again).
  struct Shapes {
    std::vector<int64_t> as, bs;  // A and B as matrices (B transposed for QGemm)
    std::vector<int64_t> a_batch, b_batch, batch, out_shape;
    int64_t m = 0, k = 0, n = 0;
  };

  Shapes ReadShapes(const ir::Node& node, const ir::Tensor& a, const ir::Tensor& b) const {
    if (a.rank() == 0 || b.rank() == 0)
      ThrowInvalid(node.describe() + ": operands must have rank >= 1, got " +
                   DimsToString(a.shape()) + " and " + DimsToString(b.shape()));
    Shapes s;
    s.as = a.shape();
    s.bs = b.shape();
    if (kMode == Mode::kQGemm || kMode == Mode::kDynamic) {
      if (b.rank() != 2)
        ThrowUnsupported(node.describe() + ": B must be 2-D, got " + DimsToString(s.bs));
      if (trans_b_) std::swap(s.bs[0], s.bs[1]);
    }
    const bool a1 = s.as.size() == 1, b1 = s.bs.size() == 1;
    if (a1) s.as.insert(s.as.begin(), 1);
    if (b1) s.bs.push_back(1);
    s.m = s.as[s.as.size() - 2];
    s.k = s.as.back();
    s.n = s.bs.back();
    if (s.k != s.bs[s.bs.size() - 2])
      ThrowInvalid(node.describe() + ": inner dimensions differ: A is " + DimsToString(a.shape()) +
                   ", B is " + DimsToString(b.shape()));
    s.a_batch.assign(s.as.begin(), s.as.end() - 2);
    s.b_batch.assign(s.bs.begin(), s.bs.end() - 2);
    s.batch = BroadcastBatch(node, s.a_batch, s.b_batch);
    s.out_shape = s.batch;
    if (!a1) s.out_shape.push_back(s.m);
    if (!b1) s.out_shape.push_back(s.n);
    return s;
  }

  using Requant = qutil::Requant;

  // MatMulInteger: int32 accumulators. The others: the multiplier a_scale * b_scale[n] /
  // y_scale, the output zero point and the fused activation's bounds, and the bias (int32
  // for QGemm, float for DynamicQuantizeMatMul); without y_scale the output is float.
  void ReadRequant(KernelContext& ctx, int64_t n, float a_scale, Requant* rq) const {
    const ir::Node& node = ctx.node();
    QOutput& out = rq->out;
    out.per_row = false;
    if (kMode == Mode::kMatMulInteger) {
      out.kind = QOutput::Kind::kInt32;
      return;
    }
    const size_t bsi = kMode == Mode::kDynamic ? 2 : 4;
    const std::vector<float> b_scale = ReadScale(node, Opt(ctx, bsi), n, "b_scale");
    const ir::Tensor* y_scale = nullptr;
    const ir::Tensor* y_zp = nullptr;
    const ir::Tensor* bias = nullptr;
    if (kMode == Mode::kQLinearMatMul) {
      y_scale = Opt(ctx, 6);
      y_zp = Opt(ctx, 7);
      if (!y_scale) ThrowInvalid(node.describe() + ": missing y_scale");
    } else if (kMode == Mode::kQGemm) {
      y_scale = Opt(ctx, 7);
      y_zp = Opt(ctx, 8);
      bias = Opt(ctx, 6);
    } else {
      bias = Opt(ctx, 4);
    }
    qutil::FillRequant(node, a_scale, b_scale, y_scale, y_zp, act_, rq);
    if (!bias) return;
    // QGemm's C is int32 (added before scaling); a float-output edgepress QGemm may take a
    // float32 C instead (added after scaling: fuse-qdq's MatMul + bias Add).
    const bool want_int = kMode == Mode::kQGemm && (y_scale || node.domain() != "edgepress" ||
                                                    bias->dtype() != ir::DType::kFloat32);
    if (bias->dtype() != (want_int ? ir::DType::kInt32 : ir::DType::kFloat32))
      ThrowInvalid(node.describe() + ": bias has dtype " + ir::DTypeName(bias->dtype()) +
                   ", expected " + (want_int ? "int32" : "float32"));
    if (static_cast<int64_t>(bias->numel()) != n || (bias->rank() == 2 && bias->shape()[0] != 1))
      ThrowUnsupported(node.describe() + ": bias of shape " + DimsToString(bias->shape()) +
                       " is not a per-column vector of " + std::to_string(n));
    if (want_int)
      out.bias = bias->data<int32_t>();
    else
      out.float_bias = bias->data<float>();
  }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    // ---- operands and shapes ------------------------------------------------------------
    const ir::Tensor* af = nullptr;  // kDynamic: float A
    const ir::Tensor* aq = nullptr;  // the others: quantized A
    if (kMode == Mode::kDynamic) {
      af = Opt(ctx, 0);
      if (!af || af->dtype() != ir::DType::kFloat32)
        ThrowInvalid(node.describe() + ": input A must be float32");
    } else {
      aq = &QInput(ctx, 0, "A");
    }
    const ir::Tensor& b = QInput(ctx, BIndex(), "B");
    const Shapes s = ReadShapes(node, af ? *af : *aq, b);
    const int64_t m = s.m, k = s.k, n = s.n;

    // ---- zero points and A's scale --------------------------------------------------------
    const std::vector<int32_t> b_zp =
        ReadZp(node, Opt(ctx, BZpIndex()), n, b.dtype(), "b_zero_point");
    std::vector<int32_t> a_zp = {0};
    if (kMode != Mode::kDynamic) {
      // MatMulInteger's a_zero_point may be per row of a 2-D A.
      a_zp = ReadZp(node, Opt(ctx, 2), kMode == Mode::kMatMulInteger && s.as.size() == 2 ? m : 1,
                    aq->dtype(), "a_zero_point");
    }
    float a_scale = 1.f;
    std::vector<uint8_t>* a_q = nullptr;
    qutil::U8Params a_params;  // kDynamic: A's quantization, applied below
    thread_local std::vector<uint8_t> a_q_buf;
    if (kMode == Mode::kDynamic) {
      // Threads split the min/max scan and the quantization (same bytes as 1 thread):
      // serial, they were a fifth of BERT's DynamicQuantizeMatMul time at 2 threads.
      const qutil::U8Params p =
          qutil::DynamicU8Params(af->data<float>(), static_cast<int64_t>(af->numel()), &ctx.pool());
      a_scale = p.scale;
      a_zp = {p.zero_point};
      a_q_buf.resize(af->numel());
      a_params = p;
      a_q = &a_q_buf;
    } else if (kMode != Mode::kMatMulInteger) {
      a_scale = ReadScale(node, Opt(ctx, 1), 1, "a_scale")[0];
    }
    Requant rq;
    ReadRequant(ctx, n, a_scale, &rq);
    const QOutput& out = rq.out;

    // ---- the product ----------------------------------------------------------------------
    ir::Tensor& y = ctx.AllocateOutput(0, rq.dtype, s.out_shape);
    if (y.numel() == 0) return;
    const int64_t out_elem =
        rq.dtype == ir::DType::kFloat32 || rq.dtype == ir::DType::kInt32 ? 4 : 1;
    rq.out.ld = n;

    const void* a_data = a_q ? static_cast<const void*>(a_q->data()) : aq->raw();
    const ir::DType a_dtype = a_q ? ir::DType::kUInt8 : aq->dtype();
    const bool use_packed = packed_ && b.shape() == packed_shape_ && b.dtype() == packed_dtype_ &&
                            b_zp == b_zp_ && s.bs.size() == 2;
    const std::vector<int64_t> ai = BatchIndices(s.a_batch, s.batch),
                               bi = BatchIndices(s.b_batch, s.batch);
    const int64_t nb = static_cast<int64_t>(ai.size());
    bool b_shared = true, a_identity = true;
    for (int64_t t = 0; t < nb; ++t) {
      b_shared = b_shared && bi[static_cast<size_t>(t)] == bi[0];
      a_identity = a_identity && ai[static_cast<size_t>(t)] == t;
    }
    // a zero point per row only applies to a 2-D A (nb == 1)
    const bool a_zp_rows = a_zp.size() > 1;
    if (a_zp_rows && nb != 1)
      ThrowInvalid(node.describe() + ": a per-row a_zero_point needs a 2-D A");
    QPacked local_b;
    auto b_operand = [&](int64_t b_index) -> QOperand {
      if (use_packed) return QOperand::Of(*packed_);
      const int64_t ldb = trans_b_ ? k : n;
      QSource src{static_cast<const uint8_t*>(b.raw()) + b_index * k * n,
                  b.dtype(),
                  ldb,
                  trans_b_,
                  b_zp.data(),
                  b_zp.size() > 1};
      local_b = QPackB(kIsa, k, n, src);
      return QOperand::Of(local_b);
    };
    const int64_t a_elem_stride = m * k;
    auto run = [&](int64_t rows, int64_t a_index, int64_t b_index, int64_t y_index) {
      QSource a_src{static_cast<const uint8_t*>(a_data) + a_index * a_elem_stride,
                    a_dtype,
                    k,
                    false,
                    a_zp.data(),
                    a_zp_rows};
      QOutput o = out;
      o.data = static_cast<uint8_t*>(y.mutable_raw()) + y_index * m * n * out_elem;
      RunProduct(kIsa, rows, n, k, a_src, b_operand(b_index), o, ctx.pool());
    };
    // kDynamic: A quantized in the product's packing tasks (one 2-D product), else
    // here, whole.
    const bool quantize_in_pack = a_q && b_shared && a_identity && !(sparse_ && use_packed);
    if (a_q && !quantize_in_pack)
      qutil::QuantizeU8(af->data<float>(), static_cast<int64_t>(af->numel()), a_params.scale,
                        a_params.zero_point, a_q->data(), &ctx.pool());
    if (quantize_in_pack) {
      const FloatA fa{af->data<float>(), a_params.scale, a_params.zero_point, a_q->data()};
      QSource a_src{a_data, a_dtype, k, false, a_zp.data(), a_zp_rows};
      QOutput o = out;
      o.data = y.mutable_raw();
      RunProduct(kIsa, nb * m, n, k, a_src, b_operand(bi[0]), o, ctx.pool(), &fa);
      return;
    }
    if (b_shared && a_identity) {
      if (sparse_ && use_packed) {
        const int64_t rows = nb * m;
        thread_local std::vector<int32_t> acc;
        if (acc.size() < static_cast<size_t>(rows * n)) acc.resize(static_cast<size_t>(rows * n));
        const QSource a_src{a_data, a_dtype, k, false, a_zp.data(), a_zp_rows};
        if (sparse_->Accumulate(rows, a_src, acc.data(), &ctx.pool())) {
          QOutput o = out;
          o.data = y.mutable_raw();
          for (int64_t r = 0; r < rows; ++r)
            QStoreRow(acc.data() + r * n, static_cast<int>(n), r, 0, o);
          return;
        }
      }
      run(nb * m, 0, bi[0], 0);
      return;
    }
    for (int64_t t = 0; t < nb; ++t)
      run(m, ai[static_cast<size_t>(t)], bi[static_cast<size_t>(t)], t);
  }

 private:
  bool trans_b_ = false;
  qutil::Activation act_;
  std::unique_ptr<QPacked> packed_;
  std::vector<int64_t> packed_shape_;
  ir::DType packed_dtype_ = ir::DType::kUndefined;
  std::vector<int32_t> b_zp_;
  std::unique_ptr<sparse::QSparseMatMul> sparse_;
};

template <Isa kIsa, Mode kMode>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<QMatMulKernel<kIsa, kMode>>(init);
}

template <Isa kIsa>
void AddAll(KernelRegistry& r, const char* suffix) {
  using ir::DType;
  static std::deque<std::string> names;  // KernelDef keeps const char*: stable addresses
  auto name = [&](const std::string& s) {
    names.push_back(s + suffix);
    return names.back().c_str();
  };
  r.Add({"MatMulInteger", "", DType::kUndefined, kIsa, name("q8_matmulinteger__"),
         Create<kIsa, Mode::kMatMulInteger>});
  r.Add({"QLinearMatMul", "", DType::kUndefined, kIsa, name("q8_qlinearmatmul__"),
         Create<kIsa, Mode::kQLinearMatMul>});
  r.Add({"QGemm", "com.microsoft", DType::kUndefined, kIsa, name("q8_ms_qgemm__"),
         Create<kIsa, Mode::kQGemm>});
  r.Add({"QGemm", "edgepress", DType::kUndefined, kIsa, name("q8_qgemm__"),
         Create<kIsa, Mode::kQGemm>});
  r.Add({"DynamicQuantizeMatMul", "com.microsoft", DType::kFloat32, kIsa,
         name("f32_ms_dynamicquantizematmul__"), Create<kIsa, Mode::kDynamic>});
}

}  // namespace

void RegisterQLinearKernels(KernelRegistry& r) {
  AddAll<Isa::kScalar>(r, "ref");
#if defined(__x86_64__)
  AddAll<Isa::kAvx2>(r, "avx2_6x16");
  AddAll<Isa::kAvx512>(r, "avx512_6x32");
  AddAll<Isa::kAvx512Vnni>(r, "avx512vnni_8x32");
  AddAll<Isa::kAmx>(r, "amx_32x32");
#endif
}

}  // namespace edgepress::runtime
