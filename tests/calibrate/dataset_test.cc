// DataSet: batches across file boundaries, determinism and the data hash, extras, and a
// clear error (naming the file and array) for each kind of bad data.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "calibrate/dataset.h"
#include "formats/npy/npy.h"
#include "ir/builder.h"
#include "ir/error.h"
#include "ir/file_util.h"
#include "ir/sha256.h"

namespace edgepress::calibrate {
namespace {

ir::Tensor F32(std::vector<int64_t> shape, float start) {
  ir::Tensor t(ir::DType::kFloat32, std::move(shape));
  float* p = t.mutable_data<float>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = start + static_cast<float>(i);
  return t;
}

// y = x + 1 with x: f32[batch, 3] (symbolic batch).
std::unique_ptr<ir::Model> Model1() {
  ir::GraphBuilder b;
  auto* x = b.InputShape("x", ir::DType::kFloat32, {ir::Dim::Symbol("batch"), ir::Dim::Known(3)});
  b.Output(b.Op("Add", {x, b.Const("one", ir::FloatTensor({1}, {1}))}));
  return b.Build();
}

// Two inputs: x f32[batch, 3], ids i64[batch].
std::unique_ptr<ir::Model> Model2() {
  ir::GraphBuilder b;
  auto* x = b.InputShape("x", ir::DType::kFloat32, {ir::Dim::Symbol("batch"), ir::Dim::Known(3)});
  auto* ids = b.InputShape("ids", ir::DType::kInt64, {ir::Dim::Symbol("batch")});
  b.Output(b.Op("Identity", {x}));
  b.Output(b.Op("Identity", {ids}));
  return b.Build();
}

class DataSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/edgepress_dataset_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string Save(const std::string& name, const NamedTensors& arrays) {
    std::string path = dir_ + "/" + name;
    formats::SaveNpz(arrays, path);
    return path;
  }
  std::string dir_;
};

std::string ErrorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_F(DataSetTest, BatchesCrossFileBoundaries) {
  auto m = Model1();
  // File a: samples 0..3 (values 0..11), file b: samples 4..5 (values 100..105).
  std::string a = Save("a.npz", {{"x", F32({4, 3}, 0)}, {"label", F32({4}, 50)}});
  std::string b = Save("b.npz", {{"x", F32({2, 3}, 100)}, {"label", F32({2}, 60)}});
  DataSet ds = DataSet::Open({a, b}, *m->graph);
  EXPECT_EQ(ds.size(), 6);
  EXPECT_EQ(ds.input_names(), (std::vector<std::string>{"x"}));
  NamedTensors batch = ds.Batch(3, 2);  // last of a, first of b
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].first, "x");
  EXPECT_EQ(batch[0].second.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(batch[0].second.ToDouble(), (std::vector<double>{9, 10, 11, 100, 101, 102}));
  // Within one file.
  EXPECT_EQ(ds.Batch(5, 1)[0].second.ToDouble(), (std::vector<double>{103, 104, 105}));
  EXPECT_EQ(ds.Batch(0, 6)[0].second.numel(), 18u);
  // Extras follow the same rows.
  EXPECT_TRUE(ds.HasArray("label"));
  EXPECT_FALSE(ds.HasArray("nope"));
  EXPECT_EQ(ds.Extra("label", 2, 3).ToDouble(), (std::vector<double>{52, 53, 60}));
  std::string msg = ErrorOf([&] { ds.Extra("nope", 0, 1); });
  EXPECT_NE(msg.find("'nope'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("a.npz"), std::string::npos) << msg;
  // Out of range.
  EXPECT_THROW(ds.Batch(5, 2), Error);
  EXPECT_THROW(ds.Batch(-1, 1), Error);
  EXPECT_THROW(ds.Batch(0, 0), Error);
}

TEST_F(DataSetTest, DeterministicAndHashesTheFileBytesInOrder) {
  auto m = Model1();
  std::string a = Save("a.npz", {{"x", F32({4, 3}, 0)}});
  std::string b = Save("b.npz", {{"x", F32({2, 3}, 100)}});
  DataSet d1 = DataSet::Open({a, b}, *m->graph);
  DataSet d2 = DataSet::Open({a, b}, *m->graph);
  EXPECT_EQ(d1.Sha256(), d2.Sha256());
  EXPECT_EQ(d1.Batch(1, 4)[0].second, d2.Batch(1, 4)[0].second);
  // The hash is SHA-256 of the concatenated bytes.
  Sha256 h;
  h.Update(ReadFileToString(a));
  h.Update(ReadFileToString(b));
  EXPECT_EQ(d1.Sha256(), h.HexDigest());
  EXPECT_EQ(d1.Sha256().size(), 64u);
  // Order matters.
  EXPECT_NE(DataSet::Open({b, a}, *m->graph).Sha256(), d1.Sha256());
  // One file: the file's own hash.
  EXPECT_EQ(DataSet::Open({a}, *m->graph).Sha256(), Sha256File(a));
  // In-memory data hashes its arrays: same arrays, same hash; other values, other hash.
  DataSet t1 = DataSet::FromTensors({{"x", F32({2, 3}, 0)}}, *m->graph);
  DataSet t2 = DataSet::FromTensors({{"x", F32({2, 3}, 0)}}, *m->graph);
  DataSet t3 = DataSet::FromTensors({{"x", F32({2, 3}, 1)}}, *m->graph);
  EXPECT_EQ(t1.Sha256(), t2.Sha256());
  EXPECT_NE(t1.Sha256(), t3.Sha256());
  EXPECT_EQ(t1.Batch(1, 1)[0].second.ToDouble(), (std::vector<double>{3, 4, 5}));
}

TEST_F(DataSetTest, HoldsOneFileAndRereadsOnDemand) {
  auto m = Model1();
  std::string a = Save("a.npz", {{"x", F32({4, 3}, 0)}});
  std::string b = Save("b.npz", {{"x", F32({2, 3}, 100)}});
  DataSet ds = DataSet::Open({a, b}, *m->graph);
  ir::Tensor first = ds.Batch(0, 1)[0].second;  // reads a
  EXPECT_EQ(ds.Batch(4, 1)[0].second.ToDouble(), (std::vector<double>{100, 101, 102}));  // b
  ASSERT_EQ(std::remove(a.c_str()), 0);
  // b is the file held now; a batch of b needs no file access.
  EXPECT_EQ(ds.Batch(5, 1)[0].second.ToDouble(), (std::vector<double>{103, 104, 105}));
  // a was dropped when b was read: asking for it again re-reads (and here fails, naming it).
  std::string msg = ErrorOf([&] { ds.Batch(0, 1); });
  EXPECT_NE(msg.find("a.npz"), std::string::npos) << msg;
  // Tensors handed out earlier stay valid: they share the buffer they were sliced from.
  EXPECT_EQ(first.ToDouble(), (std::vector<double>{0, 1, 2}));
}

TEST_F(DataSetTest, NpyFileFeedsTheOnlyInput) {
  auto m = Model1();
  std::string p = dir_ + "/samples.npy";
  formats::SaveNpy(F32({3, 3}, 0), p);
  DataSet ds = DataSet::Open({p}, *m->graph);
  EXPECT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.Batch(2, 1)[0].first, "x");
  // A model with two inputs cannot take a .npy.
  auto m2 = Model2();
  std::string msg = ErrorOf([&] { DataSet::Open({p}, *m2->graph); });
  EXPECT_NE(msg.find("samples.npy"), std::string::npos) << msg;
  EXPECT_NE(msg.find("2 inputs"), std::string::npos) << msg;
}

TEST_F(DataSetTest, TwoInputs) {
  auto m = Model2();
  auto ids = ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {4}, {7, 8, 9, 10});
  std::string a = Save("a.npz", {{"ids", ids}, {"x", F32({4, 3}, 0)}});
  DataSet ds = DataSet::Open({a}, *m->graph);
  NamedTensors b = ds.Batch(1, 2);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].first, "x");  // model input order, not file order
  EXPECT_EQ(b[1].first, "ids");
  EXPECT_EQ(b[1].second.ToInt64(), (std::vector<int64_t>{8, 9}));
}

