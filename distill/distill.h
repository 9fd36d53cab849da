// Teacher-student distillation through the LibTorch backend (runtime/torch).
//
// Distill() trains a student ir::Model against a teacher ir::Model on data streamed from
// .npz files: KL divergence on temperature-softened logits (scaled by T^2, Hinton et al.),
// hard-label cross-entropy when the data has labels, and MSE between intermediate values
// named in a layer map, through a learned linear projection when their widths differ.
// AdamW with warm-up then cosine or linear decay, gradient-norm clipping; evaluation every
// N steps keeps the best weights; checkpoints are written atomically and a resumed run ends
// with the same weights, bit for bit on the CPU, as an uninterrupted one (docs/distill.md).
//
// Zeros in the student's weights stay zero (fixed masks): a student made by pruning keeps
// its sparsity through training. A weight that is zero throughout (a zero-initialised
// layer) is not a pruned one and trains freely; `fixed_masks = false` frees every zero.
//
// This header has no LibTorch include, so the CLI can call Distill() without compiling
// against LibTorch; only the .cc files of distill/ do.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distill/fake_quant.h"
#include "distill/learned_ranges.h"
#include "ir/graph.h"

namespace edgepress::distill {

struct LayerPair {
  std::string teacher, student;  // value names (graph outputs or intermediates)
};
// "t1:s1,t2:s2" (the CLI's --layer-map); throws Error(kUsage) naming `where`.
std::vector<LayerPair> ParseLayerMap(const std::string& text, const std::string& where);

// Data parallel (docs/distill.md), configured as torchrun configures PyTorch: each of
// world_size processes trains on its 1/world_size of every global batch; gradients are
// averaged over a c10d process group (Gloo on the CPU) before clipping and the AdamW step,
// so all ranks hold the same weights. world_size 1 is the single-process run.
struct DistributedOptions {
  int world_size = 1;
  int rank = 0;
  int local_rank = 0;  // the CUDA device of this rank on its machine (cuda:local_rank)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Connecting to rank 0's store, and every exchange: a rank that exits or hangs makes the
  // others fail with an Error after this long instead of waiting for ever.
  double timeout_s = 60;
};
// WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT from the environment (unset
// WORLD_SIZE: one process). Throws Error(kUsage) naming a malformed variable.
DistributedOptions DistributedFromEnv();

struct DistillOptions {
  // Losses: alpha_kd * KL(T) * T^2 + alpha_ce * CE(labels) + alpha_hidden * sum(MSE).
  double alpha_kd = 1.0;
  double alpha_ce = 1.0;      // used only when the training data has `label`
  double alpha_hidden = 1.0;  // used only with a layer map
  double temperature = 2.0;
  std::string label = "label";  // the array with class indices (as compress/eval name it)
  std::vector<LayerPair> layer_map;

  // Optimisation.
  double lr = 1e-3;
  double weight_decay = 0.01;
  int64_t warmup_steps = 0;
  std::string decay = "cosine";  // cosine | linear | constant (after warm-up)
  double min_lr = 0.0;           // where cosine/linear decay ends
  double clip_norm = 1.0;        // <= 0: no clipping
  int64_t batch_size = 32;
  int64_t epochs = 1;  // used when steps == 0: steps = ceil(epochs * samples / batch_size)
  int64_t steps = 0;
  uint64_t seed = 0;
  int64_t shuffle_buffer = 1024;  // samples; 1 = no shuffling within the stream

  // Evaluation and checkpoints.
  int64_t eval_every = 0;  // steps; 0: only before and after training
  // Leave with the best evaluated weights (true) or the last ones (false). Selecting on the
  // evaluation data makes its accuracy optimistic; compress's step keeps the last.
  bool keep_best = true;
  int64_t eval_batch = 256;
  std::string checkpoint;  // path; empty: no checkpoints
  int64_t save_every = 0;  // steps; 0: only at the end (and at stop_after)
  std::string resume;      // a checkpoint to continue from
  int64_t stop_after = 0;  // end this run after that many steps in total (0: run to `steps`)
  int64_t log_every = 10;  // steps per point of the loss curve

  bool fixed_masks = true;

  // Gradual magnitude pruning (Zhu & Gupta 2017): before step t in [prune_start, prune_end],
  // every prune_every steps and at prune_end, each Conv/Gemm/MatMul weight is pruned to
  // CubicSparsity(prune_to, prune_start, prune_end, t) by |w| within its layer; a pruned
  // weight stays zero (its mask is fixed). prune_to 0: off. prune_end 0: 3/4 of the steps.
  double prune_to = 0;
  int64_t prune_start = 0, prune_end = 0, prune_every = 10;
  // Which weights a pruning step zeroes (distill/gradual_pattern.h): "unstructured",
  // "N:M" (2:4, 4:8; prune_to may stay 0: it is (M-N)/M) or "channels" (whole channels
  // with their dependencies, removed from the written student at the end).
  std::string prune_pattern = "unstructured";

