// The int8-activation MatMulNBits path (nbits_int8.h): the SIMD row quantizer byte-equal to
// the scalar one; every kernel (AVX2 vpmaddubsw, AVX-512 VNNI) bit-identical to the scalar
// reference at tile edges (rows around the 4- and 6-row tiles and the 48-row task, columns
// around the 8/16/32-column tiles, K below/at/above a block and ragged), for every block
// size 16..256 and zero-point form, with bias, on 1 and 3 threads; and the reference within
// the error that quantizing A implies against a double-precision dequantize + matmul.
// ISAs the CPU lacks are skipped with the reason.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/kernels/lowbit/matmul_nbits.h"
#include "runtime/kernels/lowbit/nbits_int8.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

enum class Zp { kNone, kPacked, kFloat };

struct Case {
  int64_t m, k, n, bs, kb;
  Zp zp;
  std::vector<float> a, scales, bias;
  std::vector<uint8_t> b;
  Q4Params params;

  Q4Weights Weights() const {
    Q4Weights w;
    w.n = n;
    w.k = k;
    w.block_size = bs;
    w.k_blocks = kb;
    w.packed = b.data();
    w.params = &params;
    return w;
  }
  std::string Name() const {
    static const char* const kZp[] = {"none", "packed", "float"};
    return "m=" + std::to_string(m) + " k=" + std::to_string(k) + " n=" + std::to_string(n) +
           " bs=" + std::to_string(bs) + " zp=" + kZp[static_cast<int>(zp)] +
           (bias.empty() ? "" : " bias");
  }
};

Case Make(int64_t m, int64_t k, int64_t n, int64_t bs, Zp zp, bool bias, uint32_t seed) {
  Case c{m, k, n, bs, (k + bs - 1) / bs, zp, {}, {}, {}, {}, {}};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f), s(0.01f, 0.1f), z(0.f, 15.f);
  std::uniform_int_distribution<int> byte(0, 255);
  c.a.resize(m * k);
  for (float& x : c.a) x = u(rng) * (rng() % 8 == 0 ? 40.f : 1.f);  // some outliers
  // One row of zeros: its blocks have scale 0.
  if (m > 2)
    for (int64_t kk = 0; kk < k; ++kk) c.a[2 * k + kk] = 0.f;
  c.b.resize(n * c.kb * (bs / 2));
  for (uint8_t& x : c.b) x = static_cast<uint8_t>(byte(rng));
  c.scales.resize(n * c.kb);
  for (float& x : c.scales) x = s(rng);
  std::vector<uint8_t> zp_u8;
  std::vector<float> zp_f;
  if (zp == Zp::kPacked) {
    zp_u8.resize(n * ((c.kb + 1) / 2));
    for (uint8_t& x : zp_u8) x = static_cast<uint8_t>(byte(rng));
  } else if (zp == Zp::kFloat) {
    zp_f.resize(n * c.kb);
    for (float& x : zp_f) x = z(rng);
  }
  if (bias) {
    c.bias.resize(n);
    for (float& x : c.bias) x = u(rng);
  }
  c.params = MakeQ4Params(n, c.kb, c.scales.data(), zp_u8.empty() ? nullptr : zp_u8.data(),
                          zp_f.empty() ? nullptr : zp_f.data());
  return c;
}

std::vector<Case> EdgeCases() {
  std::vector<Case> out;
  const int64_t block_sizes[] = {16, 32, 64, 128, 256};
  uint32_t idx = 0;
  for (int64_t m : {1, 3, 4, 5, 6, 7, 13})
    for (int64_t k : {16, 40, 100, 256, 517})
      for (int64_t n : {1, 8, 17, 33, 67}) {
        out.push_back(Make(m, k, n, block_sizes[idx % 5], static_cast<Zp>(idx % 3), idx % 2,
                           300 + idx));
        ++idx;
      }
  // Many row tiles (6 and 4 rows) with a ragged last one, around the 48-row task.
  for (int64_t m : {32, 47, 64})
    for (int64_t k : {40, 256, 517})
      for (int64_t n : {17, 67}) {
        out.push_back(Make(m, k, n, block_sizes[idx % 5], static_cast<Zp>(idx % 3), idx % 2,
                           300 + idx));
        ++idx;
      }
  // More than one 48-row task, several 2-panel tasks with a ragged end.
  out.push_back(Make(49, 96, 16 * 5 + 3, 32, Zp::kNone, true, 1));
  out.push_back(Make(100, 130, 40, 64, Zp::kPacked, false, 2));
  return out;
}

