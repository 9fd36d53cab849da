// Recurrent kernels with ONNX semantics: LSTM (peepholes, input_forget), GRU
// (linear_before_reset) and the simple RNN; forward, reverse and bidirectional;
// sequence_lens; initial_h/initial_c; the `activations` attribute with alpha/beta; clip;
// layout 0 ([seq, batch, ...]) and 1 ([batch, seq, ...]); optional Y, Y_h, Y_c.
//
// Per direction, the input projection of every time step is one GEMM ([seq*batch, I] x
// W^T, with the biases folded in); each step then adds H_prev x R^T (R packed once per
// run) and applies the gate math. Batch entries with a shorter sequence_lens stop early
// (Y is zero past their length, Y_h holds their last valid state); in the reverse
// direction each entry starts at its own last valid step. The reference and AVX2 kernels
// differ in the GEMM micro-kernel they use (runtime/kernels/gemm/gemm.h).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

[[noreturn]] void Fail(const ir::Node& n, const std::string& msg) {
  ThrowInvalid(n.describe() + ": " + msg);
}

std::string Join(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

enum class RnnKind { kLstm, kGru, kRnn };

struct Activation {
  enum class Kind {
    kSigmoid,
    kTanh,
    kRelu,
    kAffine,
    kLeakyRelu,
    kThresholdedRelu,
    kScaledTanh,
    kHardSigmoid,
    kElu,
    kSoftsign,
    kSoftplus
  };
  Kind kind = Kind::kSigmoid;
  float alpha = 0, beta = 0;
  float operator()(float x) const {
    switch (kind) {
      case Kind::kSigmoid:
        return 1.f / (1.f + std::exp(-x));
      case Kind::kTanh:
        return std::tanh(x);
      case Kind::kRelu:
        return x > 0 ? x : 0.f;
      case Kind::kAffine:
        return alpha * x + beta;
      case Kind::kLeakyRelu:
        return x >= 0 ? x : alpha * x;
      case Kind::kThresholdedRelu:
        return x > alpha ? x : 0.f;
      case Kind::kScaledTanh:
        return alpha * std::tanh(beta * x);
      case Kind::kHardSigmoid:
        return std::max(0.f, std::min(1.f, alpha * x + beta));
      case Kind::kElu:
        return x >= 0 ? x : alpha * (std::exp(x) - 1.f);
      case Kind::kSoftsign:
        return x / (1.f + std::fabs(x));
      case Kind::kSoftplus:
        return std::log1p(std::exp(-std::fabs(x))) + std::max(x, 0.f);
    }
    return x;
  }
};

// Parses the activation list; alphas/betas are consumed in order by the functions that
// take them (as onnxruntime does), with the ONNX defaults when the lists run out.
std::vector<Activation> ReadActivations(const ir::Node& node, RnnKind kind, int dirs) {
  const size_t per = kind == RnnKind::kLstm ? 3 : kind == RnnKind::kGru ? 2 : 1;
  std::vector<std::string> names;
  if (const ir::Attribute* a = node.attr("activations")) {
    if (a->kind != ir::Attribute::Kind::kStrings) Fail(node, "'activations' must be strings");
    names = a->strings;
  }
  if (names.empty()) {
    const std::vector<std::string> def =
        kind == RnnKind::kLstm  ? std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"}
        : kind == RnnKind::kGru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                : std::vector<std::string>{"Tanh"};
    for (int d = 0; d < dirs; ++d) names.insert(names.end(), def.begin(), def.end());
  } else if (names.size() == per && dirs == 2) {
    const std::vector<std::string> one = names;
    names.insert(names.end(), one.begin(), one.end());
  }
  if (names.size() != per * dirs)
    Fail(node, "'activations' has " + std::to_string(names.size()) + " entries, expected " +
                   std::to_string(per * dirs));
  const std::vector<float> alphas = node.attr_floats("activation_alpha");
  const std::vector<float> betas = node.attr_floats("activation_beta");
  size_t ai = 0, bi = 0;
  std::vector<Activation> out;
  for (const std::string& n0 : names) {
    std::string n;
    for (char ch : n0) n += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    Activation a;
    using K = Activation::Kind;
    int uses = 0;  // 1: alpha, 2: alpha and beta
    float da = 0, db = 0;
    if (n == "sigmoid")
      a.kind = K::kSigmoid;
    else if (n == "tanh")
      a.kind = K::kTanh;
    else if (n == "relu")
      a.kind = K::kRelu;
    else if (n == "affine") {
      a.kind = K::kAffine;
      uses = 2;
      da = 1;
      db = 0;
    } else if (n == "leakyrelu") {
      a.kind = K::kLeakyRelu;
      uses = 1;
      da = 0.01f;
    } else if (n == "thresholdedrelu") {
      a.kind = K::kThresholdedRelu;
      uses = 1;
      da = 1;
    } else if (n == "scaledtanh") {
      a.kind = K::kScaledTanh;
      uses = 2;
      da = 1;
      db = 1;
    } else if (n == "hardsigmoid") {
      a.kind = K::kHardSigmoid;
      uses = 2;
      da = 0.2f;
      db = 0.5f;
    } else if (n == "elu") {
      a.kind = K::kElu;
      uses = 1;
      da = 1;
    } else if (n == "softsign")
      a.kind = K::kSoftsign;
    else if (n == "softplus")
      a.kind = K::kSoftplus;
    else
      Fail(node, "unsupported activation '" + n0 + "'");
    a.alpha = da;
    a.beta = db;
    if (uses >= 1 && ai < alphas.size()) a.alpha = alphas[ai++];
    if (uses >= 2 && bi < betas.size()) a.beta = betas[bi++];
    out.push_back(a);
  }
  return out;
}

struct RnnAttrs {
  RnnKind kind;
  int64_t hidden = 0;
  int dirs = 1;
  bool reverse_only = false;
  std::vector<Activation> acts;  // per direction: `per` entries
  bool has_clip = false;
  float clip = 0;
  int64_t layout = 0;
  bool input_forget = false;
  bool linear_before_reset = false;
};

RnnAttrs ReadAttrs(const ir::Node& node, RnnKind kind) {
  RnnAttrs a;
  a.kind = kind;
  a.hidden = node.attr_int("hidden_size", 0);
  if (a.hidden < 0 || a.hidden > (int64_t{1} << 24)) Fail(node, "bad hidden_size");
  const std::string dir = node.attr_string("direction", "forward");
  if (dir == "forward")
    a.dirs = 1;
  else if (dir == "reverse")
    a.dirs = 1, a.reverse_only = true;
  else if (dir == "bidirectional")
    a.dirs = 2;
  else
    Fail(node, "unknown direction '" + dir + "'");
  a.acts = ReadActivations(node, kind, a.dirs);
  if (node.has_attr("clip")) {
    a.has_clip = true;
    a.clip = node.attr_float("clip", 0);
    if (!(a.clip > 0)) Fail(node, "clip must be positive");
  }
  a.layout = node.attr_int("layout", 0);
  if (a.layout != 0 && a.layout != 1) Fail(node, "layout must be 0 or 1");
  const int64_t inf = node.attr_int("input_forget", 0);
  if (inf != 0 && inf != 1) Fail(node, "input_forget must be 0 or 1");
  a.input_forget = inf == 1;
  const int64_t lbr = node.attr_int("linear_before_reset", 0);
  if (lbr != 0 && lbr != 1) Fail(node, "linear_before_reset must be 0 or 1");
  a.linear_before_reset = lbr == 1;
  return a;
}

// The shapes and tensors of one call, checked against the attributes.
struct RnnCall {
  int64_t S = 0, B = 0, I = 0, D = 0, H = 0, G = 0;  // seq, batch, input, dirs, hidden, gates
  const ir::Tensor* x = nullptr;
  const ir::Tensor* w = nullptr;
  const ir::Tensor* r = nullptr;
  const ir::Tensor* bias = nullptr;  // optional, as are the three below
  const ir::Tensor* h0 = nullptr;
  const ir::Tensor* c0 = nullptr;
  const ir::Tensor* peep = nullptr;
  std::vector<int64_t> lens;   // per batch entry, S when sequence_lens is absent
  std::vector<int64_t> state;  // Y_h / Y_c / initial state shape
  float* y = nullptr;          // the requested outputs, or nullptr
  float* yh = nullptr;
  float* yc = nullptr;
};

// One direction's working buffers and packed recurrent weights.
struct RnnDirection {
  bool reverse = false;
  const float* xw = nullptr;  // [S*B, G*H] input projection with the biases folded in
  PackedMatrix r1, r2;        // R^T (GRU without linear_before_reset: gates z,r | h)
  int64_t n1 = 0;             // columns of r1
  bool split_h = false;
  const float* rbias_h = nullptr;  // GRU Rb_h kept apart under linear_before_reset
  const Activation* act = nullptr;
  const float* peep = nullptr;
};

class RnnKernel : public Kernel {
 public:
  RnnKernel(const ir::Node& node, RnnKind kind, Isa isa)
      : attrs_(ReadAttrs(node, kind)), isa_(isa) {}

  void Run(KernelContext& ctx) override {
    RnnCall c = CheckInputs(ctx);
    AllocateOutputs(ctx, c);
    // X in [S, B, I] order.
    std::vector<float> xbuf;
    const float* xs = c.x->data<float>();
    if (attrs_.layout == 1) {
      xbuf.resize(c.x->numel());
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t s = 0; s < c.S; ++s)
          std::memcpy(&xbuf[(s * c.B + b) * c.I], xs + (b * c.S + s) * c.I, sizeof(float) * c.I);
      xs = xbuf.data();
    }
    for (int64_t d = 0; d < c.D; ++d) RunDirection(ctx, c, xs, d);
  }

 private:
  RnnCall CheckInputs(KernelContext& ctx) const {
    const ir::Node& node = ctx.node();
    const RnnAttrs& at = attrs_;
    RnnCall c;
    c.G = at.kind == RnnKind::kLstm ? 4 : at.kind == RnnKind::kGru ? 3 : 1;
    c.x = &F32(ctx, 0, "X", true);
    c.w = &F32(ctx, 1, "W", true);
    c.r = &F32(ctx, 2, "R", true);
    const ir::Tensor& x = *c.x;
    if (x.rank() != 3) Fail(node, "X must have rank 3, got " + Join(x.shape()));
    c.S = at.layout == 0 ? x.shape()[0] : x.shape()[1];
    c.B = at.layout == 0 ? x.shape()[1] : x.shape()[0];
    c.I = x.shape()[2];
    c.D = at.dirs;
    c.H = at.hidden;
    if (c.r->rank() == 3 && c.H == 0) c.H = c.r->shape()[2];
    if (c.H <= 0) Fail(node, "hidden_size is missing or zero");
    const int64_t G = c.G, H = c.H, D = c.D, B = c.B, S = c.S;
    const std::vector<int64_t> wshape = {D, G * H, c.I}, rshape = {D, G * H, H};
    if (c.w->shape() != wshape)
      Fail(node, "W has shape " + Join(c.w->shape()) + ", expected " + Join(wshape));
    if (c.r->shape() != rshape)
      Fail(node, "R has shape " + Join(c.r->shape()) + ", expected " + Join(rshape));
    c.bias = Opt(ctx, 3, "B", {D, 2 * G * H});
    c.lens.assign(B, S);
    if (const ir::Tensor* sl = ctx.input(4); sl && sl->numel() > 0) {
      if (sl->dtype() != ir::DType::kInt32 && sl->dtype() != ir::DType::kInt64)
        Fail(node, "sequence_lens must be i32");
      if (sl->shape() != std::vector<int64_t>{B})
        Fail(node, "sequence_lens has shape " + Join(sl->shape()) + ", expected [" +
                       std::to_string(B) + "]");
      c.lens = sl->ToInt64();
      for (int64_t l : c.lens)
        if (l < 0 || l > S)
          Fail(node, "sequence_lens value " + std::to_string(l) + " outside [0, " +
                         std::to_string(S) + "]");
    }
    c.state = at.layout == 0 ? std::vector<int64_t>{D, B, H} : std::vector<int64_t>{B, D, H};
    c.h0 = Opt(ctx, 5, "initial_h", c.state);
    if (at.kind == RnnKind::kLstm) {
      c.c0 = Opt(ctx, 6, "initial_c", c.state);
      c.peep = Opt(ctx, 7, "P", {D, 3 * H});
    }
    return c;
  }

  void AllocateOutputs(KernelContext& ctx, RnnCall& c) const {
    if (ctx.num_outputs() > 0 && ctx.output_requested(0)) {
      const std::vector<int64_t> ys = attrs_.layout == 0 ? std::vector<int64_t>{c.S, c.D, c.B, c.H}
                                                         : std::vector<int64_t>{c.B, c.S, c.D, c.H};
      ir::Tensor& t = ctx.AllocateOutput(0, ir::DType::kFloat32, ys);
      c.y = t.mutable_data<float>();
      std::fill(c.y, c.y + t.numel(), 0.f);
    }
    if (ctx.num_outputs() > 1 && ctx.output_requested(1))
      c.yh = ctx.AllocateOutput(1, ir::DType::kFloat32, c.state).mutable_data<float>();
    if (attrs_.kind == RnnKind::kLstm && ctx.num_outputs() > 2 && ctx.output_requested(2))
      c.yc = ctx.AllocateOutput(2, ir::DType::kFloat32, c.state).mutable_data<float>();
  }

  // Direction d: the input projection of every step in one GEMM, then the recurrence.
  void RunDirection(KernelContext& ctx, const RnnCall& c, const float* xs, int64_t d) const {
    const RnnAttrs& at = attrs_;
    const int64_t S = c.S, B = c.B, I = c.I, G = c.G, H = c.H;
    ThreadPool* pool = &ctx.pool();
    RnnDirection dir;
    dir.reverse = at.reverse_only || d == 1;
    const float* wd = c.w->data<float>() + d * G * H * I;
    const float* rd = c.r->data<float>() + d * G * H * H;
    const float* bw = c.bias ? c.bias->data<float>() + d * 2 * G * H : nullptr;
    const float* br = bw ? bw + G * H : nullptr;
    // Biases folded into the input projection; GRU keeps Rb_h apart when the reset gate
    // multiplies it (linear_before_reset).
    std::vector<float> fold(G * H), rbias_h(H);
    for (int64_t j = 0; j < G * H; ++j) {
      float v = bw ? bw[j] + br[j] : 0.f;
      if (at.kind == RnnKind::kGru && at.linear_before_reset && j >= 2 * H && bw) v = bw[j];
      fold[j] = v;
    }
    for (int64_t j = 0; j < H; ++j)
      rbias_h[j] = (br && at.kind == RnnKind::kGru) ? br[2 * H + j] : 0.f;
    std::vector<float> xw(static_cast<size_t>(S * B * G * H));
    GemmEpilogue ep;
    ep.bias_kind = GemmEpilogue::Bias::kPerCol;
    ep.bias = fold.data();
    if (S * B > 0)
      SgemmEx(isa_, S * B, G * H, I, 1.f, GemmOperand::Raw(xs, I), GemmOperand::Raw(wd, I, true),
              0.f, xw.data(), G * H, pool, &ep);
    // R^T packed once for all steps; GRU with linear_before_reset=0 multiplies the
    // hidden gate separately (after the reset gate), so its R is split in two.
    dir.split_h = at.kind == RnnKind::kGru && !at.linear_before_reset;
    dir.n1 = dir.split_h ? 2 * H : G * H;
    dir.r1 = PackB(isa_, true, H, dir.n1, rd, H);
    if (dir.split_h) dir.r2 = PackB(isa_, true, H, H, rd + 2 * H * H, H);
    dir.xw = xw.data();
    dir.rbias_h = rbias_h.data();
    dir.act = &at.acts[d * (static_cast<int64_t>(at.acts.size()) / c.D)];
    dir.peep = c.peep ? c.peep->data<float>() + d * 3 * H : nullptr;
    Recur(c, dir, d, pool);
  }

  // The time steps of one direction: H_prev x R^T, the gate math per batch entry, Y.
  void Recur(const RnnCall& c, const RnnDirection& dir, int64_t d, ThreadPool* pool) const {
    const RnnAttrs& at = attrs_;
    const int64_t B = c.B, G = c.G, H = c.H;
    std::vector<float> hbuf(B * H), cbuf(B * H), gates(B * G * H), rh(B * H), hnew(B * H);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < H; ++j) {
        const int64_t at_state = StateIndex(d, b, j, B, H, c.D);
        hbuf[b * H + j] = c.h0 ? c.h0->data<float>()[at_state] : 0.f;
        cbuf[b * H + j] = c.c0 ? c.c0->data<float>()[at_state] : 0.f;
      }
    int64_t max_len = 0;
    for (int64_t l : c.lens) max_len = std::max(max_len, l);
    auto step_of = [&](int64_t b, int64_t s) { return dir.reverse ? c.lens[b] - 1 - s : s; };
    for (int64_t s = 0; s < max_len; ++s) {
      SgemmEx(isa_, B, dir.n1, H, 1.f, GemmOperand::Raw(hbuf.data(), H),
              GemmOperand::Packed(dir.r1), 0.f, gates.data(), G * H, pool);
      for (int64_t b = 0; b < B; ++b) {
        if (s >= c.lens[b]) continue;
        float* g = &gates[b * G * H];
        const float* xg = &dir.xw[(step_of(b, s) * B + b) * G * H];
        if (at.kind == RnnKind::kLstm)
          LstmCell(H, dir, g, xg, &cbuf[b * H], &hnew[b * H]);
        else if (at.kind == RnnKind::kRnn)
          for (int64_t j = 0; j < H; ++j) hnew[b * H + j] = dir.act[0](Clip(g[j] + xg[j]));
        else
          GruGates(H, dir, g, xg, &hbuf[b * H], &rh[b * H], &hnew[b * H]);
      }
      if (dir.split_h) {
        // (r .* H_prev) x Rh^T for the hidden gate, then the update.
        SgemmEx(isa_, B, H, H, 1.f, GemmOperand::Raw(rh.data(), H), GemmOperand::Packed(dir.r2),
                0.f, &gates[2 * H], G * H, pool);
        for (int64_t b = 0; b < B; ++b) {
          if (s >= c.lens[b]) continue;
          const float* g = &gates[b * G * H];
          const float* xg = &dir.xw[(step_of(b, s) * B + b) * G * H];
          for (int64_t j = 0; j < H; ++j) {
            const float hh = dir.act[1](Clip(xg[2 * H + j] + g[2 * H + j]));
            hnew[b * H + j] = (1.f - g[j]) * hh + g[j] * hbuf[b * H + j];
          }
        }
      }
      for (int64_t b = 0; b < B; ++b) {
        if (s >= c.lens[b]) continue;
        const int64_t t = step_of(b, s);
        std::memcpy(&hbuf[b * H], &hnew[b * H], sizeof(float) * H);
        if (c.y) {
          const int64_t off =
              at.layout == 0 ? ((t * c.D + d) * B + b) * H : ((b * c.S + t) * c.D + d) * H;
          std::memcpy(c.y + off, &hnew[b * H], sizeof(float) * H);
        }
      }
    }
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < H; ++j) {
        const int64_t at_state = StateIndex(d, b, j, B, H, c.D);
        if (c.yh) c.yh[at_state] = hbuf[b * H + j];
        if (c.yc) c.yc[at_state] = cbuf[b * H + j];
      }
  }

  // LSTM gates (i, o, f, c order) for one batch entry: updates the cell state cp in place.
  void LstmCell(int64_t H, const RnnDirection& dir, const float* g, const float* xg, float* cp,
                float* hn) const {
    const float* pd = dir.peep;
    const Activation* act = dir.act;
    for (int64_t j = 0; j < H; ++j) {
      float gi = Clip(g[j] + xg[j] + (pd ? pd[j] * cp[j] : 0.f));
      float gf = Clip(g[2 * H + j] + xg[2 * H + j] + (pd ? pd[2 * H + j] * cp[j] : 0.f));
      const float gc = Clip(g[3 * H + j] + xg[3 * H + j]);
      const float iv = act[0](gi);
      const float fv = attrs_.input_forget ? 1.f - iv : act[0](gf);
      const float cv = fv * cp[j] + iv * act[1](gc);
      const float go = Clip(g[H + j] + xg[H + j] + (pd ? pd[H + j] * cv : 0.f));
      cp[j] = cv;
      hn[j] = act[0](go) * act[2](cv);
    }
  }

  // GRU update and reset gates (z, r) for one batch entry, written back into g; with
  // linear_before_reset the new state follows at once, otherwise r .* H_prev goes to rh for
  // the hidden gate's separate GEMM.
  void GruGates(int64_t H, const RnnDirection& dir, float* g, const float* xg, const float* hp,
                float* rh, float* hn) const {
    const Activation* act = dir.act;
    for (int64_t j = 0; j < H; ++j) {
      const float z = act[0](Clip(g[j] + xg[j]));
      const float rr = act[0](Clip(g[H + j] + xg[H + j]));
      g[j] = z;
      g[H + j] = rr;
      if (attrs_.linear_before_reset) {
        const float hh = act[1](Clip(xg[2 * H + j] + rr * (g[2 * H + j] + dir.rbias_h[j])));
        hn[j] = (1.f - z) * hh + z * hp[j];
      } else {
        rh[j] = rr * hp[j];
      }
    }
  }

  float Clip(float v) const {
    return attrs_.has_clip ? std::max(-attrs_.clip, std::min(attrs_.clip, v)) : v;
  }
  int64_t StateIndex(int64_t d, int64_t b, int64_t j, int64_t B, int64_t H, int64_t D) const {
    return attrs_.layout == 0 ? (d * B + b) * H + j : (b * D + d) * H + j;
  }
  static const ir::Tensor& F32(KernelContext& ctx, size_t i, const char* what, bool required) {
    const ir::Tensor* t = ctx.input(i);
    if (!t) Fail(ctx.node(), std::string("input ") + what + " is missing");
    if (t->dtype() != ir::DType::kFloat32)
      Fail(ctx.node(),
           std::string("input ") + what + " must be f32, got " + ir::DTypeName(t->dtype()));
    return *t;
  }
  // An optional f32 input of an exact shape; nullptr when omitted or empty.
  static const ir::Tensor* Opt(KernelContext& ctx, size_t i, const char* what,
                               const std::vector<int64_t>& shape) {
    const ir::Tensor* t = ctx.input(i);
    if (!t || t->numel() == 0) return nullptr;
    F32(ctx, i, what, false);
    if (t->shape() != shape)
      Fail(ctx.node(), std::string("input ") + what + " has shape " + Join(t->shape()) +
                           ", expected " + Join(shape));
    return t;
  }

  RnnAttrs attrs_;
  Isa isa_;
};

