// Recurrent kernels (runtime/kernels/rnn/rnn.cc): LSTM, GRU and RNN from every registered
// kernel (reference and AVX2 GEMM) against a naive double-precision step loop written here
// from the ONNX equations: forward/reverse/bidirectional, biases, peepholes, input_forget,
// initial states, sequence_lens shorter than the sequence, clip, linear_before_reset,
// non-default activations with alpha/beta, layout 1; and malformed nodes rejected with
// errors naming the node.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "ir/error.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

using ir::Attribute;
using ir::DType;
using ir::Tensor;

Tensor Rand(std::vector<int64_t> shape, uint32_t seed, float r = 0.6f) {
  Tensor t(DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-r, r);
  float* p = t.mutable_data<float>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = u(rng);
  return t;
}

enum class Kind { kLstm, kGru, kRnn };

struct Config {
  Kind kind = Kind::kLstm;
  int64_t S = 4, B = 3, I = 5, H = 6;
  std::string direction = "forward";
  bool bias = true, peephole = false, init = false, lens = false, input_forget = false;
  float clip = 0;
  bool lbr = false;
  int64_t layout = 0;
  std::vector<std::string> acts;  // per direction; empty = defaults
  std::vector<float> alphas, betas;
};

using Fn = std::function<double(double)>;

Fn MakeAct(const std::string& name, float alpha, float beta) {
  if (name == "Sigmoid") return [](double x) { return 1 / (1 + std::exp(-x)); };
  if (name == "Tanh") return [](double x) { return std::tanh(x); };
  if (name == "Relu") return [](double x) { return std::max(x, 0.0); };
  if (name == "LeakyRelu") return [alpha](double x) { return x >= 0 ? x : alpha * x; };
  if (name == "HardSigmoid")
    return [alpha, beta](double x) { return std::max(0.0, std::min(1.0, alpha * x + beta)); };
  if (name == "ScaledTanh") return [alpha, beta](double x) { return alpha * std::tanh(beta * x); };
  ADD_FAILURE() << "test has no activation " << name;
  return [](double x) { return x; };
}

struct Inputs {
  Tensor x, w, r, b, lens, h0, c0, p;
};

