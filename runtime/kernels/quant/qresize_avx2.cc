// u8_resize_nearest__avx2, s8_resize_nearest__avx2: the row gather of an upsampling
// nearest Resize as byte shuffles (qresize_simd.h). A gather moves bytes unchanged, so the
// output is the reference's exactly.
#include "runtime/kernels/quant/qresize_simd.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::qresize {

namespace {

__attribute__((target("avx2"))) void Chunks(const uint8_t* src, const int64_t* col,
                                            const uint8_t* shuf, int64_t chunks, uint8_t* dst) {
  for (int64_t k = 0; k < chunks; ++k) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + col[16 * k]));
    const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(shuf + 16 * k));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16 * k), _mm_shuffle_epi8(v, s));
  }
}

}  // namespace

// A plain entry point: gcc would take a target attribute that differs from the header's
// declaration for a second version of the function.
void GatherChunksAvx2(const uint8_t* src, const int64_t* col, const uint8_t* shuf,
                      int64_t chunks, uint8_t* dst) {
  Chunks(src, col, shuf, chunks, dst);
}

}  // namespace edgepress::runtime::qresize

#endif  // __x86_64__
