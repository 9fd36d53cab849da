// com.microsoft MatMulNBits (4-bit weight-only matmul): the scalar reference against a
// plain dequantize + double-precision matmul written here, the AVX2 kernel against the
// scalar one at tile and block edges (K not a multiple of the block, N not a multiple of
// the 4-column group or the 64-column chunk, M on both sides of the GEMV/GEMM switch, all
// three zero-point forms, bias), the accuracy_level 4 int8 GEMV within the bound that
// quantizing A implies, the operator through every registered kernel, input
// validation errors that name node and input, and agreement with onnxruntime on models
// made by tests/fixtures/nbits_models.py (skipped without the project venv).
//
// Tolerance: |got - want| <= 1e-5 * sum_k |a_k| * 15 * scale_k + 1e-6, i.e. relative to
// the largest magnitude the fp32 sums can reach; the SIMD path's per-block
// s * dot(a, q) - s * z * sum(a) rounds differently from dequantizing each weight.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/kernels/lowbit/matmul_nbits.h"
#include "runtime/kernels/lowbit/nbits_int8.h"
#include "runtime/session.h"

namespace edgepress::runtime {
namespace {

enum class Zp { kNone, kPacked, kFloat };

struct Q4Data {
  int64_t m = 0, k = 0, n = 0, bs = 0, kb = 0;
  Zp zp = Zp::kNone;
  std::vector<float> a, scales, zp_f, bias;
  std::vector<uint8_t> b, zp_u8;
  Q4Params params;

  Q4Weights Weights() const {
    Q4Weights w;
    w.n = n;
    w.k = k;
    w.block_size = bs;
    w.k_blocks = kb;
    w.packed = b.data();
    w.params = &params;
    return w;
  }
  int Code(int64_t col, int64_t kk) const {
    const int64_t blk = kk / bs, j = kk % bs;
    const uint8_t byte = b[(col * kb + blk) * (bs / 2) + j / 2];
    return j % 2 ? byte >> 4 : byte & 15;
  }
  float ZeroPoint(int64_t col, int64_t blk) const {
    if (zp == Zp::kFloat) return zp_f[col * kb + blk];
    if (zp == Zp::kNone) return 8.f;
    const uint8_t byte = zp_u8[col * ((kb + 1) / 2) + blk / 2];
    return static_cast<float>(blk % 2 ? byte >> 4 : byte & 15);
  }
};

Q4Data MakeData(int64_t m, int64_t k, int64_t n, int64_t bs, Zp zp, bool bias, uint32_t seed) {
  Q4Data d;
  d.m = m;
  d.k = k;
  d.n = n;
  d.bs = bs;
  d.kb = (k + bs - 1) / bs;
  d.zp = zp;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f), s(0.01f, 0.1f), z(0.f, 15.f);
  std::uniform_int_distribution<int> byte(0, 255);
  d.a.resize(m * k);
  for (float& x : d.a) x = u(rng);
  d.b.resize(n * d.kb * (bs / 2));
  for (uint8_t& x : d.b) x = static_cast<uint8_t>(byte(rng));
  d.scales.resize(n * d.kb);
  for (float& x : d.scales) x = s(rng);
  if (zp == Zp::kPacked) {
    d.zp_u8.resize(n * ((d.kb + 1) / 2));
    for (uint8_t& x : d.zp_u8) x = static_cast<uint8_t>(byte(rng));
  } else if (zp == Zp::kFloat) {
    d.zp_f.resize(n * d.kb);
    for (float& x : d.zp_f) x = z(rng);
  }
  if (bias) {
    d.bias.resize(n);
    for (float& x : d.bias) x = u(rng);
  }
  d.params = MakeQ4Params(n, d.kb, d.scales.data(), zp == Zp::kPacked ? d.zp_u8.data() : nullptr,
                          zp == Zp::kFloat ? d.zp_f.data() : nullptr);
  return d;
}

// Plain dequantize + matmul in double, from the raw inputs; *tol gets the per-output bound.
std::vector<double> Reference(const Q4Data& d, std::vector<double>* tol) {
  std::vector<double> y(d.m * d.n);
  tol->assign(d.m * d.n, 0.0);
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t c = 0; c < d.n; ++c) {
      double acc = d.bias.empty() ? 0.0 : d.bias[c], mag = 0;
      for (int64_t kk = 0; kk < d.k; ++kk) {
        const int64_t blk = kk / d.bs;
        const double s = d.scales[c * d.kb + blk];
        const double w = (d.Code(c, kk) - static_cast<double>(d.ZeroPoint(c, blk))) * s;
        acc += d.a[i * d.k + kk] * w;
        mag += std::fabs(d.a[i * d.k + kk]) * 15.0 * s;
      }
      y[i * d.n + c] = acc;
      (*tol)[i * d.n + c] = 1e-5 * mag + 1e-6;
    }
  return y;
}