template <RnnKind kKind, Isa kIsa>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<RnnKernel>(init.node, kKind, kIsa);
}

}  // namespace

void RegisterRnnKernels(KernelRegistry& r) {
  using ir::DType;
  r.Add({"LSTM", "", DType::kFloat32, Isa::kScalar, "f32_lstm__ref",
         Create<RnnKind::kLstm, Isa::kScalar>});
  r.Add({"GRU", "", DType::kFloat32, Isa::kScalar, "f32_gru__ref",
         Create<RnnKind::kGru, Isa::kScalar>});
  r.Add({"RNN", "", DType::kFloat32, Isa::kScalar, "f32_rnn__ref",
         Create<RnnKind::kRnn, Isa::kScalar>});
#if defined(__x86_64__)
  r.Add({"LSTM", "", DType::kFloat32, Isa::kAvx2, "f32_lstm__avx2",
         Create<RnnKind::kLstm, Isa::kAvx2>});
  r.Add(
      {"GRU", "", DType::kFloat32, Isa::kAvx2, "f32_gru__avx2", Create<RnnKind::kGru, Isa::kAvx2>});
  r.Add(
      {"RNN", "", DType::kFloat32, Isa::kAvx2, "f32_rnn__avx2", Create<RnnKind::kRnn, Isa::kAvx2>});
#endif
}

}  // namespace edgepress::runtime