// Naive ONNX recurrences, layout 0 tensors; returns {Y [S,D,B,H], Y_h [D,B,H], Y_c}.
std::vector<std::vector<double>> Naive(const Config& c, const Inputs& in,
                                       const std::vector<Fn>& acts) {
  const int64_t D = c.direction == "bidirectional" ? 2 : 1;
  const int64_t G = c.kind == Kind::kLstm ? 4 : c.kind == Kind::kGru ? 3 : 1;
  const int64_t S = c.S, B = c.B, I = c.I, H = c.H;
  const int per = c.kind == Kind::kLstm ? 3 : c.kind == Kind::kGru ? 2 : 1;
  std::vector<double> Y(S * D * B * H, 0.0), Yh(D * B * H), Yc(D * B * H);
  auto clip = [&](double v) { return c.clip > 0 ? std::max<double>(-c.clip, std::min<double>(c.clip, v)) : v; };
  for (int64_t d = 0; d < D; ++d) {
    const bool rev = c.direction == "reverse" || d == 1;
    const float* W = in.w.data<float>() + d * G * H * I;
    const float* R = in.r.data<float>() + d * G * H * H;
    const float* Wb = c.bias ? in.b.data<float>() + d * 2 * G * H : nullptr;
    const float* Rb = Wb ? Wb + G * H : nullptr;
    const float* P = c.peephole ? in.p.data<float>() + d * 3 * H : nullptr;
    const Fn* f = &acts[d * per];
    for (int64_t b = 0; b < B; ++b) {
      const int64_t len = c.lens ? in.lens.data<int32_t>()[b] : S;
      std::vector<double> h(H, 0), cs(H, 0);
      if (c.init)
        for (int64_t j = 0; j < H; ++j) {
          h[j] = in.h0.data<float>()[(d * B + b) * H + j];
          if (c.kind == Kind::kLstm) cs[j] = in.c0.data<float>()[(d * B + b) * H + j];
        }
      for (int64_t s = 0; s < len; ++s) {
        const int64_t t = rev ? len - 1 - s : s;
        const float* xt = in.x.data<float>() + (t * B + b) * I;
        // xw[g] = x W_g^T + Wb_g; hr[g] = h R_g^T + Rb_g.
        std::vector<double> xw(G * H, 0), hr(G * H, 0);
        for (int64_t g = 0; g < G * H; ++g) {
          for (int64_t k = 0; k < I; ++k) xw[g] += xt[k] * W[g * I + k];
          for (int64_t k = 0; k < H; ++k) hr[g] += h[k] * R[g * H + k];
          if (Wb) xw[g] += Wb[g], hr[g] += Rb[g];
        }
        std::vector<double> hn(H);
        if (c.kind == Kind::kLstm) {
          for (int64_t j = 0; j < H; ++j) {
            const double i = f[0](clip(xw[j] + hr[j] + (P ? P[j] * cs[j] : 0)));
            const double fg = c.input_forget
                                  ? 1 - i
                                  : f[0](clip(xw[2 * H + j] + hr[2 * H + j] +
                                              (P ? P[2 * H + j] * cs[j] : 0)));
            const double cc = f[1](clip(xw[3 * H + j] + hr[3 * H + j]));
            cs[j] = fg * cs[j] + i * cc;
            const double o = f[0](clip(xw[H + j] + hr[H + j] + (P ? P[H + j] * cs[j] : 0)));
            hn[j] = o * f[2](cs[j]);
          }
        } else if (c.kind == Kind::kGru) {
          std::vector<double> z(H), r(H);
          for (int64_t j = 0; j < H; ++j) {
            z[j] = f[0](clip(xw[j] + hr[j]));
            r[j] = f[0](clip(xw[H + j] + hr[H + j]));
          }
          for (int64_t j = 0; j < H; ++j) {
            double hh;
            if (c.lbr) {
              hh = f[1](clip(xw[2 * H + j] + r[j] * hr[2 * H + j]));
            } else {
              double acc = Rb ? Rb[2 * H + j] : 0;
              for (int64_t k = 0; k < H; ++k) acc += r[k] * h[k] * R[(2 * H + j) * H + k];
              hh = f[1](clip(xw[2 * H + j] + acc));
            }
            hn[j] = (1 - z[j]) * hh + z[j] * h[j];
          }
        } else {
          for (int64_t j = 0; j < H; ++j) hn[j] = f[0](clip(xw[j] + hr[j]));
        }
        h = hn;
        for (int64_t j = 0; j < H; ++j) Y[((t * D + d) * B + b) * H + j] = h[j];
      }
      for (int64_t j = 0; j < H; ++j) {
        Yh[(d * B + b) * H + j] = h[j];
        Yc[(d * B + b) * H + j] = cs[j];
      }
    }
  }
  return {Y, Yh, Yc};
}

// Permutes a layout-0 tensor [A, B, ...rest] into layout 1 [B, A, ...rest].
template <typename T>
std::vector<T> SwapFirstTwo(const std::vector<T>& v, int64_t a, int64_t b, int64_t rest) {
  std::vector<T> out(v.size());
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t k = 0; k < rest; ++k) out[(j * a + i) * rest + k] = v[(i * b + j) * rest + k];
  return out;
}