std::vector<float> RunQ4(Isa isa, const Q4Data& d, ThreadPool* pool) {
  std::vector<float> y(d.m * d.n, NAN);
  Q4MatMul(isa, d.a.data(), d.m, d.Weights(), d.bias.empty() ? nullptr : d.bias.data(), y.data(),
           pool);
  return y;
}

std::string Describe(const Q4Data& d) {
  static const char* const kZp[] = {"none", "packed", "float"};
  return "m=" + std::to_string(d.m) + " k=" + std::to_string(d.k) + " n=" + std::to_string(d.n) +
         " bs=" + std::to_string(d.bs) + " zp=" + kZp[static_cast<int>(d.zp)] +
         (d.bias.empty() ? "" : " bias");
}

// Sizes at the edges: K below, at and above a block and not a multiple of it; N around
// the 4-column group; M on both sides of kQ4GemmMinRows.
std::vector<Q4Data> EdgeCases() {
  std::vector<Q4Data> out;
  const int64_t block_sizes[] = {16, 32, 64, 128, 256};
  uint32_t idx = 0;
  for (int64_t m : {1, 2, 7, 8, 9, 20})
    for (int64_t k : {16, 33, 100, 256, 517})
      for (int64_t n : {1, 3, 5, 67}) {
        out.push_back(MakeData(m, k, n, block_sizes[idx % 5], static_cast<Zp>(idx % 3),
                               idx % 2 == 1, 100 + idx));
        ++idx;
      }
  // Several 64-column GEMV chunks and 32-column GEMM chunks with a ragged end.
  out.push_back(MakeData(1, 300, 64 * 3 + 5, 32, Zp::kPacked, true, 7));
  out.push_back(MakeData(3, 64, 64 * 2 + 1, 16, Zp::kNone, false, 8));
  out.push_back(MakeData(10, 200, 32 * 3 + 7, 64, Zp::kFloat, true, 9));
  return out;
}

void ExpectNear(const std::vector<float>& got, const std::vector<double>& want,
                const std::vector<double>& tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol[i]) << what << " @" << i;
}

TEST(Q4MatMul, ScalarMatchesDequantizedMatMul) {
  ThreadPool pool(2);
  for (const Q4Data& d : EdgeCases()) {
    std::vector<double> tol;
    const std::vector<double> want = Reference(d, &tol);
    ExpectNear(RunQ4(Isa::kScalar, d, nullptr), want, tol, "scalar " + Describe(d));
    ExpectNear(RunQ4(Isa::kScalar, d, &pool), want, tol, "scalar 2 threads " + Describe(d));
  }
}

TEST(Q4MatMul, Avx2MatchesScalarAtEdges) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  ThreadPool pool(3);
  for (const Q4Data& d : EdgeCases()) {
    std::vector<double> tol;
    const std::vector<double> want = Reference(d, &tol);
    const std::vector<float> ref = RunQ4(Isa::kScalar, d, nullptr);
    std::vector<double> ref_d(ref.begin(), ref.end()), tol2(tol);
    for (double& t : tol2) t *= 2;  // both sides carry rounding
    ExpectNear(RunQ4(Isa::kAvx2, d, nullptr), ref_d, tol2, "avx2 vs scalar " + Describe(d));
    ExpectNear(RunQ4(Isa::kAvx2, d, &pool), want, tol, "avx2 3 threads " + Describe(d));
  }
}

// Bound for accuracy_level 4: a_q differs from a by at most max|a_b| / 254 per element.
std::vector<double> Int8Bound(const Q4Data& d, const std::vector<double>& tol) {
  std::vector<double> bound(tol);
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t c = 0; c < d.n; ++c) {
      double e = 0;
      for (int64_t blk = 0; blk < d.kb; ++blk) {
        double amax = 0, wsum = 0;
        for (int64_t kk = blk * d.bs; kk < std::min(d.k, (blk + 1) * d.bs); ++kk) {
          amax = std::max(amax, static_cast<double>(std::fabs(d.a[i * d.k + kk])));
          wsum += std::fabs((d.Code(c, kk) - d.ZeroPoint(c, blk)) * d.scales[c * d.kb + blk]);
        }
        e += amax / 254.0 * wsum;
      }
      bound[i * d.n + c] += e * 1.0001;
    }
  return bound;
}

