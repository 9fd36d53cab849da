// q8_ms_qlinearadd__avx2, q8_qlinearadd__avx2, q8_ms_qlinearmul__avx2: the vector loops of
// QLinearAdd / QLinearMul (qlinear_eltwise_simd.h) for CPUs without AVX-512 (Zen 2/3,
// Haswell to Alder Lake), 16 elements a step as two vectors of 8 int32/float lanes.
//
// Exactness against the scalar reference (BinaryLoop / MulBlocks in qlinear_eltwise.cc):
// - the same float operations in the same order; the functions are compiled for "avx2"
//   without "fma", so gcc cannot contract a multiply and an add into one rounding;
// - the same clamp of the real value to +-2^22, then cvtps (round half to even under the
//   default MXCSR), which is what RoundEven's 1.5 * 2^23 trick computes there;
// - the integer clamp to [lo, hi] before narrowing, so the saturating packs change nothing;
// - the last n % 16 elements go through the same 16-wide step on copies in a stack buffer.
// QLinearGlobalAveragePool's plane sums (q8_ms_qlinearglobalavgpool__avx2) are integer
// sums, exact in any order.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "runtime/kernels/quant/qlinear_eltwise_simd.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::qeltwise {

namespace {

// No "fma" on purpose (see the top of the file).
#define EP_AVX2 __attribute__((target("avx2"), always_inline)) inline

struct Consts {
  __m256i za, zb, zc, lo, hi;
  __m256 big, nbig;
};

EP_AVX2 Consts MakeConsts(int32_t za, int32_t zb, int32_t zc, int32_t lo, int32_t hi) {
  return {_mm256_set1_epi32(za), _mm256_set1_epi32(zb), _mm256_set1_epi32(zc),
          _mm256_set1_epi32(lo), _mm256_set1_epi32(hi), _mm256_set1_ps(4194304.f),
          _mm256_set1_ps(-4194304.f)};
}

// Eight 8-bit values widened to int32, minus the zero point.
template <typename T>
EP_AVX2 __m256i Load8(const T* p, __m256i zp) {
  const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  const __m256i w = std::is_same<T, uint8_t>::value ? _mm256_cvtepu8_epi32(v) : _mm256_cvtepi8_epi32(v);
  return _mm256_sub_epi32(w, zp);
}

// clamp(round(v) + zc, lo, hi), v first clamped to +-2^22 as in RoundEven.
EP_AVX2 __m256i Requant(__m256 v, const Consts& k) {
  v = _mm256_min_ps(_mm256_max_ps(v, k.nbig), k.big);
  const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), k.zc);
  return _mm256_min_epi32(_mm256_max_epi32(q, k.lo), k.hi);
}

// Sixteen int32 in [lo, hi] (elements 0-7 in q0, 8-15 in q1) stored as bytes, in order:
// packs_epi32 interleaves the 128-bit halves, permute4x64 puts them back in order.
template <typename T>
EP_AVX2 void Store16(T* c, __m256i q0, __m256i q1) {
  const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
  const __m128i l = _mm256_castsi256_si128(p), h = _mm256_extracti128_si256(p, 1);
  const __m128i r = std::is_same<T, uint8_t>::value ? _mm_packus_epi16(l, h) : _mm_packs_epi16(l, h);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(c), r);
}

template <typename T>
EP_AVX2 __m256i Add8(const T* a, const T* b, __m256 ra, __m256 rb, const Consts& k) {
  const __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(Load8(a, k.za)), ra);
  const __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(Load8(b, k.zb)), rb);
  return Requant(_mm256_add_ps(x, y), k);
}

// float((a - za) * (b - zb)) * r, or float(a - za) * r where b is null (r = rg then).
template <typename T>
EP_AVX2 __m256i Mul8(const T* a, const T* b, __m256 r, const Consts& k) {
  __m256i q = Load8(a, k.za);
  if (b) q = _mm256_mullo_epi32(q, Load8(b, k.zb));
  return Requant(_mm256_mul_ps(_mm256_cvtepi32_ps(q), r), k);
}

template <typename T>
EP_AVX2 void Add16(const T* a, const T* b, T* c, __m256 ra, __m256 rb, const Consts& k) {
  Store16(c, Add8(a, b, ra, rb, k), Add8(a + 8, b + 8, ra, rb, k));
}

template <typename T>
EP_AVX2 void Mul16(const T* a, const T* b, T* c, __m256 r, const Consts& k) {
  Store16(c, Mul8(a, b, r, k), Mul8(a + 8, b ? b + 8 : b, r, k));
}

