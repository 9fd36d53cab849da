// `edgepress passes [NAME]` lists the passes this build has, with their options and
// statistics, straight from each pass's PassInfo (the same record recipes and reports use).
// `edgepress apply MODEL --passes P -o OUT` runs a pipeline written as text and writes the
// result in the format OUT's extension names.
#include <filesystem>
#include <fmt/format.h>

#include <cstdio>

#include "ir/error.h"
#include "ir/file_util.h"
#include "passes/registry.h"
#include "calibrate/dataset.h"
#include "tools/cli.h"
#include "tools/model_io.h"

namespace edgepress::tools {

namespace {
void PrintPass(const passes::PassInfo& info, bool details) {
  std::fputs(fmt::format("{:<24} {}\n", info.name, info.summary).c_str(), stdout);
  if (!details) return;
  if (info.options.empty()) std::fputs("  options: none\n", stdout);
  for (const auto& o : info.options) {
    std::string choices;
    for (const auto& c : o.choices) choices += (choices.empty() ? " {" : "|") + c;
    if (!choices.empty()) choices += "}";
    std::fputs(fmt::format("  {}={} ({}{}, default {})\n      {}\n", o.name, o.default_value,
                           passes::OptionTypeName(o.type), choices,
                           o.default_value.empty() ? "none" : o.default_value, o.help)
                   .c_str(),
               stdout);
  }
  std::string stats;
  for (const auto& s : info.statistics) stats += (stats.empty() ? "" : ", ") + s;
  std::fputs(fmt::format("  statistics: {}\n", stats.empty() ? "none" : stats).c_str(), stdout);
  if (info.needs_data) std::fputs("  needs calibration data (--data)\n", stdout);
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", c);
    else out += c;
  }
  return out;
}
}  // namespace

void AddPassesCommand(CLI::App& app, Action& action) {
  auto name = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("passes", "List compression passes and their options");
  cmd->add_option("NAME", *name, "show one pass in detail");
  cmd->callback([name, &action] {
    action = [name] {
      if (name->empty()) {
        for (const auto& e : passes::AllPasses()) PrintPass(e.info, false);
        std::fputs("\n`edgepress passes NAME` shows a pass's options and statistics.\n", stdout);
        return 0;
      }
      const passes::PassEntry* e = passes::FindPass(*name);
      if (!e) passes::CreatePass(*name, {});  // throws "unknown pass ... did you mean"
      PrintPass(e->info, true);
      return 0;
    };
  });
}

void AddApplyCommand(CLI::App& app, Action& action) {
  struct Options {
    std::string model, pipeline, out;
    std::vector<std::string> data;
    std::vector<std::string> layout;
    int threads = 1;
    uint64_t seed = 0;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("apply", "Run a pass pipeline on a model");
  cmd->add_option("MODEL", o->model, "input model (.onnx, .epk)")->required();
  cmd->add_option("--passes", o->pipeline,
                  "pipeline, e.g. 'fold-constants,fold-batchnorm,eliminate-dead-nodes'")
      ->required();
  cmd->add_option("-o,--output", o->out, "output model; format by extension (.onnx, .epk, .pt)")
      ->required();
  cmd->add_option("--data", o->data, "calibration data (.npz/.npy or a folder of them), for passes that need it");
  cmd->add_option("--layout", o->layout, "how an array feeds an input: NAME=batched|stacked|constant (repeatable; default inferred from the model's input shapes)");
  cmd->add_option("--threads", o->threads, "threads for passes that run the model")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--seed", o->seed, "seed for passes that sample");
  AddMaxMemoryOption(cmd);
  AddInputShapeOption(cmd);
  cmd->add_flag("--json", o->json, "print the pass log as JSON on stdout");
  cmd->callback([o, &action] {
    action = [o] {
      // Parse first: a typo in the pipeline fails before the model is read.
      auto steps = passes::ParsePipeline(o->pipeline);
      std::unique_ptr<ir::Model> m = LoadModel(o->model);
      passes::PassContext ctx;
      ctx.threads = o->threads;
      ctx.seed = o->seed;
      ctx.data_files = o->data;
      ctx.data_layout = o->layout;
      calibrate::ParseDataLayout(o->layout, "--layout");  // a malformed spec fails early
      for (const auto& f : o->data)
        if (!std::filesystem::exists(f)) throw Error(ErrorCode::kIo, "cannot open data file '" + f + "'");
      size_t before = m->graph->num_nodes();
      auto runs = passes::RunPipeline(*m, steps, ctx, /*verify=*/true);
      SaveModelOptions so;
      so.metadata = ProvenanceFor(o->model);
      so.metadata.emplace_back("pipeline", o->pipeline);
      SaveModel(*m, o->out, so);
      if (o->json) {
        std::string j = "{\"model\":\"" + JsonEscape(o->model) + "\",\"output\":\"" +
                        JsonEscape(o->out) + "\",\"nodes_before\":" + std::to_string(before) +
                        ",\"nodes_after\":" + std::to_string(m->graph->num_nodes()) +
                        ",\"passes\":[";
        for (size_t i = 0; i < runs.size(); ++i) {
          const auto& r = runs[i];
          j += (i ? "," : "") + std::string("{\"pass\":\"") + r.pass + "\",\"changed\":" +
               (r.changed ? "true" : "false") + fmt::format(",\"seconds\":{:.6f}", r.seconds) +
               ",\"options\":{";
          for (size_t k = 0; k < r.options.size(); ++k)
            j += (k ? "," : "") + std::string("\"") + r.options[k].first + "\":\"" +
                 JsonEscape(r.options[k].second) + "\"";
          j += "},\"stats\":{";
          size_t k = 0;
          for (const auto& [name, v] : r.stats)
            j += (k++ ? "," : "") + std::string("\"") + name + "\":" + std::to_string(v);
          j += "}}";
        }
        j += "]}\n";
        std::fputs(j.c_str(), stdout);
      } else {
        for (const auto& r : runs) {
          std::string stats;
          for (const auto& [name, v] : r.stats)
            if (v) stats += fmt::format(" {}={}", name, v);
          std::fputs(fmt::format("{:<24} {:<9} {:7.1f} ms{}\n", r.pass,
                                 r.changed ? "changed" : "unchanged", r.seconds * 1e3, stats)
                         .c_str(),
                     stderr);
        }
        std::fputs(fmt::format("{} nodes -> {} nodes; wrote {}\n", before,
                               m->graph->num_nodes(), o->out)
                       .c_str(),
                   stderr);
      }
      return 0;
    };
  });
}

}  // namespace edgepress::tools
