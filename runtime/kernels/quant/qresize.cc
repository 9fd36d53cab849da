// Resize on uint8/int8 tensors, nearest mode (ONNX Resize accepts any element type; this
// is what fuse-qdq leaves of DQ -> Resize -> Q with equal parameters, and what onnxruntime
// runs on 8-bit data). Nearest resizing is a gather, so it commutes exactly with
// per-tensor (de)quantization: the integer result is the QDQ graph's, bit for bit.
//
// The gather map is the float kernel's own choice: for each input shape (and roi/scales/
// sizes values) the registered f32 Resize runs once on tensors holding every element's
// flat index (as idx >> 12 and idx & 4095, both exact in float), so every
// coordinate_transformation_mode and nearest_mode (and opset-10 / legacy rounding) picks
// the same source element as in float. The map is then stored per output row as a column
// table and one source offset per row, and a row whose source row repeats the previous
// one (upsampling) is a copy. On AVX2 (u8/s8_resize_nearest__avx2), a row of an upsampling
// map is gathered 16 outputs at a time as one load and one byte shuffle (qresize_avx2.cc)
// where the 16 sources lie within 16 bytes. Linear/cubic modes and tf_crop_and_resize (extrapolated
// positions have no source element) are refused with a clear error.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/quant/qresize_simd.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

// Per output row r (the last axis' runs): source offset row_src[r] plus col[w].
struct GatherMap {
  std::vector<uint8_t> key;  // input shape and the other inputs' bytes it was built for
  std::vector<int64_t> out_shape;
  int64_t width = 1;
  std::vector<int64_t> col;      // [width]
  std::vector<int64_t> row_src;  // [rows]
  // The vector gather: the first `chunks` 16-output chunks of a row are one 16-byte load
  // at col[16k] each, shuffled by shuf[16k .. 16k + 15]; 0 when a chunk's sources span
  // 16 bytes or more (downsampling). A row whose last load would end past the input
  // (row_src + load_end > input size) is gathered by the scalar loop.
  int64_t chunks = 0, load_end = 0;
  std::vector<uint8_t> shuf;  // [chunks * 16]
};

