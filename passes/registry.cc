#include "passes/registry.h"

#include <algorithm>
#include <chrono>

#include "ir/error.h"
#include "ir/verifier.h"
#include "passes/all_passes.h"

namespace edgepress::passes {

const std::vector<PassEntry>& AllPasses() {
  // The order here is the order of a sensible cleanup pipeline, and of `edgepress passes`:
  // Constant nodes become initializers first so later patterns see constants; identities
  // go before fusions so patterns are contiguous; BatchNorm folds after constants so its
  // parameters are initializers; activations fuse after BatchNorm folding (Conv-BN-Relu
  // becomes one FusedConv); dead-node elimination last sweeps what fusions left.
  static const std::vector<PassEntry> passes = [] {
    std::vector<PassEntry> p;
    p.push_back(FoldConstantsPass());
    p.push_back(RemoveIdentityPass());
    p.push_back(FoldBatchNormPass());
    p.push_back(FuseMatMulAddPass());
    p.push_back(FuseGeluPass());
    p.push_back(FuseHardSwishPass());
    p.push_back(FuseLayerNormPass());
    // Conv + residual Add before activations, so the Relu after the Add joins them.
    p.push_back(FuseConvAddPass());
    p.push_back(FuseActivationPass());
    p.push_back(FuseQdqPass());
    p.push_back(EliminateDeadNodesPass());
    p.push_back(UpgradeOpsetPass());
    // Pruning before quantization: it zeros float weights, and quantizers keep an exact
    // zero exact (symmetric ranges), so the sparsity survives into int8/int4.
    p.push_back(PruneStructuredPass());
    p.push_back(PruneMagnitudePass());
    p.push_back(PruneNMPass());
    // Depth reduction (a half-depth distillation student) sits with the other
    // compressions that change weights before quantization.
    p.push_back(DropBlocksPass());
    p.push_back(QuantizeWeightsPass());
    // After quantize-weights in listings: an alternative export of the same weights (its
    // own ternary grid, .epk only).
    p.push_back(PackTernaryPass());
    p.push_back(CastWeightsPass());
    p.push_back(QuantizeStaticPass());
    p.push_back(QuantizeDynamicPass());
    return p;
  }();
  return passes;
}

const PassEntry* FindPass(const std::string& name) {
  for (const auto& e : AllPasses())
    if (e.info.name == name) return &e;
  return nullptr;
}

std::string Nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    std::vector<size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= word.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= c.size(); ++j)
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1,
                           prev[j - 1] + (word[i - 1] == c[j - 1] ? 0 : 1)});
      std::swap(prev, cur);
    }
    if (prev[c.size()] < best_d) {
      best_d = prev[c.size()];
      best = c;
    }
  }
  return best;
}

std::unique_ptr<Pass> CreatePass(const std::string& name,
                                 const std::vector<std::pair<std::string, std::string>>& options) {
  const PassEntry* e = FindPass(name);
  if (!e) {
    std::vector<std::string> names;
    for (const auto& p : AllPasses()) names.push_back(p.info.name);
    std::string near = Nearest(name, names);
    ThrowInvalid("unknown pass '" + name + "'" +
                 (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                 "; `edgepress passes` lists the passes this version has");
  }
  return e->create(ParseOptions(e->info, options));
}

namespace {
std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\n\r");
  return s.substr(b, e - b + 1);
}
[[noreturn]] void SyntaxError(const std::string& text, size_t col, const std::string& what) {
  ThrowInvalid("pipeline '" + text + "', column " + std::to_string(col + 1) + ": " + what);
}
}  // namespace

