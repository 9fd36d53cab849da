// Sparse .epk storage: choice, encoding, validation and expansion (see epk_sparse.h).
#include "formats/epk/epk_sparse.h"

#include <algorithm>
#include <cstring>

#include "ir/error.h"

namespace edgepress::formats::epk_sparse {
namespace {

using ir::DType;

// Bytes per element for dtypes sparse storage applies to; 0 for the others.
uint64_t ElemBytes(DType dt) {
  if (dt == DType::kString || dt == DType::kUndefined || ir::IsPacked(dt)) return 0;
  const int bits = ir::DTypeBits(dt);
  return bits > 0 && bits % 8 == 0 ? static_cast<uint64_t>(bits / 8) : 0;
}

bool IsZero(const uint8_t* p, uint64_t es) {
  for (uint64_t b = 0; b < es; ++b)
    if (p[b]) return false;
  return true;
}

uint64_t CeilDiv(uint64_t a, uint64_t b) { return a / b + (a % b ? 1 : 0); }

int IndexBits(int m) {
  int bits = 1;
  while ((1 << bits) < m) ++bits;
  return bits;
}

// The N:M view of a shape: [outer, len, inner] around `axis`, len split in groups of m.
struct NMGeometry {
  uint64_t outer = 1, len = 0, inner = 1, groups = 0, slots = 0;
  int bits = 0;
};
NMGeometry Geometry(const std::vector<int64_t>& shape, int axis, int n, int m) {
  NMGeometry g;
  for (int d = 0; d < axis; ++d) g.outer *= static_cast<uint64_t>(shape[d]);
  g.len = static_cast<uint64_t>(shape[axis]);
  for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d)
    g.inner *= static_cast<uint64_t>(shape[d]);
  g.groups = g.len / static_cast<uint64_t>(m);
  g.slots = g.outer * g.groups * g.inner * static_cast<uint64_t>(n);
  g.bits = IndexBits(m);
  return g;
}

// The N:M layout for `t` when its annotation asks for one and its data complies (at most
// n non-zeros in every group); storage.kDense otherwise.
Layout NMLayout(const ir::Tensor& t, uint64_t es) {
  Layout l;
  if (!t.sparse || t.sparse->kind != ir::SparseEncoding::Kind::kNM || t.rank() == 0) return l;
  const int n = t.sparse->n, m = t.sparse->m;
  int axis = t.sparse->axis < 0 ? t.sparse->axis + t.rank() : t.sparse->axis;
  if (n < 1 || m < 2 || n >= m || m > 256 || axis < 0 || axis >= t.rank()) return l;
  if (t.shape()[axis] % m != 0) return l;
  const NMGeometry g = Geometry(t.shape(), axis, n, m);
  const auto* p = static_cast<const uint8_t*>(t.raw());
  for (uint64_t o = 0; o < g.outer; ++o)
    for (uint64_t gr = 0; gr < g.groups; ++gr)
      for (uint64_t i = 0; i < g.inner; ++i) {
        int count = 0;
        for (int k = 0; k < m; ++k) {
          const uint64_t e = (o * g.len + gr * m + static_cast<uint64_t>(k)) * g.inner + i;
          count += IsZero(p + e * es, es) ? 0 : 1;
        }
        if (count > n) return l;
      }
  l.storage = Storage::kNM;
  l.n = n;
  l.m = m;
  l.axis = axis;
  l.bytes = g.slots * es + CeilDiv(g.slots * static_cast<uint64_t>(g.bits), 8);
  return l;
}

void PutBits(std::string& s, uint64_t bit, int count, uint32_t v) {
  for (int b = 0; b < count; ++b, ++bit)
    if ((v >> b) & 1u) s[bit / 8] = static_cast<char>(s[bit / 8] | (1 << (bit % 8)));
}
uint32_t GetBits(const uint8_t* p, uint64_t bit, int count) {
  uint32_t v = 0;
  for (int b = 0; b < count; ++b, ++bit) v |= static_cast<uint32_t>((p[bit / 8] >> (bit % 8)) & 1) << b;
  return v;
}
uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
void StoreU32(std::string& s, uint64_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

}  // namespace

const char* StorageName(Storage s) {
  switch (s) {
    case Storage::kDense: return "dense";
    case Storage::kBitmask: return "bitmask";
    case Storage::kCsr: return "csr";
    case Storage::kNM: return "nm";
  }
  return "?";
}

Layout Choose(const ir::Tensor& t) {
  Layout dense;
  const uint64_t es = ElemBytes(t.dtype());
  if (es == 0 || t.numel() == 0) {
    dense.bytes = t.dtype() == DType::kString ? 0 : t.nbytes();
    return dense;
  }
  const uint64_t numel = t.numel();
  dense.bytes = numel * es;
  const auto* p = static_cast<const uint8_t*>(t.raw());
  uint64_t nnz = 0;
  for (uint64_t e = 0; e < numel; ++e) nnz += IsZero(p + e * es, es) ? 0 : 1;

  Layout best = dense;
  // N:M first, so that it wins ties: its groups are what N:M kernels want.
  Layout nm = NMLayout(t, es);
  if (nm.storage == Storage::kNM && nm.bytes < best.bytes) best = nm;
  Layout bm;
  bm.storage = Storage::kBitmask;
  bm.nnz = nnz;
  bm.bytes = CeilDiv(numel, 8) + nnz * es;
  if (bm.bytes < best.bytes) best = bm;
  if (t.rank() >= 1 && nnz <= UINT32_MAX) {
    const uint64_t cols = static_cast<uint64_t>(t.shape().back()), rows = numel / cols;
    Layout csr;
    csr.storage = Storage::kCsr;
    csr.nnz = nnz;
    csr.index_bytes = cols <= 65536 ? 2 : 4;
    csr.bytes = (rows + 1) * 4 + nnz * (csr.index_bytes + es);
    if (csr.bytes < best.bytes && dense.bytes <= csr.bytes * kMaxExpansion + kExpansionSlack)
      best = csr;
  }
  // Sparse storage costs an expansion at load; only worth it when it saves 1/8.
  return best.bytes * 8 <= dense.bytes * 7 ? best : dense;
}

std::string Encode(const ir::Tensor& t, const Layout& l) {
  const uint64_t es = ElemBytes(t.dtype());
  const auto* p = static_cast<const uint8_t*>(t.raw());
  const uint64_t numel = t.numel();
  std::string out(l.bytes, '\0');
  switch (l.storage) {
    case Storage::kDense:
      if (l.bytes) std::memcpy(&out[0], p, l.bytes);
      break;
    case Storage::kBitmask: {
      uint64_t v = CeilDiv(numel, 8);
      for (uint64_t e = 0; e < numel; ++e) {
        if (IsZero(p + e * es, es)) continue;
        out[e / 8] = static_cast<char>(out[e / 8] | (1 << (e % 8)));
        std::memcpy(&out[v], p + e * es, es);
        v += es;
      }
      break;
    }
    case Storage::kCsr: {
      const uint64_t cols = static_cast<uint64_t>(t.shape().back()), rows = numel / cols;
      uint64_t idx_at = (rows + 1) * 4, val_at = idx_at + l.nnz * l.index_bytes;
      uint32_t count = 0;
      StoreU32(out, 0, 0);
      for (uint64_t r = 0; r < rows; ++r) {
        for (uint64_t c = 0; c < cols; ++c) {
          const uint8_t* e = p + (r * cols + c) * es;
          if (IsZero(e, es)) continue;
          for (int b = 0; b < l.index_bytes; ++b) out[idx_at++] = static_cast<char>((c >> (8 * b)) & 0xFF);
          std::memcpy(&out[val_at], e, es);
          val_at += es;
          ++count;
        }
        StoreU32(out, (r + 1) * 4, count);
      }
      break;
    }
    case Storage::kNM: {
      const NMGeometry g = Geometry(t.shape(), l.axis, l.n, l.m);
      const uint64_t bit0 = g.slots * es * 8;
      uint64_t slot = 0;
      for (uint64_t o = 0; o < g.outer; ++o)
        for (uint64_t gr = 0; gr < g.groups; ++gr)
          for (uint64_t i = 0; i < g.inner; ++i) {
            // Kept positions first, then unused positions (zero values) as padding, so
            // every group holds n distinct indices.
            std::vector<int> kept, unused;
            for (int k = 0; k < l.m; ++k) {
              const uint64_t e = (o * g.len + gr * l.m + static_cast<uint64_t>(k)) * g.inner + i;
              (IsZero(p + e * es, es) ? unused : kept).push_back(k);
            }
            kept.insert(kept.end(), unused.begin(), unused.end());
            for (int s = 0; s < l.n; ++s, ++slot) {
              const uint64_t e = (o * g.len + gr * l.m + static_cast<uint64_t>(kept[s])) * g.inner + i;
              std::memcpy(&out[slot * es], p + e * es, es);
              PutBits(out, bit0 + slot * g.bits, g.bits, static_cast<uint32_t>(kept[s]));
            }
          }
      break;
    }
  }
  return out;
}

void CheckLayout(const Layout& l, DType dtype, const std::vector<int64_t>& shape, uint64_t size,
                 const FailFn& fail) {
  const uint64_t es = ElemBytes(dtype);
  uint64_t numel = 1;
  for (int64_t d : shape) numel *= static_cast<uint64_t>(d);  // checked by the caller
  const std::string what = std::string(StorageName(l.storage)) + " storage";
  if (es == 0) fail(what + " is not allowed for dtype " + ir::DTypeName(dtype));
  if (numel == 0) fail(what + " of a tensor with no elements");
  uint64_t want = 0, t1 = 0, t2 = 0;
  auto overflow = [&] { fail(what + ": sizes overflow 64 bits"); };
  const uint64_t dense = numel * es;  // fits: the caller checked the dense byte size
  if (l.storage != Storage::kDense && dense > kExpansionSlack &&
      size < (dense - kExpansionSlack) / kMaxExpansion)
    fail(what + ": " + std::to_string(size) + " stored bytes would expand to " +
         std::to_string(numel * es) + " (more than " + std::to_string(kMaxExpansion) +
         " times; not written by edgepress)");
  switch (l.storage) {
    case Storage::kDense: return;
    case Storage::kBitmask:
      if (l.nnz > numel)
        fail("bitmask storage: value count " + std::to_string(l.nnz) + " exceeds the " +
             std::to_string(numel) + " elements");
      want = CeilDiv(numel, 8) + l.nnz * es;
      if (size != want)
        fail("bitmask storage: data size " + std::to_string(size) + " != " + std::to_string(want) +
             " (a " + std::to_string(CeilDiv(numel, 8)) + "-byte mask + " + std::to_string(l.nnz) +
             " values); truncated mask or value count that disagrees");
      return;
    case Storage::kCsr: {
      if (shape.empty()) fail("csr storage of a rank-0 tensor");
      if (l.index_bytes != 2 && l.index_bytes != 4)
        fail("csr storage: index width " + std::to_string(l.index_bytes) + " is not 2 or 4");
      if (l.nnz > numel)
        fail("csr storage: value count " + std::to_string(l.nnz) + " exceeds the " +
             std::to_string(numel) + " elements");
      const uint64_t rows = numel / static_cast<uint64_t>(shape.back());
      if (MulOverflows(rows + 1, 4, &t1) || MulOverflows(l.nnz, l.index_bytes + es, &t2) ||
          AddOverflows(t1, t2, &want))
        overflow();
      if (size != want)
        fail("csr storage: data size " + std::to_string(size) + " != " + std::to_string(want) +
             " (" + std::to_string(rows + 1) + " row pointers + " + std::to_string(l.nnz) +
             " indices and values)");
      return;
    }
    case Storage::kNM: {
      if (l.n < 1 || l.m < 2 || l.n >= l.m || l.m > 256)
        fail("nm storage: " + std::to_string(l.n) + ":" + std::to_string(l.m) +
             " is not a valid N:M pattern (1 <= n < m <= 256)");
      if (l.axis < 0 || l.axis >= static_cast<int32_t>(shape.size()))
        fail("nm storage: axis " + std::to_string(l.axis) + " is out of range for rank " +
             std::to_string(shape.size()));
      if (shape[l.axis] % l.m != 0)
        fail("nm storage: dimension " + std::to_string(shape[l.axis]) + " of axis " +
             std::to_string(l.axis) + " is not a multiple of m = " + std::to_string(l.m));
      const NMGeometry g = Geometry(shape, l.axis, l.n, l.m);
      want = g.slots * es + CeilDiv(g.slots * static_cast<uint64_t>(g.bits), 8);
      if (size != want)
        fail("nm storage: data size " + std::to_string(size) + " != " + std::to_string(want) +
             " (" + std::to_string(g.slots) + " values + " + std::to_string(g.bits) +
             "-bit indices)");
      return;
    }
  }
}

void Decode(const Layout& l, DType dtype, const std::vector<int64_t>& shape, const uint8_t* blob,
            uint8_t* dst, const FailFn& fail) {
  const uint64_t es = ElemBytes(dtype);
  uint64_t numel = 1;
  for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
  switch (l.storage) {
    case Storage::kDense:
      std::memcpy(dst, blob, numel * es);
      return;
    case Storage::kBitmask: {
      const uint64_t mask_bytes = CeilDiv(numel, 8);
      uint64_t set = 0;
      for (uint64_t b = 0; b < mask_bytes; ++b) set += static_cast<uint64_t>(__builtin_popcount(blob[b]));
      if (numel % 8 && (blob[mask_bytes - 1] >> (numel % 8)))
        fail("bitmask storage: padding bits after the last element are set");
      if (set != l.nnz)
        fail("bitmask storage: the mask has " + std::to_string(set) + " set bits but " +
             std::to_string(l.nnz) + " values are stored");
      const uint8_t* v = blob + mask_bytes;
      for (uint64_t e = 0; e < numel; ++e)
        if ((blob[e / 8] >> (e % 8)) & 1) {
          std::memcpy(dst + e * es, v, es);
          v += es;
        }
      return;
    }
    case Storage::kCsr: {
      const uint64_t cols = static_cast<uint64_t>(shape.back()), rows = numel / cols;
      const uint8_t* idx = blob + (rows + 1) * 4;
      const uint8_t* val = idx + l.nnz * l.index_bytes;
      if (LoadU32(blob) != 0)
        fail("csr storage: the first row pointer is " + std::to_string(LoadU32(blob)) + ", not 0");
      // Pointers first (monotonic, within the values, ending at nnz), then indices.
      for (uint64_t r = 0; r < rows; ++r) {
        const uint64_t lo = LoadU32(blob + r * 4), hi = LoadU32(blob + (r + 1) * 4);
        if (hi < lo)
          fail("csr storage: row pointers decrease at row " + std::to_string(r) + " (" +
               std::to_string(lo) + " then " + std::to_string(hi) + ")");
        if (hi > l.nnz)
          fail("csr storage: row pointer " + std::to_string(hi) + " of row " + std::to_string(r) +
               " exceeds the value count " + std::to_string(l.nnz));
      }
      if (LoadU32(blob + rows * 4) != l.nnz)
        fail("csr storage: the last row pointer is " + std::to_string(LoadU32(blob + rows * 4)) +
             " but " + std::to_string(l.nnz) + " values are stored");
      for (uint64_t r = 0; r < rows; ++r) {
        const uint64_t lo = LoadU32(blob + r * 4), hi = LoadU32(blob + (r + 1) * 4);
        uint64_t prev = 0;
        for (uint64_t j = lo; j < hi; ++j) {
          uint64_t c = 0;
          for (int b = 0; b < l.index_bytes; ++b) c |= static_cast<uint64_t>(idx[j * l.index_bytes + b]) << (8 * b);
          if (c >= cols)
            fail("csr storage: column index " + std::to_string(c) + " in row " + std::to_string(r) +
                 " is out of range (" + std::to_string(cols) + " columns)");
          if (j > lo && c <= prev)
            fail("csr storage: column indices of row " + std::to_string(r) +
                 " are not strictly increasing (" + std::to_string(prev) + " then " +
                 std::to_string(c) + ")");
          prev = c;
          std::memcpy(dst + (r * cols + c) * es, val + j * es, es);
        }
      }
      return;
    }
    case Storage::kNM: {
      const NMGeometry g = Geometry(shape, l.axis, l.n, l.m);
      const uint8_t* bits = blob + g.slots * es;
      const uint64_t total_bits = g.slots * static_cast<uint64_t>(g.bits);
      if (total_bits % 8 && (bits[total_bits / 8] >> (total_bits % 8)))
        fail("nm storage: padding bits after the last index are set");
      uint64_t slot = 0;
      for (uint64_t o = 0; o < g.outer; ++o)
        for (uint64_t gr = 0; gr < g.groups; ++gr)
          for (uint64_t i = 0; i < g.inner; ++i) {
            uint64_t seen[4] = {};  // a bit per position in the group (m <= 256)
            for (int s = 0; s < l.n; ++s, ++slot) {
              const uint32_t k = GetBits(bits, slot * g.bits, g.bits);
              if (k >= static_cast<uint32_t>(l.m))
                fail("nm storage: index " + std::to_string(k) + " of group " + std::to_string(gr) +
                     " is not below m = " + std::to_string(l.m));
              if ((seen[k / 64] >> (k % 64)) & 1)
                fail("nm storage: index " + std::to_string(k) + " appears twice in group " +
                     std::to_string(gr));
              seen[k / 64] |= uint64_t{1} << (k % 64);
              const uint64_t e = (o * g.len + gr * l.m + k) * g.inner + i;
              std::memcpy(dst + e * es, blob + slot * es, es);
            }
          }
      return;
    }
  }
}

}  // namespace edgepress::formats::epk_sparse
