// Distill(): the training loop (see distill.h and docs/distill.md).
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <sstream>

#include "distill/checkpoint.h"
#include "distill/data_stream.h"
#include "distill/distill.h"
#include "distill/fake_quant.h"
#include "distill/gradual_pattern.h"
#include "distill/learned_ranges.h"
#include "distill/losses.h"
#include "distill/process_group.h"
#include "distill/schedule.h"
#include "ir/error.h"
#include "runtime/torch/torch_ops.h"
#include "runtime/torch/torch_session.h"

namespace edgepress::distill {

namespace {

using Clock = std::chrono::steady_clock;
using Feeds = std::vector<std::pair<std::string, at::Tensor>>;

std::vector<std::string> InputNames(const ir::Graph& g) {
  std::vector<std::string> names;
  for (const ir::Value* v : g.inputs())
    if (!v->is_initializer()) names.push_back(v->name());
  return names;
}

void CheckOptions(const DistillOptions& o) {
  auto usage = [](const std::string& m) { throw Error(ErrorCode::kUsage, m); };
  if (!(o.temperature > 0)) usage("--temperature must be > 0");
  if (o.alpha_kd < 0 || o.alpha_ce < 0 || o.alpha_hidden < 0)
    usage("--alpha-kd, --alpha-ce and --alpha-hidden must be >= 0");
  if (o.batch_size < 1 || o.eval_batch < 1) usage("--batch-size must be >= 1");
  if (o.steps < 0 || o.epochs < 0 || (o.steps == 0 && o.epochs == 0))
    usage("give --steps or --epochs (> 0)");
  if (o.eval_every < 0 || o.save_every < 0 || o.stop_after < 0 || o.log_every < 1)
    usage("--eval-every, --save-every and --stop-after must be >= 0, --log-every >= 1");
  if (o.threads < 1) usage("--threads must be >= 1");
  if (o.stop_after > 0 && o.checkpoint.empty())
    usage("--stop-after without --checkpoint would throw the run away");
  if (o.dist.world_size > 1 && o.batch_size % o.dist.world_size != 0)
    usage("--batch-size " + std::to_string(o.batch_size) + " is the global batch and must split " +
          "evenly over WORLD_SIZE=" + std::to_string(o.dist.world_size) + " ranks");
}

// FNV-1a: the same on every rank (std::hash need not be), for comparing run fingerprints.
int64_t Fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return static_cast<int64_t>(h >> 2);  // >= 0, so its negation fits too
}

// One batch of the stream as torch feeds (inputs by name) and labels (undefined if none).
struct Batch {
  Feeds feeds;
  at::Tensor labels;
};
Batch ToBatch(const std::vector<ir::Tensor>& arrays, const DataStream& ds,
              const std::vector<std::string>& inputs, const std::string& label) {
  Batch b;
  for (size_t i = 0; i < arrays.size(); ++i) {
    at::Tensor t = runtime::torch_ops::ToTorch(arrays[i], at::kCPU);
    if (ds.names()[i] == label && std::find(inputs.begin(), inputs.end(), label) == inputs.end())
      b.labels = t;
    else
      b.feeds.emplace_back(ds.names()[i], t);
  }
  return b;
}

std::string Shape(const at::Tensor& t) { return c10::str(t.sizes()); }

bool Better(const EvalLog& a, const EvalLog& b) {
  if (a.top1 >= 0 && b.top1 >= 0) return a.top1 > b.top1;
  return a.kd_loss < b.kd_loss;
}

class Trainer {
 public:
  Trainer(std::shared_ptr<ir::Model> teacher, std::shared_ptr<ir::Model> student,
          const DistillOptions& o, const Callbacks& cb)
      : o_(o), cb_(cb), student_model_(student) {
    CheckOptions(o);
    // N:M fixes the final sparsity: prune-to may be left 0 or must agree.
    const PrunePattern pattern = ParsePrunePattern(o.prune_pattern);
    if (pattern.kind == PrunePattern::Kind::kNM) {
      if (o_.prune_to == 0) o_.prune_to = pattern.implied_sparsity();
      if (std::fabs(o_.prune_to - pattern.implied_sparsity()) > 1e-12)
        throw Error(ErrorCode::kUsage, "prune pattern " + o.prune_pattern + " means sparsity " +
                                           std::to_string(pattern.implied_sparsity()) +
                                           ", not prune-to " + std::to_string(o.prune_to));
    }
    if (pattern.kind == PrunePattern::Kind::kChannels && !(o.prune_to > 0))
      throw Error(ErrorCode::kUsage,
                  "prune pattern channels needs --prune-to (the share of each group's channels)");
    torch::set_num_threads(o.threads);
    inputs_ = InputNames(*student->graph);
    std::vector<std::string> t_inputs = InputNames(*teacher->graph);
    for (const std::string& n : t_inputs)
      if (std::find(inputs_.begin(), inputs_.end(), n) == inputs_.end())
        ThrowInvalid(o.teacher_name + " has input '" + n + "' that " + o.student_name +
                     " does not have; teacher and student must take the same inputs");
    if (t_inputs.size() != inputs_.size())
      ThrowInvalid(o.student_name + " has " + std::to_string(inputs_.size()) + " inputs, " +
                   o.teacher_name + " " + std::to_string(t_inputs.size()) +
                   "; teacher and student must take the same inputs");
    size_t t_out = teacher->graph->outputs().size(), s_out = student->graph->outputs().size();
    if (t_out != s_out)
      ThrowInvalid(o.teacher_name + " has " + std::to_string(t_out) + " outputs, " +
                   o.student_name + " " + std::to_string(s_out) +
                   "; the student must produce what the teacher does");
    t_fetch_ = {teacher->graph->outputs()[0]->name()};
    s_fetch_ = {student->graph->outputs()[0]->name()};
    for (const LayerPair& p : o.layer_map) {
      if (!teacher->graph->FindValue(p.teacher))
        ThrowInvalid("--layer-map: '" + p.teacher + "' is not a value of " + o.teacher_name);
      if (!student->graph->FindValue(p.student))
        ThrowInvalid("--layer-map: '" + p.student + "' is not a value of " + o.student_name);
      t_fetch_.push_back(p.teacher);
      s_fetch_.push_back(p.student);
    }
    runtime::TorchSessionOptions so;
    so.device = o.device;
    so.threads = o.threads;
    teacher_ = Create(teacher, so, o.teacher_name);
    so.train_all_float = true;
    if (!o.activation_quant.empty()) {
      for (const ActivationQuant& a : o.activation_quant)
        if (student->graph->FindValue(a.value)) ++activations_;
      if (activations_ == 0)
        ThrowInvalid(o.student_name + ": none of the " + std::to_string(o.activation_quant.size()) +
                     " quantized activations names a value of the student");
      if (o.learn_activation_ranges) {
        learned_ = std::make_unique<LearnedRanges>(o.activation_quant, o.device);
        so.value_hook = learned_->Hook();
      } else {
        so.value_hook = ActivationFakeQuantHook(o.activation_quant);
      }
    } else if (o.learn_activation_ranges) {
      throw Error(ErrorCode::kUsage,
                  "learned activation ranges need the fake-quantized activations "
                  "(--fake-quant-activations)");
    }
    student_ = Create(student, so, o.student_name);
    if (student_->Parameters().empty())
      ThrowInvalid(o.student_name + " has no float weights to train");
    fq_mode_ = ParseFakeQuantMode(o.fake_quant);
    if (fq_mode_ != FakeQuantMode::kNone) {
      if (o.fake_quant_group < 16 || (o.fake_quant_group & (o.fake_quant_group - 1)) != 0)
        throw Error(ErrorCode::kUsage, "fake quantization group " +
                                           std::to_string(o.fake_quant_group) +
                                           ": expected a power of 2, at least 16");
      std::vector<std::string> names = student_->ParameterNames();
      for (const FakeQuantTarget& t : FindFakeQuantTargets(*student->graph)) {
        auto it = std::find(names.begin(), names.end(), t.weight);
        if (it != names.end()) fq_.emplace_back(static_cast<size_t>(it - names.begin()), t);
      }
      if (fq_.empty())
        ThrowInvalid(o.student_name +
                     " has no Conv, Gemm or MatMul float weights to fake-quantize");
    }
    // After the models are checked: a bad model fails every rank at once, not by timeout.
    if (o.dist.world_size > 1) pg_ = std::make_unique<ProcessGroup>(o.dist, o.device);
  }

