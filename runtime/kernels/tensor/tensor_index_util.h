// Index arithmetic shared by the data-movement and indexing kernels (tensor_move.cc,
// tensor_expand.cc, tensor_index.cc, tensor_search.cc). Internal to runtime/kernels/tensor.
#pragma once

#include <cstdint>
#include <vector>

namespace edgepress::runtime::kernels::tensor_detail {

inline std::vector<int64_t> Strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

inline int64_t Prod(const std::vector<int64_t>& v, size_t b, size_t e) {
  int64_t p = 1;
  for (size_t i = b; i < e; ++i) p *= v[i];
  return p;
}

// Visits every index of `shape` in row-major order as (flat, coords).
template <class F>
void ForEachIndex(const std::vector<int64_t>& shape, F&& f) {
  int64_t n = Prod(shape, 0, shape.size());
  std::vector<int64_t> c(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    f(i, c);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++c[d] < shape[d]) break;
      c[d] = 0;
    }
  }
}

}  // namespace edgepress::runtime::kernels::tensor_detail