  // Distillation-aware quantization (distill/fake_quant.h): the Conv/Gemm/MatMul weights
  // train through fake quantization with a straight-through estimator and leave on the
  // export pass's grid. "none", "int8", "int4" or "ternary".
  std::string fake_quant = "none";
  int64_t fake_quant_group = 32;  // int4: weights per block along K (quantize-weights group-size)
  // Activations fake-quantized with these fixed ranges (ActivationQuantsOf the student after
  // quantize-static); values the student does not have are ignored.
  std::vector<ActivationQuant> activation_quant;
  // Learn those ranges (distill/learned_ranges.h, LSQ/PACT) instead of holding them fixed;
  // their learning rate is lr * range_lr_scale (no weight decay).
  bool learn_activation_ranges = false;
  double range_lr_scale = 1.0;

  std::string device = "cpu";
  // How errors name the two models (their files).
  std::string teacher_name = "teacher", student_name = "student";
  int threads = 1;  // intra-op threads; bitwise resume holds for the same count
  DistributedOptions dist;
};

struct StepLog {
  int64_t step = 0;  // the step the averages end at
  double loss = 0, kd = 0, ce = 0, hidden = 0, lr = 0;
};
struct EvalLog {
  int64_t step = 0;
  double top1 = -1;    // -1: the eval data has no labels
  double kd_loss = 0;  // KL(T) * T^2 to the teacher, mean over the eval samples
};

struct DistillResult {
  std::vector<StepLog> curve;  // one point per log_every steps
  std::vector<EvalLog> evals;  // before training, every eval_every, after training
  EvalLog teacher;             // the teacher on the eval data (top1 when labelled)
  EvalLog best;                // the weights the student leaves with
  bool has_eval = false;
  bool has_labels = false;  // training data had `label`
  int64_t steps = 0, total_steps = 0, resumed_from = 0;
  int64_t train_samples = 0;                   // in the training data (one epoch)
  int64_t masked_weights = 0;                  // weights held at zero
  int64_t fake_quantized = 0;                  // weights trained through fake quantization
  int64_t fake_quantized_activations = 0;      // values of the student fake-quantized
  int64_t pruned_weights = 0;                  // zeros gradual pruning added
  int64_t removed_params = 0;                  // channels pattern: parameters removed
  // With learn_activation_ranges: the trained clip range of every quantized value, for
  // quantize-static{ranges=FILE} (SaveLearnedRanges).
  std::vector<LearnedRange> learned_ranges;
  double seconds = 0, samples_per_second = 0;  // this run's training loop
  bool finished = false;                       // false when stop_after ended the run early
  int world_size = 1, rank = 0;                // data parallel: this process's place
};

struct Callbacks {
  // After every step: the step done (1-based), the total, the loss, lr and samples/s.
  std::function<void(int64_t step, int64_t total, double loss, double lr, double samples_per_s)>
      on_step;
  std::function<void(const EvalLog&)> on_eval;
  std::function<void(const std::string&)> log;
};

// Trains `student` against `teacher` on `train_files` (.npz files or folders of them),
// evaluating on `eval_files` (may be empty). On return the student's initializers hold the
// trained weights: the best evaluated ones when there is eval data and keep_best, else the
// last (and DistillResult::best is then the last evaluation).
// The two models must have the same inputs; their first outputs are the logits.
// Throws edgepress::Error naming the file or option for bad input (mismatched models,
// missing arrays, a checkpoint of another run).
// With options.dist.world_size > 1 every rank calls Distill() with the same models and
// options; all leave with the same weights and summary. Only rank 0 writes the checkpoint
// (every rank reads it on resume). A rank that exits or stops answering makes the others
// throw Error(kIo) naming their rank and the timeout.
DistillResult Distill(std::shared_ptr<ir::Model> teacher, std::shared_ptr<ir::Model> student,
                      const std::vector<std::string>& train_files,
                      const std::vector<std::string>& eval_files, const DistillOptions& options,
                      const Callbacks& callbacks = {});

// The summary as JSON (loss curve, evaluations, teacher, throughput).
std::string ResultJson(const DistillResult& r);

}  // namespace edgepress::distill