  DistillResult Run(const std::vector<std::string>& train_files,
                    const std::vector<std::string>& eval_files);

 private:
  // The tensors training touches: the student's parameters, then the learned ranges' (so
  // a parameter's index is its index in the student), and everything the optimizer steps
  // (those and the feature projections).
  struct Tensors {
    std::vector<at::Tensor> params;
    std::vector<at::Tensor> trainables;
    size_t n_student = 0;
  };
  // Run's phases, in order.
  void OpenData(DataStream& train, const std::vector<std::string>& train_files,
                const std::vector<std::string>& eval_paths, DistillResult* r);
  Tensors CollectTensors(DistillResult* r);  // and the fixed masks
  std::unique_ptr<torch::optim::AdamW> MakeOptimizer(const Tensors& t) const;
  LrSchedule MakeSchedule(int64_t train_samples) const;
  int64_t PruneEnd(const LrSchedule& sched) const;  // checks the gradual pruning options
  void Resume(Tensors& t, torch::optim::AdamW& opt, DataStream& train, CheckpointState* st,
              std::vector<at::Tensor>* best, DistillResult* r);
  StepLog TrainStep(const Tensors& t, torch::optim::AdamW& opt, DataStream& train, int64_t step);
  void Finish(const Tensors& t, const CheckpointState& st, const std::vector<at::Tensor>& best,
              DistillResult* r);

