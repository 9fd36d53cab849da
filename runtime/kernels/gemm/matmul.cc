// MatMul (numpy semantics: N-D batched with broadcasting, 1-D operands promoted and the
// promoted dimension dropped from the result) and Gemm (transA/transB, alpha/beta, C
// broadcast to [M, N]; com.microsoft FusedGemm adds a Relu/Clip activation), all on Sgemm.
//
// A constant B (the weights of a Linear layer) is packed once in create(); at run time the
// kernel checks that the B it receives still has the packed shape and otherwise packs on
// the fly. When every A batch uses the same B (the common [batch, seq, hidden] x
// [hidden, out] case), the batches are folded into M so one large GEMM runs instead of
// many small ones. Entries: f32_matmul__ref / __avx2_6x16 / __avx512_12x32 and likewise
// f32_gemm_op__*, one per GEMM micro-kernel.
//
// A constant 2-D weight with at least half its entries zero also gets a sparse form
// (kernels/sparse/sparse_select.h) where it measured faster than the dense GEMM at
// creation; Variant() names the choice.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/gemm/gemm_op_util.h"
#include "runtime/kernels/sparse/sparse_select.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

namespace {

using gemm_util::BatchIndices;
using gemm_util::BroadcastBatch;
using gemm_util::DimsToString;
using gemm_util::FloatInput;


// M of a node's A when its declared shape fixes every dimension but the last (the rows
// MatMul folds batches into), for the sparse timing.
std::optional<int64_t> StaticRows(const ir::Node& node) {
  const ir::Value* a = node.num_inputs() > 0 ? node.input(0) : nullptr;
  if (!a || !a->type.shape || a->type.shape->size() < 2) return std::nullopt;
  int64_t m = 1;
  const ir::Shape& s = *a->type.shape;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (!s[i].known()) return std::nullopt;
    m *= s[i].value;
  }
  return m;
}

template <Isa kIsa>
class MatMulKernel : public Kernel {
 public:
  explicit MatMulKernel(const KernelInit& init) {
    const ir::Tensor* b = init.constant_inputs.size() > 1 ? init.constant_inputs[1] : nullptr;
    if (!b || b->dtype() != ir::DType::kFloat32 || b->rank() < 1 || b->numel() == 0) return;
    const std::vector<int64_t>& s = b->shape();
    const int64_t k = b->rank() == 1 ? s[0] : s[s.size() - 2];
    const int64_t n = b->rank() == 1 ? 1 : s.back();
    if (k <= 0 || n <= 0) return;
    const int64_t count = static_cast<int64_t>(b->numel()) / (k * n);
    const float* data = b->data<float>();
    for (int64_t i = 0; i < count; ++i)
      packed_b_.push_back(PackB(kIsa, false, k, n, data + i * k * n, n));
    packed_shape_ = s;
    if (b->rank() == 2)
      sparse_ = sparse::SparseMatMul::Create(kIsa, data, n, false, k, n, packed_b_[0],
                                             StaticRows(init.node), init.node.describe());
  }

