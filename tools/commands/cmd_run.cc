// `edgepress run MODEL --input in.npz`: one inference on the native runtime (or, with
// --backend torch [--device cuda], on the LibTorch backend). Inputs are
// matched to the model's inputs by name (a dtype or shape mismatch is exit 1 with a
// message naming the input); outputs print as a summary, optionally save to .npz, and
// optionally compare against reference outputs with numpy's allclose rule
// |out - ref| <= atol + rtol * |ref| (exact for integer and bool outputs).
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "formats/npy/npy.h"
#include "ir/error.h"
#include "runtime/session.h"
#include "tools/backend.h"
#include "tools/cli.h"
#include "tools/input_files.h"
#include "tools/compress/recipe.h"
#include "tools/model_io.h"

namespace edgepress::tools {

namespace {

std::string TypeString(const ir::Tensor& t) {
  return std::string(ir::DTypeName(t.dtype())) + ir::ShapeToString(ir::MakeShape(t.shape()));
}

struct Diff {
  double max_abs = 0, max_rel = 0;
  uint64_t bad = 0;  // elements outside tolerance
};

Diff Compare(const ir::Tensor& out, const ir::Tensor& ref, double rtol, double atol) {
  Diff d;
  bool exact = !ir::IsFloat(out.dtype());
  std::vector<double> a = out.ToDouble(), b = ref.ToDouble();
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    double diff = std::fabs(a[i] - b[i]);
    if (std::isnan(diff)) diff = INFINITY;
    if (a[i] == b[i]) diff = 0;  // equal infinities
    d.max_abs = std::max(d.max_abs, diff);
    if (diff > 0) d.max_rel = std::max(d.max_rel, diff / std::max(std::fabs(b[i]), 1e-30));
    if (exact ? diff != 0 : !(diff <= atol + rtol * std::fabs(b[i]))) ++d.bad;
  }
  return d;
}

}  // namespace

void AddRunCommand(CLI::App& app, Action& action) {
  struct Options {
    std::string model, input, output, compare;
    double rtol = 1e-4, atol = 1e-5;
    int threads = 1;
    bool no_optimize = false;
    BackendChoice backend;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("run", "Run a model once (native runtime or LibTorch backend)");
  cmd->add_option("MODEL", o->model, "model file (.onnx, .epk)")->required();
  AddBackendOptions(cmd, o->backend);
  cmd->add_option("--input", o->input, "inputs by name (.npz, or .npy for one input)");
  cmd->add_option("--output", o->output, "write the outputs to this .npz");
  cmd->add_option("--compare", o->compare, "reference outputs (.npz) to compare against");
  cmd->add_option("--rtol", o->rtol, "relative tolerance for --compare")->capture_default_str();
  cmd->add_option("--atol", o->atol, "absolute tolerance for --compare")->capture_default_str();
  AddMaxMemoryOption(cmd);
  AddInputShapeOption(cmd);
  cmd->add_option("--threads", o->threads, "worker threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  cmd->add_flag("--no-optimize", o->no_optimize,
                "run the model as given, without the default cleanup/fusion passes");
  cmd->callback([o, &action] {
    action = [o] {
      runtime::SessionOptions so;
      so.threads = o->threads;
      auto session = MakeRunner(o->model, !o->no_optimize, o->backend, so);
      formats::NamedTensors inputs;
      if (!o->input.empty()) inputs = formats::LoadTensorFile(o->input);
      std::vector<std::string> wanted;
      for (const ir::Value* v : session->inputs()) wanted.push_back(v->name());
      inputs = KeepModelInputs(std::move(inputs), wanted, o->input);
      runtime::NamedTensors outputs;
      try {
        outputs = session->Run(inputs);
      } catch (const Error& e) {
        throw Error(e.code(), o->model + ": " + e.what());
      }
      for (const auto& [name, t] : outputs) fmt::print("{}: {}\n", name, TypeString(t));
      if (!o->output.empty()) {
        formats::SaveNpz(outputs, o->output);
        fmt::print("wrote {} output(s) to {}\n", outputs.size(), o->output);
      }
      if (o->compare.empty()) return 0;
      formats::NamedTensors ref = formats::LoadTensorFile(o->compare);
      std::map<std::string, const ir::Tensor*> by_name;
      for (const auto& [name, t] : outputs) by_name[name] = &t;
      bool ok = true;
      for (const auto& [name, r] : ref) {
        auto it = by_name.find(name);
        if (it == by_name.end()) {
          fmt::print("{}: missing from the model's outputs\n", name);
          ok = false;
          continue;
        }
        const ir::Tensor& t = *it->second;
        if (t.dtype() != r.dtype() || t.shape() != r.shape()) {
          fmt::print("{}: got {}, reference is {}\n", name, TypeString(t), TypeString(r));
          ok = false;
          continue;
        }
        Diff d = Compare(t, r, o->rtol, o->atol);
        fmt::print("{}: max abs error {:.3g}, max rel error {:.3g}, {} of {} outside tolerance\n",
                   name, d.max_abs, d.max_rel, d.bad, t.numel());
        if (d.bad) ok = false;
      }
      if (!ok) {
        std::fprintf(stderr, "edgepress: error: outputs differ from %s (rtol %g, atol %g)\n",
                     o->compare.c_str(), o->rtol, o->atol);
        return 1;
      }
      fmt::print("all {} output(s) match {} (rtol {}, atol {})\n", ref.size(), o->compare,
                 o->rtol, o->atol);
      return 0;
    };
  });
}

}  // namespace edgepress::tools
