// The distillation data stream and learning-rate schedule (distill/data_stream.h,
// distill/schedule.h): every epoch emits every sample exactly once whatever the buffer and
// sharding, the order depends on the seed and epoch only, Seek() replays it exactly (what
// resume relies on), and files with missing or inconsistent arrays are refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "distill/data_stream.h"
#include "distill/schedule.h"
#include "formats/npy/npy.h"
#include "ir/error.h"

namespace edgepress::distill {
namespace {

// `shards` files holding sample ids 0..n-1 in "id" (int64) and a [n, 2] float array.
std::vector<std::string> WriteIds(const std::string& tag, int64_t n, int shards) {
  std::vector<std::string> files;
  for (int s = 0; s < shards; ++s) {
    int64_t begin = n * s / shards, end = n * (s + 1) / shards;
    std::vector<int64_t> ids;
    std::vector<float> x;
    for (int64_t i = begin; i < end; ++i) ids.push_back(i), x.push_back(i), x.push_back(-i);
    std::string f = ::testing::TempDir() + "/ids_" + tag + "_" + std::to_string(s) + ".npz";
    formats::SaveNpz({{"id", ir::Tensor::FromVector(ir::DType::kInt64, {end - begin}, ids)},
                      {"x", ir::Tensor::FromVector(ir::DType::kFloat32, {end - begin, 2}, x)}},
                     f);
    files.push_back(f);
  }
  return files;
}

std::vector<int64_t> Take(DataStream& ds, int64_t count, int64_t batch) {
  std::vector<int64_t> ids;
  for (int64_t done = 0; done < count; done += batch) {
    std::vector<ir::Tensor> b = ds.Next(batch);
    EXPECT_EQ(b.size(), 2u);
    EXPECT_EQ(b[1].shape(), (std::vector<int64_t>{batch, 2}));
    for (int64_t i = 0; i < batch; ++i) {
      int64_t id = b[0].data<int64_t>()[i];
      EXPECT_EQ(b[1].data<float>()[2 * i], static_cast<float>(id));  // rows stay together
      ids.push_back(id);
    }
  }
  return ids;
}

TEST(DistillDataStream, EveryEpochIsAPermutationForAnyBufferAndSharding) {
  const int64_t n = 60;
  for (int shards : {1, 4}) {
    std::vector<std::string> files = WriteIds("perm" + std::to_string(shards), n, shards);
    for (int64_t buffer : {1, 7, 1000}) {
      DataStream ds(files, {"id", "x"}, {}, buffer, /*seed=*/3, /*shuffle=*/true);
      ASSERT_EQ(ds.size(), n);
      std::vector<int64_t> ids = Take(ds, 3 * n, 12);
      for (int e = 0; e < 3; ++e) {
        std::set<int64_t> epoch(ids.begin() + e * n, ids.begin() + (e + 1) * n);
        EXPECT_EQ(epoch.size(), static_cast<size_t>(n))
            << "shards " << shards << " buffer " << buffer;
      }
      // Shuffled unless one file and a buffer of one (the file order).
      std::vector<int64_t> first(ids.begin(), ids.begin() + n), sorted = first;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_EQ(first == sorted, shards == 1 && buffer == 1)
          << "shards " << shards << " buffer " << buffer;
      // Epochs differ from each other.
      if (buffer > 1) {
        EXPECT_NE(first, std::vector<int64_t>(ids.begin() + n, ids.begin() + 2 * n));
      }
    }
  }
}

TEST(DistillDataStream, OrderDependsOnTheSeedAndSeekReplaysIt) {
  std::vector<std::string> files = WriteIds("seek", 50, 3);
  DataStream a(files, {"id", "x"}, {}, 16, 7, true), b(files, {"id", "x"}, {}, 16, 7, true),
      c(files, {"id", "x"}, {}, 16, 8, true);
  std::vector<int64_t> ia = Take(a, 120, 8);
  EXPECT_EQ(ia, Take(b, 120, 8));
  EXPECT_NE(ia, Take(c, 120, 8));
  // Stop after 13 batches of 8 (epoch 2, sample 4), seek a fresh stream there: same rest.
  DataStream d(files, {"id", "x"}, {}, 16, 7, true);
  Take(d, 104, 8);
  EXPECT_EQ(d.epoch(), 2);
  EXPECT_EQ(d.position(), 4);
  DataStream e(files, {"id", "x"}, {}, 16, 7, true);
  e.Seek(d.epoch(), d.position());
  EXPECT_EQ(Take(d, 40, 8), Take(e, 40, 8));
  EXPECT_THROW(e.Seek(0, 51), Error);
}

// Data parallel: rank r of w keeps rows [r*b/w, (r+1)*b/w) of each global batch of b. The
// ranks' slices put together are the one-process batch, and every rank's stream ends at the
// same position (what its checkpoint stores), across an epoch end.
TEST(DistillDataStream, RankSlicesOfAGlobalBatchMakeTheWholeBatch) {
  std::vector<std::string> files = WriteIds("ranks", 50, 2);
  const int64_t batch = 12, world = 3, share = batch / world;
  DataStream whole(files, {"id", "x"}, {}, 16, 5, true);
  std::vector<DataStream> ranks;
  for (int r = 0; r < world; ++r)
    ranks.emplace_back(files, std::vector<std::string>{"id", "x"}, std::vector<std::string>{}, 16,
                       5, true);
  for (int step = 0; step < 6; ++step) {  // 72 samples: into the second epoch
    std::vector<ir::Tensor> all = whole.Next(batch);
    for (int64_t r = 0; r < world; ++r) {
      std::vector<ir::Tensor> part = ranks[r].Next(batch, r * share, share);
      ASSERT_EQ(part[1].shape(), (std::vector<int64_t>{share, 2}));
      for (int64_t i = 0; i < share; ++i) {
        EXPECT_EQ(part[0].data<int64_t>()[i], all[0].data<int64_t>()[r * share + i]);
        EXPECT_EQ(part[1].data<float>()[2 * i], all[1].data<float>()[2 * (r * share + i)]);
      }
      EXPECT_EQ(ranks[r].epoch(), whole.epoch());
      EXPECT_EQ(ranks[r].position(), whole.position());
    }
  }
  EXPECT_EQ(whole.epoch(), 1);
}

TEST(DistillDataStream, MissingAndInconsistentArraysAreNamed) {
  std::vector<std::string> files = WriteIds("bad", 10, 2);
  try {
    DataStream ds(files, {"image"}, {}, 4, 0, true);
    FAIL() << "a missing array was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no array 'image'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(files[0]), std::string::npos) << e.what();
  }
  // An optional array is kept only when every file has it.
  std::string other = ::testing::TempDir() + "/ids_bad_label.npz";
  formats::SaveNpz(
      {{"id", ir::Tensor::FromVector(ir::DType::kInt64, {2}, std::vector<int64_t>{0, 1})},
       {"label", ir::Tensor::FromVector(ir::DType::kInt64, {2}, std::vector<int64_t>{0, 1})}},
      other);
  DataStream mixed({files[0], other}, {"id"}, {"label"}, 4, 0, true);
  EXPECT_FALSE(mixed.has("label"));
  DataStream all({other}, {"id"}, {"label"}, 4, 0, true);
  EXPECT_TRUE(all.has("label"));
  // Sample counts of a file's arrays must agree; dtypes across files too.
  std::string ragged = ::testing::TempDir() + "/ids_ragged.npz";
  formats::SaveNpz(
      {{"id", ir::Tensor::FromVector(ir::DType::kInt64, {2}, std::vector<int64_t>{0, 1})},
       {"label", ir::Tensor::FromVector(ir::DType::kInt64, {3}, std::vector<int64_t>{0, 1, 2})}},
      ragged);
  EXPECT_THROW(DataStream({ragged}, {"id", "label"}, {}, 4, 0, true), Error);
  std::string floats = ::testing::TempDir() + "/ids_float.npz";
  formats::SaveNpz(
      {{"id", ir::Tensor::FromVector(ir::DType::kFloat32, {1}, std::vector<float>{0})}}, floats);
  EXPECT_THROW(DataStream({files[0], floats}, {"id"}, {}, 4, 0, true), Error);
  EXPECT_THROW(ExpandDataFiles({::testing::TempDir() + "/no_such.npz"}, "--data"), Error);
}

TEST(DistillSchedule, WarmupThenCosineOrLinearDecay) {
  LrSchedule s;
  s.peak = 1.0;
  s.min_lr = 0.1;
  s.warmup = 4;
  s.total = 14;
  s.Validate();
  EXPECT_DOUBLE_EQ(s.At(0), 0.25);
  EXPECT_DOUBLE_EQ(s.At(3), 1.0);
  EXPECT_DOUBLE_EQ(s.At(4), 1.0);                // decay starts at the peak
  EXPECT_NEAR(s.At(9), 0.1 + 0.9 * 0.5, 1e-12);  // half way: cosine at 1/2
  EXPECT_NEAR(s.At(14), 0.1, 1e-12);
  for (int64_t i = 5; i < 14; ++i) EXPECT_LT(s.At(i), s.At(i - 1));
  s.decay = "linear";
  EXPECT_NEAR(s.At(6), 0.1 + 0.9 * 0.8, 1e-12);
  s.decay = "constant";
  EXPECT_DOUBLE_EQ(s.At(13), 1.0);
  s.decay = "step";
  EXPECT_THROW(s.Validate(), Error);
  s.decay = "cosine";
  s.warmup = 15;
  EXPECT_THROW(s.Validate(), Error);
}

}  // namespace
}  // namespace edgepress::distill
