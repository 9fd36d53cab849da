// Calibrate() over the runtime observer on a tiny model (exact minmax ranges of every
// activation, batching, sample limits, tensor selection), and ranges.json: round trip,
// and one clear error per kind of bad field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "calibrate/calibrate.h"
#include "ir/builder.h"
#include "ir/error.h"
#include "ir/file_util.h"

namespace edgepress::calibrate {
namespace {

// h = relu(x - 1); y = h * 2, with x: f32[batch, 2].
std::unique_ptr<ir::Model> TinyModel() {
  ir::GraphBuilder b;
  auto* x = b.InputShape("x", ir::DType::kFloat32, {ir::Dim::Symbol("batch"), ir::Dim::Known(2)});
  auto* s = b.Op("Sub", {x, b.Const("one", ir::FloatTensor({1}, {1}))}, {}, "sub");
  s->graph()->RenameValue(s, "s");
  auto* h = b.Op("Relu", {s}, {}, "relu");
  h->graph()->RenameValue(h, "h");
  auto* y = b.Op("Mul", {h, b.Const("two", ir::FloatTensor({1}, {2}))}, {}, "mul");
  y->graph()->RenameValue(y, "y");
  b.Output(y);
  return b.Build();
}

// 4 samples: x = [[-3, 0.5], [2, 4], [1, -1], [6, 1.5]].
DataSet TinyData(const ir::Model& m) {
  return DataSet::FromTensors(
      {{"x", ir::FloatTensor({4, 2}, {-3, 0.5f, 2, 4, 1, -1, 6, 1.5f})}}, *m.graph, "tiny");
}

TEST(Calibrate, MinMaxOfEveryActivation) {
  auto m = TinyModel();
  DataSet data = TinyData(*m);
  CalibrationOptions o;
  std::vector<std::pair<int64_t, int64_t>> progress;
  o.progress = [&](int64_t done, int64_t total) { progress.emplace_back(done, total); };
  CalibrationResult r = Calibrate(*m, data, o);
  EXPECT_EQ(r.method, "minmax");
  EXPECT_EQ(r.samples, 4);
  EXPECT_EQ(r.data_sha256, data.Sha256());
  EXPECT_GT(r.peak_observer_bytes, 0u);
  ASSERT_EQ(r.ranges.size(), 4u);  // x, s, h, y
  EXPECT_EQ(r.ranges.at("x").min, -3.0f);
  EXPECT_EQ(r.ranges.at("x").max, 6.0f);
  EXPECT_EQ(r.ranges.at("s").min, -4.0f);
  EXPECT_EQ(r.ranges.at("s").max, 5.0f);
  EXPECT_EQ(r.ranges.at("h").min, 0.0f);
  EXPECT_EQ(r.ranges.at("h").max, 5.0f);
  EXPECT_EQ(r.ranges.at("y").min, 0.0f);
  EXPECT_EQ(r.ranges.at("y").max, 10.0f);
  EXPECT_EQ(r.ranges.at("y").count, 8u);
  EXPECT_EQ(progress, (std::vector<std::pair<int64_t, int64_t>>{{1, 4}, {2, 4}, {3, 4}, {4, 4}}));

  // Batches of 3 (the last one short) give the same ranges.
  o.batch_size = 3;
  progress.clear();
  CalibrationResult b = Calibrate(*m, data, o);
  EXPECT_EQ(progress, (std::vector<std::pair<int64_t, int64_t>>{{3, 4}, {4, 4}}));
  for (const auto& [name, t] : r.ranges) {
    EXPECT_EQ(b.ranges.at(name).min, t.min) << name;
    EXPECT_EQ(b.ranges.at(name).max, t.max) << name;
  }
  EXPECT_EQ(RangesToJson(b), RangesToJson(r));
}

TEST(Calibrate, MaxSamplesAndTensorSelection) {
  auto m = TinyModel();
  DataSet data = TinyData(*m);
  CalibrationOptions o;
  o.max_samples = 2;
  o.tensors = {"y"};
  CalibrationResult r = Calibrate(*m, data, o);
  EXPECT_EQ(r.samples, 2);
  ASSERT_EQ(r.ranges.size(), 1u);
  EXPECT_EQ(r.ranges.at("y").max, 6.0f);  // (4 - 1) * 2 from the first two samples

  o.tensors = {"nope"};
  try {
    Calibrate(*m, data, o);
    FAIL() << "an unknown tensor was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos) << e.what();
  }
  o.tensors = {};
  o.batch_size = 0;
  EXPECT_THROW(Calibrate(*m, data, o), Error);
  o.batch_size = 1;
  o.max_samples = 0;
  EXPECT_THROW(Calibrate(*m, data, o), Error);
}

TEST(Calibrate, AllNaNActivationIsNamed) {
  // log of negative inputs is NaN everywhere: the error names the tensor.
  ir::GraphBuilder b;
  auto* x = b.Input("x", ir::DType::kFloat32, {-1, 2});
  auto* l = b.Op("Log", {x}, {}, "log");
  l->graph()->RenameValue(l, "log_out");
  b.Output(l);
  auto m = b.Build();
  DataSet data = DataSet::FromTensors({{"x", ir::FloatTensor({2, 2}, {-1, -2, -3, -4})}},
                                      *m->graph);
  CalibrationOptions o;
  o.tensors = {"log_out"};
  try {
    Calibrate(*m, data, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("log_out"), std::string::npos) << e.what();
  }
}

TEST(Ranges, JsonRoundTripIsExact) {
  CalibrationResult r;
  r.method = "entropy";
  r.data_sha256 = std::string(64, 'a');
  r.samples = 200;
  TensorRange t;
  t.min = -0.1f;
  t.max = 3.3333333f;
  t.count = 12345;
  t.nonfinite = 2;
  r.ranges["conv1"] = t;
  TensorRange c;
  c.min = -1;
  c.max = 2;
  c.axis = 1;
  c.channel_min = {-1, -0.5f};
  c.channel_max = {1.5f, 2};
  r.ranges["conv2"] = c;
  std::string json = RangesToJson(r);
  CalibrationResult back = RangesFromJson(json, "r.json");
  EXPECT_EQ(RangesToJson(back), json);
  EXPECT_EQ(back.ranges.at("conv1").max, 3.3333333f);
  EXPECT_EQ(back.ranges.at("conv2").channel_min, c.channel_min);
  EXPECT_EQ(back.samples, 200);

  char tmpl[] = "/tmp/edgepress_ranges_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/ranges.json";
  SaveRanges(r, path);
  EXPECT_EQ(ReadFileToString(path), json);
  EXPECT_EQ(RangesToJson(LoadRanges(path)), json);
  std::system(("rm -rf '" + std::string(tmpl) + "'").c_str());
  EXPECT_THROW(LoadRanges("/nonexistent/ranges.json"), Error);
}

TEST(Ranges, ReaderNamesFileTensorAndField) {
  const std::string ok_entry = R"("min":-1,"max":1,"axis":-1,"count":4,"nonfinite":0)";
  auto doc = [](const std::string& entry) {
    return R"({"version":1,"method":"minmax","data_sha256":"ab","samples":4,"ranges":{"act":{)" +
           entry + "}}}";
  };
  EXPECT_NO_THROW(RangesFromJson(doc(ok_entry), "f.json"));
  struct Case {
    std::string json, expect;
  };
  std::vector<Case> cases = {
      {"not json", "not valid JSON"},
      {"[1,2]", "top level"},
      {R"({"version":2,"method":"minmax","data_sha256":"","samples":0,"ranges":{}})", "version"},
      {R"({"version":1,"data_sha256":"","samples":0,"ranges":{}})", "missing field 'method'"},
      {R"({"version":1,"method":"minmaks","data_sha256":"","samples":0,"ranges":{}})",
       "did you mean 'minmax'"},
      {R"({"version":1,"method":"minmax","data_sha256":"","samples":-3,"ranges":{}})",
       "'samples'"},
      {R"({"version":1,"method":"minmax","data_sha256":"","samples":0,"ranges":[]})",
       "'ranges' must be an object"},
      {doc(R"("max":1,"axis":-1,"count":4,"nonfinite":0)"), "tensor 'act': missing field 'min'"},
      {doc(R"("min":"x","max":1,"axis":-1,"count":4,"nonfinite":0)"),
       "tensor 'act': 'min' must be a number"},
      {doc(R"("min":2,"max":1,"axis":-1,"count":4,"nonfinite":0)"), "greater than max"},
      {doc(R"("min":-1,"max":1,"axis":0,"count":4,"nonfinite":0)"), "missing field 'channel_min'"},
      {doc(R"("min":-1,"max":1,"axis":0,"channel_min":[0],"channel_max":[1,2],"count":4,"nonfinite":0)"),
       "same length"},
      {doc(R"("min":-1,"max":1,"axis":0,"channel_min":[3],"channel_max":[1],"count":4,"nonfinite":0)"),
       "channel 0"},
      {doc(R"("min":-1,"max":1,"axis":-1,"count":1.5,"nonfinite":0)"), "'count'"},
      {doc(R"("min":-1,"max":1e39,"axis":-1,"count":1,"nonfinite":0)"), "finite float32"},
  };
  for (const Case& c : cases) {
    try {
      RangesFromJson(c.json, "f.json");
      ADD_FAILURE() << "accepted: " << c.json;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
      EXPECT_NE(msg.find("f.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << msg;
    }
  }
}

}  // namespace
}  // namespace edgepress::calibrate
