// The .epk artifact through the CLI: ONNX -> .epk -> ONNX keeps the graph, the artifact
// carries its provenance, and all three files compute bit-identical outputs on the
// bundled digits model.
#include <gtest/gtest.h>

#include <filesystem>

#include "formats/epk/epk.h"
#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/file_util.h"
#include "ir/sha256.h"
#include "tests/tools/cli_run.h"

namespace fs = std::filesystem;
using namespace edgepress;
using test_util::RunCommand;
using test_util::ShellQuote;

namespace {

TEST(EpkCli, ConvertRoundTripRunsBitIdentical) {
  if (test_util::CliPath().empty() || !FileExists(test_util::CliPath()))
    GTEST_SKIP() << "the edgepress binary is not built";
  fs::path dir = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "epk_cli";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string ex = std::string(EDGEPRESS_SOURCE_DIR) + "/examples/digits/";
  const std::string src = ex + "digits_cnn.onnx";
  const std::string epk = (dir / "m.epk").string(), back = (dir / "back.onnx").string();
  auto ep = [](const std::string& args) {
    return RunCommand(ShellQuote(test_util::CliPath()) + " " + args);
  };
  auto r = ep("convert " + ShellQuote(src) + " " + ShellQuote(epk));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = ep("convert " + ShellQuote(epk) + " " + ShellQuote(back));
  ASSERT_EQ(r.rc, 0) << r.output;

  formats::EpkMetadata meta;
  auto m = formats::LoadEpk(epk, &meta);
  std::string hash;
  for (const auto& [k, v] : meta.entries)
    if (k == "source_model_sha256") hash = v;
  EXPECT_EQ(hash, Sha256File(src));
  EXPECT_EQ(m->graph->num_nodes(), formats::LoadOnnx(src)->graph->num_nodes());

  std::vector<formats::NamedTensors> outs;
  for (const std::string& model : {src, epk, back}) {
    std::string out = (dir / (fs::path(model).filename().string() + ".npz")).string();
    r = ep("run " + ShellQuote(model) + " --no-optimize --input " +
           ShellQuote(ex + "eval.npz") + " --output " + ShellQuote(out));
    ASSERT_EQ(r.rc, 0) << model << ": " << r.output;
    outs.push_back(formats::LoadNpz(out));
  }
  ASSERT_EQ(outs[0].size(), 1u);
  EXPECT_TRUE(outs[0][0].second == outs[1][0].second) << "onnx vs epk";
  EXPECT_TRUE(outs[0][0].second == outs[2][0].second) << "onnx vs onnx->epk->onnx";
}

TEST(Sha256, KnownVectors) {
  Sha256 empty;
  EXPECT_EQ(empty.HexDigest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  abc.Update("abc");
  EXPECT_EQ(abc.HexDigest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 two_blocks;
  two_blocks.Update("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
  EXPECT_EQ(two_blocks.HexDigest(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

}  // namespace
