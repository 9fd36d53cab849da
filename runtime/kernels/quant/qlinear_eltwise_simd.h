// The vector loops of QLinearAdd / QLinearMul (qlinear_eltwise.cc), one file per ISA
// (qlinear_eltwise_avx2.cc, qlinear_eltwise_avx512.cc). Each one computes exactly the
// scalar reference's float operations in the same order, without contraction into FMAs,
// and rounds half to even, so the outputs are byte-identical to `q8_*__ref`:
//   Add: c = clamp(round(float(a - za) * ra + float(b - zb) * rb) + zc, lo, hi)
//   Mul: c = clamp(round(float((a - za) * (b - zb)) * r) + zc, lo, hi)   (b != nullptr)
//        c = clamp(round(float(a - za) * rg) + zc, lo, hi)                 (b == nullptr:
//        one squeeze-excite gate value per row, rg = float(g - zg) * r computed by the caller)
// T is uint8_t or int8_t; [lo, hi] lies inside T's range.
#pragma once

#include <cstdint>

#include "runtime/kernel.h"

namespace edgepress::runtime::qeltwise {

template <typename T>
using AddFn = void (*)(const T* a, const T* b, T* c, int64_t n, float ra, float rb, int32_t za,
                       int32_t zb, int32_t zc, int32_t lo, int32_t hi);
template <typename T>
using MulFn = void (*)(const T* a, const T* b, float rg, float r, T* c, int64_t n, int32_t za,
                       int32_t zb, int32_t zc, int32_t lo, int32_t hi);

#if defined(__x86_64__)
template <typename T>
void AddLoopAvx2(const T* a, const T* b, T* c, int64_t n, float ra, float rb, int32_t za,
                 int32_t zb, int32_t zc, int32_t lo, int32_t hi);
template <typename T>
void MulRowAvx2(const T* a, const T* b, float rg, float r, T* c, int64_t n, int32_t za,
                int32_t zb, int32_t zc, int32_t lo, int32_t hi);
// Sum of n 8-bit values (int8 when `is_signed`), exact: vpsadbw per 32 bytes.
int64_t SumAvx2(const uint8_t* x, int64_t n, bool is_signed);
template <typename T>
void AddLoopAvx512(const T* a, const T* b, T* c, int64_t n, float ra, float rb, int32_t za,
                   int32_t zb, int32_t zc, int32_t lo, int32_t hi);
template <typename T>
void MulRowAvx512(const T* a, const T* b, float rg, float r, T* c, int64_t n, int32_t za,
                  int32_t zb, int32_t zc, int32_t lo, int32_t hi);
#endif

// The loops of one ISA; both null for the scalar reference (and off x86-64).
template <typename T>
struct Loops {
  AddFn<T> add = nullptr;
  MulFn<T> mul = nullptr;
};

template <typename T>
Loops<T> LoopsFor(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx512) return {AddLoopAvx512<T>, MulRowAvx512<T>};
  if (isa == Isa::kAvx2) return {AddLoopAvx2<T>, MulRowAvx2<T>};
#endif
  (void)isa;
  return {};
}

}  // namespace edgepress::runtime::qeltwise