  static std::unique_ptr<runtime::TorchSession> Create(std::shared_ptr<ir::Model> m,
                                                       const runtime::TorchSessionOptions& so,
                                                       const std::string& name) {
    try {
      return runtime::TorchSession::Create(std::move(m), so);
    } catch (const Error& e) {
      throw Error(e.code(), name + ": " + e.what());
    }
  }
  std::vector<at::Tensor> Forward(runtime::TorchSession& s, const Feeds& feeds,
                                  const std::vector<std::string>& fetch, const std::string& name) {
    try {
      return s.Forward(feeds, fetch);
    } catch (const Error& e) {
      throw Error(e.code(), name + ": " + e.what());
    }
  }
  void Probe(DataStream& first);
  void CheckDtypes(const DataStream& ds, const std::string& file) const;
  EvalLog Evaluate(int64_t step, bool teacher_only = false);
  void LossTerms(const Batch& b, at::Tensor* total, double* kd, double* ce, double* hidden);
  std::string Fingerprint(int64_t samples) const;
  // This process's place among the data-parallel ranks (rank 0 of 1 without them).
  int64_t Rank() const { return pg_ ? pg_->rank() : 0; }
  int64_t World() const { return pg_ ? pg_->world() : 1; }
  // Rank 0's trainables on every rank, after checking that all ranks run the same options
  // and data and stand at the same step.
  void Agree(const std::string& fingerprint, int64_t step,
             const std::vector<at::Tensor>& trainables);
  // Averages the gradients of `trainables` and the step's loss terms over the ranks.
  void AverageGradients(const std::vector<at::Tensor>& trainables, int64_t step, double* loss,
                        double* kd, double* ce, double* hidden);
  // Fake quantization (straight-through): the quantized values replace the targets'
  // weights for a forward/backward pass, and Restore() puts the float latents back before
  // the optimizer steps them. Snap() leaves the weights quantized (the written model).
  void Quantize(const std::vector<at::Tensor>& params);
  void Restore(const std::vector<at::Tensor>& params);
  // Gradual pruning: the prunable weights (parameter indices) and one pruning step.
  std::vector<size_t> PrunableParams() const;
  int64_t PruneTo(const std::vector<at::Tensor>& params, double sparsity);

  DistillOptions o_;
  Callbacks cb_;
  std::shared_ptr<ir::Model> student_model_;
  std::vector<std::string> inputs_, t_fetch_, s_fetch_;
  std::unique_ptr<runtime::TorchSession> teacher_, student_;
  std::vector<at::Tensor> masks_;  // per student parameter; undefined: free
  std::vector<int64_t> axes_;      // per layer pair: the projected axis, -1 none
  std::vector<at::Tensor> projections_;
  std::unique_ptr<DataStream> eval_;
  bool has_labels_ = false;
  int64_t masked_ = 0;
  int64_t activations_ = 0;  // student values fake-quantized
  FakeQuantMode fq_mode_ = FakeQuantMode::kNone;
  std::unique_ptr<LearnedRanges> learned_;              // learn_activation_ranges
  std::unique_ptr<GradualPattern> pattern_;             // prune_pattern other than unstructured
  std::vector<std::pair<size_t, FakeQuantTarget>> fq_;  // parameter index, target
  std::vector<std::pair<size_t, at::Tensor>> latent_;   // float values while quantized
  std::unique_ptr<ProcessGroup> pg_;                    // data parallel; null: one process
};

void Trainer::Agree(const std::string& fingerprint, int64_t step,
                    const std::vector<at::Tensor>& trainables) {
  if (!pg_) return;
  const int64_t h = Fnv1a(fingerprint);
  at::Tensor t = torch::tensor({h, -h, step, -step}, torch::kInt64);
  pg_->Max(t, "the run's options");
  if (t[0].item<int64_t>() != h || -t[1].item<int64_t>() != h)
    ThrowInvalid("distributed: rank " + std::to_string(Rank()) +
                 ": the ranks run with different options, models or data; every rank must be "
                 "given the same command line");
  if (t[2].item<int64_t>() != step || -t[3].item<int64_t>() != step)
    ThrowInvalid("distributed: rank " + std::to_string(Rank()) + " is at step " +
                 std::to_string(step) + ", another rank at step " +
                 std::to_string(t[2].item<int64_t>() != step ? t[2].item<int64_t>()
                                                             : -t[3].item<int64_t>()) +
                 "; every rank must --resume from the same checkpoint");
  torch::NoGradGuard ng;
  at::Tensor flat = Flatten(trainables);
  pg_->BroadcastFromRank0(flat, "the initial weights");
  Unflatten(flat, trainables);
}

// Each rank's loss is the mean over its equal share of the global batch, so the mean of
// the ranks' gradients is the gradient of the global batch's mean loss: clipping and AdamW
// then see what one process would. The loss terms ride along in the same exchange.
void Trainer::AverageGradients(const std::vector<at::Tensor>& trainables, int64_t step,
                               double* loss, double* kd, double* ce, double* hidden) {
  if (!pg_) return;
  torch::NoGradGuard ng;
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : trainables)
    if (p.grad().defined()) grads.push_back(p.grad());
  std::vector<at::Tensor> parts = grads;
  const at::Tensor& like = grads.empty() ? trainables[0] : grads[0];
  parts.push_back(torch::tensor({*loss, *kd, *ce, *hidden}, like.options()));
  at::Tensor flat = Flatten(parts);
  pg_->Sum(flat, "the gradients of step " + std::to_string(step + 1));
  flat.div_(static_cast<double>(World()));
  Unflatten(flat, grads);
  at::Tensor terms = flat.slice(0, flat.numel() - 4).to(torch::kCPU, torch::kDouble);
  *loss = terms[0].item<double>();
  *kd = terms[1].item<double>();
  *ce = terms[2].item<double>();
  *hidden = terms[3].item<double>();
}

