// The `distill` step of compress recipes (see compress_distill.h and docs/distill.md).
#include "tools/compress/compress_distill.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>

#include "ir/error.h"
#include "tools/progress.h"

#ifdef EDGEPRESS_HAVE_DISTILL
#include "distill/distill.h"
#include "distill/gradual_pattern.h"
#endif

namespace edgepress::tools {

namespace {

using T = passes::OptionInfo::Type;
using passes::Opt;

const passes::PassInfo& DistillStepInfo() {
  static const passes::PassInfo info{
      "distill",
      "fine-tune the model so far against the original (the teacher) on training data",
      {
          Opt("data", T::kString, "",
              "training data: .npz files or a folder (inputs by name, optional label array); "
              "empty: calibration.data"),
          Opt("steps", T::kInt, "0", "optimizer steps; 0: epochs over the data", {}, 0, 1e9),
          Opt("epochs", T::kInt, "1", "passes over the data when steps is 0", {}, 1, 1e6),
          Opt("batch-size", T::kInt, "32", "samples per step", {}, 1, 1e6),
          Opt("lr", T::kFloat, "0.001", "peak learning rate (AdamW)", {}, 0, 10),
          Opt("min-lr", T::kFloat, "0", "learning rate at the last step", {}, 0, 10),
          Opt("weight-decay", T::kFloat, "0.01", "AdamW decoupled weight decay", {}, 0, 10),
          Opt("warmup", T::kInt, "0", "linear warm-up steps", {}, 0, 1e9),
          Opt("decay", T::kEnum, "cosine", "after warm-up", {"cosine", "linear", "constant"}),
          Opt("clip-norm", T::kFloat, "1", "gradient-norm clipping (0: off)", {}, 0, 1e9),
          Opt("temperature", T::kFloat, "2", "softmax temperature of the KL loss", {}, 1e-6, 1e6),
          Opt("alpha-kd", T::kFloat, "1", "weight of the KL loss on softened logits", {}, 0, 1e6),
          Opt("alpha-ce", T::kFloat, "1", "weight of the hard-label loss (data with labels)", {}, 0,
              1e6),
          Opt("alpha-hidden", T::kFloat, "1", "weight of the layer-map MSE", {}, 0, 1e6),
          Opt("layer-map", T::kStringList, "",
              "intermediate values to match, teacher_value:student_value"),
          Opt("shuffle-buffer", T::kInt, "1024", "samples in the shuffle buffer", {}, 1, 1e9),
          Opt("eval-every", T::kInt, "0", "evaluate every N steps (0: before and after)", {}, 0,
              1e9),
          Opt("keep-best", T::kBool, "false",
              "keep the best evaluated weights instead of the last (selects on the "
              "evaluation data, so its accuracy is then optimistic)"),
          Opt("fixed-masks", T::kBool, "true", "zeros of the weights stay zero (pruned weights)"),
          Opt("fake-quant", T::kEnum, "none",
              "train through the export's weight grid (straight-through): int8 for "
              "quantize-weights/quantize-static, int4 for quantize-weights bits 4, ternary "
              "for pack-ternary (2-bit, .epk) or quantize-weights bits 8",
              {"none", "int8", "int4", "ternary"}),
          Opt("group-size", T::kInt, "32", "fake-quant int4: weights per block along K", {}, 16,
              256),
          Opt("prune-to", T::kFloat, "0",
              "gradual magnitude pruning to this sparsity per layer on a cubic schedule (0: off)",
              {}, 0, 0.99),
          Opt("prune-start", T::kInt, "0", "gradual pruning: first pruning step", {}, 0, 1e9),
          Opt("prune-end", T::kInt, "0",
              "gradual pruning: step the final sparsity is reached (0: 3/4 of the steps)", {}, 0,
              1e9),
          Opt("prune-every", T::kInt, "10", "gradual pruning: steps between pruning steps", {}, 1,
              1e9),
          Opt("fake-quant-activations", T::kBool, "false",
              "also fake-quantize activations with the ranges of the quantize-static step "
              "that follows (calibrated on the student before training)"),
          Opt("learn-activation-ranges", T::kBool, "false",
              "train those ranges (LSQ/PACT) and write them to ranges-out, for the "
              "quantize-static step's `ranges` option"),
          Opt("range-lr-scale", T::kFloat, "1", "learned ranges: lr multiplier", {}, 0, 1e6),
          Opt("ranges-out", T::kString, "", "learned ranges: the ranges.json to write"),
          Opt("prune-pattern", T::kString, "unstructured",
              "gradual pruning pattern: unstructured, N:M (2:4, 4:8) or channels"),
          Opt("threads", T::kInt, "1", "LibTorch intra-op threads", {}, 1, 1024),
          Opt("device", T::kString, "cpu", "cpu, cuda or cuda:N"),
      },
      {"steps", "train-samples", "masked-weights", "fake-quantized-weights",
       "fake-quantized-activations", "pruned-weights", "removed-params"},
      /*needs_data=*/false};
  return info;
}

std::unique_ptr<passes::Pass> CreateDistillStep(const passes::PassOptions&) {
  ThrowInvalid(
      "'distill' is a compress recipe step, not a pass: it needs the original model as its "
      "teacher (use it in a recipe pipeline, or `edgepress distill`)");
}

std::string TrainingData(const passes::PassOptions& o, const std::string& calib) {
  std::string data = o.GetString("data");
  return data.empty() ? calib : data;
}

}  // namespace

bool IsDistillStep(const std::string& name) { return name == "distill"; }

const passes::PassEntry* FindCompressStep(const std::string& name) {
  static const passes::PassEntry distill{DistillStepInfo(), &CreateDistillStep};
  if (IsDistillStep(name)) return &distill;
  return passes::FindPass(name);
}

void CheckDistillSteps(const std::vector<passes::PipelineStep>& steps, const std::string& calib,
                       const std::string& where) {
  for (const auto& st : steps) {
    if (!IsDistillStep(st.pass)) continue;
#ifndef EDGEPRESS_HAVE_DISTILL
    ThrowUnsupported(where +
                     ": the pipeline has a distill step: this edgepress was built without "
                     "LibTorch (configure with -DEDGEPRESS_WITH_TORCH=ON)");
#endif
    passes::PassOptions o = passes::ParseOptions(DistillStepInfo(), st.options);
    if (TrainingData(o, calib).empty())
      ThrowInvalid(where +
                   ": the distill step needs training data: set its `data` option, or "
                   "calibration.data / --calib");
#ifdef EDGEPRESS_HAVE_DISTILL
    try {
      distill::ParsePrunePattern(o.GetString("prune-pattern"));
    } catch (const Error& e) {
      throw Error(e.code(), where + ": distill step: " + e.what());
    }
    if (o.GetBool("learn-activation-ranges") && o.GetString("ranges-out").empty())
      throw Error(ErrorCode::kUsage, where +
                                         ": distill step: learn-activation-ranges needs "
                                         "ranges-out (the file quantize-static reads as `ranges`)");
#endif
  }
}

#ifdef EDGEPRESS_HAVE_DISTILL
namespace {

// The step's options as the trainer's; a bad prune pattern or a missing ranges-out fails
// before any work.
distill::DistillOptions ToDistillOptions(const passes::PassOptions& o,
                                         const DistillStepContext& c) {
  distill::DistillOptions d;
  d.steps = o.GetInt("steps");
  d.epochs = o.GetInt("epochs");
  d.batch_size = o.GetInt("batch-size");
  d.lr = o.GetFloat("lr");
  d.min_lr = o.GetFloat("min-lr");
  d.weight_decay = o.GetFloat("weight-decay");
  d.warmup_steps = o.GetInt("warmup");
  d.decay = o.GetString("decay");
  d.clip_norm = o.GetFloat("clip-norm");
  d.temperature = o.GetFloat("temperature");
  d.alpha_kd = o.GetFloat("alpha-kd");
  d.alpha_ce = o.GetFloat("alpha-ce");
  d.alpha_hidden = o.GetFloat("alpha-hidden");
  std::string map;
  for (const std::string& pair : o.GetStringList("layer-map"))
    map += (map.empty() ? "" : ",") + pair;
  if (!map.empty()) d.layer_map = distill::ParseLayerMap(map, "distill step: layer-map");
  d.shuffle_buffer = o.GetInt("shuffle-buffer");
  d.eval_every = o.GetInt("eval-every");
  d.keep_best = o.GetBool("keep-best");
  d.fixed_masks = o.GetBool("fixed-masks");
  d.prune_to = o.GetFloat("prune-to");
  d.prune_start = o.GetInt("prune-start");
  d.prune_end = o.GetInt("prune-end");
  d.prune_every = o.GetInt("prune-every");
  d.prune_pattern = o.GetString("prune-pattern");
  distill::ParsePrunePattern(d.prune_pattern);
  d.learn_activation_ranges = o.GetBool("learn-activation-ranges");
  d.range_lr_scale = o.GetFloat("range-lr-scale");
  if (d.learn_activation_ranges && o.GetString("ranges-out").empty())
    throw Error(ErrorCode::kUsage,
                "distill step: learn-activation-ranges needs ranges-out (the file the "
                "quantize-static step reads as `ranges`)");
  d.fake_quant = o.GetString("fake-quant");
  d.fake_quant_group = o.GetInt("group-size");
  d.threads = static_cast<int>(o.GetInt("threads"));
  d.device = o.GetString("device");
  d.seed = c.seed;
  d.label = c.label;
  d.teacher_name = c.teacher_name;
  d.student_name = c.teacher_name + " (the pipeline before distill)";
  return d;
}

// fake-quant-activations: the activation ranges the export will use, from the
// quantize-static step after this one run on a copy of the student as it is now.
std::vector<distill::ActivationQuant> ExportActivationRanges(
    const ir::Model& student, const passes::PipelineStep& step,
    const std::vector<passes::PipelineStep>& pipeline, const DistillStepContext& c) {
  const passes::PipelineStep* qs = nullptr;
  bool after = false;
  for (const auto& st : pipeline) {
    if (&st == &step)
      after = true;
    else if (after && !qs && st.pass == "quantize-static")
      qs = &st;
  }
  if (!qs)
    ThrowInvalid("distill step: fake-quant-activations needs a quantize-static step after it");
  std::unique_ptr<ir::Model> qdq = student.Clone();
  passes::PassContext qctx;
  qctx.seed = c.seed;
  if (!c.calib.empty()) qctx.data_files = {c.calib};
  // Calibrated ranges only: the `ranges` file may be what this step is about to write.
  passes::PipelineStep calib_step = *qs;
  calib_step.options.erase(
      std::remove_if(calib_step.options.begin(), calib_step.options.end(),
                     [](const auto& kv) { return kv.first == "ranges"; }),
      calib_step.options.end());
  passes::RunPipeline(*qdq, {calib_step}, qctx, /*verify=*/false);
  return distill::ActivationQuantsOf(*qdq);
}

distill::Callbacks ProgressCallbacks(Progress* p) {
  distill::Callbacks cb;
  if (!p) return cb;
  cb.log = [p](const std::string& s) { p->Log("  distill: " + s); };
  cb.on_step = [p, started = false](int64_t s, int64_t total, double loss, double lr,
                                    double sps) mutable {
    if (!started) p->Start("distill", total), started = true;
    p->Status(fmt::format("loss {:.4f} lr {:.2e} {:.0f} samples/s", loss, lr, sps));
    p->Update(s, total);
  };
  return cb;
}

void RecordResult(passes::PassRun& run, const distill::DistillResult& r, const std::string& data,
                  const std::string& eval) {
  run.changed = r.steps > 0;
  run.stats["steps"] = r.steps;
  run.stats["train-samples"] = r.train_samples;
  run.stats["masked-weights"] = r.masked_weights;
  run.stats["fake-quantized-weights"] = r.fake_quantized;
  run.stats["fake-quantized-activations"] = r.fake_quantized_activations;
  run.stats["pruned-weights"] = r.pruned_weights;
  run.stats["removed-params"] = r.removed_params;
  nlohmann::ordered_json details;
  nlohmann::json summary = nlohmann::json::parse(distill::ResultJson(r));
  summary["data"] = data;
  summary["evaluation"] = eval;
  details["distill"] = summary;
  run.details = details.dump();
}

}  // namespace
#endif

passes::PassRun RunDistillStep(ir::Model& student, const passes::PipelineStep& step,
                               const std::vector<passes::PipelineStep>& pipeline,
                               const DistillStepContext& c) {
  const passes::PassOptions o = passes::ParseOptions(DistillStepInfo(), step.options);
  passes::PassRun run;
  run.pass = step.pass;
  run.options = o.values();
#ifndef EDGEPRESS_HAVE_DISTILL
  (void)student;
  (void)pipeline;
  (void)c;
  ThrowUnsupported("distill step: this edgepress was built without LibTorch");
#else
  const auto t0 = std::chrono::steady_clock::now();
  distill::DistillOptions d = ToDistillOptions(o, c);
  // The teacher is the model as given, with the cleanup `edgepress distill` runs: BatchNorm
  // folded into its convolution (the student has it folded when the recipe folds it; its
  // running statistics must not train as weights either way, so the student gets the same
  // function-preserving cleanup).
  passes::PassContext pctx;
  pctx.seed = c.seed;
  const auto cleanup =
      passes::ParsePipeline("fold-constants,remove-identity,fold-batchnorm,eliminate-dead-nodes");
  std::shared_ptr<ir::Model> teacher = c.teacher->Clone();
  passes::RunPipeline(*teacher, cleanup, pctx, /*verify=*/false);
  passes::RunPipeline(student, cleanup, pctx, /*verify=*/true);
  if (o.GetBool("fake-quant-activations"))
    d.activation_quant = ExportActivationRanges(student, step, pipeline, c);
  // Distill() trains the student in place; the pipeline keeps owning it.
  std::shared_ptr<ir::Model> shared(&student, [](ir::Model*) {});

  Progress* p = c.progress;
  std::vector<std::string> eval;
  if (!c.eval.empty()) eval.push_back(c.eval);
  const std::string data = TrainingData(o, c.calib);
  distill::DistillResult r =
      distill::Distill(teacher, shared, {data}, eval, d, ProgressCallbacks(p));
  if (p) p->Finish(fmt::format("{} steps, {:.0f} samples/s", r.steps, r.samples_per_second));
  if (d.learn_activation_ranges)
    distill::SaveLearnedRanges(r.learned_ranges, o.GetString("ranges-out"));
  RecordResult(run, r, data, c.eval);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (p && r.has_eval && !r.evals.empty() && r.evals.front().top1 >= 0)
    p->Log(fmt::format("  distill: teacher top-1 {:.2f}%, student {:.2f}% before, {:.2f}% after",
                       r.teacher.top1 * 100, r.evals.front().top1 * 100, r.best.top1 * 100));
  return run;
#endif
}

}  // namespace edgepress::tools
