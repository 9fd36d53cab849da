// End-to-end `edgepress recipes list|show|validate`: output and exit codes (0 ok, 1 an
// invalid recipe, 2 usage), the JSON list, and lookup of the shipped recipes from the
// executable's location and through EDGEPRESS_RECIPES_DIR.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/tools/cli_run.h"

namespace edgepress {
namespace {

namespace fs = std::filesystem;
using test_util::CliPath;
using test_util::RunCommand;
using test_util::RunResult;
using test_util::ShellQuote;

const char* kShipped[] = {"base", "generic-min-size", "generic-min-size-sparse", "jetson-orin-nano", "raspberry-pi-5",
                          "x86-avx2-laptop", "x86-avx512-vnni"};

class RecipesCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CliPath().empty() || access(CliPath().c_str(), X_OK) != 0)
      GTEST_SKIP() << "the edgepress CLI was not built";
    char tmpl[] = "/tmp/edgepress_recipes_cli_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  // Runs edgepress with the shipped recipes of this source tree.
  RunResult Ep(const std::string& args) {
    return RunCommand("EDGEPRESS_RECIPES_DIR=" + ShellQuote(EDGEPRESS_SOURCE_DIR "/recipes") +
                      " " + ShellQuote(CliPath()) + " " + args);
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(RecipesCliTest, ListShowsEveryShippedRecipe) {
  RunResult r = Ep("recipes list");
  ASSERT_EQ(r.rc, 0) << r.output;
  for (const char* name : kShipped) EXPECT_NE(r.output.find(name), std::string::npos) << name;
  EXPECT_NE(r.output.find("raspberry-pi-5       raspberry-pi-5       Raspberry Pi 5"),
            std::string::npos)
      << r.output;

  r = Ep("recipes list --json");
  ASSERT_EQ(r.rc, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), std::size(kShipped));
  for (size_t i = 0; i < j.size(); ++i) {
    EXPECT_EQ(j[i]["name"], kShipped[i]);
    EXPECT_EQ(j[i]["valid"], true) << j[i].dump();
    EXPECT_FALSE(j[i]["description"].get<std::string>().empty());
  }
  EXPECT_EQ(j[4]["arch"], "arm64");
  EXPECT_EQ(j[4]["target"], "raspberry-pi-5");
  EXPECT_EQ(j[4]["passes"], 5);
}

TEST_F(RecipesCliTest, FindsRecipesFromTheExecutableWithoutTheEnvironment) {
  std::string src = fs::weakly_canonical(EDGEPRESS_SOURCE_DIR).string();
  if (fs::weakly_canonical(CliPath()).string().rfind(src + "/", 0) != 0)
    GTEST_SKIP() << "the build directory is outside the source tree";
  RunResult r = RunCommand("env -u EDGEPRESS_RECIPES_DIR " + ShellQuote(CliPath()) +
                           " recipes show raspberry-pi-5");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("name: raspberry-pi-5"), std::string::npos) << r.output;
}

TEST_F(RecipesCliTest, ShowPrintsTheResolvedRecipe) {
  RunResult r = Ep("recipes show raspberry-pi-5");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(r.output.rfind("# edgepress recipe 'raspberry-pi-5', resolved (extends base)\n", 0),
            0u)
      << r.output;
  // From the recipe itself, and from base (merged in).
  EXPECT_NE(r.output.find("  threads: 4\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  - quantize-weights: {bits: 4, group-size: 32, op-types: [MatMul]}\n"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("  label: label\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("      set: {quantize-weights.bits: 8}\n"), std::string::npos);

  // The printed recipe is itself a valid recipe.
  std::string resolved = Write("resolved.yaml", r.output);
  RunResult v = Ep("recipes validate " + ShellQuote(resolved));
  EXPECT_EQ(v.rc, 0) << v.output;

  r = Ep("recipes show raspbery-pi-5");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("edgepress: error: no recipe file 'raspbery-pi-5' and no shipped "
                          "recipe of that name (did you mean 'raspberry-pi-5'?)"),
            std::string::npos)
      << r.output;
}

TEST_F(RecipesCliTest, ValidateExitCodesAndMessages) {
  std::string args;
  for (const char* name : kShipped)
    args += " " + ShellQuote(std::string(EDGEPRESS_SOURCE_DIR "/recipes/") + name + ".yaml");
  RunResult r = Ep("recipes validate" + args);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("x86-avx2-laptop.yaml: ok (4 passes, 3 tuning steps, extends base)"),
            std::string::npos)
      << r.output;

  std::string bad = Write("bad.yaml",
                          "extends: x86-avx2-laptop\n"
                          "budgets:\n"
                          "  max_latncy_p50_ms: 3\n");
  std::string good = Write("good.yaml", "extends: x86-avx2-laptop\ntarget: {threads: 2}\n");
  r = Ep("recipes validate " + ShellQuote(good) + " " + ShellQuote(bad));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find(good + ": ok (4 passes, 3 tuning steps, extends x86-avx2-laptop <- base)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("edgepress: error: " + bad +
                          ":3:3: unknown key 'max_latncy_p50_ms' in 'budgets' (did you mean "
                          "'max_latency_p50_ms'?)"),
            std::string::npos)
      << r.output;

  // (distill is a compress step now: tests/distill/compress_distill_test.cc)
  std::string planned = Write("planned.yaml", "pipeline:\n  - qat\n");
  r = Ep("recipes validate " + ShellQuote(planned));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find(planned + ":2:5: pass 'qat' does not exist yet (planned)"),
            std::string::npos)
      << r.output;

  r = Ep("recipes validate " + ShellQuote(dir_ + "/absent.yaml"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("cannot open recipe file"), std::string::npos) << r.output;
}

TEST_F(RecipesCliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Ep("recipes").rc, 2);
  EXPECT_EQ(Ep("recipes validate").rc, 2);
  EXPECT_EQ(Ep("recipes show").rc, 2);
  EXPECT_EQ(Ep("recipes frobnicate").rc, 2);
}

TEST_F(RecipesCliTest, ListReportsAnInvalidRecipeInTheDirectory) {
  Write("base.yaml", "description: fine\n");
  Write("broken.yaml", "extends: base\ntarget: {arch: sparc}\n");
  RunResult r = RunCommand("EDGEPRESS_RECIPES_DIR=" + ShellQuote(dir_) + " " +
                           ShellQuote(CliPath()) + " recipes list --json");
  EXPECT_EQ(r.rc, 1) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  ASSERT_GE(j.size(), 2u);
  EXPECT_EQ(j[0]["name"], "base");
  EXPECT_EQ(j[0]["valid"], true);
  EXPECT_EQ(j[1]["name"], "broken");
  EXPECT_EQ(j[1]["valid"], false);
  EXPECT_NE(j[1]["error"].get<std::string>().find(
                "broken.yaml:2:16: 'target.arch' must be one of x86_64, arm64, got 'sparc'"),
            std::string::npos)
      << j[1].dump();
}

}  // namespace
}  // namespace edgepress
