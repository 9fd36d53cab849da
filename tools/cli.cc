#include "tools/cli.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "ir/error.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "tools/model_io.h"
#include "tools/compress/recipe.h"

namespace edgepress::tools {

namespace {
int ExitCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUsage: return 2;
    case ErrorCode::kBudget: return 3;
    default: return 1;
  }
}
// The text of --max-memory of the command being run (one command per process).
std::string& MaxMemoryText() {
  static std::string text;
  return text;
}
std::vector<std::string>& InputShapeTexts() {
  static std::vector<std::string> texts;
  return texts;
}
}  // namespace

void AddInputShapeOption(CLI::App* cmd) {
  cmd->add_option("--input-shape", InputShapeTexts(),
                  "shape of a TorchScript input, which .pt files do not record: NAME=D0,D1,... "
                  "(-1 keeps a dim symbolic; repeatable)");
}

void AddMaxMemoryOption(CLI::App* cmd) {
  cmd->add_option("--max-memory", MaxMemoryText(),
                  "largest tensor one node may allocate (\"4GiB\", \"512MB\"; default: half "
                  "the physical memory); a model that needs more fails naming the node");
}

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
  AddDistillCommand(app, action);
  // CLI11 says only "A subcommand is required" for a mistyped command: name the word and
  // the nearest command instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
      names.push_back(sub->get_name());
    if (std::find(names.begin(), names.end(), argv[1]) == names.end()) {
      std::string near = passes::Nearest(argv[1], names), all;
      for (const std::string& n : names) all += (all.empty() ? "" : ", ") + n;
      std::fprintf(stderr, "edgepress: error: unknown command '%s'%s\ncommands: %s (see --help)\n",
                   argv[1], near.empty() ? "" : (" (did you mean '" + near + "'?)").c_str(),
                   all.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help/version (rc 0) or the usage error
    return rc == 0 ? 0 : 2;
  }
  try {
    if (!InputShapeTexts().empty()) SetTorchScriptInputShapes(ParseInputShapes(InputShapeTexts()));
    if (!MaxMemoryText().empty())
      runtime::SetDefaultMaxMemoryBytes(ParseMaxMemoryOption(MaxMemoryText()));
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