std::vector<float> RunInt8(const Q4Int8Impl& impl, const Case& c, const Q4Int8Packed& pk,
                           ThreadPool* pool) {
  std::vector<float> y(c.m * c.n, NAN);
  Q4Int8MatMul(impl, c.a.data(), c.m, pk, c.bias.empty() ? nullptr : c.bias.data(), y.data(),
               pool);
  return y;
}

const Q4Int8Impl kRef = {nbits_detail::Q4Int8GemmRef, nbits_detail::QuantizeQ8RowsRef,
                         "q4s8_gemm__ref"};
#if defined(__x86_64__)
const Q4Int8Impl kAvx2 = {nbits_detail::Q4Int8GemmAvx2, nbits_detail::QuantizeQ8RowsAvx2,
                          "q4s8_gemm__avx2"};
const Q4Int8Impl kAvxVnni = {nbits_detail::Q4Int8GemmAvxVnni, nbits_detail::QuantizeQ8RowsAvx2,
                             "q4s8_gemm__avxvnni"};
const Q4Int8Impl kAvx512Vnni = {nbits_detail::Q4Int8GemmAvx512Vnni,
                                nbits_detail::QuantizeQ8RowsAvx2, "q4s8_gemm__avx512vnni"};
#endif

// |y - exact| <= rounding of the fp32 sums + sum over blocks of max|a| / 254 * sum |w|.
void ExpectWithinInt8Bound(const Case& c, const std::vector<float>& y) {
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t col = 0; col < c.n; ++col) {
      double exact = c.bias.empty() ? 0.0 : c.bias[col], bound = 0, mag = 0;
      for (int64_t blk = 0; blk < c.kb; ++blk) {
        const double s = c.scales[col * c.kb + blk], z = c.params.zero_points[col * c.kb + blk];
        double amax = 0, wsum = 0;
        for (int64_t kk = blk * c.bs; kk < std::min(c.k, (blk + 1) * c.bs); ++kk) {
          const uint8_t byte = c.b[(col * c.kb + blk) * (c.bs / 2) + (kk % c.bs) / 2];
          const double w = (((kk % c.bs) & 1 ? byte >> 4 : byte & 15) - z) * s;
          const double av = c.a[i * c.k + kk];
          exact += av * w;
          amax = std::max(amax, std::fabs(av));
          wsum += std::fabs(w);
          mag += std::fabs(av) * 15.0 * s;
        }
        bound += amax / 254.0 * wsum;
      }
      ASSERT_NEAR(y[i * c.n + col], exact, bound * 1.0001 + 1e-5 * mag + 1e-6)
          << c.Name() << " @" << i << "," << col;
    }
}

TEST(Q4Int8, QuantizedRowsMatchReferenceBytes) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  for (const Case& c : EdgeCases()) {
    Q8Rows ref, simd;
    for (Q8Rows* q : {&ref, &simd}) {
      q->m = c.m;
      q->block_size = c.bs;
      q->k_blocks = c.kb;
      q->kp = c.kb * c.bs;
      q->q.assign(c.m * q->kp, 99);
      q->scale.assign(c.m * c.kb, NAN);
      q->sum.assign(c.m * c.kb, NAN);
    }
    nbits_detail::QuantizeQ8RowsRef(c.a.data(), c.k, 0, c.m, &ref);
    nbits_detail::QuantizeQ8RowsAvx2(c.a.data(), c.k, 0, c.m, &simd);
    ASSERT_EQ(ref.q, simd.q) << c.Name();
    ASSERT_EQ(ref.scale, simd.scale) << c.Name();
    ASSERT_EQ(ref.sum, simd.sum) << c.Name();
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t kk = c.k; kk < ref.kp; ++kk) ASSERT_EQ(ref.q[i * ref.kp + kk], 0) << c.Name();
  }
}

TEST(Q4Int8, ReferenceWithinQuantizationBound) {
  ThreadPool pool(3);
  for (const Case& c : EdgeCases()) {
    const Q4Int8Packed pk = PackQ4Int8(c.Weights());
    ExpectWithinInt8Bound(c, RunInt8(kRef, c, pk, nullptr));
    ASSERT_EQ(RunInt8(kRef, c, pk, &pool), RunInt8(kRef, c, pk, nullptr)) << c.Name();
  }
}

