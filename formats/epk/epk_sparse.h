// Sparse storage of .epk tensor data (docs/epk.md, "Sparse storage"), between the writer
// (epk_write.cc) and the reader (epk_read.cc). The in-memory ir::Tensor stays dense: the
// writer picks the smallest of dense, bitmask, CSR and (for tensors annotated N:M) N:M
// storage, and the reader validates every count, index and size of a sparse blob before
// it expands it into an owned dense buffer.
//
// An element is "zero" when all its bytes are zero, so a round trip is bit exact (-0.0f
// is stored as a non-zero value).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ir/tensor.h"

namespace edgepress::formats::epk_sparse {

enum class Storage : uint8_t { kDense = 0, kBitmask = 1, kCsr = 2, kNM = 3 };
// A sparse blob expands to at most this many times its size (plus kExpansionSlack bytes):
// the writer never produces more, and the reader refuses more, so a small hostile file
// cannot make the reader allocate terabytes. Bitmask storage (at most 8 x element-size
// expansion) always stays within it.
constexpr uint64_t kMaxExpansion = 1024;
constexpr uint64_t kExpansionSlack = uint64_t{1} << 20;
constexpr uint8_t kMaxStorage = 3;
const char* StorageName(Storage s);

// The fields a tensor record carries for its storage (docs/epk.md).
struct Layout {
  Storage storage = Storage::kDense;
  uint64_t nnz = 0;         // kBitmask, kCsr: stored values
  uint8_t index_bytes = 0;  // kCsr: 2 or 4
  int32_t n = 0, m = 0;     // kNM: n kept slots in every group of m along `axis`
  int32_t axis = 0;         // kNM: in [0, rank)
  uint64_t bytes = 0;       // size of the blob in the tensor data section
};

// The storage the writer uses for `t` (dense for strings, packed dtypes, and tensors
// whose sparse layouts would not save at least 1/8 of the dense bytes).
Layout Choose(const ir::Tensor& t);
// The blob for `t` in layout `l` (which Choose returned for `t`).
std::string Encode(const ir::Tensor& t, const Layout& l);

// Checks that `l` is consistent with the tensor's dtype and shape and that the blob
// (`size` bytes) is exactly as large as `l` says; then validates the blob's contents and
// expands it into `dst` (the tensor's dense bytes, zero-filled by the caller). `fail`
// must throw; it receives a message naming the field at fault.
using FailFn = std::function<void(const std::string&)>;
void CheckLayout(const Layout& l, ir::DType dtype, const std::vector<int64_t>& shape,
                 uint64_t size, const FailFn& fail);
void Decode(const Layout& l, ir::DType dtype, const std::vector<int64_t>& shape,
            const uint8_t* blob, uint8_t* dst, const FailFn& fail);

}  // namespace edgepress::formats::epk_sparse