void RunCase(const Config& c, uint32_t seed) {
  const int64_t D = c.direction == "bidirectional" ? 2 : 1;
  const int64_t G = c.kind == Kind::kLstm ? 4 : c.kind == Kind::kGru ? 3 : 1;
  const std::string op = c.kind == Kind::kLstm ? "LSTM" : c.kind == Kind::kGru ? "GRU" : "RNN";
  Inputs in;
  in.x = Rand({c.S, c.B, c.I}, seed, 1.f);
  in.w = Rand({D, G * c.H, c.I}, seed + 1);
  in.r = Rand({D, G * c.H, c.H}, seed + 2);
  in.b = Rand({D, 2 * G * c.H}, seed + 3);
  in.h0 = Rand({D, c.B, c.H}, seed + 4);
  in.c0 = Rand({D, c.B, c.H}, seed + 5);
  in.p = Rand({D, 3 * c.H}, seed + 6);
  std::vector<int32_t> lens(c.B);
  for (int64_t b = 0; b < c.B; ++b) lens[b] = static_cast<int32_t>(c.S - (b % (c.S + 1)));
  in.lens = Tensor::FromVector(DType::kInt32, {c.B}, lens);

  const int per = c.kind == Kind::kLstm ? 3 : c.kind == Kind::kGru ? 2 : 1;
  std::vector<std::string> names = c.acts;
  if (names.empty()) {
    const std::vector<std::string> def =
        c.kind == Kind::kLstm ? std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"}
        : c.kind == Kind::kGru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                               : std::vector<std::string>{"Tanh"};
    for (int64_t d = 0; d < D; ++d) names.insert(names.end(), def.begin(), def.end());
  }
  ASSERT_EQ(names.size(), static_cast<size_t>(per * D));
  std::vector<Fn> acts;
  size_t ai = 0, bi = 0;
  for (const std::string& n : names) {
    const bool two = n == "HardSigmoid" || n == "ScaledTanh";
    const bool one = two || n == "LeakyRelu";
    const float a = one && ai < c.alphas.size() ? c.alphas[ai++] : 0.f;
    const float b = two && bi < c.betas.size() ? c.betas[bi++] : 0.f;
    acts.push_back(MakeAct(n, a, b));
  }
  const auto want = Naive(c, in, acts);

  ir::Graph g;
  std::vector<ir::Value*> vals;
  const std::vector<std::string> names_in = {"X", "W", "R", "B", "seq", "h0", "c0", "P"};
  const bool present[8] = {true,   true,   true, c.bias, c.lens, c.init, c.init && c.kind == Kind::kLstm,
                           c.peephole};
  const int n_in = c.kind == Kind::kLstm ? 8 : 6;
  for (int i = 0; i < n_in; ++i)
    vals.push_back(present[i] ? g.AddInput(names_in[i], ir::ValueType::Tensor(DType::kFloat32))
                              : nullptr);
  std::vector<std::string> outs = {"Y", "Y_h"};
  if (c.kind == Kind::kLstm) outs.push_back("Y_c");
  ir::Node* node = g.AddNode(op, vals, outs, "test_" + op);
  node->set_attr(Attribute::Int("hidden_size", c.H));
  node->set_attr(Attribute::String("direction", c.direction));
  if (c.clip > 0) node->set_attr(Attribute::Float("clip", c.clip));
  if (c.input_forget) node->set_attr(Attribute::Int("input_forget", 1));
  if (c.lbr) node->set_attr(Attribute::Int("linear_before_reset", 1));
  if (!c.acts.empty()) {
    Attribute a;
    a.name = "activations";
    a.kind = Attribute::Kind::kStrings;
    a.strings = c.acts;
    node->set_attr(a);
  }
  if (!c.alphas.empty()) node->set_attr(Attribute::Floats("activation_alpha", c.alphas));
  if (!c.betas.empty()) node->set_attr(Attribute::Floats("activation_beta", c.betas));

  std::vector<double> wy = want[0], wh = want[1], wc = want[2];
  Tensor x = in.x, h0 = in.h0, c0 = in.c0;
  std::vector<int64_t> yshape = {c.S, D, c.B, c.H}, hshape = {D, c.B, c.H};
  if (c.layout == 1) {
    node->set_attr(Attribute::Int("layout", 1));
    auto xv = std::vector<float>(in.x.data<float>(), in.x.data<float>() + in.x.numel());
    x = Tensor::FromVector(DType::kFloat32, {c.B, c.S, c.I}, SwapFirstTwo(xv, c.S, c.B, c.I));
    auto hv = std::vector<float>(in.h0.data<float>(), in.h0.data<float>() + in.h0.numel());
    auto cv = std::vector<float>(in.c0.data<float>(), in.c0.data<float>() + in.c0.numel());
    h0 = Tensor::FromVector(DType::kFloat32, {c.B, D, c.H}, SwapFirstTwo(hv, D, c.B, c.H));
    c0 = Tensor::FromVector(DType::kFloat32, {c.B, D, c.H}, SwapFirstTwo(cv, D, c.B, c.H));
    // Y: [S, D, B, H] -> [B, S, D, H].
    std::vector<double> y1(wy.size());
    for (int64_t s = 0; s < c.S; ++s)
      for (int64_t d = 0; d < D; ++d)
        for (int64_t b = 0; b < c.B; ++b)
          for (int64_t j = 0; j < c.H; ++j)
            y1[((b * c.S + s) * D + d) * c.H + j] = wy[((s * D + d) * c.B + b) * c.H + j];
    wy = y1;
    wh = SwapFirstTwo(wh, D, c.B, c.H);
    wc = SwapFirstTwo(wc, D, c.B, c.H);
    yshape = {c.B, c.S, D, c.H};
    hshape = {c.B, D, c.H};
  }
  const std::vector<const Tensor*> inputs = {&x,    &in.w, &in.r, &in.b,
                                             &in.lens, &h0, &c0,  &in.p};
  std::vector<const Tensor*> used(inputs.begin(), inputs.begin() + n_in);
  for (int i = 0; i < n_in; ++i)
    if (!present[i]) used[i] = nullptr;

  ThreadPool pool(2);
  auto defs = KernelsFor(op, "", DType::kFloat32);
  ASSERT_FALSE(defs.empty());
  if (GetCpuFeatures().Has(Isa::kAvx2)) {
    EXPECT_GE(defs.size(), 2u) << op;
  }
  for (const KernelDef* def : defs) {
    auto out = RunNode(*node, used, pool, def);
    const std::vector<std::pair<std::vector<double>*, std::vector<int64_t>>> checks = {
        {&wy, yshape}, {&wh, hshape}, {&wc, hshape}};
    for (size_t o = 0; o < out.size(); ++o) {
      const Tensor& t = out[o];
      ASSERT_EQ(t.shape(), checks[o].second) << def->name << " output " << o;
      for (uint64_t i = 0; i < t.numel(); ++i)
        ASSERT_NEAR(t.data<float>()[i], (*checks[o].first)[i], 2e-5)
            << def->name << " output " << o << " at " << i << " (" << c.direction << ")";
    }
  }
}

