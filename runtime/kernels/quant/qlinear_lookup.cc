// edgepress QLinearLookup  X, table -> Y: an element-wise function of an 8-bit quantized
// tensor as a 256-entry table, Y[i] = table[bit pattern of X[i] as uint8] (docs/ops.md).
// fuse-qdq writes it for DQ -> Sigmoid|Tanh|HardSwish|HardSigmoid|LeakyRelu|... -> Q with
// per-tensor parameters: the table holds Q(f(DQ(q))) for every q, computed once by the float
// kernel itself, so the integer graph equals the QDQ graph exactly while doing one byte load
// per element instead of dequantize, the float function and requantize.
//
// Kernels: "q8_lookup__scalar" (the reference: one table load per element),
// "q8_lookup__avx2" (32 elements per step: 16 vpshufb and a 4-level blend tree) and
// "q8_lookup__avx512vbmi" (64 elements per step: vpermi2b looks up the low and the high
// half of the table by the low 7 bits, the top bit picks between them).
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/quant/qlinear_lookup.h"
#include "runtime/thread_pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime {

void LookupBytesScalar(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint8_t a = table[x[i]], b = table[x[i + 1]], c = table[x[i + 2]],
                  d = table[x[i + 3]];
    y[i] = a, y[i + 1] = b, y[i + 2] = c, y[i + 3] = d;
  }
  for (; i < n; ++i) y[i] = table[x[i]];
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void LookupBytesAvx512Vbmi(
    const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i v = _mm512_loadu_si512(x + i);
    // vpermi2b uses the low 7 bits of each index: entries 0..127 from (t0, t1), 128..255
    // from (t2, t3); the index's top bit selects the half.
    const __m512i lo = _mm512_permutex2var_epi8(t0, v, t1);
    const __m512i hi = _mm512_permutex2var_epi8(t2, v, t3);
    const __mmask64 top = _mm512_movepi8_mask(v);
    _mm512_storeu_si512(y + i, _mm512_mask_blend_epi8(top, lo, hi));
  }
  if (i < n) LookupBytesScalar(x + i, table, y + i, n - i);
}

// 32 elements per step: vpshufb looks each index's low nibble up in all 16 rows of 16 table
// entries, and a tree of byte blends picks the row by the high nibble's bits 4, 5, 6, 7 (the
// selecting bit moved to bit 7, which vpblendvb reads).
__attribute__((target("avx2"))) void LookupBytesAvx2(const uint8_t* x, const uint8_t* table,
                                                     uint8_t* y, int64_t n) {
  __m256i rows[16];
  for (int r = 0; r < 16; ++r)
    rows[r] = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(table + 16 * r)));
  const __m256i low = _mm256_set1_epi8(0x0F);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    const __m256i idx = _mm256_and_si256(v, low);
    __m256i level[16];
    for (int r = 0; r < 16; ++r) level[r] = _mm256_shuffle_epi8(rows[r], idx);
    // Bit b of each byte to bit 7: shifting 16-bit lanes left by 7 - b moves bit b of
    // either byte to that byte's bit 7.
    const __m256i sel[4] = {_mm256_slli_epi16(v, 3), _mm256_slli_epi16(v, 2),
                            _mm256_slli_epi16(v, 1), v};
    for (int b = 0, width = 16; b < 4; ++b, width /= 2)
      for (int r = 0; r < width / 2; ++r)
        level[r] = _mm256_blendv_epi8(level[2 * r], level[2 * r + 1], sel[b]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), level[0]);
  }
  if (i < n) LookupBytesScalar(x + i, table, y + i, n - i);
}
#endif

namespace {

class QLinearLookupKernel : public Kernel {
 public:
  QLinearLookupKernel(const KernelInit& init, LookupFn fn) : fn_(fn) { (void)init; }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor* x = ctx.input(0);
    const ir::Tensor* table = ctx.input(1);
    if (!x || !table)
      ThrowInvalid(node.describe() + ": needs inputs X and table");
    auto is8 = [](ir::DType t) { return t == ir::DType::kUInt8 || t == ir::DType::kInt8; };
    if (!is8(x->dtype()))
      ThrowUnsupported(node.describe() + ": X has dtype " + ir::DTypeName(x->dtype()) +
                       ", expected uint8 or int8");
    if (!is8(table->dtype()) || table->numel() != 256)
      ThrowInvalid(node.describe() + ": table must hold 256 uint8 or int8 values (has " +
                   std::to_string(table->numel()) + " " + ir::DTypeName(table->dtype()) + ")");
    ir::Tensor& y = ctx.AllocateOutput(0, table->dtype(), x->shape());
    const int64_t n = static_cast<int64_t>(x->numel());
    if (n == 0) return;
    const auto* xp = static_cast<const uint8_t*>(x->raw());
    const auto* tp = static_cast<const uint8_t*>(table->raw());
    auto* yp = static_cast<uint8_t*>(y.mutable_raw());
    const LookupFn fn = fn_;
    ctx.pool().ParallelFor(n, 1 << 16, [&](int64_t s, int64_t e) { fn(xp + s, tp, yp + s, e - s); });
  }

 private:
  LookupFn fn_;
};

}  // namespace

LookupFn BestLookupFn(const char** name) {
#if defined(__x86_64__)
  const CpuFeatures& f = GetCpuFeatures();
  if (f.Has(Isa::kAvx512) && f.avx512vbmi && !ForceScalar()) {
    if (name) *name = "q8_lookup__avx512vbmi";
    return LookupBytesAvx512Vbmi;
  }
  if (f.Has(Isa::kAvx2) && !ForceScalar()) {
    if (name) *name = "q8_lookup__avx2";
    return LookupBytesAvx2;
  }
#endif
  if (name) *name = "q8_lookup__scalar";
  return LookupBytesScalar;
}

void RegisterQLinearLookupKernels(KernelRegistry& r) {
  r.Add({"QLinearLookup", "edgepress", ir::DType::kUndefined, Isa::kScalar, "q8_lookup__scalar",
         [](const KernelInit& init) -> std::unique_ptr<Kernel> {
           return std::make_unique<QLinearLookupKernel>(init, LookupBytesScalar);
         }});
#if defined(__x86_64__)
  r.Add({"QLinearLookup", "edgepress", ir::DType::kUndefined, Isa::kAvx2, "q8_lookup__avx2",
         [](const KernelInit& init) -> std::unique_ptr<Kernel> {
           return std::make_unique<QLinearLookupKernel>(init, LookupBytesAvx2);
         }});
  // Registered as an AVX-512 entry, chosen only where the CPU also has VBMI.
  if (GetCpuFeatures().avx512vbmi)
    r.Add({"QLinearLookup", "edgepress", ir::DType::kUndefined, Isa::kAvx512,
           "q8_lookup__avx512vbmi", [](const KernelInit& init) -> std::unique_ptr<Kernel> {
             return std::make_unique<QLinearLookupKernel>(init, LookupBytesAvx512Vbmi);
           }});
#endif
}

}  // namespace edgepress::runtime