TEST_F(DataSetTest, Errors) {
  auto m = Model1();
  auto m2 = Model2();
  // Empty file list.
  EXPECT_NE(ErrorOf([&] { DataSet::Open({}, *m->graph); }).find("no files"), std::string::npos);
  // Missing model input: names the file and lists what it has.
  std::string wrong = Save("wrong.npz", {{"image", F32({2, 3}, 0)}, {"label", F32({2}, 0)}});
  std::string msg = ErrorOf([&] { DataSet::Open({wrong}, *m->graph); });
  EXPECT_NE(msg.find("wrong.npz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'x'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'image' f32[2,3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'label'"), std::string::npos) << msg;
  // Element type mismatch.
  std::string f64 = Save("f64.npz", {{"x", ir::Tensor(ir::DType::kFloat64, {2, 3})}});
  msg = ErrorOf([&] { DataSet::Open({f64}, *m->graph); });
  EXPECT_NE(msg.find("f64.npz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("f64"), std::string::npos) << msg;
  EXPECT_NE(msg.find("f32"), std::string::npos) << msg;
  // Rank mismatch vs the model input (one extra dim would be a stack of samples; two is wrong).
  std::string r4 = Save("rank4.npz", {{"x", F32({2, 1, 1, 3}, 0)}});
  msg = ErrorOf([&] { DataSet::Open({r4}, *m->graph); });
  EXPECT_NE(msg.find("does not fit the model input"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank4.npz"), std::string::npos) << msg;
  // Known dim mismatch.
  std::string d4 = Save("dim4.npz", {{"x", F32({2, 4}, 0)}});
  EXPECT_NE(ErrorOf([&] { DataSet::Open({d4}, *m->graph); }).find("dim 1"), std::string::npos);
  // Inconsistent first dim between the inputs of one file.
  auto ids = ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {3}, {1, 2, 3});
  std::string bad_n = Save("bad_n.npz", {{"x", F32({4, 3}, 0)}, {"ids", ids}});
  msg = ErrorOf([&] { DataSet::Open({bad_n}, *m2->graph); });
  EXPECT_NE(msg.find("bad_n.npz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("samples"), std::string::npos) << msg;
  // Non-existent file; not a tensor file.
  EXPECT_THROW(DataSet::Open({dir_ + "/missing.npz"}, *m->graph), Error);
  WriteFileAtomic(dir_ + "/junk.npz", "hello");
  msg = ErrorOf([&] { DataSet::Open({dir_ + "/junk.npz"}, *m->graph); });
  EXPECT_NE(msg.find("junk.npz"), std::string::npos) << msg;
  // The second file is validated as well as the first.
  std::string good = Save("good.npz", {{"x", F32({2, 3}, 0)}});
  msg = ErrorOf([&] { DataSet::Open({good, wrong}, *m->graph); });
  EXPECT_NE(msg.find("wrong.npz"), std::string::npos) << msg;
  // In-memory data is checked the same way, named as asked.
  msg = ErrorOf([&] { DataSet::FromTensors({{"y", F32({2, 3}, 0)}}, *m->graph, "mem"); });
  EXPECT_NE(msg.find("'mem'"), std::string::npos) << msg;
}

// A recurrent model: x f32[batch, 4] next to a state f32[2, batch, 3] whose dim 0 is the
// layer, and a scalar sample rate.
std::unique_ptr<ir::Model> StateModel() {
  ir::GraphBuilder b;
  auto* x = b.InputShape("x", ir::DType::kFloat32, {ir::Dim::Symbol("batch"), ir::Dim::Known(4)});
  auto* h = b.InputShape("h", ir::DType::kFloat32,
                         {ir::Dim::Known(2), ir::Dim::Symbol("batch"), ir::Dim::Known(3)});
  auto* sr = b.Input("sr", ir::DType::kInt64, {});
  b.Output(b.Op("Identity", {x}));
  b.Output(b.Op("Identity", {h}));
  b.Output(b.Op("Identity", {sr}));
  return b.Build();
}

TEST_F(DataSetTest, StateAndScalarInputsAreConstantByDefault) {
  auto m = StateModel();
  ir::Tensor sr = ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {}, {16000});
  std::string f = Save("state.npz", {{"x", F32({5, 4}, 0)}, {"h", F32({2, 1, 3}, 100)}, {"sr", sr}});
  DataSet ds = DataSet::Open({f}, *m->graph);
  EXPECT_EQ(ds.size(), 5);
  EXPECT_EQ(ds.layouts(), (std::vector<InputLayout>{InputLayout::kBatched, InputLayout::kConstant,
                                                     InputLayout::kConstant}));
  NamedTensors b = ds.Batch(3, 2);
  EXPECT_EQ(b[0].second.shape(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(b[0].second.data<float>()[0], 12.f);  // row 3
  EXPECT_EQ(b[1].second.shape(), (std::vector<int64_t>{2, 1, 3}));  // the state as is
  EXPECT_EQ(b[1].second.data<float>()[0], 100.f);
  EXPECT_EQ(b[2].second.ToInt64(), (std::vector<int64_t>{16000}));
  // Told that the state is batch-major, the counts disagree: the error names both inputs
  // and the option.
  std::string msg = ErrorOf([&] {
    DataSet::Open({f}, *m->graph, ParseDataLayout({"h=batched"}, "test"));
  });
  EXPECT_NE(msg.find("'x' f32[5,4] has 5 (batched)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'h' f32[2,1,3] has 2 (batched)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--layout NAME=constant"), std::string::npos) << msg;
  // A layout for an input the model does not have, or a malformed one, is a usage error.
  EXPECT_NE(ErrorOf([&] { DataSet::Open({f}, *m->graph, ParseDataLayout({"state=constant"}, "t")); })
                .find("no such input"), std::string::npos);
  EXPECT_THROW(ParseDataLayout({"h=sideways"}, "t"), Error);
  EXPECT_THROW(ParseDataLayout({"h"}, "t"), Error);
}

TEST_F(DataSetTest, StackedSamplesFeedAFixedBatchModel) {
  // x f32[1, 4] (fixed batch 1): 6 samples stacked as [6, 1, 4].
  ir::GraphBuilder b;
  b.Output(b.Op("Identity", {b.Input("x", ir::DType::kFloat32, {1, 4})}));
  auto m = b.Build();
  std::string f = Save("stacked.npz", {{"x", F32({6, 1, 4}, 0)}});
  DataSet ds = DataSet::Open({f}, *m->graph);
  EXPECT_EQ(ds.size(), 6);
  EXPECT_EQ(ds.layouts()[0], InputLayout::kStacked);
  NamedTensors one = ds.Batch(2, 1);
  EXPECT_EQ(one[0].second.shape(), (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(one[0].second.data<float>()[0], 8.f);
  // A stacked sample must have the input's full shape.
  std::string bad = Save("bad_stack.npz", {{"x", F32({6, 2, 4}, 0)}});
  std::string msg = ErrorOf([&] { DataSet::Open({bad}, *m->graph); });
  EXPECT_NE(msg.find("stacked"), std::string::npos) << msg;
}

TEST_F(DataSetTest, AFolderOfOneFeedFilesIsOneSamplePerFile) {
  // Every array has exactly the input's fixed shape: each file is one feed.
  ir::GraphBuilder b;
  b.Output(b.Op("Identity", {b.Input("x", ir::DType::kFloat32, {2, 4})}));
  b.Output(b.Op("Identity", {b.Input("m", ir::DType::kFloat32, {4})}));
  auto m = b.Build();
  std::string sub = dir_ + "/feeds";
  ASSERT_EQ(std::system(("mkdir -p '" + sub + "'").c_str()), 0);
  for (int i = 0; i < 3; ++i)
    formats::SaveNpz({{"x", F32({2, 4}, 10.f * i)}, {"m", F32({4}, 0)}},
                     sub + "/feed" + std::to_string(i) + ".npz");
  DataSet ds = DataSet::Open({sub}, *m->graph);
  EXPECT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.Batch(2, 1)[0].second.data<float>()[0], 20.f);
  EXPECT_EQ(ds.Batch(2, 1)[0].second.shape(), (std::vector<int64_t>{2, 4}));
  EXPECT_NE(ErrorOf([&] { DataSet::Open({dir_ + "/no_such_dir_or_file"}, *m->graph); }), "(no error)");
}

TEST_F(DataSetTest, BatchAcrossFilesWithDifferentShapesIsAClearError) {
  // Symbolic dims may differ between files (e.g. sequence length); batch 1 still works.
  ir::GraphBuilder b;
  auto* x = b.InputShape("x", ir::DType::kFloat32, {ir::Dim::Symbol("n"), ir::Dim::Symbol("len")});
  b.Output(b.Op("Identity", {x}));
  auto m = b.Build();
  std::string a = Save("a.npz", {{"x", F32({2, 3}, 0)}});
  std::string c = Save("c.npz", {{"x", F32({2, 5}, 0)}});
  DataSet ds = DataSet::Open({a, c}, *m->graph);
  EXPECT_EQ(ds.Batch(1, 1)[0].second.shape(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(ds.Batch(2, 1)[0].second.shape(), (std::vector<int64_t>{1, 5}));
  std::string msg = ErrorOf([&] { ds.Batch(1, 2); });
  EXPECT_NE(msg.find("a.npz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("c.npz"), std::string::npos) << msg;
}

}  // namespace
}  // namespace edgepress::calibrate
