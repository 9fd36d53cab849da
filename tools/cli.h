// The edgepress command line. Each subcommand lives in tools/cmd_<name>.cc and registers
// itself through one Add<Name>Command function listed in cli.cc. This is the only place
// where an edgepress::Error becomes an exit code:
//   0 ok, 1 invalid input or unsupported model, 2 usage, 3 budget missed.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace edgepress::tools {

// Set by the chosen subcommand's callback; returns the exit code.
using Action = std::function<int()>;

void AddInspectCommand(CLI::App& app, Action& action);
void AddConvertCommand(CLI::App& app, Action& action);
void AddRunCommand(CLI::App& app, Action& action);
void AddBenchCommand(CLI::App& app, Action& action);
void AddPassesCommand(CLI::App& app, Action& action);
void AddApplyCommand(CLI::App& app, Action& action);
void AddCalibrateCommand(CLI::App& app, Action& action);
void AddCompareCommand(CLI::App& app, Action& action);
void AddSensitivityCommand(CLI::App& app, Action& action);
void AddCompressCommand(CLI::App& app, Action& action);
void AddRecipesCommand(CLI::App& app, Action& action);
void AddDistillCommand(CLI::App& app, Action& action);

// `--max-memory SIZE` on a command that runs models: the largest tensor one node may
// allocate ("4GiB", "512MB", bytes; default half the physical memory). Main applies it
// process-wide (runtime::SetDefaultMaxMemoryBytes) before the command's action, so every
// session the command creates (calibration, sensitivity, evaluation, trials) and constant
// folding obey it; a model that needs more fails naming the node and the size.
void AddMaxMemoryOption(CLI::App* cmd);

// --input-shape NAME=D0,D1,... (repeatable): shapes of a TorchScript model's inputs, which
// .pt files do not record; applied process-wide before the action (model_io.h).
void AddInputShapeOption(CLI::App* cmd);

// Runs the CLI; never throws.
int Main(int argc, char** argv);

}  // namespace edgepress::tools
