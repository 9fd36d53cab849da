// Between qgemm.cc (driver, packing, scalar kernel) and qgemm_avx2.cc (x86 micro-kernels
// and the vectorised epilogue). Not for operator kernels: they use qgemm.h (the one
// exception: qconv.cc's depthwise path stores its rows with QStoreRowAvx2).
#pragma once

#include <cstdint>

#include "runtime/kernels/qgemm/qgemm.h"

namespace edgepress::runtime::qgemm_detail {

// One mr x nr tile over all K2 pairs: acc[r * nr + j] (int32), rows < mr of A valid.
using QTileFn = void (*)(int rows, int64_t k2, const int16_t* a, const int16_t* b,
                         int32_t* acc);
// The epilogue of one row segment (QStoreRow's contract).
using QStoreFn = void (*)(const int32_t* acc, int cols, int64_t row, int64_t col0,
                          const QOutput& out);

struct QMicroKernel {
  int mr, nr;
  QTileFn tile;
  QStoreFn store;
  const char* name;
};

#if defined(__x86_64__)
void QTileAvx2(int rows, int64_t k2, const int16_t* a, const int16_t* b, int32_t* acc);
void QTileAvxVnni(int rows, int64_t k2, const int16_t* a, const int16_t* b, int32_t* acc);
void QTileAvx512(int rows, int64_t k2, const int16_t* a, const int16_t* b, int32_t* acc);
void QTileAvx512Vnni(int rows, int64_t k2, const int16_t* a, const int16_t* b, int32_t* acc);
void QStoreRowAvx2(const int32_t* acc, int cols, int64_t row, int64_t col0, const QOutput& out);
#endif

}  // namespace edgepress::runtime::qgemm_detail