void Trainer::Quantize(const std::vector<at::Tensor>& params) {
  torch::NoGradGuard ng;
  latent_.clear();
  std::vector<std::string> names =
      fq_.empty() ? std::vector<std::string>{} : student_->ParameterNames();
  for (const auto& [i, t] : fq_) {
    const at::Tensor& p = params[i];
    latent_.emplace_back(i, p.detach().clone());
    ir::Tensor q = FakeQuantize(runtime::torch_ops::FromTorch(p, ir::DType::kFloat32), t, fq_mode_,
                                o_.fake_quant_group);
    p.copy_(runtime::torch_ops::ToTorch(q, p.device()));
    // With activation ranges, the bias takes quantize-static's int32 grid too.
    auto sx = std::find_if(o_.activation_quant.begin(), o_.activation_quant.end(),
                           [&](const ActivationQuant& a) { return a.value == t.input; });
    auto b = std::find(names.begin(), names.end(), t.bias);
    if (t.bias.empty() || sx == o_.activation_quant.end() || b == names.end()) continue;
    const at::Tensor& bp = params[static_cast<size_t>(b - names.begin())];
    latent_.emplace_back(static_cast<size_t>(b - names.begin()), bp.detach().clone());
    const float scale = learned_ ? learned_->Scale(t.input) : sx->scale;
    ir::Tensor bq =
        FakeQuantizeBias(runtime::torch_ops::FromTorch(bp, ir::DType::kFloat32), q, t, scale);
    bp.copy_(runtime::torch_ops::ToTorch(bq, bp.device()));
  }
}

std::vector<size_t> Trainer::PrunableParams() const {
  std::vector<size_t> out;
  std::vector<std::string> names = student_->ParameterNames();
  for (const FakeQuantTarget& t : FindFakeQuantTargets(*student_->model().graph)) {
    auto it = std::find(names.begin(), names.end(), t.weight);
    if (it != names.end()) out.push_back(static_cast<size_t>(it - names.begin()));
  }
  return out;
}

// Zeroes the smallest |w| of each prunable weight until floor(sparsity * n) are zero; the
// already pruned (exact zeros, masked) sort first, so masks only grow. Returns the zeros
// added. A stable sort makes ties (and so a resumed run) deterministic.
int64_t Trainer::PruneTo(const std::vector<at::Tensor>& params, double sparsity) {
  if (pattern_) return pattern_->Prune(params, masks_, sparsity);
  torch::NoGradGuard ng;
  int64_t added = 0;
  for (size_t i : PrunableParams()) {
    const at::Tensor& p = params[i];
    const int64_t k = static_cast<int64_t>(std::floor(sparsity * static_cast<double>(p.numel())));
    at::Tensor mask = masks_[i].defined() ? masks_[i] : at::ones_like(p);
    const int64_t zeros = p.numel() - mask.sum().item<int64_t>();
    if (k <= zeros) continue;
    at::Tensor order = std::get<1>(
        at::sort(p.detach().abs().flatten().cpu(), c10::optional<bool>(true), 0, false));
    at::Tensor flat = mask.flatten().cpu().clone();
    flat.index_fill_(0, order.slice(0, 0, k), 0);
    masks_[i] = flat.reshape(p.sizes()).to(p.device());
    p.mul_(masks_[i]);
    added += k - zeros;
  }
  return added;
}

void Trainer::Restore(const std::vector<at::Tensor>& params) {
  torch::NoGradGuard ng;
  for (const auto& [i, latent] : latent_) params[i].copy_(latent);
  latent_.clear();
}

// The arrays feeding inputs must have the inputs' element types (the backend does not
// convert): a float64 image for a float32 model is named here, not deep in a kernel.
void Trainer::CheckDtypes(const DataStream& ds, const std::string& file) const {
  for (size_t i = 0; i < ds.names().size(); ++i) {
    const ir::Value* in = student_->model().graph->FindValue(ds.names()[i]);
    if (!in || !in->is_graph_input() || in->type.dtype == ir::DType::kUndefined) continue;
    if (in->type.dtype != ds.dtype(i))
      ThrowInvalid(file + ": array '" + ds.names()[i] + "' is " + ir::DTypeName(ds.dtype(i)) +
                   ", the model input is " + ir::DTypeName(in->type.dtype));
    if (!in->type.shape) continue;
    // Dim 0 is the batch; the others must be the input's where it declares them.
    const ir::Shape& want = *in->type.shape;
    const std::vector<int64_t>& row = ds.row_shape(i);
    bool fits = want.size() == row.size() + 1;
    for (size_t d = 1; fits && d < want.size(); ++d)
      fits = !want[d].known() || want[d].value == row[d - 1];
    if (!fits) {
      std::string got = "[N";
      for (int64_t v : row) got += "," + std::to_string(v);
      ThrowInvalid(file + ": array '" + ds.names()[i] + "' has samples of shape " + got +
                   "], the model input is " + ir::ShapeToString(want));
    }
  }
}

