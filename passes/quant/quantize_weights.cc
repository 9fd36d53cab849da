// quantize-weights: weight-only quantization of MatMul, Gemm and Conv. Activations stay
// float; only constant float32 weights are rewritten.
//
// bits=8: each weight becomes an int8 initializer with one scale and zero point per output
//   channel (Conv: axis 0; MatMul B[K,N]: axis 1; Gemm: axis 0 with transB=1, else 1) and a
//   DequantizeLinear feeding the unchanged op: the QDQ weight-only form onnxruntime runs
//   and fuse-qdq turns into integer kernels. Per-axis DequantizeLinear needs ai.onnx opset
//   13, so a lower opset is raised (quant::EnsureOpset; Softmax-family nodes that coerce to
//   2-D at a non-last axis make that impossible and the pass reports it).
// bits=4: MatMul with a constant 2-D B (A of any rank), and Gemm with transA=0 (alpha
//   folded into the weights, C added by an Add after it; a non-constant C needs beta=1),
//   become com.microsoft MatMulNBits (group-size blocks along K, symmetric
//   with the default zero point 8, or asymmetric with packed zero points; see
//   weight_quant.h). Conv, batched (N-D) MatMul weights and Gemm that do not fit fall
//   back to int8 per-channel and are counted (conv-int4-fallback, int4-fallback).
//   accuracy-level is written to each MatMulNBits as onnxruntime defines the attribute:
//   4 (the default) lets the runtime quantize the activations per block to int8 and use
//   integer dot products (2-3x faster than fp32 arithmetic on VNNI CPUs, onnxruntime's
//   CompInt8 does the same; the extra error is at most max|a| / 254 per block times the
//   block's sum |w|); 0 keeps float activations.
// method=gptq: GPTQ with H = Σ x·xᵀ of each target's input over calibration samples
//   (PassContext::data_files, at most calib-samples of them), gathered in one run of the
//   float model on the native runtime (so, unlike the sequential GPTQ of the paper, later
//   layers see float inputs). Memory is K×K doubles per distinct input, independent of the
//   number of samples; time is rows·K²/2 per input for H plus O(K³) per layer for the
//   inverse. Conv weights use RTN.
// awq=true: AWQ scale search on the same data (mean |x| per input channel, a reservoir of
//   up to 256 input rows to measure output error). The chosen 1/s is applied by a Mul on
//   the op's input (not folded into the producer, which may feed other ops); α = 0 (no Mul)
//   is in the grid, so AWQ never does worse than RTN on the sampled rows.
// Targets whose input has no statistics (inside a subgraph, non-float, Gemm transA=1)
// use RTN and are counted in calib-fallback-rtn.
//
// Does not fire on: ops whose weight is not a constant (e.g. already fed by a
// DequantizeLinear), non-float32 weights, nodes matching an `exclude` glob, op types not
// listed in `op-types`, or ops already quantized (MatMulNBits etc. are not targets).
// A float weight shared by several targets is quantized once per graph under RTN (GPTQ and
// AWQ depend on the consumer, so each consumer gets its own copy); it is removed when
// nothing uses it anymore. Outputs keep their value names, so `compare` can match layers.
// bytes-before/after: bytes of all constants (initializers and Constant nodes) of the model.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "ir/error.h"
#include "passes/all_passes.h"
#include "passes/quant/input_stats.h"
#include "passes/quant/quant_util.h"
#include "passes/rewrite_util.h"
#include "passes/quant/weight_quant.h"

namespace edgepress::passes {
namespace {

enum class Kind { kMatMul, kGemm, kConv };

struct Target {
  ir::Graph* g = nullptr;
  ir::Node* node = nullptr;
  Kind kind = Kind::kMatMul;
  ir::Value* weight = nullptr;
  bool transposed = false;  // Gemm transB=1: weight stored [N, K]
  int64_t K = 0, N = 0;     // logical [K, N] (2-D weights only)
  bool nbits = false;       // becomes MatMulNBits (bits=4)
};

class QuantizeWeights : public Pass {
 public:
  explicit QuantizeWeights(const PassOptions& o)
      : bits_(static_cast<int>(o.GetInt("bits"))),
        group_(o.GetInt("group-size")),
        symmetric_(o.GetBool("symmetric")),
        gptq_(o.GetString("method") == "gptq"),
        awq_(o.GetBool("awq")),
        exclude_(o.GetStringList("exclude")),
        calib_samples_(o.GetInt("calib-samples")),
        accuracy_level_(o.GetInt("accuracy-level")) {
    if (bits_ != 4 && bits_ != 8)
      ThrowInvalid("pass 'quantize-weights': option 'bits' = " + std::to_string(bits_) +
                   ": expected 8 or 4");
    if (group_ & (group_ - 1))
      ThrowInvalid("pass 'quantize-weights': option 'group-size' = " + std::to_string(group_) +
                   ": must be a power of 2 (16..256)");
    if (accuracy_level_ != 0 && accuracy_level_ != 4)
      ThrowInvalid("pass 'quantize-weights': option 'accuracy-level' = " +
                   std::to_string(accuracy_level_) +
                   ": expected 0 (float activations) or 4 (int8 activations)");
    for (const std::string& op : o.GetStringList("op-types")) {
      if (op != "MatMul" && op != "Gemm" && op != "Conv")
        ThrowInvalid("pass 'quantize-weights': option 'op-types' names '" + op +
                     "'; weight quantization handles MatMul, Gemm and Conv");
      op_types_.insert(op);
    }
  }
  const PassInfo& info() const override { return QuantizeWeightsPass().info; }

