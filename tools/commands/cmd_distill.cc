// `edgepress distill --teacher T (--student S | --student-from-teacher SPEC) --data D -o OUT`
// trains a student against a teacher through the LibTorch backend (distill/, docs/distill.md)
// and writes the student with its trained weights in the format of OUT's extension.
// --student-from-teacher makes the student from the teacher with a pass pipeline in the
// text form `apply --passes` takes (e.g. prune-magnitude{sparsity=0.5}); pruned weights
// stay zero while training.
// Data parallel: with torchrun's WORLD_SIZE/RANK/MASTER_ADDR/MASTER_PORT set, each process
// is one rank (distill.h's DistributedOptions); only rank 0 reports and writes files.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "ir/error.h"
#include "passes/registry.h"
#include "tools/cli.h"
#include "tools/model_io.h"
#include "tools/progress.h"

#ifdef EDGEPRESS_HAVE_DISTILL
#include "distill/distill.h"
#endif

namespace edgepress::tools {

namespace {

// The command line of `distill`.
struct DistillCli {
  std::string teacher, student, from_teacher, out, layer_map, ranges_out;
  std::vector<std::string> data, eval;
  bool quiet = false, json = false, fq_activations = false;
#ifdef EDGEPRESS_HAVE_DISTILL
  distill::DistillOptions d;
#endif
};

// The options, bound to `o` (which outlives the parse: the command keeps it).
void AddDistillOptions(CLI::App* cmd, DistillCli& o) {
  cmd->add_option("--teacher", o.teacher, "teacher model (.onnx, .pt, .epk)")->required();
  AddInputShapeOption(cmd);
  auto* st = cmd->add_option("--student", o.student, "student model (.onnx, .pt, .epk)");
  auto* ft = cmd->add_option("--student-from-teacher", o.from_teacher,
                             "make the student from the teacher with a pass pipeline, e.g. "
                             "'prune-magnitude{sparsity=0.5}' or 'prune-nm{n=2,m=4}'");
  st->excludes(ft);
  cmd->add_option("--data", o.data, "training data: .npz files or folders of them")->required();
  cmd->add_option("--eval", o.eval,
                  "evaluation data (.npz files or folders); keeps the best weights");
  cmd->add_option("-o,--output", o.out,
                  "the trained student; format by extension (.onnx, .pt, .epk)")
      ->required();
  cmd->add_option("--layer-map", o.layer_map,
                  "intermediate values to match: teacher_value:student_value,...");
  cmd->add_flag("-q,--quiet", o.quiet, "no progress output");
  cmd->add_flag("--json", o.json, "print the summary (loss curve, evaluations) as JSON on stdout");
#ifdef EDGEPRESS_HAVE_DISTILL
  distill::DistillOptions& d = o.d;
  cmd->add_option("--label", d.label, "array with class labels (hard-label loss, top-1)")
      ->capture_default_str();
  cmd->add_option("--alpha-kd", d.alpha_kd, "weight of the KL loss on softened logits")
      ->capture_default_str();
  cmd->add_option("--alpha-ce", d.alpha_ce, "weight of the hard-label cross-entropy")
      ->capture_default_str();
  cmd->add_option("--alpha-hidden", d.alpha_hidden, "weight of the layer-map MSE")
      ->capture_default_str();
  cmd->add_option("--temperature", d.temperature, "softmax temperature of the KL loss")
      ->capture_default_str();
  cmd->add_option("--lr", d.lr, "peak learning rate (AdamW)")->capture_default_str();
  cmd->add_option("--weight-decay", d.weight_decay, "AdamW decoupled weight decay")
      ->capture_default_str();
  cmd->add_option("--warmup", d.warmup_steps, "linear warm-up steps")->capture_default_str();
  cmd->add_option("--decay", d.decay, "after warm-up: cosine, linear or constant")
      ->capture_default_str();
  cmd->add_option("--min-lr", d.min_lr, "learning rate at the last step")->capture_default_str();
  cmd->add_option("--clip-norm", d.clip_norm, "gradient-norm clipping (0: off)")
      ->capture_default_str();
  cmd->add_option("--batch-size", d.batch_size, "samples per step")->capture_default_str();
  cmd->add_option("--epochs", d.epochs, "passes over the data (when --steps is not given)")
      ->capture_default_str();
  cmd->add_option("--steps", d.steps, "optimizer steps (overrides --epochs)");
  cmd->add_option("--seed", d.seed, "seed of the data order and projections")
      ->capture_default_str();
  cmd->add_option("--shuffle-buffer", d.shuffle_buffer,
                  "samples in the shuffle buffer (1: file order)")
      ->capture_default_str();
  cmd->add_option("--eval-every", d.eval_every,
                  "evaluate every N steps (0: before and after only)");
  cmd->add_option("--checkpoint", d.checkpoint, "checkpoint file, written atomically");
  cmd->add_option("--save-every", d.save_every,
                  "write the checkpoint every N steps (and at the end)");
  cmd->add_option("--resume", d.resume, "continue from this checkpoint (same options and models)");
  cmd->add_option("--stop-after", d.stop_after,
                  "end this run after N steps in total, checkpointed");
  cmd->add_option("--log-every", d.log_every, "steps per point of the loss curve")
      ->capture_default_str();
  cmd->add_flag(
      "!--no-masks", d.fixed_masks,
      "let zeros of the student's weights train (default: a pruned student keeps its zeros)");
  cmd->add_option("--fake-quant", d.fake_quant,
                  "distillation-aware quantization of Conv/Gemm/MatMul weights: none, int8, "
                  "int4 or ternary (docs/distill.md; export ternary with pack-ternary)")
      ->capture_default_str();
  cmd->add_option("--prune-to", d.prune_to,
                  "gradual magnitude pruning to this sparsity per layer (cubic schedule; 0: off)")
      ->capture_default_str();
  cmd->add_option("--prune-pattern", d.prune_pattern,
                  "gradual pruning pattern: unstructured, N:M (2:4, 4:8; sparsity (M-N)/M) or "
                  "channels (whole channels, removed from the written student)")
      ->capture_default_str();
  cmd->add_option("--prune-start", d.prune_start, "gradual pruning: first pruning step")
      ->capture_default_str();
  cmd->add_option("--prune-end", d.prune_end,
                  "gradual pruning: step the final sparsity is reached (0: 3/4 of the steps)")
      ->capture_default_str();
  cmd->add_option("--prune-every", d.prune_every, "gradual pruning: steps between prunings")
      ->capture_default_str();
  cmd->add_flag("--fake-quant-activations", o.fq_activations,
                "also fake-quantize activations with the ranges quantize-static (default "
                "options) calibrates on --data for the student before training");
  cmd->add_flag("--learn-activation-ranges", d.learn_activation_ranges,
                "with --fake-quant-activations: train the activations' clip ranges (LSQ/PACT) "
                "and write them for quantize-static{ranges=FILE} (--ranges-out)");
  cmd->add_option("--range-lr-scale", d.range_lr_scale,
                  "learned ranges: their learning rate is --lr times this")
      ->capture_default_str();
  cmd->add_option("--ranges-out", o.ranges_out,
                  "learned ranges: the ranges.json to write (default: OUTPUT.ranges.json)");
  cmd->add_option("--fake-quant-group", d.fake_quant_group,
                  "int4: weights per block along K (quantize-weights group-size)")
      ->capture_default_str();
  cmd->add_option("--threads", d.threads,
                  "LibTorch intra-op threads (bitwise resume needs the same count)")
      ->capture_default_str();
  cmd->add_option("--device", d.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dist-timeout", d.dist.timeout_s,
                  "data parallel (WORLD_SIZE > 1): seconds a rank waits for the others before "
                  "it fails")
      ->capture_default_str();
#endif
}

}  // namespace

#ifdef EDGEPRESS_HAVE_DISTILL
namespace {

// Function-preserving cleanup run on teacher and student before training: BatchNorm folds
// into the convolution, so its running statistics are not trained as weights and pruning
// sees the folded weights, as compress's pipeline does.
constexpr const char* kPrepare =
    "fold-constants,remove-identity,fold-batchnorm,eliminate-dead-nodes";

std::shared_ptr<ir::Model> Prepare(const std::string& path, passes::PassContext& ctx) {
  std::shared_ptr<ir::Model> m = LoadModel(path);
  passes::RunPipeline(*m, passes::ParsePipeline(kPrepare), ctx, /*verify=*/false);
  return m;
}

std::string Top1(const distill::EvalLog& e) {
  return e.top1 >= 0 ? fmt::format("top-1 {:.2f}%", e.top1 * 100) : "no labels";
}

// The options of the command line resolved: the distributed environment, the layer map,
// the checkpoint to write when only --resume is given.
distill::DistillOptions ResolveOptions(const DistillCli& o) {
  if (o.student.empty() == o.from_teacher.empty())
    throw Error(ErrorCode::kUsage, "distill: give --student or --student-from-teacher");
  distill::DistillOptions d = o.d;
  const double timeout = d.dist.timeout_s;
  d.dist = distill::DistributedFromEnv();
  d.dist.timeout_s = timeout;
  if (!o.layer_map.empty()) d.layer_map = distill::ParseLayerMap(o.layer_map, "--layer-map");
  if (!d.resume.empty() && d.checkpoint.empty()) d.checkpoint = d.resume;
  if (ModelFormatName(o.out).empty())
    throw Error(ErrorCode::kUsage, o.out + ": cannot tell the output format from the extension");
  return d;
}

// The student: the given model, or the teacher through --student-from-teacher's pipeline
// (parsed by the caller before anything is loaded, so a typo fails at once).
std::shared_ptr<ir::Model> MakeStudent(const DistillCli& o, const ir::Model& teacher,
                                       const std::vector<passes::PipelineStep>& spec,
                                       passes::PassContext& ctx, Progress& progress) {
  if (spec.empty()) return Prepare(o.student, ctx);
  std::shared_ptr<ir::Model> student = teacher.Clone();
  for (const auto& run : passes::RunPipeline(*student, spec, ctx, /*verify=*/true)) {
    std::string stats;
    for (const auto& [name, v] : run.stats)
      if (v) stats += fmt::format(" {}={}", name, v);
    progress.Log(
        fmt::format("student: {} {}{}", run.pass, run.changed ? "changed" : "unchanged", stats));
  }
  return student;
}

// Progress lines: evaluations, and a step line every 1/20 of the run with loss, learning
// rate, throughput and ETA.
distill::Callbacks ProgressCallbacks(Progress& progress, int64_t batch_size) {
  distill::Callbacks cb;
  cb.log = [&progress](const std::string& s) { progress.Log(s); };
  cb.on_eval = [&progress](const distill::EvalLog& e) {
    progress.Log(fmt::format("eval at step {}: {}, KD loss {:.4f}", e.step, Top1(e), e.kd_loss));
  };
  auto every = std::make_shared<int64_t>(0);
  cb.on_step = [&progress, every, batch_size](int64_t step, int64_t total, double loss, double lr,
                                              double sps) {
    if (*every == 0) {
      progress.Start("distill", total);
      *every = std::max<int64_t>(1, total / 20);
    }
    double eta = sps > 0 ? static_cast<double>((total - step) * batch_size) / sps : 0;
    std::string status = fmt::format("loss {:.4f} lr {:.2e} {:.0f} samples/s", loss, lr, sps);
    progress.Status(status);
    progress.Update(step, total);
    if (progress.mode() == Progress::Mode::kLines && (step % *every == 0 || step == total))
      progress.Log(fmt::format("step {}/{} {} ETA {:.0f}s", step, total, status, eta));
  };
  return cb;
}

// Rank 0's output: the student, the learned ranges, the summary.
void WriteResults(const DistillCli& o, const distill::DistillOptions& d,
                  const distill::DistillResult& r, const ir::Model& student, Progress& progress) {
  SaveModelOptions so;
  so.metadata = ProvenanceFor(o.teacher);
  so.metadata.emplace_back("distilled_from", o.teacher);
  SaveModel(student, o.out, so);
  if (d.learn_activation_ranges) {
    const std::string ranges = o.ranges_out.empty() ? o.out + ".ranges.json" : o.ranges_out;
    distill::SaveLearnedRanges(r.learned_ranges, ranges);
    progress.Log("learned activation ranges: " + ranges +
                 " (export: quantize-static{ranges=" + ranges + "})");
  }
  if (o.json) {
    std::fputs(distill::ResultJson(r).c_str(), stdout);
  } else if (!o.quiet) {
    if (r.has_eval && !r.evals.empty())
      std::fprintf(stderr, "teacher %s; student %s before, %s after (step %lld)\n",
                   Top1(r.teacher).c_str(), Top1(r.evals.front()).c_str(), Top1(r.best).c_str(),
                   static_cast<long long>(r.best.step));
    std::fprintf(stderr, "%s %s\n", r.finished ? "wrote" : "stopped early (checkpointed); wrote",
                 o.out.c_str());
  }
}

int RunDistill(const DistillCli& o) {
  distill::DistillOptions d = ResolveOptions(o);
  // The other ranks train silently and write nothing: rank 0 holds the same weights.
  const bool rank0 = d.dist.rank == 0;
  std::vector<passes::PipelineStep> spec;
  if (!o.from_teacher.empty()) spec = passes::ParsePipeline(o.from_teacher);

  Progress progress(Progress::Detect(o.quiet || o.json || !rank0));
  passes::PassContext ctx;
  ctx.seed = d.seed;
  ctx.data_files = o.data;
  std::shared_ptr<ir::Model> teacher = Prepare(o.teacher, ctx);
  std::shared_ptr<ir::Model> student = MakeStudent(o, *teacher, spec, ctx, progress);
  if (o.fq_activations) {
    std::unique_ptr<ir::Model> qdq = student->Clone();
    passes::RunPipeline(*qdq, passes::ParsePipeline("quantize-static"), ctx, /*verify=*/false);
    d.activation_quant = distill::ActivationQuantsOf(*qdq);
  }
  d.teacher_name = o.teacher;
  d.student_name = o.student.empty() ? o.teacher + " (" + o.from_teacher + ")" : o.student;

  if (d.dist.world_size > 1)
    progress.Log(fmt::format("data parallel: {} ranks through {}:{}, {} samples per rank per step",
                             d.dist.world_size, d.dist.master_addr, d.dist.master_port,
                             d.batch_size / d.dist.world_size));
  distill::DistillResult r = distill::Distill(teacher, student, o.data, o.eval, d,
                                              ProgressCallbacks(progress, d.batch_size));
  progress.Finish(fmt::format("{} steps, {:.0f} samples/s", r.steps, r.samples_per_second));
  if (rank0) WriteResults(o, d, r, *student, progress);
  return 0;
}

}  // namespace
#endif

void AddDistillCommand(CLI::App& app, Action& action) {
  auto o = std::make_shared<DistillCli>();
  CLI::App* cmd = app.add_subcommand(
      "distill", "Train a student model against a teacher (knowledge distillation)");
  AddDistillOptions(cmd, *o);
  cmd->callback([o, &action] {
    action = [o]() -> int {
#ifndef EDGEPRESS_HAVE_DISTILL
      ThrowUnsupported(
          "distill: this edgepress was built without LibTorch "
          "(configure with -DEDGEPRESS_WITH_TORCH=ON)");
#else
      return RunDistill(*o);
#endif
    };
  });
}

}  // namespace edgepress::tools