// Runs one batch through both models to check that they fit together and to size the
// layer-map projections.
void Trainer::Probe(DataStream& first) {
  torch::NoGradGuard ng;
  Batch b = ToBatch(first.Next(std::min(first.size(), o_.batch_size)), first, inputs_, o_.label);
  std::vector<at::Tensor> t = Forward(*teacher_, b.feeds, t_fetch_, o_.teacher_name);
  std::vector<at::Tensor> s = Forward(*student_, b.feeds, s_fetch_, o_.student_name);
  if (!t[0].sizes().equals(s[0].sizes()))
    ThrowInvalid(o_.teacher_name + " output '" + t_fetch_[0] + "' has shape " + Shape(t[0]) + ", " +
                 o_.student_name + " output '" + s_fetch_[0] + "' " + Shape(s[0]) +
                 "; the logits must match");
  if (b.labels.defined() && b.labels.numel() * t[0].size(-1) != t[0].numel())
    ThrowInvalid("array '" + o_.label + "' has shape " + Shape(b.labels) + " for logits " +
                 Shape(t[0]) + ": expected one class index per row of the logits");
  SplitMix64 rng(o_.seed ^ 0x70726f6aull);
  for (size_t i = 0; i < o_.layer_map.size(); ++i) {
    const LayerPair& p = o_.layer_map[i];
    int64_t axis = WidthAxis(s[i + 1], t[i + 1], "--layer-map " + p.teacher + ":" + p.student);
    axes_.push_back(axis);
    if (axis < 0) {
      projections_.emplace_back();
      continue;
    }
    // nn.Linear's default initialisation, U(-1/sqrt(in), 1/sqrt(in)), from the run's seed.
    int64_t out = t[i + 1].size(axis), in = s[i + 1].size(axis);
    std::vector<float> w(static_cast<size_t>(out * in));
    double bound = 1.0 / std::sqrt(static_cast<double>(in));
    for (float& x : w) x = static_cast<float>((2 * rng.Uniform() - 1) * bound);
    at::Tensor proj = torch::tensor(w).reshape({out, in}).to(s[0].device());
    projections_.push_back(proj.set_requires_grad(true));
  }
}

void Trainer::LossTerms(const Batch& b, at::Tensor* total, double* kd, double* ce, double* hidden) {
  std::vector<at::Tensor> t;
  {
    torch::NoGradGuard ng;
    t = Forward(*teacher_, b.feeds, t_fetch_, o_.teacher_name);
  }
  std::vector<at::Tensor> s = Forward(*student_, b.feeds, s_fetch_, o_.student_name);
  at::Tensor loss = KdLoss(s[0], t[0], o_.temperature);
  *kd = loss.item<double>();
  loss = loss * o_.alpha_kd;
  *ce = 0;
  if (has_labels_ && o_.alpha_ce > 0) {
    at::Tensor c = HardLoss(s[0], b.labels.to(s[0].device()));
    *ce = c.item<double>();
    loss = loss + c * o_.alpha_ce;
  }
  *hidden = 0;
  for (size_t i = 0; i < o_.layer_map.size() && o_.alpha_hidden > 0; ++i) {
    at::Tensor h = HiddenLoss(s[i + 1], t[i + 1], axes_[i], projections_[i]);
    *hidden += h.item<double>();
    loss = loss + h * o_.alpha_hidden;
  }
  *total = loss;
}

EvalLog Trainer::Evaluate(int64_t step, bool teacher_only) {
  std::vector<at::Tensor> params = student_->Parameters();
  if (!teacher_only) Quantize(params);  // the student is evaluated as it will be exported
  struct Back {
    Trainer* t;
    std::vector<at::Tensor>* p;
    bool on;
    ~Back() {
      if (on) t->Restore(*p);
    }
  } back{this, &params, !teacher_only};
  torch::NoGradGuard ng;
  EvalLog e;
  e.step = step;
  eval_->Seek(0, 0);
  int64_t correct = 0, seen = 0;
  double kd = 0;
  bool labels = eval_->has(o_.label);
  // Data parallel: rank r evaluates batches r, r + world, ...; the sums are exchanged.
  for (int64_t done = 0, index = 0; done < eval_->size(); ++index) {
    int64_t n = std::min(o_.eval_batch, eval_->size() - done);
    if (index % World() != Rank()) {
      eval_->Next(n, 0, 0);
      done += n;
      continue;
    }
    Batch b = ToBatch(eval_->Next(n), *eval_, inputs_, o_.label);
    at::Tensor t = Forward(*teacher_, b.feeds, {t_fetch_[0]}, o_.teacher_name)[0];
    at::Tensor s =
        teacher_only ? t : Forward(*student_, b.feeds, {s_fetch_[0]}, o_.student_name)[0];
    kd += KdLoss(s, t, o_.temperature).item<double>() * static_cast<double>(n);
    if (labels) correct += CountCorrect(s, b.labels);
    seen += n;
    done += n;
  }
  if (pg_) {
    at::Tensor sums = torch::tensor({static_cast<double>(correct), kd, static_cast<double>(seen)},
                                    torch::kDouble);
    pg_->Sum(sums, "the evaluation at step " + std::to_string(step));
    correct = static_cast<int64_t>(std::llround(sums[0].item<double>()));
    kd = sums[1].item<double>();
    seen = static_cast<int64_t>(std::llround(sums[2].item<double>()));
  }
  e.kd_loss = kd / static_cast<double>(seen);
  if (labels) e.top1 = static_cast<double>(correct) / static_cast<double>(seen);
  return e;
}

