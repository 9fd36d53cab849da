// `edgepress recipes list|show|validate`: the shipped recipes, one recipe fully resolved
// (after extends) as YAML, and a schema check of recipe files for editors and CI.
// The recipe format is docs/recipes.md; loading and checking is tools/compress/recipe.cc.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "ir/error.h"
#include "tools/cli.h"
#include "tools/compress/recipe.h"

namespace edgepress::tools {

namespace {

struct Listed {
  std::string name, path, target, arch, backend, description, error;
  size_t passes = 0;
};

Listed Describe(const std::string& name, const std::string& path) {
  Listed l;
  l.name = name;
  l.path = path;
  try {
    Recipe r = LoadRecipe(path);
    l.target = r.target.name;
    l.arch = r.target.arch;
    l.backend = r.target.backend;
    l.description = r.description;
    l.passes = r.pipeline.size();
  } catch (const Error& e) {
    l.error = e.what();
  }
  return l;
}

int List(bool json) {
  auto shipped = ShippedRecipes();
  if (shipped.empty())
    ThrowInvalid("no shipped recipes found: looked in $EDGEPRESS_RECIPES_DIR and for a "
                 "recipes/ folder above the edgepress executable");
  std::vector<Listed> all;
  for (const auto& [name, path] : shipped) all.push_back(Describe(name, path));
  int rc = 0;
  if (json) {
    nlohmann::ordered_json j = nlohmann::ordered_json::array();
    for (const auto& l : all) {
      nlohmann::ordered_json e;
      e["name"] = l.name;
      e["path"] = l.path;
      e["valid"] = l.error.empty();
      if (l.error.empty()) {
        e["target"] = l.target;
        e["arch"] = l.arch;
        e["backend"] = l.backend;
        e["passes"] = l.passes;
        e["description"] = l.description;
      } else {
        e["error"] = l.error;
        rc = 1;
      }
      j.push_back(e);
    }
    std::fputs((j.dump(2) + "\n").c_str(), stdout);
    return rc;
  }
  std::fputs(fmt::format("{:<20} {:<20} {}\n", "RECIPE", "TARGET", "DESCRIPTION").c_str(),
             stdout);
  for (const auto& l : all) {
    if (!l.error.empty()) {
      std::fputs(fmt::format("{:<20} {:<20} INVALID (see below)\n", l.name, "?").c_str(), stdout);
      std::fprintf(stderr, "edgepress: error: %s\n", l.error.c_str());
      rc = 1;
      continue;
    }
    std::string target = l.target.empty() ? "-" : l.target;
    std::fputs(fmt::format("{:<20} {:<20} {}\n", l.name, target, l.description).c_str(), stdout);
  }
  std::fputs("\n`edgepress recipes show NAME` prints a recipe with its base recipes applied.\n",
             stdout);
  return rc;
}

}  // namespace

void AddRecipesCommand(CLI::App& app, Action& action) {
  CLI::App* cmd = app.add_subcommand("recipes", "List, show and validate compression recipes");
  cmd->require_subcommand(1);

  auto json = std::make_shared<bool>(false);
  CLI::App* list = cmd->add_subcommand("list", "List the shipped recipes");
  list->add_flag("--json", *json, "print the list as JSON");
  list->callback([json, &action] { action = [json] { return List(*json); }; });

  auto name = std::make_shared<std::string>();
  CLI::App* show = cmd->add_subcommand("show", "Print a recipe with its base recipes applied");
  show->add_option("NAME", *name, "shipped recipe name or recipe file")->required();
  show->callback([name, &action] {
    action = [name] {
      std::fputs(RecipeToYaml(LoadRecipe(*name)).c_str(), stdout);
      return 0;
    };
  });

  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App* validate = cmd->add_subcommand(
      "validate", "Check recipe files against the schema (exit 0 when all are valid, else 1)");
  validate->add_option("FILE", *files, "recipe files or shipped recipe names")->required();
  validate->callback([files, &action] {
    action = [files] {
      int rc = 0;
      for (const auto& f : *files) {
        try {
          Recipe r = LoadRecipe(f);
          std::string ext;
          for (const auto& b : r.extends_chain) ext += (ext.empty() ? ", extends " : " <- ") + b;
          std::fputs(fmt::format("{}: ok ({} passes, {} tuning steps{})\n", f, r.pipeline.size(),
                                 r.tuning.steps.size(), ext)
                         .c_str(),
                     stdout);
        } catch (const Error& e) {
          std::fprintf(stderr, "edgepress: error: %s\n", e.what());
          rc = 1;
        }
      }
      return rc;
    };
  });
}

}  // namespace edgepress::tools
