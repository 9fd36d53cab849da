// Recipe loading (tools/compress/recipe.h): every shipped recipe loads; each class of mistake gives
// "file:line:col: message" with the nearest valid name; extends merges maps and replaces
// lists, and detects cycles; sizes parse; RecipeToYaml round-trips.
#include "tools/compress/recipe.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "ir/error.h"

namespace edgepress::tools {
namespace {

namespace fs = std::filesystem;

class RecipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/edgepress_recipe_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // The shipped recipes of this source tree, wherever the build directory is.
    setenv("EDGEPRESS_RECIPES_DIR", EDGEPRESS_SOURCE_DIR "/recipes", 1);
  }
  void TearDown() override {
    unsetenv("EDGEPRESS_RECIPES_DIR");
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  // Loads `text` as x.yaml and returns the error message ("" when it loaded).
  std::string ErrorOf(const std::string& text, const std::string& name = "x.yaml") {
    std::string path = Write(name, text);
    try {
      LoadRecipe(path);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << e.what();
      return e.what();
    }
    return "";
  }
  std::string At(int line, int col, const std::string& name = "x.yaml") {
    return dir_ + "/" + name + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ";
  }
  std::string dir_;
};

const RecipeStep* FindStep(const std::vector<RecipeStep>& steps, const std::string& pass) {
  for (const auto& s : steps)
    if (s.pass == pass) return &s;
  return nullptr;
}
std::string OptionOf(const RecipeStep& s, const std::string& option) {
  for (const auto& [k, v] : s.options)
    if (k == option) return v;
  return "<unset>";
}

TEST_F(RecipeTest, EveryShippedRecipeLoads) {
  auto shipped = ShippedRecipes();
  std::vector<std::string> names;
  for (const auto& [name, path] : shipped) names.push_back(name);
  for (const char* want : {"base", "generic-min-size", "jetson-orin-nano", "raspberry-pi-5",
                           "x86-avx2-laptop", "x86-avx512-vnni"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  for (const auto& [name, path] : shipped) {
    SCOPED_TRACE(name);
    Recipe r;
    ASSERT_NO_THROW(r = LoadRecipe(name));
    EXPECT_EQ(r.name, name);
    EXPECT_FALSE(r.description.empty());
    EXPECT_EQ(r.evaluation.metric, "top1");
    EXPECT_EQ(r.evaluation.label, "label");
    EXPECT_TRUE(r.budgets.max_accuracy_drop.has_value());
    if (name != "base") {
      EXPECT_EQ(r.extends_chain, std::vector<std::string>{"base"});
      EXPECT_FALSE(r.pipeline.empty());
      EXPECT_TRUE(FindStep(r.pipeline, "quantize-static")) << "every device recipe quantizes";
      EXPECT_FALSE(r.tuning.steps.empty());
    }
  }
}

TEST_F(RecipeTest, ShippedRecipesSayWhatTheTargetIs) {
  Recipe pi = LoadRecipe("raspberry-pi-5");
  EXPECT_EQ(pi.target.arch, "arm64");
  EXPECT_EQ(pi.target.threads, 4);
  const RecipeStep* w = FindStep(pi.pipeline, "quantize-weights");
  ASSERT_TRUE(w);
  EXPECT_EQ(OptionOf(*w, "bits"), "4");
  EXPECT_EQ(OptionOf(*w, "op-types"), "MatMul");

  Recipe jetson = LoadRecipe("jetson-orin-nano");
  EXPECT_EQ(jetson.target.backend, "native");
  const RecipeStep* c = FindStep(jetson.pipeline, "cast-weights");
  ASSERT_TRUE(c);
  EXPECT_EQ(OptionOf(*c, "dtype"), "fp16");
  EXPECT_TRUE(jetson.exports.onnx);

  Recipe min_size = LoadRecipe("generic-min-size");
  ASSERT_TRUE(FindStep(min_size.pipeline, "quantize-weights"));
  EXPECT_EQ(OptionOf(*FindStep(min_size.pipeline, "quantize-weights"), "bits"), "4");

  // The sparse variant prunes 2:4 before int4, and its first tuning steps back the
  // sparsity off (4:8, then 6:8) before touching the quantization.
  Recipe sparse = LoadRecipe("generic-min-size-sparse");
  const RecipeStep* nm = FindStep(sparse.pipeline, "prune-nm");
  ASSERT_TRUE(nm);
  EXPECT_EQ(OptionOf(*nm, "n"), "2");
  EXPECT_EQ(OptionOf(*nm, "m"), "4");
  EXPECT_EQ(OptionOf(*FindStep(sparse.pipeline, "quantize-weights"), "bits"), "4");
  auto back1 = PipelineAfterTuning(sparse, 1), back2 = PipelineAfterTuning(sparse, 2);
  EXPECT_EQ(OptionOf(*FindStep(back1, "prune-nm"), "n"), "4");
  EXPECT_EQ(OptionOf(*FindStep(back1, "prune-nm"), "m"), "8");
  EXPECT_EQ(OptionOf(*FindStep(back2, "prune-nm"), "n"), "6");
  EXPECT_EQ(OptionOf(*FindStep(back2, "prune-nm"), "m"), "8");
  EXPECT_EQ(OptionOf(*FindStep(back2, "quantize-weights"), "bits"), "4");

  // Tuning steps accumulate: step 2 keeps step 1's keep-float.
  Recipe laptop = LoadRecipe("x86-avx2-laptop");
  ASSERT_EQ(laptop.tuning.steps.size(), 3u);
  EXPECT_EQ(laptop.tuning.steps[0].name, "keep the most sensitive layer in float");
  auto trial0 = PipelineAfterTuning(laptop, 0);
  auto trial2 = PipelineAfterTuning(laptop, 2);
  auto trial3 = PipelineAfterTuning(laptop, 3);
  EXPECT_EQ(OptionOf(*FindStep(trial0, "quantize-static"), "keep-float"), "<unset>");
  EXPECT_EQ(OptionOf(*FindStep(trial2, "quantize-static"), "keep-float"), "1");
  EXPECT_EQ(OptionOf(*FindStep(trial2, "quantize-static"), "method"), "entropy");
  EXPECT_EQ(OptionOf(*FindStep(trial3, "quantize-static"), "keep-float"), "3");
  EXPECT_EQ(OptionOf(*FindStep(trial3, "quantize-static"), "method"), "entropy");
}

TEST_F(RecipeTest, NamesResolveToFilesFirstThenShippedRecipes) {
  Recipe by_path = LoadRecipe(EDGEPRESS_SOURCE_DIR "/recipes/x86-avx2-laptop.yaml");
  EXPECT_EQ(by_path.name, "x86-avx2-laptop");
  EXPECT_EQ(LoadRecipe("x86-avx2-laptop.yaml").name, "x86-avx2-laptop");  // stem of a shipped one
  try {
    LoadRecipe("raspbery-pi-5");
    FAIL() << "loaded a misspelt recipe";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no shipped recipe of that name (did you mean "
                                         "'raspberry-pi-5'?)"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("shipped: base, generic-min-size"), std::string::npos);
  }
  EXPECT_THROW(LoadRecipe(dir_ + "/missing.yaml"), Error);
  EXPECT_THROW(LoadRecipe(dir_), Error);  // a directory
}

TEST_F(RecipeTest, SearchDirsFindTheSourceTreeFromTheExecutable) {
  unsetenv("EDGEPRESS_RECIPES_DIR");
  std::error_code ec;
  std::string exe = fs::read_symlink("/proc/self/exe", ec).string();
  std::string src = fs::weakly_canonical(EDGEPRESS_SOURCE_DIR).string();
  if (exe.rfind(src + "/", 0) != 0)
    GTEST_SKIP() << "the build directory is outside the source tree";
  auto dirs = RecipeSearchDirs();
  ASSERT_EQ(dirs.size(), 1u);
  EXPECT_EQ(dirs[0], src + "/recipes");
  EXPECT_EQ(LoadRecipe("raspberry-pi-5").target.name, "raspberry-pi-5");
}

// Found by fuzz_recipe: a quoted scalar with NUL bytes loaded, and RecipeToYaml's emitter
// stopped at the NUL, so the resolved recipe did not load again. Control characters are
// refused where they are read, naming the key.
TEST_F(RecipeTest, InvalidUtf8InScalarsIsRefused) {
  // Fuzz finding 6 as found: an overlong C0 92 (U+0012) that RecipeToYaml wrote as a
  // control character the reader refused.
  const std::string found = "name:\txlatencyning.step\t\xc0\x92";
  EXPECT_NE(ErrorOf(found).find("'name' is not valid UTF-8"), std::string::npos) << ErrorOf(found);
  EXPECT_NE(ErrorOf("description: \"a \xff b\"\n").find("is not valid UTF-8"), std::string::npos);
  EXPECT_NE(ErrorOf("description: \"cut \xc3\"\n").find("is not valid UTF-8"), std::string::npos);
  EXPECT_EQ(ErrorOf("name: \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"\n"), "");  // valid
}

TEST_F(RecipeTest, ControlCharactersInScalarsAreRefused) {
  std::string nul_name = "target:\n  name: 'x86\n " + std::string(5, '\0') + " arch'\n";
  EXPECT_NE(ErrorOf(nul_name).find("'target.name' contains the control character 0x00"),
            std::string::npos)
      << ErrorOf(nul_name);
  EXPECT_NE(ErrorOf("description: \"bell \\a\"\n").find("'description' contains the control "
                                                            "character 0x07"),
            std::string::npos);
  // The fuzzer's input as found (build-fuzz/artifacts/recipe/crash-15831e34...).
  const char kFound[] =
      "# x86-64 server or ic everywhere\n!target:\n  name: 'x86-avx512-vnni\n "
      "\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00"
      "\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00"
      "\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00"
      "\x00""\x00""\x00"" arch: ~86_64: m\x8d""nmax, atic.metctivemse}\n";
  EXPECT_NE(ErrorOf(std::string(kFound, sizeof kFound - 1)).find("control character 0x00"),
            std::string::npos);
  // Tabs and line breaks are YAML's own and stay allowed, CR LF line ends included (also
  // inside a block scalar).
  EXPECT_EQ(ErrorOf("description: \"two\\tcolumns\\nand lines\"\n"), "");
  EXPECT_EQ(ErrorOf("name: crlf\r\ndescription: |\r\n  line1\r\n  line2\r\n"), "");
  // A lone carriage return stays in the scalar, and RecipeToYaml wrote it raw, where it
  // reads back as the end of the line: the fuzzer's input as found
  // (artifacts/recipe/crash-887a1fa2...) loaded with name "\r" and its resolved YAML
  // did not load again ("'name' must not be empty").
  const char kLoneCr[] = "# \xff\xff\xff\xff\xff\xff\xff\xff\xff\n  name: \r";
  EXPECT_NE(ErrorOf(kLoneCr).find("'name' contains a carriage return (0x0d)"),
            std::string::npos)
      << ErrorOf(kLoneCr);
  EXPECT_NE(ErrorOf("description: \"a\\rb\"\n").find("'description' contains a carriage "
                                                         "return"),
            std::string::npos);
}

TEST_F(RecipeTest, UnknownKeysNameLineColumnAndNearestKey) {
  EXPECT_EQ(ErrorOf("name: a\nbudgts:\n  max_size_ratio: 0.5\n"),
            At(2, 1) + "unknown key 'budgts' (did you mean 'budgets'?)");
  EXPECT_EQ(ErrorOf("budgets:\n  max_size_ratio: 0.5\n  max_latency_p50: 3\n"),
            At(3, 3) + "unknown key 'max_latency_p50' in 'budgets' (did you mean "
                       "'max_latency_p50_ms'?)");
  // A key of another section, at the wrong level.
  EXPECT_EQ(ErrorOf("threads: 4\n"),
            At(1, 1) + "unknown key 'threads' (did you mean 'target.threads'? 'threads' "
                       "belongs in 'target')");
  // Nothing close: the valid keys are listed.
  EXPECT_EQ(ErrorOf("export:\n  tflite: true\n"),
            At(2, 3) + "unknown key 'tflite' in 'export'; valid keys: epk, onnx, pt");
  EXPECT_EQ(ErrorOf("target:\n  threads: 2\n  threads: 4\n"),
            At(3, 3) + "key 'threads' in 'target' given twice");
  EXPECT_EQ(ErrorOf("tuning:\n  steps:\n    - nmae: x\n      set: {quantize-static.keep-float: 1}\n"),
            At(3, 7) + "unknown key 'nmae' in 'tuning.steps[]' (did you mean 'name'?)");
}

TEST_F(RecipeTest, ValuesAreTypedAndRangeChecked) {
  EXPECT_EQ(ErrorOf("target:\n  threads: four\n"),
            At(2, 12) + "'target.threads' must be an integer, got 'four'");
  EXPECT_EQ(ErrorOf("target:\n  threads: 0\n"),
            At(2, 12) + "'target.threads' must be in [1, 1024], got 0");
  EXPECT_EQ(ErrorOf("target:\n  arch: aarch64\n"),
            At(2, 9) + "'target.arch' must be one of x86_64, arm64, got 'aarch64' (did you mean "
                       "'arm64'?)");
  EXPECT_EQ(ErrorOf("target:\n  backend: cuda\n"),
            At(2, 12) + "'target.backend' must be one of native, torch, got 'cuda'");
  EXPECT_EQ(ErrorOf("evaluation:\n  metric: top-1\n"),
            At(2, 11) + "'evaluation.metric' must be one of top1, topk, cosine, nmse, "
                        "perplexity, got 'top-1' (did you mean 'top1'?)");
  EXPECT_EQ(ErrorOf("budgets:\n  max_latency_p50_ms: 0\n"),
            At(2, 23) + "'budgets.max_latency_p50_ms' must be > 0, got 0");
  EXPECT_EQ(ErrorOf("budgets:\n  max_accuracy_drop: [1]\n"),
            At(2, 22) + "'budgets.max_accuracy_drop' must be a number, got a list");
  EXPECT_EQ(ErrorOf("export:\n  onnx: maybe\n"),
            At(2, 9) + "'export.onnx' must be true or false, got 'maybe'");
  EXPECT_EQ(ErrorOf("seed: -1\n"), At(1, 7) + "'seed' must be an integer >= 0, got '-1'");
  EXPECT_EQ(ErrorOf("calibration:\n  max_samples: 0\n"),
            At(2, 16) + "'calibration.max_samples' must be a count >= 1 or 'all', got '0'");
  EXPECT_EQ(ErrorOf("target: 4\n"), At(1, 9) + "'target' must be a map of keys, got '4'");
  EXPECT_EQ(ErrorOf("- a\n- b\n"),
            At(1, 1) + "a recipe is a YAML map of keys (name, description, extends, seed, "
                       "target, budgets, pipeline, calibration, evaluation, export, tuning), "
                       "got a list");
  // Checks across keys: the ISA must belong to the architecture; something must be written.
  EXPECT_EQ(ErrorOf("target:\n  arch: arm64\n  isa: avx2\n"),
            At(3, 8) + "'target.isa' avx2 needs target.arch x86_64, but the arch is arm64 (set at " +
                dir_ + "/x.yaml:2:9)");
  EXPECT_EQ(ErrorOf("evaluation: {metric: perplexity, label: \"\"}\n"),
            At(1, 22) + "metric perplexity needs 'evaluation.label' (the array of labels in the "
                        "evaluation data)");
  EXPECT_EQ(ErrorOf("export: {epk: false}\n"),
            At(1, 9) + "'export' writes nothing: set at least one of epk, onnx, pt");
  // Must not fire: a valid recipe with every section.
  EXPECT_EQ(ErrorOf("name: full\ndescription: d\nseed: 7\n"
                    "target: {name: t, arch: arm64, isa: neon, threads: 2, memory_mb: 512}\n"
                    "budgets: {max_accuracy_drop: 0.01, max_accuracy_drop_relative: 0.02,\n"
                    "  max_latency_p50_ms: 1.5, max_latency_p99_ms: 3, max_size_bytes: 1MB,\n"
                    "  max_size_ratio: 0.3, min_speedup: 1.2}\n"
                    "calibration: {data: c.npz, method: entropy, max_samples: 64}\n"
                    "evaluation: {metric: topk, k: 3, data: e.npz, input: image, label: y,\n"
                    "  output: logits, max_samples: all, latency_runs: 9, warmup_runs: 0}\n"
                    "export: {epk: false, onnx: yes}\n"
                    "tuning: {max_trials: 2, max_minutes: 0.5, objective: latency}\n"),
            "");
}

TEST_F(RecipeTest, YamlSyntaxErrorsHaveLineAndColumn) {
  std::string msg = ErrorOf("target:\n  threads: [1, 2\nbudgets: {}\n");
  EXPECT_EQ(msg.rfind(dir_ + "/x.yaml:", 0), 0u) << msg;
  EXPECT_NE(msg.find("invalid YAML"), std::string::npos) << msg;
  // yaml-cpp's depth guard, not a stack overflow.
  msg = ErrorOf("pipeline: " + std::string(100000, '['));
  EXPECT_NE(msg.find("invalid YAML: nested deeper than"), std::string::npos) << msg;
  EXPECT_EQ(ErrorOf(""), dir_ + "/x.yaml: a recipe is a YAML map of keys (name, description, "
                                "extends, seed, target, budgets, pipeline, calibration, "
                                "evaluation, export, tuning), got nothing");
}

TEST_F(RecipeTest, PipelinePassesAndOptionsAreChecked) {
  EXPECT_EQ(ErrorOf("pipeline:\n  - fold-constants\n  - quantize-statik\n"),
            At(3, 5) + "unknown pass 'quantize-statik' (did you mean 'quantize-static'?); "
                       "`edgepress passes` lists the passes this version has");
  // Pruning passes are in the registry: a recipe naming one validates, a typo gets the
  // nearest name rather than "planned".
  EXPECT_EQ(ErrorOf("pipeline:\n  - prune-magnitude: {sparsity: 0.5}\n  - prune-nm: {n: 2, m: 4}\n"), "");
  EXPECT_EQ(ErrorOf("pipeline:\n  - prune-magnitud\n"),
            At(2, 5) + "unknown pass 'prune-magnitud' (did you mean 'prune-magnitude'?); "
                       "`edgepress passes` lists the passes this version has");
  // The compress step `distill` (tools/compress/compress_distill.h) validates like a pass.
  EXPECT_EQ(ErrorOf("pipeline:\n  - distill: {data: t.npz, steps: 10, layer-map: [a:b]}\n"), "");
  EXPECT_EQ(ErrorOf("pipeline:\n  - distil\n"),
            At(2, 5) + "unknown pass 'distil' (did you mean 'distill'?); `edgepress passes` lists "
                       "the passes this version has");
  EXPECT_EQ(ErrorOf("pipeline:\n  - quantize-static: {methd: entropy}\n"),
            At(2, 23) + "pass 'quantize-static' has no option 'methd' (did you mean 'method'?)");
  EXPECT_EQ(ErrorOf("pipeline:\n  - quantize-static: {keep_float: 2}\n"),
            At(2, 23) + "pass 'quantize-static' has no option 'keep_float' (did you mean "
                        "'keep-float'?)");
  EXPECT_EQ(ErrorOf("pipeline:\n  - quantize-static:\n      method: entropi\n"),
            At(3, 15) + "pass 'quantize-static': option 'method' = 'entropi': expected one of "
                        "minmax, percentile, entropy, mse (did you mean 'entropy'?)");
  EXPECT_EQ(ErrorOf("pipeline:\n  - quantize-weights: {bits: many}\n"),
            At(2, 30) + "pass 'quantize-weights': option 'bits' = 'many': expected an integer");
  EXPECT_EQ(ErrorOf("pipeline:\n  - remove-identity: {x: 1}\n"),
            At(2, 23) + "pass 'remove-identity' has no option 'x' (it has no options)");
  EXPECT_EQ(ErrorOf("pipeline:\n  - fold-constants: {x: 1}\n"),
            At(2, 22) + "pass 'fold-constants' has no option 'x'; its options: max-bytes");
  // The usual indentation slip: options at the level of the pass name.
  EXPECT_EQ(ErrorOf("pipeline:\n  - quantize-static:\n    method: entropy\n"),
            At(2, 5) + "a pipeline step is '- pass-name' or '- pass-name: {option: value}'; "
                       "this one has 2 keys ('quantize-static', 'method'): indent the options "
                       "below the pass name");
  EXPECT_EQ(ErrorOf("pipeline:\n  - {}\n"),
            At(2, 5) + "an empty map is not a pipeline step; write '- pass-name'");
  EXPECT_EQ(ErrorOf("pipeline: fold-constants\n"),
            At(1, 11) + "'pipeline' must be a list of passes ('- pass-name' or '- pass-name: "
                        "{option: value}'), got 'fold-constants'");
  // Must not fire: list values become the pass's list text.
  std::string path = Write("ok.yaml",
                           "pipeline:\n  - quantize-static:\n      exclude: [conv1, 'head*']\n"
                           "      per-channel: false\n  - eliminate-dead-nodes\n");
  Recipe r = LoadRecipe(path);
  ASSERT_EQ(r.pipeline.size(), 2u);
  EXPECT_EQ(OptionOf(r.pipeline[0], "exclude"), "conv1,head*");
  EXPECT_EQ(OptionOf(r.pipeline[0], "per-channel"), "false");
  EXPECT_TRUE(r.pipeline[1].options.empty());
}

TEST_F(RecipeTest, TuningStepsAreParsedAndChecked) {
  std::string path = Write("t.yaml",
                           "pipeline:\n"
                           "  - quantize-weights: {bits: 4}\n"
                           "  - quantize-static\n"
                           "tuning:\n"
                           "  max_trials: 5\n"
                           "  objective: latency\n"
                           "  steps:\n"
                           "    - name: float head\n"
                           "      set: {quantize-static.keep-float: 1, quantize-static.method: mse}\n"
                           "    - set:\n"
                           "        quantize-weights: {bits: 8, exclude: [head]}\n");
  Recipe r = LoadRecipe(path);
  EXPECT_EQ(r.tuning.max_trials, 5);
  EXPECT_EQ(r.tuning.objective, "latency");
  ASSERT_EQ(r.tuning.steps.size(), 2u);
  EXPECT_EQ(r.tuning.steps[0].name, "float head");
  ASSERT_EQ(r.tuning.steps[0].overrides.size(), 2u);
  EXPECT_EQ(r.tuning.steps[0].overrides[1].pass, "quantize-static");
  EXPECT_EQ(r.tuning.steps[0].overrides[1].option, "method");
  EXPECT_EQ(r.tuning.steps[0].overrides[1].value, "mse");
  // No name: one is made from the overrides.
  EXPECT_EQ(r.tuning.steps[1].name, "quantize-weights.bits=8, quantize-weights.exclude=head");
  auto last = PipelineAfterTuning(r, 2);
  EXPECT_EQ(OptionOf(last[0], "bits"), "8");
  EXPECT_EQ(OptionOf(last[0], "exclude"), "head");
  EXPECT_EQ(OptionOf(last[1], "keep-float"), "1");
  EXPECT_EQ(PipelineAfterTuning(r, 99).size(), 2u);

  const std::string pipe = "pipeline:\n  - quantize-static\n";
  EXPECT_EQ(ErrorOf(pipe + "tuning:\n  steps:\n    - set: {quantize-weights.bits: 8}\n"),
            At(5, 13) + "tuning step 1 ('quantize-weights.bits=8') sets 'quantize-weights.bits', "
                        "but pass 'quantize-weights' is not in the pipeline (quantize-static)");
  EXPECT_EQ(ErrorOf(pipe + "tuning:\n  steps:\n    - set: {quantize-static.keepfloat: 2}\n"),
            At(5, 13) + "pass 'quantize-static' has no option 'keepfloat' (did you mean "
                        "'keep-float'?)");
  EXPECT_EQ(ErrorOf(pipe + "tuning:\n  steps:\n    - set: {quantize-static.keep-float: -1}\n"),
            At(5, 41) + "pass 'quantize-static': option 'keep-float' = '-1': must be in [0, "
                        "1000000000]");
  EXPECT_EQ(ErrorOf(pipe + "tuning:\n  steps:\n    - set: {quantize-statc.method: mse}\n"),
            At(5, 13) + "unknown pass 'quantize-statc' (did you mean 'quantize-static'?); "
                        "`edgepress passes` lists the passes this version has");
  EXPECT_EQ(ErrorOf(pipe + "tuning:\n  steps:\n    - name: no set\n"),
            At(5, 7) + "tuning step 1 has no 'set' (the options it changes, e.g. 'set: "
                       "{quantize-static.keep-float: 1}')");
  EXPECT_EQ(ErrorOf(pipe + "tuning:\n  steps:\n    - set: {keep-float: 1}\n"),
            At(5, 13) + "'keep-float' in 'tuning.steps[0].set' must be pass.option (e.g. "
                        "'quantize-static.keep-float: 1') or pass: {option: value}");
  EXPECT_EQ(ErrorOf(pipe + "tuning:\n  max_trials: 0\n"),
            At(4, 15) + "'tuning.max_trials' must be in [1, 10000], got 0");
}

TEST_F(RecipeTest, ExtendsMergesMapsAndReplacesLists) {
  Write("base.yaml",
        "description: the base\n"
        "target: {name: board, arch: arm64, threads: 2, memory_mb: 1024}\n"
        "budgets: {max_accuracy_drop: 0.01, max_latency_p50_ms: 4, max_size_ratio: 0.5}\n"
        "pipeline:\n  - fold-constants\n  - quantize-static: {method: entropy}\n"
        "evaluation: {metric: cosine, output: logits}\n"
        "tuning:\n  max_trials: 3\n  steps:\n    - set: {quantize-static.keep-float: 1}\n");
  Write("mid.yaml",
        "extends: base\n"
        "target: {threads: 4}\n"
        "budgets: {max_latency_p50_ms: null, max_size_bytes: \"2 MiB\"}\n");
  fs::create_directories(dir_ + "/sub");
  std::string leaf = Write("sub/leaf.yaml",
               "extends: ../mid.yaml\n"
               "pipeline:\n  - quantize-static: {method: mse}\n"
               "evaluation: {output: probs}\n");
  Recipe r = LoadRecipe(leaf);
  EXPECT_EQ(r.name, "leaf");
  EXPECT_EQ(r.description, "");  // not inherited
  EXPECT_EQ(r.extends_chain, (std::vector<std::string>{"../mid.yaml", "base"}));
  EXPECT_EQ(r.path, leaf);
  EXPECT_EQ(r.target.name, "board");  // maps merge key by key
  EXPECT_EQ(r.target.arch, "arm64");
  EXPECT_EQ(r.target.threads, 4);
  EXPECT_EQ(r.target.memory_mb, 1024);
  EXPECT_EQ(r.budgets.max_accuracy_drop, 0.01);
  EXPECT_FALSE(r.budgets.max_latency_p50_ms.has_value());  // null removes a budget
  EXPECT_EQ(r.budgets.max_size_bytes, 2 * 1024 * 1024);
  EXPECT_EQ(r.budgets.max_size_ratio, 0.5);
  ASSERT_EQ(r.pipeline.size(), 1u);  // lists replace
  EXPECT_EQ(OptionOf(r.pipeline[0], "method"), "mse");
  EXPECT_EQ(r.evaluation.metric, "cosine");
  EXPECT_EQ(r.evaluation.output, "probs");
  EXPECT_EQ(r.tuning.max_trials, 3);
  ASSERT_EQ(r.tuning.steps.size(), 1u);  // inherited, and still names a pipeline pass

  // The inherited tuning step names a pass the new pipeline dropped: the error points at the
  // base file's line.
  std::string orphan = Write("orphan.yaml", "extends: base\npipeline: [fold-constants]\n");
  try {
    LoadRecipe(orphan);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              At(11, 13, "base.yaml") +
                  "tuning step 1 ('quantize-static.keep-float=1') sets "
                  "'quantize-static.keep-float', but pass 'quantize-static' is not in the "
                  "pipeline (fold-constants)");
  }
  // An error inside a base names the base file.
  Write("badbase.yaml", "target: {threads: x}\n");
  EXPECT_EQ(ErrorOf("extends: badbase\n"),
            At(1, 19, "badbase.yaml") + "'target.threads' must be an integer, got 'x'");
  // A shipped base by name.
  std::string user = Write("user.yaml", "extends: raspberry-pi-5\ntarget: {threads: 2}\n");
  Recipe u = LoadRecipe(user);
  EXPECT_EQ(u.target.name, "raspberry-pi-5");
  EXPECT_EQ(u.target.threads, 2);
  EXPECT_EQ(u.extends_chain, (std::vector<std::string>{"raspberry-pi-5", "base"}));
  EXPECT_EQ(ErrorOf("extends: raspbery-pi-5\n").rfind(
                At(1, 10) + "extends: no recipe file 'raspbery-pi-5' and no shipped recipe of "
                            "that name (did you mean 'raspberry-pi-5'?)",
                0),
            0u);
  EXPECT_EQ(ErrorOf("extends: nothere.yaml\n"),
            At(1, 10) + "cannot find base recipe '" + dir_ + "/nothere.yaml'");
}

TEST_F(RecipeTest, ExtendsCyclesAreErrors) {
  Write("a.yaml", "extends: b\n");
  Write("b.yaml", "target: {threads: 2}\nextends: a.yaml\n");
  try {
    LoadRecipe(dir_ + "/a.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              At(2, 10, "b.yaml") + "extends cycle: a.yaml -> b.yaml -> a.yaml");
  }
  EXPECT_EQ(ErrorOf("extends: self\n", "self.yaml"),
            At(1, 10, "self.yaml") + "extends cycle: self.yaml -> self.yaml");
}

TEST_F(RecipeTest, SizesAcceptBytesAndUnits) {
  auto size = [&](const std::string& v) {
    Recipe r = LoadRecipe(Write("s.yaml", "budgets:\n  max_size_bytes: " + v + "\n"));
    return *r.budgets.max_size_bytes;
  };
  EXPECT_EQ(size("1500000"), 1500000);
  EXPECT_EQ(size("\"1.5MB\""), 1500000);
  EXPECT_EQ(size("2 MiB"), 2097152);
  EXPECT_EQ(size("500kB"), 500000);
  EXPECT_EQ(size("64 KiB"), 65536);
  EXPECT_EQ(size("1.5e6"), 1500000);
  EXPECT_EQ(size("3 GB"), 3000000000);
  EXPECT_EQ(ErrorOf("budgets:\n  max_size_bytes: 1.5 XB\n"),
            At(2, 19) + "'budgets.max_size_bytes' must be a size in bytes (1500000, \"1.5MB\", "
                        "\"2 MiB\", \"500kB\"), got '1.5 XB'");
  EXPECT_EQ(ErrorOf("budgets:\n  max_size_bytes: -3MB\n")
                .rfind(At(2, 19) + "'budgets.max_size_bytes' must be a size in bytes", 0),
            0u);
  EXPECT_EQ(ErrorOf("budgets:\n  max_size_bytes: 0\n"),
            At(2, 19) + "'budgets.max_size_bytes' must be > 0 bytes, got '0'");
}

TEST_F(RecipeTest, YamlRoundTrips) {
  for (const auto& [name, path] : ShippedRecipes()) {
    SCOPED_TRACE(name);
    Recipe r = LoadRecipe(name);
    std::string yaml = RecipeToYaml(r);
    Recipe again = LoadRecipe(Write(name + ".yaml", yaml));
    // Equal but for the header comment, which names the base recipes applied.
    auto body = [](const std::string& y) { return y.substr(y.find('\n')); };
    EXPECT_EQ(body(RecipeToYaml(again)), body(yaml));
    EXPECT_TRUE(again.extends_chain.empty());
    EXPECT_EQ(again.name, r.name);
    EXPECT_EQ(again.target.threads, r.target.threads);
    EXPECT_EQ(again.budgets.max_accuracy_drop, r.budgets.max_accuracy_drop);
    EXPECT_EQ(again.budgets.max_size_ratio, r.budgets.max_size_ratio);
    ASSERT_EQ(again.pipeline.size(), r.pipeline.size());
    for (size_t i = 0; i < r.pipeline.size(); ++i) {
      EXPECT_EQ(again.pipeline[i].pass, r.pipeline[i].pass);
      EXPECT_EQ(again.pipeline[i].options, r.pipeline[i].options);
    }
    EXPECT_EQ(again.tuning.allow_slower, r.tuning.allow_slower);
    ASSERT_EQ(again.tuning.steps.size(), r.tuning.steps.size());
    for (size_t i = 0; i < r.tuning.steps.size(); ++i) {
      EXPECT_EQ(again.tuning.steps[i].name, r.tuning.steps[i].name);
      EXPECT_EQ(again.tuning.steps[i].overrides.size(), r.tuning.steps[i].overrides.size());
    }
  }
}

// tuning.allow_slower: a boolean, default false (no slower trial is kept), only with
// objective size; the shipped size recipes set it.
TEST_F(RecipeTest, AllowSlowerIsABooleanThatOnlyObjectiveSizeTakes) {
  EXPECT_FALSE(LoadRecipe(Write("d.yaml", "pipeline: [fold-constants]\n")).tuning.allow_slower);
  EXPECT_TRUE(LoadRecipe(Write("t.yaml", "tuning:\n  allow_slower: yes\n")).tuning.allow_slower);
  EXPECT_EQ(ErrorOf("tuning:\n  allow_slower: sometimes\n"),
            At(2, 17) + "'tuning.allow_slower' must be true or false, got 'sometimes'");
  EXPECT_EQ(ErrorOf("tuning:\n  allow_slowr: true\n"),
            At(2, 3) + "unknown key 'allow_slowr' in 'tuning' (did you mean 'allow_slower'?)");
  EXPECT_EQ(ErrorOf("tuning:\n  objective: latency\n  allow_slower: true\n"),
            At(3, 17) + "'tuning.allow_slower: true' keeps trials slower than the original, but "
                        "'tuning.objective' is latency (set at " + dir_ + "/x.yaml:2:14); remove one of them");
  // The contradiction is found after extends, pointing at both files.
  Write("fast.yaml", "tuning:\n  objective: latency\n");
  EXPECT_EQ(ErrorOf("extends: fast\ntuning:\n  allow_slower: true\n"),
            At(3, 17) + "'tuning.allow_slower: true' keeps trials slower than the original, but "
                        "'tuning.objective' is latency (set at " + dir_ + "/fast.yaml:2:14); remove one of them");
  // A child may turn it off again.
  Write("small.yaml", "tuning:\n  allow_slower: true\n");
  EXPECT_FALSE(LoadRecipe(Write("c.yaml", "extends: small\ntuning:\n  allow_slower: false\n")).tuning.allow_slower);
  EXPECT_TRUE(LoadRecipe("generic-min-size").tuning.allow_slower);
  EXPECT_TRUE(LoadRecipe("generic-min-size-sparse").tuning.allow_slower);
  EXPECT_FALSE(LoadRecipe("x86-avx512-vnni").tuning.allow_slower);
}

// run/bench --max-memory takes the recipes' size syntax; empty keeps the session default.
TEST(MaxMemoryOptionTest, AcceptsRecipeSizesAndRefusesTheRest) {
  EXPECT_EQ(ParseMaxMemoryOption(""), 0u);
  EXPECT_EQ(ParseMaxMemoryOption("4GiB"), uint64_t{4} << 30);
  EXPECT_EQ(ParseMaxMemoryOption("512MB"), 512000000u);
  EXPECT_EQ(ParseMaxMemoryOption("4096"), 4096u);
  for (const char* bad : {"0", "-1", "lots", "4 parsecs"}) {
    try {
      ParseMaxMemoryOption(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUsage);
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace edgepress::tools
