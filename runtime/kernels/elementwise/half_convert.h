// Bulk fp16 / bf16 -> fp32 conversion for Cast (weights stored in half precision by the
// `cast-weights` pass are followed by Cast(to=float)) and the half-precision fallbacks
// that compute in fp32.
//
//   kScalar  ir::HalfToFloat / ir::BFloat16ToFloat per element (the reference).
//   kAvx2    fp16: F16C vcvtph2ps, 16 values per iteration; bf16: zero-extend and shift
//            left by 16 (exact). Needs AVX2 and F16C (HalfConvertIsa checks both).
// Both give identical bits for every input except signalling NaNs, which F16C quiets.
#pragma once

#include <cstdint>

#include "runtime/kernel.h"

namespace edgepress::runtime {

// kAvx2 when the CPU has AVX2 and F16C and EDGEPRESS_FORCE_SCALAR is unset, else kScalar.
Isa HalfConvertIsa();

void HalfToFloatArray(Isa isa, const uint16_t* src, float* dst, int64_t n);
void BFloat16ToFloatArray(Isa isa, const uint16_t* src, float* dst, int64_t n);

}  // namespace edgepress::runtime