std::string Trainer::Fingerprint(int64_t samples) const {
  std::ostringstream f;
  f.precision(17);
  f << "seed=" << o_.seed << " batch=" << o_.batch_size << " buffer=" << o_.shuffle_buffer
    << " samples=" << samples << " lr=" << o_.lr << " min_lr=" << o_.min_lr
    << " wd=" << o_.weight_decay << " warmup=" << o_.warmup_steps << " decay=" << o_.decay
    << " clip=" << o_.clip_norm << " T=" << o_.temperature << " alpha=" << o_.alpha_kd << ","
    << o_.alpha_ce << "," << o_.alpha_hidden << " eval_every=" << o_.eval_every
    << " threads=" << o_.threads << " params=";
  if (fq_mode_ != FakeQuantMode::kNone)
    f << "fake_quant=" << FakeQuantModeName(fq_mode_) << "/" << o_.fake_quant_group << " ";
  for (const ActivationQuant& a : o_.activation_quant)
    f << "act=" << a.value << "/" << a.scale << "/" << a.zero_point << " ";
  std::vector<std::string> names = student_->ParameterNames();
  std::vector<at::Tensor> params = student_->Parameters();
  for (size_t i = 0; i < names.size(); ++i) f << names[i] << Shape(params[i]) << ";";
  for (const LayerPair& p : o_.layer_map) f << " map=" << p.teacher << ":" << p.student;
  if (!o_.keep_best) f << " keep_best=0";
  if (learned_) f << " learned_ranges=" << o_.range_lr_scale;
  if (pattern_) f << " prune_pattern=" << o_.prune_pattern;
  if (o_.prune_to > 0)
    f << " prune=" << o_.prune_to << "/" << o_.prune_start << "/" << o_.prune_end << "/"
      << o_.prune_every;  // absent when true: older checkpoints still match
  return f.str();
}

void Trainer::OpenData(DataStream& train, const std::vector<std::string>& train_files,
                       const std::vector<std::string>& eval_paths, DistillResult* r) {
  CheckDtypes(train, train_files[0]);
  has_labels_ = train.has(o_.label);
  r->has_labels = has_labels_;
  r->train_samples = train.size();
  {
    DataStream first(train_files, inputs_, {o_.label}, 1, 0, false);
    Probe(first);
  }
  if (eval_paths.empty()) return;
  std::vector<std::string> eval_files = ExpandDataFiles(eval_paths, "--eval");
  eval_ = std::make_unique<DataStream>(eval_files, inputs_, std::vector<std::string>{o_.label}, 1,
                                       0, false);
  CheckDtypes(*eval_, eval_files[0]);
  r->has_eval = true;
}

Trainer::Tensors Trainer::CollectTensors(DistillResult* r) {
  Tensors t;
  // Zeros in a weight (rank >= 2) stay zero: a pruned student keeps its masks. Biases and
  // norms train freely, and so does an all-zero weight (zero-initialised, not pruned).
  t.params = student_->Parameters();
  t.n_student = t.params.size();
  if (o_.prune_to > 0 &&
      ParsePrunePattern(o_.prune_pattern).kind != PrunePattern::Kind::kUnstructured)
    pattern_ = std::make_unique<GradualPattern>(student_->model(), student_->ParameterNames(),
                                                ParsePrunePattern(o_.prune_pattern));
  for (const at::Tensor& p : t.params) {
    at::Tensor mask;
    if (o_.fixed_masks && p.dim() >= 2) {
      at::Tensor zeros = p.detach().eq(0);
      int64_t z = zeros.sum().item<int64_t>();
      if (z > 0 && z < p.numel()) {
        mask = zeros.logical_not().to(p.scalar_type());
        masked_ += z;
      }
    }
    masks_.push_back(mask);
  }
  r->masked_weights = masked_;
  for (const auto& [i, target] : fq_) r->fake_quantized += t.params[i].numel();
  r->fake_quantized_activations = activations_;
  // Learned ranges ride with the student's parameters (best weights, checkpoints) after
  // them, so the parameter indices above stay the student's; no mask, no decay.
  if (learned_)
    for (const at::Tensor& p : learned_->Parameters()) {
      t.params.push_back(p);
      masks_.emplace_back();
    }
  t.trainables = t.params;
  for (const at::Tensor& p : projections_)
    if (p.defined()) t.trainables.push_back(p);
  return t;
}

// AdamW over the student's weights and the projections (group 0) and, with their own
// learning rate and no decay, the learned ranges (group 1).
std::unique_ptr<torch::optim::AdamW> Trainer::MakeOptimizer(const Tensors& t) const {
  std::vector<at::Tensor> main_group(t.params.begin(), t.params.begin() + t.n_student);
  for (const at::Tensor& p : projections_)
    if (p.defined()) main_group.push_back(p);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(main_group);
  if (learned_)
    groups.emplace_back(std::vector<at::Tensor>(t.params.begin() + t.n_student, t.params.end()),
                        std::make_unique<torch::optim::AdamWOptions>(
                            torch::optim::AdamWOptions(o_.lr).weight_decay(0)));
  return std::make_unique<torch::optim::AdamW>(
      groups, torch::optim::AdamWOptions(o_.lr).weight_decay(o_.weight_decay));
}

LrSchedule Trainer::MakeSchedule(int64_t train_samples) const {
  LrSchedule sched;
  sched.peak = o_.lr;
  sched.min_lr = o_.min_lr;
  sched.warmup = o_.warmup_steps;
  sched.decay = o_.decay;
  sched.total =
      o_.steps > 0 ? o_.steps : (o_.epochs * train_samples + o_.batch_size - 1) / o_.batch_size;
  sched.Validate();
  return sched;
}