// Bit-identical: the kernels do the reference's integer dot and its two fused updates.
void ExpectKernelMatchesReference(const Q4Int8Impl& impl) {
  ThreadPool pool(3);
  int compared = 0;
  for (const Case& c : EdgeCases()) {
    const Q4Int8Packed pk = PackQ4Int8(c.Weights());
    const std::vector<float> want = RunInt8(kRef, c, pk, nullptr);
    const std::vector<float> one = RunInt8(impl, c, pk, nullptr);
    const std::vector<float> three = RunInt8(impl, c, pk, &pool);
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(one[i], want[i]) << impl.name << " " << c.Name() << " @" << i;
      ASSERT_EQ(three[i], want[i]) << impl.name << " 3 threads " << c.Name();
    }
    ++compared;
  }
  EXPECT_GT(compared, 100);
}

#if defined(__x86_64__)
TEST(Q4Int8, Avx2MatchesReferenceAtEdges) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  ExpectKernelMatchesReference(kAvx2);
}

TEST(Q4Int8, AvxVnniMatchesReferenceAtEdges) {
  if (!GetCpuFeatures().Has(Isa::kAvx2) || !GetCpuFeatures().avxvnni)
    GTEST_SKIP() << "CPU lacks AVX-VNNI";
  ExpectKernelMatchesReference(kAvxVnni);
}

TEST(Q4Int8, Avx512VnniMatchesReferenceAtEdges) {
  if (!GetCpuFeatures().Has(Isa::kAvx512Vnni) || !GetCpuFeatures().fma)
    GTEST_SKIP() << "CPU lacks AVX-512 F/BW/VL + VNNI";
  ExpectKernelMatchesReference(kAvx512Vnni);
}
#endif

// Saturation: codes 15 against activations of +-127 everywhere (the largest int16 partial
// sums vpmaddubsw sees) still give the exact dot product on every kernel.
TEST(Q4Int8, ExtremeCodesAndActivationsDoNotSaturate) {
  for (int64_t bs : {16, 32, 64, 256}) {
    Case c = Make(5, 512, 40, bs, Zp::kNone, false, 9);
    std::fill(c.b.begin(), c.b.end(), 0xFF);
    for (size_t i = 0; i < c.a.size(); ++i) c.a[i] = (i / 512) % 2 ? -3.f : 3.f;
    c.params = MakeQ4Params(c.n, c.kb, c.scales.data(), nullptr, nullptr);
    const Q4Int8Packed pk = PackQ4Int8(c.Weights());
    const std::vector<float> want = RunInt8(kRef, c, pk, nullptr);
    ExpectWithinInt8Bound(c, want);
#if defined(__x86_64__)
    const CpuFeatures& cpu = GetCpuFeatures();
    if (cpu.Has(Isa::kAvx2)) {
      EXPECT_EQ(RunInt8(kAvx2, c, pk, nullptr), want) << "bs=" << bs;
    }
    if (cpu.Has(Isa::kAvx2) && cpu.avxvnni) {
      EXPECT_EQ(RunInt8(kAvxVnni, c, pk, nullptr), want) << "bs=" << bs;
    }
    if (cpu.Has(Isa::kAvx512Vnni)) {
      EXPECT_EQ(RunInt8(kAvx512Vnni, c, pk, nullptr), want) << "bs=" << bs;
    }
#endif
  }
}

// Names the int8-activation kernel the operator's dispatch reaches on this CPU (CI logs show
// it next to kernel_dispatch_test's table): VNNI where present, AVX2 otherwise.
TEST(Q4Int8, PrintsTheKernelThisCpuRuns) {
  const CpuFeatures& cpu = GetCpuFeatures();
  const KernelDef* def = GlobalKernelRegistry().Find("MatMulNBits", "com.microsoft",
                                                     ir::DType::kFloat32, cpu, ForceScalar());
  ASSERT_NE(def, nullptr);
  const Isa want = ForceScalar() || !cpu.Has(Isa::kAvx2) ? Isa::kScalar
                   : cpu.Has(Isa::kAvx512Vnni)          ? Isa::kAvx512Vnni
                                                        : Isa::kAvx2;
  EXPECT_EQ(def->isa, want) << def->name;
  EXPECT_EQ(Q4Int8KernelIsa(def->isa), want);
  if (want == Isa::kAvx2) {  // the VEX vpdpbusd kernel where the CPU has it
    EXPECT_STREQ(Q4Int8KernelName(want), cpu.avxvnni ? "q4s8_gemm__avxvnni" : "q4s8_gemm__avx2");
  }
  std::printf("[ info ] MatMulNBits -> %s; accuracy_level 4 -> %s\n", def->name,
              want == Isa::kScalar ? "fp32 (the reference ignores it)" : Q4Int8KernelName(want));
}

}  // namespace
}  // namespace edgepress::runtime
