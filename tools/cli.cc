#include "tools/cli.h"

#include <cstdio>
#include <exception>
#include <new>

#include "ir/error.h"

namespace edgepress::tools {

namespace {
int ExitCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUsage: return 2;
    case ErrorCode::kBudget: return 3;
    default: return 1;
  }
}
}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"edgepress: compress ONNX/TorchScript models for edge devices and prove "
               "their accuracy, latency and size with a native runtime",
               "edgepress"};
  app.set_version_flag("--version", std::string("edgepress ") + EDGEPRESS_VERSION);
  app.require_subcommand(1);
  Action action;
  // One line per subcommand, in the order `edgepress --help` lists them.
  AddInspectCommand(app, action);
  AddConvertCommand(app, action);
  AddRunCommand(app, action);
  AddBenchCommand(app, action);
  AddPassesCommand(app, action);
  AddApplyCommand(app, action);
  AddCalibrateCommand(app, action);
  AddCompareCommand(app, action);
  AddSensitivityCommand(app, action);
  AddCompressCommand(app, action);
  AddRecipesCommand(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help/version (rc 0) or the usage error
    return rc == 0 ? 0 : 2;
  }
  try {
    return action ? action() : 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "edgepress: error: %s\n", e.what());
    if (e.code() == ErrorCode::kInternal)
      std::fprintf(stderr, "edgepress: this is a bug in edgepress; please report it\n");
    return ExitCodeFor(e.code());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "edgepress: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgepress: internal error: %s\n", e.what());
    return 1;
  }
}

}  // namespace edgepress::tools