int64_t Trainer::PruneEnd(const LrSchedule& sched) const {
  int64_t prune_end = o_.prune_end > 0 ? o_.prune_end : sched.total * 3 / 4;
  if (o_.prune_to > 0) {
    if (!(o_.prune_to < 1) || o_.prune_every < 1 || o_.prune_start < 0 ||
        prune_end <= o_.prune_start || prune_end >= sched.total)
      throw Error(ErrorCode::kUsage,
                  "gradual pruning: need 0 < prune-to < 1, prune-every >= 1 and prune-start < "
                  "prune-end < steps (" +
                      std::to_string(o_.prune_start) + ", " + std::to_string(prune_end) + ", " +
                      std::to_string(sched.total) + ")");
    if (!o_.fixed_masks)
      throw Error(ErrorCode::kUsage, "gradual pruning needs fixed masks (not --no-masks)");
  }
  return prune_end;
}

void Trainer::Resume(Tensors& t, torch::optim::AdamW& opt, DataStream& train, CheckpointState* st,
                     std::vector<at::Tensor>* best, DistillResult* r) {
  *st = LoadCheckpoint(o_.resume, st->fingerprint, t.trainables, *best, opt);
  if (o_.prune_to > 0) {
    // Gradual pruning's masks are the exact zeros of the restored weights (a masked
    // weight is exactly 0; an unmasked one reaching 0.0 exactly is not a practical case).
    torch::NoGradGuard ng;
    if (pattern_) pattern_->RestoreMasks(t.params, masks_);
    for (size_t i : pattern_ ? std::vector<size_t>{} : PrunableParams()) {
      at::Tensor keep = t.params[i].detach().ne(0).to(t.params[i].scalar_type());
      if (keep.sum().item<int64_t>() < t.params[i].numel()) masks_[i] = keep;
    }
  }
  train.Seek(st->epoch, st->position);
  r->resumed_from = st->step;
  if (cb_.log) cb_.log("resumed " + o_.resume + " at step " + std::to_string(st->step));
}

// One optimizer step on the next batch: forward at the fake-quantized weights, backward,
// gradients averaged over the ranks and masked, clipped, AdamW, masks re-applied.
StepLog Trainer::TrainStep(const Tensors& t, torch::optim::AdamW& opt, DataStream& train,
                           int64_t step) {
  const int64_t share = o_.batch_size / World();
  Batch b = ToBatch(train.Next(o_.batch_size, Rank() * share, share), train, inputs_, o_.label);
  const std::vector<at::Tensor>& params = t.params;
  at::Tensor loss;
  StepLog terms;
  Quantize(params);
  LossTerms(b, &loss, &terms.kd, &terms.ce, &terms.hidden);
  opt.zero_grad();
  loss.backward();
  Restore(params);  // the gradient at the quantized weights steps the latent ones (STE)
  terms.loss = loss.item<double>();
  AverageGradients(t.trainables, step, &terms.loss, &terms.kd, &terms.ce, &terms.hidden);
  torch::NoGradGuard ng;
  for (size_t i = 0; i < params.size(); ++i)
    if (masks_[i].defined() && params[i].grad().defined()) params[i].grad().mul_(masks_[i]);
  if (o_.clip_norm > 0) torch::nn::utils::clip_grad_norm_(t.trainables, o_.clip_norm);
  opt.step();
  // AdamW's decoupled decay and the moments cannot revive a masked weight through a
  // zero gradient alone (epsilon), but re-applying the mask makes the zero exact.
  for (size_t i = 0; i < params.size(); ++i)
    if (masks_[i].defined()) params[i].mul_(masks_[i]);
  if (learned_) learned_->Clamp();
  return terms;
}

// The weights written: the best evaluated ones (keep_best) on the export pass's grid.
void Trainer::Finish(const Tensors& t, const CheckpointState& st,
                     const std::vector<at::Tensor>& best, DistillResult* r) {
  r->curve = st.curve;
  r->evals = st.evals;
  r->best = st.has_best ? st.best : EvalLog{st.step, -1, 0};
  if (eval_ && st.has_best && o_.keep_best) {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < best.size(); ++i) t.params[i].copy_(best[i]);
  }
  Quantize(t.params);
  latent_.clear();
  student_->WriteBack();
  if (learned_) r->learned_ranges = learned_->Ranges();
  if (pattern_ && r->finished) {
    std::shared_ptr<ir::Model> m = student_model_;
    r->removed_params = pattern_->Finish(*m, o_.prune_to);
  }
}

