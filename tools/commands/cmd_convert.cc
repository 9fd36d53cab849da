// `edgepress convert IN OUT`: import a model and write it in the format OUT's extension
// names (.onnx, .epk, or .pt: TorchScript, in builds with LibTorch). The written model is normalised (see formats/onnx/onnx.h) and,
// for ONNX, checked with onnx::checker before it replaces anything.
#include <fmt/format.h>

#include <cstdio>

#include "tools/cli.h"
#include "tools/model_io.h"

namespace edgepress::tools {

void AddConvertCommand(CLI::App& app, Action& action) {
  struct Options {
    std::string in, out;
    bool external_data = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("convert", "Convert a model between formats (by extension)");
  cmd->add_option("IN", o->in, "input model (.onnx, .epk, .pt)")->required();
  cmd->add_option("OUT", o->out, "output model (.onnx, .epk, .pt)")->required();
  AddInputShapeOption(cmd);
  cmd->add_flag("--external-data", o->external_data,
                "ONNX: store large initializers in OUT.data next to OUT");
  cmd->callback([o, &action] {
    action = [o] {
      std::unique_ptr<ir::Model> m = LoadModel(o->in);
      SaveModelOptions so;
      so.external_data = o->external_data;
      so.metadata = ProvenanceFor(o->in);
      SaveModel(*m, o->out, so);
      std::fputs(fmt::format("wrote {}{}\n", o->out,
                             o->external_data ? " (+ " + o->out + ".data)" : "").c_str(),
                 stderr);
      return 0;
    };
  });
}

}  // namespace edgepress::tools