  std::string Variant() const override { return sparse_ ? sparse_->Describe() : std::string(); }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor& a = FloatInput(ctx, 0, "A");
    const ir::Tensor& b = FloatInput(ctx, 1, "B");
    if (a.rank() == 0 || b.rank() == 0)
      ThrowInvalid(node.describe() + ": MatMul operands must have rank >= 1, got " +
                   DimsToString(a.shape()) + " and " + DimsToString(b.shape()));
    std::vector<int64_t> as = a.shape(), bs = b.shape();
    const bool a1 = as.size() == 1, b1 = bs.size() == 1;
    if (a1) as.insert(as.begin(), 1);
    if (b1) bs.push_back(1);
    const int64_t m = as[as.size() - 2], k = as.back(), kb = bs[bs.size() - 2], n = bs.back();
    if (k != kb)
      ThrowInvalid(node.describe() + ": inner dimensions differ: A is " +
                   DimsToString(a.shape()) + ", B is " + DimsToString(b.shape()));
    const std::vector<int64_t> a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
    const std::vector<int64_t> batch = BroadcastBatch(node, a_batch, b_batch);
    std::vector<int64_t> out_shape = batch;
    if (!a1) out_shape.push_back(m);
    if (!b1) out_shape.push_back(n);
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, out_shape);
    if (y.numel() == 0) return;
    float* yd = y.mutable_data<float>();
    const float* ad = a.data<float>();
    const float* bd = b.data<float>();
    const bool use_packed = !packed_b_.empty() && b.shape() == packed_shape_;

    const std::vector<int64_t> ai = BatchIndices(a_batch, batch), bi = BatchIndices(b_batch, batch);
    const int64_t nb = static_cast<int64_t>(ai.size());
    bool b_shared = true, a_identity = true;
    for (int64_t t = 0; t < nb; ++t) {
      b_shared = b_shared && bi[t] == bi[0];
      a_identity = a_identity && ai[t] == t;
    }
    auto gemm = [&](int64_t rows, const float* a_ptr, int64_t b_index, float* y_ptr,
                    ThreadPool* pool) {
      const GemmOperand ob = use_packed
                                 ? GemmOperand::Packed(packed_b_[b_index])
                                 : GemmOperand::Raw(bd + b_index * k * n, n);
      SgemmEx(kIsa, rows, n, k, 1.f, GemmOperand::Raw(a_ptr, k), ob, 0.f, y_ptr, n, pool);
    };
    if (b_shared && a_identity) {
      if (sparse_ && use_packed && sparse_->Run(nb * m, ad, k, yd, n, 1.f, nullptr, &ctx.pool()))
        return;
      gemm(nb * m, ad, bi[0], yd, &ctx.pool());
      return;
    }
    ThreadPool& pool = ctx.pool();
    const double flops = static_cast<double>(m) * n * k;
    if (nb >= pool.num_threads() && pool.num_threads() > 1 && flops < 4e6) {
      // Many small products (attention heads): one thread per product.
      pool.ParallelFor(nb, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; ++t)
          gemm(m, ad + ai[t] * m * k, bi[t], yd + t * m * n, nullptr);
      });
      return;
    }
    for (int64_t t = 0; t < nb; ++t) gemm(m, ad + ai[t] * m * k, bi[t], yd + t * m * n, &pool);
  }

 private:
  std::vector<PackedMatrix> packed_b_;
  std::vector<int64_t> packed_shape_;
  std::unique_ptr<sparse::SparseMatMul> sparse_;
};

template <Isa kIsa>
class GemmKernel : public Kernel {
 public:
  explicit GemmKernel(const KernelInit& init)
      : trans_a_(init.node.attr_int("transA", 0) != 0),
        trans_b_(init.node.attr_int("transB", 0) != 0),
        alpha_(init.node.attr_float("alpha", 1.f)),
        beta_(init.node.attr_float("beta", 1.f)),
        act_(gemm_util::ParseActivation(init.node)) {
    const ir::Tensor* b = init.constant_inputs.size() > 1 ? init.constant_inputs[1] : nullptr;
    if (!b || b->dtype() != ir::DType::kFloat32 || b->rank() != 2 || b->numel() == 0) return;
    const int64_t k = trans_b_ ? b->shape()[1] : b->shape()[0];
    const int64_t n = trans_b_ ? b->shape()[0] : b->shape()[1];
    packed_b_ = std::make_unique<PackedMatrix>(
        PackB(kIsa, trans_b_, k, n, b->data<float>(), b->shape()[1]));
    packed_shape_ = b->shape();
    if (!trans_a_) {
      const ir::Value* a = init.node.num_inputs() > 0 ? init.node.input(0) : nullptr;
      std::optional<int64_t> rows;
      if (a && a->type.shape && a->type.shape->size() == 2 && (*a->type.shape)[0].known())
        rows = (*a->type.shape)[0].value;
      sparse_ = sparse::SparseMatMul::Create(kIsa, b->data<float>(), b->shape()[1], trans_b_, k,
                                             n, *packed_b_, rows, init.node.describe());
    }
  }