// The last n < 16 elements of a row copied in and out of 16-byte buffers.
struct Tail {
  alignas(16) uint8_t a[16] = {}, b[16] = {}, c[16];
  Tail(const void* ap, const void* bp, int64_t n) {
    std::memcpy(a, ap, static_cast<size_t>(n));
    if (bp) std::memcpy(b, bp, static_cast<size_t>(n));
  }
};

template <typename T>
__attribute__((target("avx2"))) void AddLoop(const T* a, const T* b, T* c, int64_t n, float ra,
                                             float rb, int32_t za, int32_t zb, int32_t zc,
                                             int32_t lo, int32_t hi) {
  const Consts k = MakeConsts(za, zb, zc, lo, hi);
  const __m256 vra = _mm256_set1_ps(ra), vrb = _mm256_set1_ps(rb);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) Add16(a + i, b + i, c + i, vra, vrb, k);
  if (i == n) return;
  Tail t(a + i, b + i, n - i);
  Add16(reinterpret_cast<const T*>(t.a), reinterpret_cast<const T*>(t.b),
        reinterpret_cast<T*>(t.c), vra, vrb, k);
  std::memcpy(c + i, t.c, static_cast<size_t>(n - i));
}

template <typename T>
__attribute__((target("avx2"))) void MulRow(const T* a, const T* b, float rg, float r, T* c,
                                            int64_t n, int32_t za, int32_t zb, int32_t zc,
                                            int32_t lo, int32_t hi) {
  const Consts k = MakeConsts(za, zb, zc, lo, hi);
  const __m256 vr = _mm256_set1_ps(b ? r : rg);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) Mul16(a + i, b ? b + i : b, c + i, vr, k);
  if (i == n) return;
  Tail t(a + i, b ? b + i : b, n - i);
  Mul16(reinterpret_cast<const T*>(t.a), b ? reinterpret_cast<const T*>(t.b) : b,
        reinterpret_cast<T*>(t.c), vr, k);
  std::memcpy(c + i, t.c, static_cast<size_t>(n - i));
}

__attribute__((target("avx2"))) int64_t Sum(const uint8_t* x, int64_t n, bool is_signed) {
  // int8 values as uint8 (x ^ 0x80 = x + 128), the 128s taken off at the end.
  const __m256i flip = _mm256_set1_epi8(is_signed ? static_cast<char>(0x80) : 0);
  const __m256i zero = _mm256_setzero_si256();
  __m256i acc = zero;  // four int64 partial sums
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    acc = _mm256_add_epi64(acc, _mm256_sad_epu8(_mm256_xor_si256(v, flip), zero));
  }
  alignas(32) int64_t part[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(part), acc);
  int64_t s = part[0] + part[1] + part[2] + part[3];
  for (; i < n; ++i) s += static_cast<uint8_t>(x[i] ^ (is_signed ? 0x80 : 0));
  return is_signed ? s - 128 * n : s;
}

#undef EP_AVX2

}  // namespace

int64_t SumAvx2(const uint8_t* x, int64_t n, bool is_signed) { return Sum(x, n, is_signed); }

// Plain entry points: gcc would take a target attribute that differs from the header's
// declaration for a second version of the function.
template <typename T>
void AddLoopAvx2(const T* a, const T* b, T* c, int64_t n, float ra, float rb, int32_t za,
                 int32_t zb, int32_t zc, int32_t lo, int32_t hi) {
  AddLoop(a, b, c, n, ra, rb, za, zb, zc, lo, hi);
}

template <typename T>
void MulRowAvx2(const T* a, const T* b, float rg, float r, T* c, int64_t n, int32_t za,
                int32_t zb, int32_t zc, int32_t lo, int32_t hi) {
  MulRow(a, b, rg, r, c, n, za, zb, zc, lo, hi);
}

template void AddLoopAvx2<uint8_t>(const uint8_t*, const uint8_t*, uint8_t*, int64_t, float,
                                   float, int32_t, int32_t, int32_t, int32_t, int32_t);
template void AddLoopAvx2<int8_t>(const int8_t*, const int8_t*, int8_t*, int64_t, float, float,
                                  int32_t, int32_t, int32_t, int32_t, int32_t);
template void MulRowAvx2<uint8_t>(const uint8_t*, const uint8_t*, float, float, uint8_t*, int64_t,
                                  int32_t, int32_t, int32_t, int32_t, int32_t);
template void MulRowAvx2<int8_t>(const int8_t*, const int8_t*, float, float, int8_t*, int64_t,
                                 int32_t, int32_t, int32_t, int32_t, int32_t);

}  // namespace edgepress::runtime::qeltwise

#endif  // __x86_64__