class QResizeKernel : public Kernel {
 public:
  QResizeKernel(const KernelInit& init, bool simd) : simd_(simd) {
    const ir::Node& n = init.node;
    const std::string mode = n.attr_string("mode", "nearest");
    if (mode != "nearest")
      ThrowUnsupported(n.describe() + ": Resize of an 8-bit tensor supports mode 'nearest' "
                                      "only, got '" + mode + "'");
    if (n.attr_string("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize")
      ThrowUnsupported(n.describe() + ": Resize of an 8-bit tensor does not support "
                                      "tf_crop_and_resize (extrapolated positions)");
  }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor* x = ctx.input(0);
    if (!x || (x->dtype() != ir::DType::kUInt8 && x->dtype() != ir::DType::kInt8))
      ThrowInvalid(node.describe() + ": expected a uint8 or int8 input X");
    std::vector<const ir::Tensor*> others;
    for (size_t i = 1; i < node.num_inputs(); ++i) others.push_back(ctx.input(i));
    std::vector<uint8_t> key = Key(*x, others);
    std::lock_guard<std::mutex> lock(mu_);
    if (key != map_.key) Build(ctx, *x, others, std::move(key));
    ir::Tensor& y = ctx.AllocateOutput(0, x->dtype(), map_.out_shape);
    const int64_t total = static_cast<int64_t>(y.numel());
    if (total == 0) return;
    const uint8_t* src = static_cast<const uint8_t*>(x->raw());
    uint8_t* dst = static_cast<uint8_t*>(y.mutable_raw());
    const int64_t w = map_.width, rows = total / w, n_in = static_cast<int64_t>(x->numel());
    const int64_t* col = map_.col.data();
    ctx.pool().ParallelFor(rows, std::max<int64_t>(1, 4096 / w), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        uint8_t* d = dst + r * w;
        const int64_t s = map_.row_src[static_cast<size_t>(r)];
        if (r > b && s == map_.row_src[static_cast<size_t>(r - 1)]) {
          std::memcpy(d, d - w, static_cast<size_t>(w));
          continue;
        }
        const uint8_t* sr = src + s;
        int64_t c = 0;
#if defined(__x86_64__)
        if (simd_ && map_.chunks > 0 && s + map_.load_end <= n_in) {
          qresize::GatherChunksAvx2(sr, col, map_.shuf.data(), map_.chunks, d);
          c = map_.chunks * 16;
        }
#endif
        for (; c < w; ++c) d[c] = sr[col[c]];
      }
    });
  }

 private:
  static std::vector<uint8_t> Key(const ir::Tensor& x, const std::vector<const ir::Tensor*>& others) {
    std::vector<uint8_t> k;
    auto put = [&](const void* p, size_t n) {
      const uint8_t* b = static_cast<const uint8_t*>(p);
      k.insert(k.end(), b, b + n);
    };
    const uint64_t rank = x.shape().size();
    put(&rank, sizeof(rank));
    put(x.shape().data(), x.shape().size() * sizeof(int64_t));
    for (const ir::Tensor* t : others) {
      const uint64_t n = t ? t->nbytes() : ~uint64_t{0};
      put(&n, sizeof(n));
      if (t && n) put(t->raw(), static_cast<size_t>(n));
    }
    return k;
  }

  void Build(KernelContext& ctx, const ir::Tensor& x, const std::vector<const ir::Tensor*>& others,
             std::vector<uint8_t> key) {
    const ir::Node& node = ctx.node();
    const int64_t n = static_cast<int64_t>(x.numel());
    ir::Tensor hi(ir::DType::kFloat32, x.shape()), lo(ir::DType::kFloat32, x.shape());
    float* ph = hi.mutable_data<float>();
    float* pl = lo.mutable_data<float>();
    for (int64_t i = 0; i < n; ++i) {
      ph[i] = static_cast<float>(i >> 12);
      pl[i] = static_cast<float>(i & 4095);
    }
    auto run = [&](const ir::Tensor& idx) {
      std::vector<const ir::Tensor*> ins = {&idx};
      ins.insert(ins.end(), others.begin(), others.end());
      return RunNode(node, ins, ctx.pool())[0];
    };
    const ir::Tensor yh = run(hi), yl = run(lo);
    GatherMap m;
    m.out_shape = yh.shape();
    const int64_t total = static_cast<int64_t>(yh.numel());
    std::vector<int64_t> flat(static_cast<size_t>(total));
    for (int64_t j = 0; j < total; ++j) {
      const float h = yh.data<float>()[j], l = yl.data<float>()[j];
      const int64_t idx = static_cast<int64_t>(h) * 4096 + static_cast<int64_t>(l);
      if (!(h >= 0 && l >= 0 && l < 4096) || idx >= n)
        throw Error(ErrorCode::kInternal, node.describe() + ": nearest Resize picked no source element");
      flat[static_cast<size_t>(j)] = idx;
    }
    m.width = m.out_shape.empty() ? 1 : std::max<int64_t>(1, m.out_shape.back());
    const int64_t rows = total / m.width;
    bool separable = true;
    if (total > 0) {  // an empty output needs no map
      m.col.resize(static_cast<size_t>(m.width));
      for (int64_t c = 0; c < m.width; ++c) m.col[static_cast<size_t>(c)] = flat[c] - flat[0];
      m.row_src.resize(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows && separable; ++r) {
        const int64_t base = flat[static_cast<size_t>(r * m.width)];
        m.row_src[static_cast<size_t>(r)] = base;
        for (int64_t c = 0; c < m.width; ++c)
          if (flat[static_cast<size_t>(r * m.width + c)] != base + m.col[static_cast<size_t>(c)]) {
            separable = false;
            break;
          }
      }
    }
    // Resize treats each axis independently, so this holds for every nearest mode.
    if (!separable)
      throw Error(ErrorCode::kInternal, node.describe() + ": nearest Resize map is not separable");
    if (simd_ && total > 0) BuildShuffles(m);
    m.key = std::move(key);
    map_ = std::move(m);
  }

  // The chunks of m.col as load offsets and byte shuffles, or none (GatherMap::chunks).
  static void BuildShuffles(GatherMap& m) {
    const int64_t chunks = m.width / 16;
    m.shuf.assign(static_cast<size_t>(chunks * 16), 0);
    for (int64_t k = 0; k < chunks; ++k) {
      const int64_t c0 = m.col[static_cast<size_t>(16 * k)];
      for (int64_t j = 0; j < 16; ++j) {
        const int64_t d = m.col[static_cast<size_t>(16 * k + j)] - c0;
        if (c0 < 0 || d < 0 || d >= 16) {
          m.shuf.clear();
          return;
        }
        m.shuf[static_cast<size_t>(16 * k + j)] = static_cast<uint8_t>(d);
      }
      m.load_end = std::max(m.load_end, c0 + 16);
    }
    m.chunks = chunks;
  }

  std::mutex mu_;
  GatherMap map_;
  bool simd_;
};

template <bool kSimd>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<QResizeKernel>(init, kSimd);
}

}  // namespace

void RegisterQResizeKernels(KernelRegistry& r) {
  r.Add({"Resize", "", ir::DType::kUInt8, Isa::kScalar, "u8_resize_nearest__ref", Create<false>});
  r.Add({"Resize", "", ir::DType::kInt8, Isa::kScalar, "s8_resize_nearest__ref", Create<false>});
#if defined(__x86_64__)
  r.Add({"Resize", "", ir::DType::kUInt8, Isa::kAvx2, "u8_resize_nearest__avx2", Create<true>});
  r.Add({"Resize", "", ir::DType::kInt8, Isa::kAvx2, "s8_resize_nearest__avx2", Create<true>});
#endif
}

}  // namespace edgepress::runtime