TEST(RnnTest, LstmMatchesNaive) {
  uint32_t seed = 100;
  for (const std::string dir : {"forward", "reverse", "bidirectional"})
    for (int variant = 0; variant < 4; ++variant) {
      Config c;
      c.direction = dir;
      c.H = variant == 3 ? 17 : 8;  // around the vector width
      c.bias = variant != 0;
      c.peephole = variant >= 2;
      c.init = variant >= 1;
      c.lens = variant >= 2;
      c.clip = variant == 3 ? 0.7f : 0.f;
      c.layout = variant == 1 ? 1 : 0;
      SCOPED_TRACE(dir + " variant " + std::to_string(variant));
      RunCase(c, seed += 10);
    }
}

TEST(RnnTest, LstmInputForgetAndActivations) {
  Config c;
  c.input_forget = true;
  c.direction = "bidirectional";
  c.acts = {"HardSigmoid", "LeakyRelu", "Tanh", "Sigmoid", "ScaledTanh", "Relu"};
  c.alphas = {0.3f, 0.1f, 0.9f};
  c.betas = {0.4f, 1.1f};
  RunCase(c, 7);
}

TEST(RnnTest, GruMatchesNaive) {
  uint32_t seed = 200;
  for (const std::string dir : {"forward", "reverse", "bidirectional"})
    for (int variant = 0; variant < 4; ++variant) {
      Config c;
      c.kind = Kind::kGru;
      c.direction = dir;
      c.H = variant == 2 ? 9 : 7;
      c.lbr = variant % 2 == 1;
      c.bias = variant != 0;
      c.init = variant >= 2;
      c.lens = variant >= 1;
      c.clip = variant == 3 ? 0.5f : 0.f;
      c.layout = variant == 2 ? 1 : 0;
      SCOPED_TRACE(dir + " variant " + std::to_string(variant));
      RunCase(c, seed += 10);
    }
}

