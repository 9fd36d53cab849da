// .epk 3.0 on a small real model: the bundled digits CNN (47k parameters) as the user gets
// it. `edgepress convert` writes the fp32 .epk and `edgepress compress` with the shipped
// x86-avx2-laptop recipe (static int8, provenance metadata included) writes the int8 one;
// the test measures the two files. For a model this small the graph and metadata used to
// dominate (int8 was 0.333x of fp32 in 2.0): 3.0 must reach <= 0.27x. Both files must also
// round-trip bit-exactly (load + save gives the same bytes, tensors equal the source's),
// and EpkSizeOf's breakdown must add up to the real file size.
#include <gtest/gtest.h>

#include <regex>

#include "formats/epk/epk.h"
#include "formats/onnx/onnx.h"
#include "ir/dump.h"
#include "ir/file_util.h"
#include "tests/tools/cli_run.h"

namespace edgepress::formats {
namespace {

using test_util::CliPath;
using test_util::RunCommand;
using test_util::ShellQuote;

const std::string kDigits = EDGEPRESS_SOURCE_DIR "/examples/digits";

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/edgepress_epk_size_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string operator/(const std::string& f) const { return path_ + "/" + f; }

 private:
  std::string path_;
};

uint64_t Sum(const EpkSizeBreakdown& b) {
  return b.header + b.metadata_stored + b.graph_stored + b.section_padding + b.blob_bytes + b.blob_padding;
}

// Load + save gives the same bytes, and the breakdown describes the file exactly.
void ExpectBitExactRoundTrip(const std::string& path, const TempDir& dir) {
  EpkMetadata md;
  auto m = LoadEpk(path, &md);
  SaveEpk(*m, dir / "again.epk", md);
  EXPECT_EQ(ReadFileToString(dir / "again.epk"), ReadFileToString(path)) << path;
  const EpkSizeBreakdown b = EpkSizeOf(*m, md);
  EXPECT_EQ(b.total, FileSize(path)) << path;
  EXPECT_EQ(Sum(b), b.total) << path;
  EXPECT_EQ(b.graph_raw, b.strings_raw + b.model_raw + b.values_raw + b.nodes_raw + b.tensors_raw);
}

TEST(EpkSizeTest, DigitsCnnInt8IsAtMost027OfFp32) {
  if (CliPath().empty()) GTEST_SKIP() << "the edgepress CLI is not built in this configuration";
  TempDir dir;
  const std::string ep = ShellQuote(CliPath());
  auto r = RunCommand(ep + " convert " + ShellQuote(kDigits + "/digits_cnn.onnx") + " " + ShellQuote(dir / "fp32.epk"));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = RunCommand(ep + " compress " + ShellQuote(kDigits + "/digits_cnn.onnx") + " --recipe x86-avx2-laptop --calib " +
                 ShellQuote(kDigits + "/calib.npz") + " --eval " + ShellQuote(kDigits + "/eval.npz") + " -o " +
                 ShellQuote(dir / "int8"));
  ASSERT_EQ(r.rc, 0) << r.output;
  const std::string int8 = dir / "int8/model.epk";
  const double fp32_bytes = static_cast<double>(FileSize(dir / "fp32.epk"));
  const double int8_bytes = static_cast<double>(FileSize(int8));
  std::printf("digits CNN .epk: fp32 %.0f bytes, int8 %.0f bytes, ratio %.4f\n", fp32_bytes, int8_bytes,
              int8_bytes / fp32_bytes);
  EXPECT_LE(int8_bytes / fp32_bytes, 0.27);

  // The provenance is all there (compressed, not dropped), and the same model written by
  // the 2.0 path is far above the bound: the ratio measures the format, not the model.
  EpkMetadata md;
  auto q = LoadEpk(int8, &md);
  for (const char* key : {"producer", "source_model_sha256", "recipe", "pipeline", "pass_statistics"})
    EXPECT_NE(md.Find(key), nullptr) << key;
  EpkWriteOptions v2;
  v2.version_major = 2;
  const EpkSizeBreakdown old = EpkSizeOf(*q, md, v2), now = EpkSizeOf(*q, md);
  EXPECT_GT(static_cast<double>(old.total) / EpkSizeOf(*LoadEpk(dir / "fp32.epk"), {}, v2).total, 0.3);
  EXPECT_EQ(old.blob_bytes, now.blob_bytes) << "the weights themselves are stored the same way";
  EXPECT_LT(now.metadata_stored, now.metadata_raw) << "provenance is compressed";

  // inspect --epk-size prints the same breakdown: its total row is the file's size, then
  // the 2.0 layout's.
  r = RunCommand(ep + " inspect --epk-size " + ShellQuote(int8));
  ASSERT_EQ(r.rc, 0) << r.output;
  std::smatch total;
  ASSERT_TRUE(std::regex_search(r.output, total, std::regex(R"(total \(file size\) +(\d+) +(\d+))"))) << r.output;
  EXPECT_EQ(std::stoull(total[1]), FileSize(int8));
  EXPECT_EQ(std::stoull(total[2]), old.total);

  ExpectBitExactRoundTrip(dir / "fp32.epk", dir);
  ExpectBitExactRoundTrip(int8, dir);
  // The fp32 tensors are the ONNX file's, bit for bit.
  auto src = LoadOnnx(kDigits + "/digits_cnn.onnx");
  auto back = LoadEpk(dir / "fp32.epk");
  for (const ir::Value* v : src->graph->initializers()) {
    const ir::Value* b = back->graph->FindValue(v->name());
    ASSERT_NE(b, nullptr) << v->name();
    EXPECT_EQ(*b->initializer(), *v->initializer()) << v->name();
  }
}

}  // namespace
}  // namespace edgepress::formats
