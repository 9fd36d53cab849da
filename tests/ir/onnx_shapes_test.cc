// Shape inference against real models: every model of Debian's libonnx-testdata (node/,
// simple/, pytorch-converted/, pytorch-operator/) is imported, every inferred type is
// cleared, graph inputs get the shapes of the suite's input tensors, and inference must
// then reproduce the dtype and shape of each expected output tensor. Dims it cannot know
// may stay unknown; a wrong dim, a wrong dtype or an exception is a failure. Skips when
// the test data is not installed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>

#include "formats/onnx/onnx.h"
#include "ir/dump.h"
#include "ir/error.h"
#include "ir/shape_inference.h"
#include "ir/verifier.h"

namespace edgepress::ir {
namespace {

namespace fs = std::filesystem;

const char* kDataRoot = "/usr/share/libonnx-testdata/data";

void ClearInferred(Graph& g) {
  for (Node* n : g.nodes()) {
    for (Value* v : n->outputs())
      if (v) v->type = ValueType{};
    for (Graph* sg : n->subgraphs()) ClearInferred(*sg);
  }
}

struct Tally {
  int exact = 0, partial = 0, not_imported = 0, no_data = 0;
  std::vector<std::string> failures;
};

// With `inputs_as_constants`, every graph input becomes an initializer holding the suite's
// input tensor, so that shape-deciding inputs (Reshape's shape, Slice's starts, Resize's
// scales, ...) are exercised through the constant paths.
void CheckModel(const fs::path& dir, bool inputs_as_constants, Tally& tally) {
  fs::path data = dir / "test_data_set_0";
  if (!fs::exists(dir / "model.onnx") || !fs::exists(data)) {
    ++tally.no_data;
    return;
  }
  std::unique_ptr<Model> m;
  try {
    m = formats::LoadOnnx((dir / "model.onnx").string());
  } catch (const Error&) {
    ++tally.not_imported;  // the importer's own tests cover these
    return;
  }
  std::string name = dir.parent_path().filename().string() + "/" + dir.filename().string();
  try {
    // Bind graph inputs (those without initializers) to the suite's input shapes.
    std::vector<Value*> real_inputs;
    for (Value* v : m->graph->inputs())
      if (!v->initializer()) real_inputs.push_back(v);
    for (size_t i = 0; i < real_inputs.size(); ++i) {
      fs::path p = data / ("input_" + std::to_string(i) + ".pb");
      if (!fs::exists(p) || !real_inputs[i]->type.is_tensor()) continue;
      Tensor t = formats::LoadTensorProtoFile(p.string());
      real_inputs[i]->type = ValueType::Tensor(t.dtype(), MakeShape(t.shape()));
      if (inputs_as_constants) {
        Graph& g = *m->graph;
        Value* c = g.AddInitializer(g.UniqueName(real_inputs[i]->name() + "_const"), t);
        g.ReplaceAllUsesWith(real_inputs[i], c);
        g.RemoveInput(real_inputs[i]);
      }
    }
    ClearInferred(*m->graph);
    InferShapes(*m);
    std::vector<std::string> problems = VerifyAll(*m);
    if (!problems.empty()) {
      tally.failures.push_back(name + ": verifier: " + problems[0]);
      return;
    }
    bool exact = true;
    for (size_t i = 0; i < m->graph->outputs().size(); ++i) {
      fs::path p = data / ("output_" + std::to_string(i) + ".pb");
      if (!fs::exists(p)) continue;
      Tensor want;
      try {
        want = formats::LoadTensorProtoFile(p.string());
      } catch (const Error&) {
        continue;  // sequences and other non-tensor outputs
      }
      const Value* out = m->graph->outputs()[i];
      const ValueType& got = out->type;
      if (!got.is_tensor() || got.dtype == DType::kUndefined) {
        exact = false;
        continue;
      }
      // The suite stores bfloat16 expectations as uint16 (ONNX 1.12 test data).
      bool bf16_as_u16 = got.dtype == DType::kBFloat16 && want.dtype() == DType::kUInt16;
      if (got.dtype != want.dtype() && !bf16_as_u16) {
        tally.failures.push_back(name + ": output '" + out->name() + "' inferred " +
                                 got.ToString() + ", expected dtype " + DTypeName(want.dtype()));
        return;
      }
      if (!got.shape) {
        exact = false;
        continue;
      }
      Shape expected = MakeShape(want.shape());
      bool rank_ok = got.shape->size() == expected.size();
      for (size_t k = 0; rank_ok && k < expected.size(); ++k) {
        const Dim& d = (*got.shape)[k];
        if (d.known() && d.value != expected[k].value) rank_ok = false;
        if (!d.known()) exact = false;
      }
      if (!rank_ok) {
        tally.failures.push_back(name + ": output '" + out->name() + "' inferred " +
                                 got.ToString() + ", expected " + ShapeToString(expected));
        return;
      }
    }
    if (exact) {
      ++tally.exact;
    } else {
      ++tally.partial;
      if (std::getenv("EDGEPRESS_VERBOSE")) {
        std::string ops;
        for (Node* n : m->graph->nodes())
          for (Value* o : n->outputs())
            if (o && (!o->type.is_tensor() || !o->type.shape || !ConcreteDims(*o->type.shape))) {
              ops += " " + n->op_type();
              break;
            }
        std::cout << "partial: " << name << ":" << ops << "\n";
      }
    }
  } catch (const std::exception& e) {
    tally.failures.push_back(name + ": " + e.what());
  }
}

Tally RunSuites(bool inputs_as_constants) {
  Tally tally;
  for (const char* suite : {"node", "simple", "pytorch-converted", "pytorch-operator"}) {
    fs::path root = fs::path(kDataRoot) / suite;
    if (!fs::exists(root)) continue;
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_directory()) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    for (const auto& d : dirs) CheckModel(d, inputs_as_constants, tally);
  }
  return tally;
}

void Report(const Tally& tally, const char* mode) {
  std::cout << "shape inference (" << mode << "): " << tally.exact << " exact, " << tally.partial
            << " partial, " << tally.failures.size() << " wrong, " << tally.not_imported
            << " not imported, " << tally.no_data << " without data\n";
  for (const auto& f : tally.failures) ADD_FAILURE() << f;
}

TEST(OnnxShapesTest, InferredShapesMatchTheSuitesExpectedOutputs) {
  if (!fs::exists(kDataRoot)) GTEST_SKIP() << "libonnx-testdata is not installed at " << kDataRoot;
  Tally tally = RunSuites(false);
  Report(tally, "inputs as inputs");
  // Most suite models use the ops this inference covers; a regression shows up here.
  EXPECT_GE(tally.exact, 770);
}

TEST(OnnxShapesTest, ConstantShapeInputsAreEvaluated) {
  if (!fs::exists(kDataRoot)) GTEST_SKIP() << "libonnx-testdata is not installed at " << kDataRoot;
  Tally tally = RunSuites(true);
  Report(tally, "inputs as constants");
  EXPECT_GE(tally.exact, 850);
}

}  // namespace
}  // namespace edgepress::ir