  bool Run(ir::Model& model, PassContext& ctx) override {
    Count("bytes-before", static_cast<int64_t>(ConstantBytes(model)));
    std::vector<Target> targets = FindTargets(model);
    if (targets.empty()) {
      Count("bytes-after", static_cast<int64_t>(ConstantBytes(model)));
      return false;
    }
    if ((gptq_ || awq_) && ctx.data_files.empty())
      throw Error(ErrorCode::kUsage,
                  std::string("pass 'quantize-weights' with ") +
                      (gptq_ ? "method=gptq" : "awq=true") +
                      " needs calibration data: give --data FILE.npz");
    if (gptq_ || awq_) Calibrate(model, targets, ctx);

    bool needs_dq = false;
    for (const Target& t : targets) needs_dq |= !t.nbits;
    // Raised before any rewrite, so a model that cannot take opset 13 is left untouched.
    if (needs_dq && quant::EnsureOpset(model, 13)) Count("opset-raised");
    bool needs_ms = false;
    for (const Target& t : targets) needs_ms |= t.nbits;
    if (needs_ms && model.OpsetVersion("com.microsoft") < 1)
      model.SetOpsetVersion("com.microsoft", 1);

    std::set<ir::Value*> weights;
    for (Target& t : targets) {
      weights.insert(t.weight);
      Rewrite(t, ctx);
    }
    for (ir::Value* w : weights) {
      if (!w->uses().empty() || w->is_graph_output()) continue;
      if (w->is_initializer()) {
        w->graph()->RemoveInitializer(w);
      } else if (ir::Node* p = w->producer()) {
        w->graph()->RemoveNode(p);
      }
    }
    Count("bytes-after", static_cast<int64_t>(ConstantBytes(model)));
    return true;
  }

 private:
  // --- matching ---------------------------------------------------------------
  std::vector<Target> FindTargets(ir::Model& model) {
    std::vector<Target> out;
    model.graph->Walk([&](ir::Graph& g) {
      for (ir::Node* n : g.nodes()) {
        if (!n->domain().empty() || !op_types_.count(n->op_type())) continue;
        if (quant::MatchAnyGlob(exclude_, n->name)) {
          Count("skipped-excluded");
          continue;
        }
        Target t;
        t.g = &g;
        t.node = n;
        t.kind = n->op_type() == "MatMul" ? Kind::kMatMul
                 : n->op_type() == "Gemm" ? Kind::kGemm
                                          : Kind::kConv;
        t.weight = n->input(1);
        const ir::Tensor* w = ConstantOf(t.weight);
        if (!w || w->dtype() != ir::DType::kFloat32 || !n->input(0) || n->num_outputs() != 1) {
          Count("skipped-not-constant");
          continue;
        }
        if (!Shape(t, *w)) {
          Count("skipped-unsupported");
          continue;
        }
        // Checked before any rewrite, so a bad weight leaves the model untouched.
        const float* d = w->data<float>();
        for (uint64_t i = 0; i < w->numel(); ++i)
          if (!std::isfinite(d[i]))
            ThrowInvalid("quantize-weights: " + n->describe() + ": weight '" +
                         t.weight->name() + "' holds a non-finite value");
        out.push_back(t);
      }
    });
    return out;
  }