DistillResult Trainer::Run(const std::vector<std::string>& train_paths,
                           const std::vector<std::string>& eval_paths) {
  DistillResult r;
  std::vector<std::string> train_files = ExpandDataFiles(train_paths, "--data");
  DataStream train(train_files, inputs_, {o_.label}, o_.shuffle_buffer, o_.seed, true);
  OpenData(train, train_files, eval_paths, &r);
  Tensors t = CollectTensors(&r);
  std::unique_ptr<torch::optim::AdamW> opt = MakeOptimizer(t);
  const LrSchedule sched = MakeSchedule(train.size());
  r.total_steps = sched.total;
  const int64_t prune_end = PruneEnd(sched);

  CheckpointState st;
  st.fingerprint = Fingerprint(train.size());
  std::vector<at::Tensor> best;
  if (!o_.resume.empty()) Resume(t, *opt, train, &st, &best, &r);
  // What decides the ranks' exchanges must agree too, or they would wait on each other.
  Agree(st.fingerprint + " eval=" + std::to_string(eval_ ? eval_->size() : -1) + "/" +
            std::to_string(o_.eval_batch) + " stop_after=" + std::to_string(o_.stop_after),
        st.step, t.trainables);
  if (eval_) r.teacher = Evaluate(0, /*teacher_only=*/true);
  if (o_.resume.empty() && eval_) {
    EvalLog e = Evaluate(0);
    st.evals.push_back(e);
    if (cb_.on_eval) cb_.on_eval(e);
    if (o_.prune_to <= 0) {  // with gradual pruning, the dense start is no candidate
      st.best = e;
      st.has_best = true;
      for (const at::Tensor& p : t.params) best.push_back(p.detach().clone());
    }
  }

  auto save = [&] {
    if (o_.checkpoint.empty() || Rank() != 0) return;  // the ranks hold the same state
    st.epoch = train.epoch();
    st.position = train.position();
    SaveCheckpoint(o_.checkpoint, st, t.trainables, best, *opt);
  };
  auto evaluate = [&] {
    EvalLog e = Evaluate(st.step);
    st.evals.push_back(e);
    if (cb_.on_eval) cb_.on_eval(e);
    if (!o_.keep_best) {
      st.best = e;  // the last evaluation describes the weights written
      st.has_best = true;
    } else if (o_.prune_to > 0 && st.step <= prune_end) {
      // Gradual pruning: only weights at the final sparsity (pruned at step prune_end,
      // i.e. evaluated after it) may be kept, else "best" would undo the pruning.
    } else if (!st.has_best || Better(e, st.best)) {
      st.best = e;
      st.has_best = true;
      best.clear();
      for (const at::Tensor& p : t.params) best.push_back(p.detach().clone());
    }
  };

  double train_seconds = 0;
  int64_t run_steps = 0;
  StepLog acc;
  int64_t acc_n = 0;
  while (st.step < sched.total && !(o_.stop_after > 0 && st.step >= o_.stop_after)) {
    Clock::time_point t0 = Clock::now();
    const double lr = sched.At(st.step);
    for (size_t gi = 0; gi < opt->param_groups().size(); ++gi)
      static_cast<torch::optim::AdamWOptions&>(opt->param_groups()[gi].options())
          .lr(gi == 0 ? lr : lr * o_.range_lr_scale);
    if (o_.prune_to > 0 && st.step >= o_.prune_start && st.step <= prune_end &&
        ((st.step - o_.prune_start) % o_.prune_every == 0 || st.step == prune_end))
      r.pruned_weights +=
          PruneTo(t.params, CubicSparsity(o_.prune_to, o_.prune_start, prune_end, st.step));
    const StepLog terms = TrainStep(t, *opt, train, st.step);
    ++st.step;
    ++run_steps;
    train_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    acc.loss += terms.loss, acc.kd += terms.kd, acc.ce += terms.ce, acc.hidden += terms.hidden;
    acc.lr += lr;
    // Points at multiples of log_every, so a resumed run's curve lines up with an
    // uninterrupted one (the interval a resume splits averages the steps this run saw).
    if (++acc_n, st.step % o_.log_every == 0 || st.step == sched.total) {
      double n = static_cast<double>(acc_n);
      st.curve.push_back(
          {st.step, acc.loss / n, acc.kd / n, acc.ce / n, acc.hidden / n, acc.lr / n});
      acc = StepLog();
      acc_n = 0;
    }
    if (cb_.on_step)
      cb_.on_step(st.step, sched.total, terms.loss, lr,
                  static_cast<double>(run_steps * o_.batch_size) / std::max(train_seconds, 1e-9));
    if (eval_ && o_.eval_every > 0 && st.step % o_.eval_every == 0 && st.step < sched.total)
      evaluate();
    if (o_.save_every > 0 && st.step % o_.save_every == 0 && st.step < sched.total) save();
  }
  r.finished = st.step >= sched.total;
  if (r.finished && eval_ && (st.evals.empty() || st.evals.back().step != st.step)) evaluate();
  save();

  r.steps = st.step;
  r.world_size = static_cast<int>(World());
  r.rank = static_cast<int>(Rank());
  r.seconds = train_seconds;
  r.samples_per_second =
      train_seconds > 0 ? static_cast<double>(run_steps * o_.batch_size) / train_seconds : 0;
  Finish(t, st, best, &r);
  return r;
}

}  // namespace

DistillResult Distill(std::shared_ptr<ir::Model> teacher, std::shared_ptr<ir::Model> student,
                      const std::vector<std::string>& train_files,
                      const std::vector<std::string>& eval_files, const DistillOptions& options,
                      const Callbacks& callbacks) {
  try {
    DistillOptions o = options;
    // torchrun's convention: one GPU per rank on a machine, chosen by LOCAL_RANK.
    if (o.dist.world_size > 1 && o.device == "cuda")
      o.device = "cuda:" + std::to_string(o.dist.local_rank);
    Trainer t(std::move(teacher), std::move(student), o, callbacks);
    return t.Run(train_files, eval_files);
  } catch (const c10::Error& e) {
    // A LibTorch check the converters' own validation did not anticipate (e.g. a shape
    // that only fails in an op): an error with LibTorch's message, never a crash.
    throw Error(ErrorCode::kInvalidInput, "distill: " + std::string(e.what_without_backtrace()));
  }
}

}  // namespace edgepress::distill