TEST(Q4MatMul, Int8PathWithinQuantizationBound) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  ThreadPool pool(2);
  int ran = 0;
  for (const Q4Data& d : EdgeCases()) {
    std::vector<float> y(d.m * d.n, NAN);
    const bool applies = d.m == 1 && d.bs % 32 == 0;
    ASSERT_EQ(Q4MatMulInt8(Isa::kAvx2, d.a.data(), d.m, d.Weights(),
                           d.bias.empty() ? nullptr : d.bias.data(), y.data(), &pool),
              applies)
        << Describe(d);
    // Must not fire for the scalar reference.
    EXPECT_FALSE(Q4MatMulInt8(Isa::kScalar, d.a.data(), d.m, d.Weights(), nullptr, y.data(),
                              nullptr));
    if (!applies) continue;
    ++ran;
    std::vector<double> tol;
    const std::vector<double> want = Reference(d, &tol);
    ExpectNear(y, want, Int8Bound(d, tol), "int8 " + Describe(d));
  }
  EXPECT_GT(ran, 10);
}

// ---- the operator ----

ir::Tensor U8Tensor(std::vector<int64_t> shape, const std::vector<uint8_t>& v) {
  ir::Tensor t(ir::DType::kUInt8, std::move(shape));
  std::copy(v.begin(), v.end(), t.mutable_data<uint8_t>());
  return t;
}
ir::Tensor F32Tensor(std::vector<int64_t> shape, const std::vector<float>& v) {
  ir::Tensor t(ir::DType::kFloat32, std::move(shape));
  std::copy(v.begin(), v.end(), t.mutable_data<float>());
  return t;
}

// A one-node MatMulNBits graph over Q4Data; B, scales, zero points and bias are
// initializers when `constant`, else graph inputs. Slots left empty are omitted inputs.
struct NBitsNode {
  ir::Graph g;
  ir::Node* node = nullptr;
  std::vector<ir::Tensor> tensors;  // per input slot; empty = omitted
  NBitsNode(const Q4Data& d, std::vector<int64_t> a_shape, bool constant) {
    tensors.resize(6);
    tensors[0] = F32Tensor(a_shape, d.a);
    tensors[1] = U8Tensor({d.n, d.kb, d.bs / 2}, d.b);
    tensors[2] = F32Tensor({d.n, d.kb}, d.scales);
    if (d.zp == Zp::kPacked) tensors[3] = U8Tensor({d.n, (d.kb + 1) / 2}, d.zp_u8);
    if (d.zp == Zp::kFloat) tensors[3] = F32Tensor({d.n, d.kb}, d.zp_f);
    if (!d.bias.empty()) tensors[5] = F32Tensor({d.n}, d.bias);
    Build(d.k, d.n, d.bs, constant);
  }
  void Build(int64_t k, int64_t n, int64_t bs, bool constant) {
    std::vector<ir::Value*> vals;
    size_t last = 0;
    for (size_t i = 0; i < tensors.size(); ++i)
      if (!tensors[i].empty()) last = i;
    for (size_t i = 0; i <= last; ++i) {
      const std::string name = "in" + std::to_string(i);
      if (tensors[i].empty())
        vals.push_back(nullptr);
      else if (constant && i > 0)
        vals.push_back(g.AddInitializer(name, tensors[i]));
      else
        vals.push_back(g.AddInput(name, ir::ValueType::Tensor(tensors[i].dtype())));
    }
    node = g.AddNode("MatMulNBits", vals, {"y"}, "fc1", "com.microsoft");
    node->set_attr(ir::Attribute::Int("K", k));
    node->set_attr(ir::Attribute::Int("N", n));
    node->set_attr(ir::Attribute::Int("bits", 4));
    node->set_attr(ir::Attribute::Int("block_size", bs));
    node->set_attr(ir::Attribute::Int("accuracy_level", 0));
  }
  std::vector<ir::Tensor> Run(const KernelDef* def, ThreadPool& pool) {
    std::vector<const ir::Tensor*> ptrs;
    for (size_t i = 0; i < node->num_inputs(); ++i)
      ptrs.push_back(tensors[i].empty() ? nullptr : &tensors[i]);
    return RunNode(*node, ptrs, pool, def);
  }
};

