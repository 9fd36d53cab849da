// ONNX round trip over Debian's libonnx-testdata: every model is imported, exported,
// checked with onnx::checker and compared with the original under the normalisation of
// formats/onnx/onnx_compare.h; the test-data tensors load and re-save equivalently.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "formats/onnx/onnx.h"
#include "formats/onnx/onnx_compare.h"
#include "ir/error.h"

namespace fs = std::filesystem;
using namespace edgepress;

namespace {

const char* kData = "/usr/share/libonnx-testdata/data";

std::vector<fs::path> Models() {
  std::vector<fs::path> out;
  for (const char* dir : {"node", "simple", "pytorch-converted", "pytorch-operator", "real"}) {
    fs::path d = fs::path(kData) / dir;
    if (!fs::is_directory(d)) continue;
    for (const auto& e : fs::directory_iterator(d))
      if (fs::exists(e.path() / "model.onnx")) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path WorkDir(const std::string& name) {
  fs::path d = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / name;
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(OnnxRoundTrip, EveryTestdataModel) {
  std::vector<fs::path> models = Models();
  if (models.empty()) GTEST_SKIP() << "libonnx-testdata is not installed (" << kData << ")";
  fs::path out_dir = WorkDir("onnx_roundtrip");
  int ok = 0, source_fails_checker = 0;
  std::vector<std::string> failures;
  for (const fs::path& dir : models) {
    const std::string label = dir.parent_path().filename().string() + "/" + dir.filename().string();
    const std::string src = (dir / "model.onnx").string();
    const std::string dst = (out_dir / (dir.parent_path().filename().string() + "_" +
                                        dir.filename().string() + ".onnx")).string();
    try {
      auto m = formats::LoadOnnx(src);
      formats::OnnxSaveOptions o;
      o.check = false;  // checked below, against the source's own verdict
      formats::SaveOnnx(*m, dst, o);
      bool src_ok = true;
      try {
        formats::CheckOnnxFile(src);
      } catch (const Error&) {
        src_ok = false;
        ++source_fails_checker;
      }
      if (src_ok) formats::CheckOnnxFile(dst);
      std::string diff;
      if (!formats::OnnxFilesEquivalent(src, dst, &diff)) {
        failures.push_back(label + ": not equivalent:\n" + diff);
        continue;
      }
      // Importing the export again must give the same file (a fixed point).
      auto m2 = formats::LoadOnnx(dst);
      if (formats::SerializeOnnx(*m2) != formats::SerializeOnnx(*m)) {
        failures.push_back(label + ": second round trip differs");
        continue;
      }
      ++ok;
    } catch (const Error& e) {
      failures.push_back(label + ": " + e.what());
    }
  }
  std::printf("[ summary  ] ONNX round trip: %d of %zu testdata models equivalent and checked "
              "(%d sources fail onnx::checker themselves), %zu failures\n",
              ok, models.size(), source_fails_checker, failures.size());
  for (const auto& f : failures) ADD_FAILURE() << f;
}

TEST(OnnxRoundTrip, TestDataTensorsReload) {
  std::vector<fs::path> models = Models();
  if (models.empty()) GTEST_SKIP() << "libonnx-testdata is not installed";
  // Thousands of small atomic (fsync'ed) writes: use tmpfs when there is one.
  fs::path out = (fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : WorkDir("onnx_pb")) /
                 ("edgepress_pb_" + std::to_string(::getpid()) + ".pb");
  int tensors = 0, non_tensor = 0, bf16_as_u16 = 0;
  std::vector<std::string> failures;
  for (const fs::path& dir : models) {
    std::unique_ptr<ir::Model> m;
    try {
      m = formats::LoadOnnx((dir / "model.onnx").string());
    } catch (const Error&) {
      continue;  // reported by EveryTestdataModel
    }
    std::vector<ir::Value*> inputs;
    for (ir::Value* v : m->graph->inputs())
      if (!v->is_initializer()) inputs.push_back(v);
    for (const auto& set : fs::directory_iterator(dir)) {
      if (!set.is_directory()) continue;
      for (const auto& f : fs::directory_iterator(set.path())) {
        const std::string name = f.path().filename().string();
        bool is_input = name.rfind("input_", 0) == 0;
        if (!is_input && name.rfind("output_", 0) != 0) continue;
        size_t k = std::stoul(name.substr(is_input ? 6 : 7));
        const auto& vs = is_input ? inputs : m->graph->outputs();
        // Sequence/optional values are stored as SequenceProto/OptionalProto files.
        if (k >= vs.size() || !vs[k]->type.is_tensor()) {
          ++non_tensor;
          continue;
        }
        try {
          std::string tname;
          ir::Tensor t = formats::LoadTensorProtoFile(f.path().string(), &tname);
          // numpy has no bfloat16, so ONNX's generator stores bf16 test data as uint16.
          if (vs[k]->type.dtype == ir::DType::kBFloat16 && t.dtype() == ir::DType::kUInt16)
            ++bf16_as_u16;
          else if (vs[k]->type.dtype != ir::DType::kUndefined && t.dtype() != vs[k]->type.dtype)
            failures.push_back(f.path().string() + ": dtype " + ir::DTypeName(t.dtype()) +
                               " but the model declares " + ir::DTypeName(vs[k]->type.dtype));
          formats::SaveTensorProtoFile(t, tname, out.string());
          std::string diff;
          if (!formats::TensorProtoFilesEquivalent(f.path().string(), out.string(), &diff))
            failures.push_back(f.path().string() + ": re-saved tensor differs: " + diff);
          ASSERT_EQ(formats::LoadTensorProtoFile(out.string()), t);
          ++tensors;
        } catch (const Error& e) {
          failures.push_back(e.what());
        }
      }
    }
  }
  fs::remove(out);
  std::printf("[ summary  ] %d test-data tensors reloaded identically (%d bf16 stored as u16), "
              "%d non-tensor files skipped, %zu failures\n",
              tensors, bf16_as_u16, non_tensor, failures.size());
  EXPECT_GT(tensors, 1000);
  for (const auto& f : failures) ADD_FAILURE() << f;
}