  // Fills K, N, transposed and nbits; false when the weight's shape does not fit.
  bool Shape(Target& t, const ir::Tensor& w) {
    ir::Node* n = t.node;
    if (t.kind == Kind::kConv) {
      if (w.rank() < 3 || w.numel() == 0) return false;
      if (bits_ == 4) Count("conv-int4-fallback");
      return true;
    }
    if (t.kind == Kind::kMatMul) {
      // N-D B (batched weights) is quantized per channel of its last axis, int8 only.
      if (w.rank() < 2 || w.numel() == 0) return false;
      if (w.rank() > 2) {
        if (bits_ == 4) Count("int4-fallback");
        return true;
      }
      t.K = w.shape()[0];
      t.N = w.shape()[1];
      t.nbits = bits_ == 4;  // MatMulNBits takes A of any rank, as MatMul does
      return true;
    }
    if (w.rank() != 2 || w.numel() == 0) return false;
    t.transposed = n->attr_int("transB", 0) != 0;
    t.K = t.transposed ? w.shape()[1] : w.shape()[0];
    t.N = t.transposed ? w.shape()[0] : w.shape()[1];
    if (bits_ == 4) {
      bool ok = n->attr_int("transA", 0) == 0 && std::isfinite(n->attr_float("alpha", 1.f));
      if (ir::Value* c = n->input(2)) {
        float beta = n->attr_float("beta", 1.f);
        const ir::Tensor* ct = ConstantOf(c);
        ok = ok && (beta == 1.f || (ct && ct->dtype() == ir::DType::kFloat32));
      }
      t.nbits = ok;
      if (!ok) Count("int4-fallback");
    }
    return true;
  }

  // --- calibration --------------------------------------------------------------
  void Calibrate(ir::Model& model, const std::vector<Target>& targets, PassContext& ctx) {
    for (const Target& t : targets) {
      if (t.g != model.graph.get() || t.kind == Kind::kConv || t.K == 0) continue;
      if (t.kind == Kind::kGemm && t.node->attr_int("transA", 0) != 0) continue;
      InputStats& s = stats_[t.node->input(0)->name()];
      if (s.K != 0 && s.K != t.K) continue;  // inconsistent model; left to RTN
      s.K = t.K;
    }
    CollectOptions co;
    co.xtx = gptq_;
    co.awq = awq_;
    co.samples = calib_samples_;
    co.pass = "quantize-weights";
    CollectInputStats(model, stats_, co, ctx);
  }

  // --- rewriting ----------------------------------------------------------------
  // The logical [K, N] weight of a MatMul/Gemm target, alpha folded in when asked.
  static std::vector<float> Logical(const Target& t, float alpha) {
    const ir::Tensor* w = ConstantOf(t.weight);
    const float* src = w->data<float>();
    std::vector<float> out(t.K * t.N);
    for (int64_t k = 0; k < t.K; ++k)
      for (int64_t n = 0; n < t.N; ++n)
        out[k * t.N + n] = (t.transposed ? src[n * t.K + k] : src[k * t.N + n]) * alpha;
    return out;
  }

