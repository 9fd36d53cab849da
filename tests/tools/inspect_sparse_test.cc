// `edgepress inspect` on pruned weights: per-layer sparsity (zeros, N:M annotation) and
// the .epk layout and bytes of each sparse weight, text and --json, checked against the
// .epk writer's own numbers and the real file sizes; a dense weight is not listed.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "formats/epk/epk.h"
#include "ir/file_util.h"
#include "tests/tools/cli_run.h"

namespace fs = std::filesystem;
using namespace edgepress;
using namespace edgepress::test_util;

namespace {

ir::Tensor Weight(int64_t k, int64_t n, double zeros, int nm_m, uint32_t seed) {
  ir::Tensor t(ir::DType::kFloat32, {k, n});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < k * n; ++i) p[i] = u(rng) < zeros ? 0.f : 0.5f + static_cast<float>(u(rng));
  if (nm_m) {
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < n; ++j)
        if ((i + j) % nm_m >= nm_m / 2) p[i * n + j] = 0.f;
    ir::SparseEncoding e;
    e.kind = ir::SparseEncoding::Kind::kNM;
    e.n = nm_m / 2;
    e.m = nm_m;
    e.axis = 0;
    t.sparse = e;
  }
  return t;
}

TEST(InspectSparse, ReportsSparsityAndEpkBytes) {
  if (CliPath().empty() || !FileExists(CliPath())) GTEST_SKIP() << "the edgepress binary is not built";
  fs::path d = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "inspect_sparse";
  fs::remove_all(d);
  fs::create_directories(d);
  ir::Model m;
  m.opsets = {{"", 17}};
  ir::Graph& g = *m.graph;
  ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32, ir::MakeShape({1, 128})));
  ir::Value* w1 = g.AddInitializer("w_unstructured", Weight(128, 128, 0.9, 0, 1));
  ir::Value* w2 = g.AddInitializer("w_24", Weight(128, 64, 0.0, 4, 2));
  ir::Value* w3 = g.AddInitializer("w_dense", Weight(64, 8, 0.0, 0, 3));
  ir::Value* h = g.AddNode("MatMul", {x, w1}, {"h"}, "fc1")->output(0);
  ir::Value* h2 = g.AddNode("MatMul", {h, w2}, {"h2"}, "fc2")->output(0);
  g.AddOutput(g.AddNode("MatMul", {h2, w3}, {"y"}, "fc3")->output(0));
  const std::string path = (d / "pruned.epk").string();
  formats::SaveEpk(m, path);

  RunResult r = RunCommand(ShellQuote(CliPath()) + " inspect --json " + ShellQuote(path));
  ASSERT_EQ(r.rc, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  const auto& sp = j.at("sparsity");
  ASSERT_EQ(sp.at("layers").size(), 2u) << sp.dump();
  uint64_t dense = 0, stored = 0;
  for (const ir::Value* v : g.initializers()) {
    const formats::EpkTensorStorage s = formats::EpkStorageFor(*v->initializer());
    dense += s.dense_bytes;
    stored += s.stored_bytes;
  }
  EXPECT_EQ(sp.at("epk_dense_bytes").get<uint64_t>(), dense);
  EXPECT_EQ(sp.at("epk_stored_bytes").get<uint64_t>(), stored);
  EXPECT_EQ(sp.at("saved_bytes").get<uint64_t>(), dense - stored);
  // The tensor data section really shrank by about that much (alignment aside).
  EXPECT_LT(FileSize(path), dense - (dense - stored) + 4096);
  const auto& l0 = sp.at("layers")[0];
  EXPECT_EQ(l0.at("name"), "w_unstructured");
  EXPECT_EQ(l0.at("node"), "fc1");
  EXPECT_NEAR(l0.at("zeros").get<double>(), 0.9, 0.02);
  EXPECT_EQ(l0.at("epk_layout"), "bitmask");
  EXPECT_TRUE(l0.at("nm").is_null());
  const auto& l1 = sp.at("layers")[1];
  EXPECT_EQ(l1.at("name"), "w_24");
  EXPECT_DOUBLE_EQ(l1.at("zeros").get<double>(), 0.5);
  EXPECT_EQ(l1.at("epk_layout"), "nm");
  EXPECT_EQ(l1.at("nm").at("m"), 4);
  EXPECT_LE(l1.at("stored_bytes").get<double>(), 0.6 * l1.at("dense_bytes").get<double>());

  r = RunCommand(ShellQuote(CliPath()) + " inspect " + ShellQuote(path));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("sparsity:  2 weights with >= 10% zeros"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("w_24"), std::string::npos);
  EXPECT_NE(r.output.find("2:4  nm"), std::string::npos) << r.output;
}

}  // namespace
