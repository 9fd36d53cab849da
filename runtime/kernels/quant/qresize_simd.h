// The vector gather of the 8-bit nearest Resize (qresize.cc), one file per ISA.
#pragma once

#include <cstdint>

namespace edgepress::runtime::qresize {

#if defined(__x86_64__)
// dst[16k + j] = src[col[16k] + shuf[16k + j]] for k < chunks, j < 16, where every shuf
// byte is below 16 and src + col[16k] + 16 stays inside the input: one 16-byte load and
// one pshufb per chunk (qresize_avx2.cc).
void GatherChunksAvx2(const uint8_t* src, const int64_t* col, const uint8_t* shuf,
                      int64_t chunks, uint8_t* dst);
#endif

}  // namespace edgepress::runtime::qresize