  void Rewrite(Target& t, PassContext& ctx) {
    const std::string wname = t.weight->name();
    if (t.kind == Kind::kConv || t.K == 0) {
      // Conv, and batched MatMul weights: RTN per channel (Conv: output channels, axis 0;
      // MatMul: the last axis).
      int axis = t.kind == Kind::kConv ? 0 : -1;
      ir::Value* dq = CachedDq(t, [&] {
        return quant::QuantizeWeightPerChannel(*ConstantOf(t.weight), axis, symmetric_, wname);
      });
      t.node->set_input(1, dq);
      Count(t.kind == Kind::kConv ? "conv-int8" : "matmul-int8");
      return;
    }
    float alpha = t.nbits && t.kind == Kind::kGemm ? t.node->attr_float("alpha", 1.f) : 1.f;
    wq::Scheme scheme;
    scheme.bits = t.nbits ? 4 : 8;
    scheme.group = t.nbits ? group_ : 0;
    scheme.symmetric = symmetric_;

    InputStats* st = nullptr;
    if (gptq_ || awq_) {
      auto it = stats_.find(t.node->input(0)->name());
      if (it != stats_.end() && it->second.K == t.K && it->second.rows > 0 &&
          t.g == t.node->graph() && t.node->input(0)->graph() == t.g)
        st = &it->second;
      if (!st) Count("calib-fallback-rtn");
    }

    ir::Value* input = t.node->input(0);
    std::vector<float> w = Logical(t, alpha);
    std::vector<float> inv_s;
    if (awq_ && st) {
      std::vector<double> mean(t.K);
      for (int64_t k = 0; k < t.K; ++k) mean[k] = st->abs_sum[k] / st->rows;
      wq::AwqChoice c = wq::SearchAwq(w.data(), t.K, t.N, scheme, mean, st->sample.data(),
                                      st->sample_rows);
      Count("awq-layers");
      if (c.alpha > 0) {
        for (int64_t k = 0; k < t.K; ++k)
          for (int64_t n = 0; n < t.N; ++n) w[k * t.N + n] *= c.s[k];
        inv_s.resize(t.K);
        for (int64_t k = 0; k < t.K; ++k) inv_s[k] = 1.f / c.s[k];
        input = AddInputScale(t, inv_s);
      }
      if (ctx.log)
        ctx.log("quantize-weights: " + t.node->describe() + ": awq alpha=" +
                std::to_string(c.alpha) + " output error " + std::to_string(c.error) +
                " (rtn " + std::to_string(c.rtn_error) + ")");
    }

    wq::QuantizedMatrix q;
    if (gptq_ && st) {
      std::vector<double> h = st->xtx;
      if (!inv_s.empty())  // the layer now sees x / s
        for (int64_t i = 0; i < t.K; ++i)
          for (int64_t j = 0; j < t.K; ++j) h[i * t.K + j] *= double(inv_s[i]) * inv_s[j];
      bool fell_back = false;
      q = wq::QuantizeGptq(w.data(), t.K, t.N, scheme, std::move(h), 0.01, &fell_back);
      Count(fell_back ? "calib-fallback-rtn" : "gptq-layers");
    } else {
      q = wq::QuantizeRtn(w.data(), t.K, t.N, scheme);
    }
    bool cacheable = !gptq_ && !awq_ && alpha == 1.f;

    if (!t.nbits) {
      auto make = [&] { return wq::ToPerChannelInt8(q, t.transposed); };
      ir::Value* dq = cacheable ? CachedDq(t, make)
                                : quant::AddWeightDequantize(*t.g, t.node, wname, make());
      t.node->set_input(1, dq);
      if (input != t.node->input(0)) t.node->set_input(0, input);
      Count(t.kind == Kind::kGemm ? "gemm-int8" : "matmul-int8");
      return;
    }
    EmitNBits(t, q, input, cacheable);
    Count(t.kind == Kind::kGemm ? "gemm-int4" : "matmul-int4");
  }

  // A DequantizeLinear of the weight, shared by the targets of one graph under RTN.
  template <typename Make>
  ir::Value* CachedDq(const Target& t, Make make) {
    auto key = std::make_tuple(t.g, t.weight, t.transposed);
    auto it = dq_cache_.find(key);
    if (it != dq_cache_.end()) return it->second;
    ir::Value* dq = quant::AddWeightDequantize(*t.g, FirstUse(t), t.weight->name(), make());
    dq_cache_[key] = dq;
    return dq;
  }

  // Insertion point for a node shared by every target of a weight in t.g: before the first
  // node of t.g that uses the weight (so the shared node precedes all of them).
  static ir::Node* FirstUse(const Target& t) {
    for (ir::Node* n : t.g->nodes())
      for (ir::Value* v : n->inputs())
        if (v == t.weight) return n;
    return t.node;
  }

  ir::Value* AddInputScale(const Target& t, const std::vector<float>& inv_s) {
    ir::Value* x = t.node->input(0);
    ir::Tensor s(ir::DType::kFloat32, {static_cast<int64_t>(inv_s.size())});
    std::copy(inv_s.begin(), inv_s.end(), s.mutable_data<float>());
    std::string base = t.node->name.empty() ? x->name() : t.node->name;
    ir::Value* sv = AddConstant(*t.g, base + "_awq_inv_scale", std::move(s));
    ir::Node* mul = t.g->InsertNode(t.node, "Mul", {x, sv}, {t.g->UniqueName(base + "_awq")},
                                    t.g->UniqueName(base + "_awq_Mul"));
    mul->output(0)->type = x->type;
    return mul->output(0);
  }