const char* kDefaultOptimizePipeline =
    "fold-constants,remove-identity,fold-batchnorm,fuse-matmul-add,fuse-gelu,fuse-hardswish,"
    "fuse-layernorm,"
    // fuse-conv-add before fuse-activation: a ResNet block's conv2 + Add + Relu becomes one
    // FusedConv (Z, then the Relu); the other order would leave the Add between them.
    "fuse-conv-add,fuse-activation,"
    // fuse-qdq after fuse-activation (it folds FusedConv/FusedGemm activations into the
    // integer op's epilogue) and before eliminate-dead-nodes (which sweeps the DQ nodes it
    // leaves without readers): QDQ models then run as integer in run/bench/compress.
    "fuse-qdq,eliminate-dead-nodes";

std::vector<PipelineStep> ParsePipeline(const std::string& text) {
  // grammar: step (',' step)*  ;  step: name ('{' key '=' value (',' key '=' value)* '}')?
  std::vector<PipelineStep> steps;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n')) ++i;
  };
  skip_ws();
  if (i == text.size()) SyntaxError(text, i, "empty pipeline");
  while (i < text.size()) {
    skip_ws();
    size_t start = i;
    while (i < text.size() && text[i] != ',' && text[i] != '{' && text[i] != '}') ++i;
    PipelineStep step;
    step.pass = Trim(text.substr(start, i - start));
    if (step.pass.empty()) SyntaxError(text, start, "expected a pass name");
    if (i < text.size() && text[i] == '}') SyntaxError(text, i, "unexpected '}'");
    if (i < text.size() && text[i] == '{') {
      ++i;
      for (;;) {
        size_t kstart = i;
        while (i < text.size() && text[i] != '=' && text[i] != '}' && text[i] != ',') ++i;
        if (i >= text.size()) SyntaxError(text, kstart, "unterminated '{'");
        std::string key = Trim(text.substr(kstart, i - kstart));
        if (text[i] == '}' && key.empty()) {  // "{}"
          ++i;
          break;
        }
        if (text[i] != '=' || key.empty()) SyntaxError(text, kstart, "expected key=value");
        ++i;
        size_t vstart = i;
        while (i < text.size() && text[i] != ',' && text[i] != '}') ++i;
        if (i >= text.size()) SyntaxError(text, vstart, "unterminated '{'");
        std::string value = Trim(text.substr(vstart, i - vstart));
        step.options.emplace_back(key, value);
        if (text[i] == '}') {
          ++i;
          break;
        }
        ++i;  // ','
      }
    }
    // Validate now so a typo fails before any work is done.
    CreatePass(step.pass, step.options);
    steps.push_back(std::move(step));
    skip_ws();
    if (i < text.size()) {
      if (text[i] != ',') SyntaxError(text, i, "expected ',' between passes");
      ++i;
      skip_ws();
      if (i == text.size()) SyntaxError(text, i, "trailing ','");
    }
  }
  return steps;
}

std::vector<PassRun> RunPipeline(ir::Model& model, const std::vector<PipelineStep>& steps,
                                 PassContext& ctx, bool verify) {
  std::vector<PassRun> runs;
  for (const auto& step : steps) {
    const PassEntry* e = FindPass(step.pass);
    if (!e) CreatePass(step.pass, step.options);  // throws the helpful error
    PassOptions options = ParseOptions(e->info, step.options);
    if (e->info.needs_data && ctx.data_files.empty())
      throw Error(ErrorCode::kUsage, "pass '" + step.pass +
                                         "' needs calibration data: give --data FILE.npz");
    std::unique_ptr<Pass> pass = e->create(options);
    auto t0 = std::chrono::steady_clock::now();
    PassRun run;
    run.pass = step.pass;
    run.options = options.values();
    run.changed = pass->Run(model, ctx);
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    run.stats = pass->stats();
    run.details = pass->Details();
    if (verify) {
      try {
        ir::Verify(model);
      } catch (const Error& err) {
        throw Error(ErrorCode::kInternal,
                    "pass '" + step.pass + "' left an invalid graph: " + err.what());
      }
    }
    if (ctx.log) ctx.log(step.pass + (run.changed ? ": changed" : ": unchanged"));
    runs.push_back(std::move(run));
  }
  return runs;
}

}  // namespace edgepress::passes