TEST(RnnTest, SimpleRnnMatchesNaive) {
  uint32_t seed = 300;
  for (const std::string dir : {"forward", "reverse", "bidirectional"}) {
    Config c;
    c.kind = Kind::kRnn;
    c.direction = dir;
    c.init = true;
    c.lens = true;
    c.S = 6;
    c.B = 4;
    RunCase(c, seed += 10);
    c.acts = dir == "bidirectional" ? std::vector<std::string>{"Relu", "LeakyRelu"}
                                    : std::vector<std::string>{"LeakyRelu"};
    c.alphas = {0.2f};
    RunCase(c, seed += 10);
  }
}

TEST(RnnTest, MalformedNodesAreRejected) {
  ThreadPool pool(1);
  const Tensor x = Rand({4, 2, 3}, 1);
  const Tensor w = Rand({1, 20, 3}, 2), r = Rand({1, 20, 5}, 3);
  const Tensor wbad = Rand({1, 20, 4}, 2), rbad = Rand({1, 16, 5}, 3), b = Rand({1, 40}, 4);
  const Tensor bbad = Rand({1, 30}, 4);
  const Tensor x2 = Rand({4, 6}, 5);
  const Tensor lens_long = Tensor::FromVector<int32_t>(DType::kInt32, {2}, {5, 1});
  const Tensor lens_neg = Tensor::FromVector<int32_t>(DType::kInt32, {2}, {-1, 1});
  const Tensor lens_f = Rand({2}, 6);
  struct Case {
    std::vector<const Tensor*> in;
    std::vector<Attribute> attrs;
    std::string why;
  };
  auto acts = [](std::vector<std::string> v) {
    Attribute a;
    a.name = "activations";
    a.kind = Attribute::Kind::kStrings;
    a.strings = std::move(v);
    return a;
  };
  const std::vector<Case> cases = {
      {{&x, &wbad, &r}, {}, "W with the wrong input size"},
      {{&x, &w, &rbad}, {}, "R with the wrong gate count"},
      {{&x, &w, &r, &bbad}, {}, "B of the wrong length"},
      {{&x2, &w, &r}, {}, "rank-2 X"},
      {{&x, &w}, {}, "R missing"},
      {{&x, &w, &r, &b, &lens_long}, {}, "sequence_lens past the sequence"},
      {{&x, &w, &r, &b, &lens_neg}, {}, "negative sequence_lens"},
      {{&x, &w, &r, &b, &lens_f}, {}, "f32 sequence_lens"},
      {{&x, &w, &r}, {Attribute::String("direction", "sideways")}, "unknown direction"},
      {{&x, &w, &r}, {Attribute::String("direction", "bidirectional")}, "W for one direction"},
      {{&x, &w, &r}, {acts({"Sigmoid", "Tanh"})}, "two activations for LSTM"},
      {{&x, &w, &r}, {acts({"Sigmoid", "Tanh", "Swish"})}, "unknown activation"},
      {{&x, &w, &r}, {Attribute::Int("layout", 2)}, "layout 2"},
      {{&x, &w, &r}, {Attribute::Float("clip", -1.f)}, "negative clip"},
  };
  for (const Case& c : cases) {
    ir::Graph g;
    std::vector<ir::Value*> vals;
    for (size_t i = 0; i < c.in.size(); ++i)
      vals.push_back(g.AddInput("in" + std::to_string(i), ir::ValueType::Tensor(DType::kFloat32)));
    ir::Node* node = g.AddNode("LSTM", vals, {"Y", "Y_h"}, "test_LSTM");
    node->set_attr(Attribute::Int("hidden_size", 5));
    for (const Attribute& a : c.attrs) node->set_attr(a);
    bool threw = false;
    try {
      for (const KernelDef* def : KernelsFor("LSTM", "", DType::kFloat32))
        RunNode(*node, c.in, pool, def);
    } catch (const Error& e) {
      threw = true;
      EXPECT_NE(std::string(e.what()).find("test_LSTM"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(threw) << c.why;
  }
}

}  // namespace
}  // namespace edgepress::runtime
