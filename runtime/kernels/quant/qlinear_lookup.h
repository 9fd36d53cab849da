// The byte-table lookup behind edgepress QLinearLookup (qlinear_lookup.cc), exposed for
// the kernel tests: every ISA variant must equal the scalar reference.
#pragma once

#include <cstdint>

namespace edgepress::runtime {

// y[i] = table[x[i]] for i < n; `table` holds 256 bytes.
using LookupFn = void (*)(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n);
void LookupBytesScalar(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n);
#if defined(__x86_64__)
void LookupBytesAvx2(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n);
// Needs AVX-512F/BW and AVX-512 VBMI (CpuFeatures::avx512vbmi).
void LookupBytesAvx512Vbmi(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n);
#endif
// The variant dispatch uses on this CPU (scalar under EDGEPRESS_FORCE_SCALAR=1); `name`
// receives its kernel name.
LookupFn BestLookupFn(const char** name = nullptr);

}  // namespace edgepress::runtime
