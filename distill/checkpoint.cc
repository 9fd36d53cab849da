#include "distill/checkpoint.h"

#include <torch/torch.h>

#include <sstream>

#include "ir/error.h"
#include "ir/file_util.h"

namespace edgepress::distill {

namespace {

constexpr int64_t kFormatVersion = 1;

at::Tensor Ints(std::vector<int64_t> v) { return torch::tensor(v, torch::kLong); }

at::Tensor CurveTensor(const std::vector<StepLog>& curve) {
  std::vector<double> v;
  for (const StepLog& s : curve)
    v.insert(v.end(), {static_cast<double>(s.step), s.loss, s.kd, s.ce, s.hidden, s.lr});
  return torch::tensor(v, torch::kDouble).reshape({static_cast<int64_t>(curve.size()), 6});
}

at::Tensor EvalTensor(const std::vector<EvalLog>& evals) {
  std::vector<double> v;
  for (const EvalLog& e : evals)
    v.insert(v.end(), {static_cast<double>(e.step), e.top1, e.kd_loss});
  return torch::tensor(v, torch::kDouble).reshape({static_cast<int64_t>(evals.size()), 3});
}

}  // namespace

void SaveCheckpoint(const std::string& path, const CheckpointState& st,
                    const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& best,
                    const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive ar;
  ar.write("format", Ints({kFormatVersion}));
  ar.write("fingerprint", c10::IValue(st.fingerprint));
  ar.write("position", Ints({st.step, st.epoch, st.position, st.has_best ? 1 : 0}));
  ar.write("best_eval", EvalTensor({st.best}));
  ar.write("curve", CurveTensor(st.curve));
  ar.write("evals", EvalTensor(st.evals));
  for (size_t i = 0; i < params.size(); ++i)
    ar.write("param." + std::to_string(i), params[i].detach().cpu());
  if (st.has_best)
    for (size_t i = 0; i < best.size(); ++i)  // the student's weights only: a prefix of params
      ar.write("best." + std::to_string(i), best[i].detach().cpu());
  torch::serialize::OutputArchive opt;
  optimizer.save(opt);
  ar.write("optimizer", opt);
  std::ostringstream bytes;
  ar.save_to(bytes);
  WriteFileAtomic(path, bytes.str());
}

CheckpointState LoadCheckpoint(const std::string& path, const std::string& fingerprint,
                               std::vector<at::Tensor>& params, std::vector<at::Tensor>& best,
                               torch::optim::Optimizer& optimizer) {
  std::istringstream bytes(ReadFileToString(path));
  CheckpointState st;
  try {
    torch::serialize::InputArchive ar;
    ar.load_from(bytes);
    at::Tensor format;
    ar.read("format", format);
    if (format.numel() != 1 || format.item<int64_t>() != kFormatVersion)
      ThrowInvalid(path + ": checkpoint format " + std::to_string(format.item<int64_t>()) +
                   " is not the one this edgepress writes (" + std::to_string(kFormatVersion) +
                   ")");
    c10::IValue fp;
    ar.read("fingerprint", fp);
    st.fingerprint = fp.toStringRef();
    if (st.fingerprint != fingerprint)
      ThrowInvalid(path +
                   ": this checkpoint belongs to another run; resume with the options "
                   "and models it was written with (it has: " +
                   st.fingerprint + "; this run: " + fingerprint + ")");
    at::Tensor pos, best_eval, curve, evals;
    ar.read("position", pos);
    ar.read("best_eval", best_eval);
    ar.read("curve", curve);
    ar.read("evals", evals);
    st.step = pos[0].item<int64_t>();
    st.epoch = pos[1].item<int64_t>();
    st.position = pos[2].item<int64_t>();
    st.has_best = pos[3].item<int64_t>() != 0;
    auto eval_at = [](const at::Tensor& t, int64_t i) {
      return EvalLog{static_cast<int64_t>(t[i][0].item<double>()), t[i][1].item<double>(),
                     t[i][2].item<double>()};
    };
    st.best = eval_at(best_eval, 0);
    for (int64_t i = 0; i < curve.size(0); ++i) {
      at::Tensor r = curve[i];
      st.curve.push_back({static_cast<int64_t>(r[0].item<double>()), r[1].item<double>(),
                          r[2].item<double>(), r[3].item<double>(), r[4].item<double>(),
                          r[5].item<double>()});
    }
    for (int64_t i = 0; i < evals.size(0); ++i) st.evals.push_back(eval_at(evals, i));
    torch::NoGradGuard ng;
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor t;
      ar.read("param." + std::to_string(i), t);
      if (!t.sizes().equals(params[i].sizes()))
        ThrowInvalid(path + ": parameter " + std::to_string(i) + " has shape " +
                     c10::str(t.sizes()) + ", the model's " + c10::str(params[i].sizes()));
      params[i].copy_(t);
    }
    best.clear();
    // A fresh tensor each time: try_read into a defined tensor re-points that tensor.
    for (size_t i = 0; st.has_best && i < params.size(); ++i) {
      at::Tensor t;
      if (!ar.try_read("best." + std::to_string(i), t)) break;
      best.push_back(t.to(params[i].device()));
    }
    torch::serialize::InputArchive opt;
    ar.read("optimizer", opt);
    optimizer.load(opt);
  } catch (const c10::Error& e) {
    ThrowInvalid(path + ": not a readable distill checkpoint (" + e.what_without_backtrace() + ")");
  }
  return st;
}

}  // namespace edgepress::distill