  void EmitNBits(const Target& t, const wq::QuantizedMatrix& q, ir::Value* input,
                 bool cacheable) {
    ir::Graph& g = *t.g;
    ir::Node* n = t.node;
    std::vector<ir::Value*> consts;
    auto key = std::make_tuple(t.g, t.weight, t.transposed);
    auto it = cacheable ? nbits_cache_.find(key) : nbits_cache_.end();
    if (it != nbits_cache_.end()) {
      consts = it->second;
    } else {
      wq::NBitsTensors packed = wq::PackMatMulNBits(q);
      const std::string& w = t.weight->name();
      consts.push_back(AddConstant(g, w + "_quantized", std::move(packed.b)));
      consts.push_back(AddConstant(g, w + "_scale", std::move(packed.scales)));
      if (!packed.zero_points.empty())
        consts.push_back(AddConstant(g, w + "_zero_point", std::move(packed.zero_points)));
      if (cacheable) nbits_cache_[key] = consts;
    }
    ir::Value* out = n->output(0);
    const std::string out_name = out->name();
    const std::string node_name = n->name;
    ir::ValueType type = out->type;
    g.RenameValue(out, g.UniqueName(out_name + "_float"));
    std::vector<ir::Value*> ins = {input};
    ins.insert(ins.end(), consts.begin(), consts.end());
    ir::Value* c = t.kind == Kind::kGemm ? n->input(2) : nullptr;
    std::string mm_name = c ? g.UniqueName(out_name + "_matmul") : out_name;
    ir::Node* mm = g.InsertNode(n, "MatMulNBits", ins, {mm_name},
                                g.UniqueName(node_name.empty() ? out_name + "_MatMulNBits"
                                                               : node_name + "_MatMulNBits"),
                                "com.microsoft");
    mm->set_attr(ir::Attribute::Int("K", t.K));
    mm->set_attr(ir::Attribute::Int("N", t.N));
    mm->set_attr(ir::Attribute::Int("bits", 4));
    mm->set_attr(ir::Attribute::Int("block_size", q.group));
    mm->set_attr(ir::Attribute::Int("accuracy_level", accuracy_level_));
    mm->output(0)->type = type;
    ir::Value* result = mm->output(0);
    if (c) {
      float beta = n->attr_float("beta", 1.f);
      if (beta != 1.f) {
        ir::Tensor scaled = *ConstantOf(c);
        float* d = scaled.mutable_data<float>();
        for (uint64_t i = 0; i < scaled.numel(); ++i) d[i] *= beta;
        c = AddConstant(g, c->name() + "_beta", std::move(scaled));
      }
      ir::Node* add = g.InsertNode(n, "Add", {result, c}, {out_name},
                                   g.UniqueName(node_name.empty() ? out_name + "_bias"
                                                                  : node_name + "_bias"));
      add->output(0)->type = type;  // C broadcasts to A·B's [M, N]: Y's type is A·B's
      result = add->output(0);
    }
    g.ReplaceAllUsesWith(out, result);
    g.RemoveNode(n);
    if (!node_name.empty() && !g.FindNode(node_name)) mm->name = node_name;
  }

  int bits_;
  int64_t group_;
  bool symmetric_;
  bool gptq_;
  bool awq_;
  std::vector<std::string> exclude_;
  int64_t calib_samples_;
  int64_t accuracy_level_;
  std::set<std::string> op_types_;
  std::map<std::string, InputStats> stats_;
  std::map<std::tuple<ir::Graph*, ir::Value*, bool>, ir::Value*> dq_cache_;
  std::map<std::tuple<ir::Graph*, ir::Value*, bool>, std::vector<ir::Value*>> nbits_cache_;
};

}  // namespace

const PassEntry& QuantizeWeightsPass() {
  using T = OptionInfo::Type;
  static const PassEntry entry = {
      {"quantize-weights",
       "Weight-only quantization of MatMul/Gemm/Conv: int8 per-channel (QDQ) or int4 "
       "MatMulNBits, by RTN or GPTQ, optionally AWQ-scaled",
       {
           {"bits", T::kInt, "8", "weight bits: 8 (per-channel DequantizeLinear) or 4 (MatMulNBits)", {}, 4, 8},
           {"group-size", T::kInt, "32", "int4: weights per block along K (power of 2)", {}, 16, 256},
           {"symmetric", T::kBool, "true", "symmetric ranges (zero point 0, int4: 8)", {}},
           {"method", T::kEnum, "rtn", "rtn (round to nearest) or gptq (needs --data)", {"rtn", "gptq"}},
           {"awq", T::kBool, "false", "activation-aware scaling search (needs --data)", {}},
           {"exclude", T::kStringList, "", "node-name globs to leave in float (* and ?)", {}},
           {"op-types", T::kStringList, "MatMul,Gemm,Conv", "op types whose weights to quantize", {}},
           {"calib-samples", T::kInt, "128", "calibration samples for gptq/awq", {}, 1, 1e9},
           {"accuracy-level", T::kInt, "4",
            "int4: MatMulNBits accuracy_level; 4 lets the runtime quantize activations to "
            "int8 per block (faster), 0 keeps them float",
            {}, 0, 4},
       },
       {"matmul-int4", "gemm-int4", "matmul-int8", "gemm-int8", "conv-int8", "conv-int4-fallback",
        "int4-fallback", "gptq-layers", "awq-layers", "calib-fallback-rtn", "skipped-excluded",
        "skipped-not-constant", "skipped-unsupported", "opset-raised", "bytes-before",
        "bytes-after"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<QuantizeWeights>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