std::vector<float> ToVector(const ir::Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

TEST(MatMulNBitsOp, EveryKernelMatchesReference) {
  const auto defs = KernelsFor("MatMulNBits", "com.microsoft", ir::DType::kFloat32);
  ASSERT_FALSE(defs.empty());
  ThreadPool pool(2);
  struct Shape {
    Q4Data d;
    std::vector<int64_t> a_shape, y_shape;
  };
  std::vector<Shape> shapes;
  shapes.push_back({MakeData(1, 100, 37, 32, Zp::kPacked, false, 1), {1, 100}, {1, 37}});
  shapes.push_back({MakeData(1, 48, 9, 16, Zp::kNone, true, 2), {48}, {9}});  // rank-1 A
  shapes.push_back({MakeData(12, 64, 20, 64, Zp::kFloat, true, 3), {2, 6, 64}, {2, 6, 20}});
  for (const KernelDef* def : defs)
    for (Shape& s : shapes)
      for (bool constant : {true, false}) {
        NBitsNode nb(s.d, s.a_shape, constant);
        std::vector<ir::Tensor> out = nb.Run(def, pool);
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(out[0].shape(), s.y_shape) << def->name;
        std::vector<double> tol;
        const std::vector<double> want = Reference(s.d, &tol);
        ExpectNear(ToVector(out[0]), want, tol,
                   std::string(def->name) + (constant ? " constant " : " runtime ") +
                       Describe(s.d));
      }
}

// M = 1 takes the int8 GEMV on B's layout, M = 12 the packed int8 GEMM (nbits_int8.h),
// with B constant (packed at load) and a graph input (packed per call).
TEST(MatMulNBitsOp, AccuracyLevel4QuantizesAOnSimdKernels) {
  ThreadPool pool(2);
  for (const Q4Data& d : {MakeData(1, 100, 37, 32, Zp::kPacked, true, 6),
                          MakeData(12, 100, 37, 32, Zp::kFloat, true, 6),
                          MakeData(12, 80, 20, 16, Zp::kNone, false, 7)}) {
    std::vector<double> tol;
    const std::vector<double> want = Reference(d, &tol);
    const std::vector<double> bound = Int8Bound(d, tol);
    for (const KernelDef* def : KernelsFor("MatMulNBits", "com.microsoft", ir::DType::kFloat32))
      for (bool constant : {true, false}) {
        NBitsNode level0(d, {d.m, d.k}, constant), level4(d, {d.m, d.k}, constant);
        level4.node->set_attr(ir::Attribute::Int("accuracy_level", 4));
        const std::vector<float> y0 = ToVector(level0.Run(def, pool)[0]);
        const std::vector<float> y4 = ToVector(level4.Run(def, pool)[0]);
        const std::string what = std::string(def->name) + (constant ? " constant " : " runtime ") +
                                 Describe(d);
        ExpectNear(y4, want, bound, what + " accuracy_level 4");
        size_t differ = 0;
        for (size_t i = 0; i < y0.size(); ++i) differ += y0[i] != y4[i];
        if (def->isa == Isa::kScalar) {
          EXPECT_EQ(differ, 0u) << "the reference must ignore accuracy_level " << what;
          continue;
        }
        EXPECT_GT(differ, 0u) << "accuracy_level 4 did not take the int8 path " << what;
        if (d.m > 1) {  // the operator runs exactly the packed kernel of its ISA
          std::vector<float> direct(d.m * d.n);
          Q4Int8MatMul(def->isa, d.a.data(), d.m, PackQ4Int8(d.Weights()),
                       d.bias.empty() ? nullptr : d.bias.data(), direct.data(), &pool);
          EXPECT_EQ(y4, direct) << what;
        }
      }
  }
}

TEST(MatMulNBitsOp, OmittedProjectionGivesBias) {
  // The spec lets B have a zero dimension: Y is the broadcast bias.
  Q4Data d = MakeData(2, 32, 3, 16, Zp::kNone, true, 4);
  NBitsNode nb(d, {2, 32}, false);
  nb.tensors[1] = ir::Tensor(ir::DType::kUInt8, {3, 0, 8});
  nb.tensors[2] = ir::Tensor(ir::DType::kFloat32, {0});
  ThreadPool pool(1);
  for (const KernelDef* def : KernelsFor("MatMulNBits", "com.microsoft", ir::DType::kFloat32)) {
    std::vector<ir::Tensor> out = nb.Run(def, pool);
    ASSERT_EQ(out[0].shape(), (std::vector<int64_t>{2, 3}));
    for (int i = 0; i < 2; ++i)
      for (int c = 0; c < 3; ++c) EXPECT_EQ(out[0].data<float>()[i * 3 + c], d.bias[c]);
  }
}

// Runs the node and returns the error message ("" when it did not throw).
std::string ErrorOf(NBitsNode& nb, ErrorCode* code = nullptr) {
  ThreadPool pool(1);
  try {
    nb.Run(nullptr, pool);
  } catch (const Error& e) {
    if (code) *code = e.code();
    return e.what();
  }
  return "";
}

TEST(MatMulNBitsOp, RejectsBadInputsNamingNodeAndInput) {
  const Q4Data d = MakeData(1, 64, 4, 32, Zp::kPacked, true, 5);
  struct Bad {
    const char* what;
    std::function<void(NBitsNode&)> edit;
    const char* expect;
    ErrorCode code;
  };
  const std::vector<Bad> bads = {
      {"bits=8", [](NBitsNode& nb) { nb.node->set_attr(ir::Attribute::Int("bits", 8)); },
       "bits=8", ErrorCode::kUnsupported},
      {"block_size 24",
       [](NBitsNode& nb) { nb.node->set_attr(ir::Attribute::Int("block_size", 24)); },
       "block_size=24", ErrorCode::kInvalidInput},
      {"block_size 8",
       [](NBitsNode& nb) { nb.node->set_attr(ir::Attribute::Int("block_size", 8)); },
       "block_size=8", ErrorCode::kInvalidInput},
      {"missing N", [](NBitsNode& nb) { nb.node->remove_attr("N"); }, "K, N and block_size",
       ErrorCode::kInvalidInput},
      {"prepacked",
       [](NBitsNode& nb) { nb.node->set_attr(ir::Attribute::Int("weight_prepacked", 1)); },
       "weight_prepacked", ErrorCode::kUnsupported},
      {"A last dim", [](NBitsNode& nb) { nb.tensors[0] = ir::Tensor(ir::DType::kFloat32, {1, 63}); },
       "input 0 (A)", ErrorCode::kInvalidInput},
      {"B shape", [](NBitsNode& nb) { nb.tensors[1] = ir::Tensor(ir::DType::kUInt8, {4, 2, 8}); },
       "input 1 (B)", ErrorCode::kInvalidInput},
      {"B dtype", [](NBitsNode& nb) { nb.tensors[1] = ir::Tensor(ir::DType::kInt8, {4, 2, 16}); },
       "input 1 (B)", ErrorCode::kUnsupported},
      {"scales size",
       [](NBitsNode& nb) { nb.tensors[2] = ir::Tensor(ir::DType::kFloat32, {4, 3}); },
       "input 2 (scales)", ErrorCode::kInvalidInput},
      {"zero points size",
       [](NBitsNode& nb) { nb.tensors[3] = ir::Tensor(ir::DType::kUInt8, {4, 2}); },
       "input 3 (zero_points)", ErrorCode::kInvalidInput},
      {"zero points dtype",
       [](NBitsNode& nb) { nb.tensors[3] = ir::Tensor(ir::DType::kInt32, {4, 1}); },
       "input 3 (zero_points)", ErrorCode::kUnsupported},
      {"bias size", [](NBitsNode& nb) { nb.tensors[5] = ir::Tensor(ir::DType::kFloat32, {5}); },
       "input 5 (bias)", ErrorCode::kInvalidInput},
      {"g_idx reorders",
       [](NBitsNode& nb) {
         ir::Tensor g(ir::DType::kInt32, {64});
         for (int i = 0; i < 64; ++i) g.mutable_data<int32_t>()[i] = (i + 1) % 2;
         nb.tensors[4] = g;
       },
       "input 4 (g_idx)", ErrorCode::kUnsupported},
  };
  for (const Bad& bad : bads) {
    NBitsNode nb(d, {1, 64}, false);
    bad.edit(nb);
    ErrorCode code = ErrorCode::kInternal;
    const std::string msg = ErrorOf(nb, &code);
    EXPECT_NE(msg.find("node 'fc1' (com.microsoft::MatMulNBits)"), std::string::npos) << bad.what << ": " << msg;
    EXPECT_NE(msg.find(bad.expect), std::string::npos) << bad.what << ": " << msg;
    EXPECT_EQ(code, bad.code) << bad.what << ": " << msg;
  }
  // Must not fire: the trivial g_idx map is accepted.
  NBitsNode ok(d, {1, 64}, false);
  ir::Tensor g(ir::DType::kInt32, {64});
  for (int i = 0; i < 64; ++i) g.mutable_data<int32_t>()[i] = i / 32;
  ok.tensors[4] = g;
  EXPECT_EQ(ErrorOf(ok), "");
}

// ---- onnxruntime agreement ----

const std::string kPython = EDGEPRESS_SOURCE_DIR "/.venv/bin/python";
const std::string kScript = EDGEPRESS_SOURCE_DIR "/tests/fixtures/nbits_models.py";

int RunCommand(const std::string& cmd, std::string* output) {
  output->clear();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, got);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(MatMulNBitsOp, AgreesWithOnnxruntime) {
  if (access(kPython.c_str(), X_OK) != 0) GTEST_SKIP() << "no project venv at " << kPython;
  std::string out;
  if (RunCommand(kPython + " -c 'import numpy, onnx, onnxruntime'", &out) != 0)
    GTEST_SKIP() << "the venv lacks numpy/onnx/onnxruntime: " << out;
  // A private folder per process: ctest may run the cases of this file in parallel.
  char tmpl[] = "/tmp/edgepress_nbits_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_EQ(RunCommand(kPython + " " + kScript + " " + dir, &out), 0) << out;
  ASSERT_EQ(RunCommand(kPython + " " + kScript + " " + dir + " --list", &out), 0) << out;
  std::vector<std::string> cases;
  for (size_t pos = 0; pos < out.size();) {
    const size_t nl = out.find('\n', pos);
    const std::string line = out.substr(pos, nl - pos);
    if (!line.empty()) cases.push_back(line);
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  ASSERT_GE(cases.size(), 4u);
  for (const std::string& name : cases)
    for (bool scalar : {false, true}) {
      const std::string folder = dir + "/" + name;
      SessionOptions opts;
      opts.threads = 2;
      opts.force_scalar = scalar;
      std::shared_ptr<const ir::Model> model = formats::LoadOnnx(folder + "/model.onnx");
      std::unique_ptr<Session> session = Session::Create(model, opts);
      const std::vector<NodeKernelInfo> kernels = session->Kernels();
      ASSERT_EQ(kernels.size(), 1u);
      EXPECT_EQ(kernels[0].kernel,
                scalar || ForceScalar() || !GetCpuFeatures().Has(Isa::kAvx2)
                    ? "q4_matmul_nbits__ref"
                    : GetCpuFeatures().Has(Isa::kAvx512Vnni) ? "q4_matmul_nbits__avx512vnni"
                                                             : "q4_matmul_nbits__avx2");
      formats::NamedTensors in = formats::LoadNpz(folder + "/in.npz");
      formats::NamedTensors want = formats::LoadNpz(folder + "/ort.npz");
      NamedTensors got = session->Run(NamedTensors(in.begin(), in.end()));
      ASSERT_EQ(got.size(), 1u);
      ASSERT_EQ(got[0].second.shape(), want[0].second.shape()) << name;
      const std::vector<double> g = got[0].second.ToDouble(), w = want[0].second.ToDouble();
      double max_diff = 0, max_ref = 0;
      for (size_t i = 0; i < g.size(); ++i) {
        max_diff = std::max(max_diff, std::fabs(g[i] - w[i]));
        max_ref = std::max(max_ref, std::fabs(w[i]));
      }
      const double err = max_diff / std::max(max_ref, 1e-6);
      std::printf("%s%s: max |edgepress - onnxruntime| / max |onnxruntime| = %.3g\n",
                  name.c_str(), scalar ? " (scalar)" : "", err);
      EXPECT_LE(err, 1e-4) << name << (scalar ? " (scalar)" : "");
    }
  RunCommand("rm -rf '" + dir + "'", &out);
}

}  // namespace
}  // namespace edgepress::runtime
