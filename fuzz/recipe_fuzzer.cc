// Recipe YAML (tools/compress/recipe.cc): YAML syntax, sections, keys, budgets' units, the pipeline
// and its pass options, tuning overrides, `extends`. The input is written as
// <scratch>/fuzz.yaml; `extends: <shipped name>` resolves through EDGEPRESS_RECIPES_DIR
// (scripts/fuzz.sh points it at recipes/), a path resolves relative to the scratch folder.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "tools/compress/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgepress;
  std::string path =
      fuzz::WriteScratch("fuzz.yaml", std::string(reinterpret_cast<const char*>(data), size));
  try {
    tools::Recipe r = tools::LoadRecipe(path);
    // The resolved recipe as YAML must load again (RecipeToYaml's promise).
    std::string again = fuzz::WriteScratch("again.yaml", tools::RecipeToYaml(r));
    try {
      (void)tools::LoadRecipe(again);
    } catch (const Error& e) {
      fuzz::Finding("a recipe that loaded does not load from its RecipeToYaml", e);
    }
  } catch (const Error& e) {
    fuzz::ExpectedError(e);
  }
  return 0;
}