  std::string Variant() const override { return sparse_ ? sparse_->Describe() : std::string(); }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor& a = FloatInput(ctx, 0, "A");
    const ir::Tensor& b = FloatInput(ctx, 1, "B");
    const ir::Tensor* c = gemm_util::OptionalFloatInput(ctx, 2, "C");
    if (a.rank() != 2 || b.rank() != 2)
      ThrowInvalid(node.describe() + ": Gemm needs 2-D A and B, got " + DimsToString(a.shape()) +
                   " and " + DimsToString(b.shape()));
    const int64_t m = trans_a_ ? a.shape()[1] : a.shape()[0];
    const int64_t k = trans_a_ ? a.shape()[0] : a.shape()[1];
    const int64_t kb = trans_b_ ? b.shape()[1] : b.shape()[0];
    const int64_t n = trans_b_ ? b.shape()[0] : b.shape()[1];
    if (k != kb)
      ThrowInvalid(node.describe() + ": inner dimensions differ: A is " +
                   DimsToString(a.shape()) + (trans_a_ ? " (transposed)" : "") + ", B is " +
                   DimsToString(b.shape()) + (trans_b_ ? " (transposed)" : ""));
    // C broadcasts unidirectionally to [M, N].
    int64_t cm = 1, cn = 1;
    if (c) {
      if (c->rank() > 2)
        ThrowInvalid(node.describe() + ": C has rank " + std::to_string(c->rank()) +
                     ", expected at most 2");
      if (c->rank() == 2) cm = c->shape()[0];
      if (c->rank() >= 1) cn = c->shape().back();
      if ((cm != 1 && cm != m) || (cn != 1 && cn != n))
        ThrowInvalid(node.describe() + ": C of shape " + DimsToString(c->shape()) +
                     " does not broadcast to [" + std::to_string(m) + "," + std::to_string(n) +
                     "]");
    }
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, {m, n});
    if (y.numel() == 0) return;
    float* yd = y.mutable_data<float>();
    GemmEpilogue ep = act_;
    float beta = 0.f;
    if (c && beta_ != 0.f) {
      const float* cd = c->data<float>();
      if (beta_ == 1.f && cm == 1 && cn == n) {
        ep.bias_kind = GemmEpilogue::Bias::kPerCol;
        ep.bias = cd;
      } else if (beta_ == 1.f && cn == 1 && cm == m) {
        ep.bias_kind = GemmEpilogue::Bias::kPerRow;
        ep.bias = cd;
      } else {
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j)
            yd[i * n + j] = cd[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)];
        beta = beta_;
      }
    }
    const bool packed = packed_b_ && b.shape() == packed_shape_;
    if (sparse_ && packed && beta == 0.f &&
        sparse_->Run(m, a.data<float>(), a.shape()[1], yd, n, alpha_, &ep, &ctx.pool()))
      return;
    const GemmOperand oa = GemmOperand::Raw(a.data<float>(), a.shape()[1], trans_a_);
    const GemmOperand ob = packed_b_ && b.shape() == packed_shape_
                               ? GemmOperand::Packed(*packed_b_)
                               : GemmOperand::Raw(b.data<float>(), b.shape()[1], trans_b_);
    SgemmEx(kIsa, m, n, k, alpha_, oa, ob, beta, yd, n, &ctx.pool(), &ep);
  }

 private:
  bool trans_a_, trans_b_;
  float alpha_, beta_;
  GemmEpilogue act_;
  std::unique_ptr<PackedMatrix> packed_b_;
  std::vector<int64_t> packed_shape_;
  std::unique_ptr<sparse::SparseMatMul> sparse_;
};

template <template <Isa> class K, Isa kIsa>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<K<kIsa>>(init);
}

}  // namespace

void RegisterMatMulKernels(KernelRegistry& r) {
  using ir::DType;
  r.Add({"MatMul", "", DType::kFloat32, Isa::kScalar, "f32_matmul__ref",
         Create<MatMulKernel, Isa::kScalar>});
  r.Add({"Gemm", "", DType::kFloat32, Isa::kScalar, "f32_gemm_op__ref",
         Create<GemmKernel, Isa::kScalar>});
  r.Add({"FusedGemm", "com.microsoft", DType::kFloat32, Isa::kScalar, "f32_fused_gemm__ref",
         Create<GemmKernel, Isa::kScalar>});
#if defined(__x86_64__)
  r.Add({"MatMul", "", DType::kFloat32, Isa::kAvx2, "f32_matmul__avx2_6x16",
         Create<MatMulKernel, Isa::kAvx2>});
  r.Add({"Gemm", "", DType::kFloat32, Isa::kAvx2, "f32_gemm_op__avx2_6x16",
         Create<GemmKernel, Isa::kAvx2>});
  r.Add({"FusedGemm", "com.microsoft", DType::kFloat32, Isa::kAvx2,
         "f32_fused_gemm__avx2_6x16", Create<GemmKernel, Isa::kAvx2>});
  r.Add({"MatMul", "", DType::kFloat32, Isa::kAvx512, "f32_matmul__avx512_12x32",
         Create<MatMulKernel, Isa::kAvx512>});
  r.Add({"Gemm", "", DType::kFloat32, Isa::kAvx512, "f32_gemm_op__avx512_12x32",
         Create<GemmKernel, Isa::kAvx512>});
  r.Add({"FusedGemm", "com.microsoft", DType::kFloat32, Isa::kAvx512,
         "f32_fused_gemm__avx512_12x32", Create<GemmKernel, Isa::kAvx512>});
#endif
}

}  // namespace edgepress::runtime
