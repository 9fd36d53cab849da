// Malformed .pt files through the whole import: a real fixture truncated, bit-flipped,
// stripped of constants.pkl or given a bad pickle must give an edgepress::Error naming
// the file, never a crash or another exception type. (The archive check alone, field by
// field, is tests/formats/pt_archive.)
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "formats/torchscript/pt_archive.h"
#include "formats/torchscript/torchscript_import.h"
#include "ir/error.h"
#include "ir/file_util.h"
#include "tests/formats/pt_archive/zip_writer.h"
#include "tests/formats/torchscript/ts_fixtures.h"

namespace fs = std::filesystem;
using namespace edgepress;
using namespace edgepress::formats;
using namespace edgepress::test_util;

namespace {

class TorchScriptBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string skip;
    std::string err = EnsureTorchScriptFixture("digits_cnn", &skip);
    if (!skip.empty()) GTEST_SKIP() << skip;
    ASSERT_EQ(err, "");
    good_ = ReadFileToString(kTsFixtureDir + "/digits_cnn/model.pt");
    dir_ = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "torchscript_bad";
    fs::create_directories(dir_);
  }
  // The Error an import of `bytes` throws; "" when it imports.
  std::string ImportError(const std::string& bytes, const std::string& name) {
    const std::string path = (dir_ / name).string();
    WriteFileAtomic(path, bytes);
    try {
      ImportTorchScript(path);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not an edgepress::Error: " << e.what();
      return e.what();
    }
    return "";
  }
  // The archive with entry `relative` replaced by `data` (or dropped when nullptr).
  std::string Rewritten(const std::string& relative, const std::string* data) {
    PtArchive ar = CheckPtArchiveBytes(good_, "good");
    std::vector<Entry> entries;
    for (const PtArchiveEntry& e : ar.entries) {
      Entry out{e.name, good_.substr(e.data_offset, e.size), e.method, e.uncompressed_size};
      if (e.name == ar.root + "/" + relative) {
        if (!data) continue;
        out = {e.name, *data, 0, 0};
      }
      entries.push_back(out);
    }
    return Zip(entries);
  }
  std::string good_;
  fs::path dir_;
};

TEST_F(TorchScriptBadInput, TheUntouchedRewriteImports) {
  // The rewriting itself keeps a loadable file, so the failures below are the corruption's.
  PtArchive ar = CheckPtArchiveBytes(good_, "good");
  std::string version = good_.substr(ar.Find("version")->data_offset, ar.Find("version")->size);
  EXPECT_EQ(ImportError(Rewritten("version", &version), "rewritten.pt"), "");
}

TEST_F(TorchScriptBadInput, TruncatedFiles) {
  for (size_t n : {size_t{0}, size_t{10}, good_.size() / 2, good_.size() - 23, good_.size() - 1})
    EXPECT_NE(ImportError(good_.substr(0, n), "truncated.pt"), "") << n;
}

TEST_F(TorchScriptBadInput, MissingConstantsArchive) {
  EXPECT_NE(ImportError(Rewritten("constants.pkl", nullptr), "no_constants.pt").find("constants.pkl"),
            std::string::npos);
}

TEST_F(TorchScriptBadInput, BadPickles) {
  const std::string truncated = std::string("\x80\x02}q\x00", 5);
  EXPECT_NE(ImportError(Rewritten("data.pkl", &truncated), "bad_pickle.pt").find("malformed pickle"),
            std::string::npos);
  // Well-formed, but not a module: LibTorch refuses it and its c10::Error becomes ours.
  const std::string an_int = std::string("\x80\x02K\x01.", 5);
  std::string err = ImportError(Rewritten("data.pkl", &an_int), "int_pickle.pt");
  EXPECT_NE(err.find("LibTorch cannot load it"), std::string::npos) << err;
}

TEST_F(TorchScriptBadInput, FlippedDirectoryBytes) {
  size_t dir = CheckPtArchiveBytes(good_, "good").entries.size();
  size_t start = good_.find(std::string("\x50\x4b\x01\x02", 4));
  ASSERT_NE(start, std::string::npos);
  ASSERT_GT(dir, 0u);
  // Spread over the directory and the end record: either a clear Error or, for a field
  // nothing reads (a timestamp, a version), a model.
  size_t span = good_.size() - start;
  for (size_t k = 0; k < 24; ++k) {
    std::string bad = good_;
    size_t at = start + k * span / 24;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    ImportError(bad, "flipped.pt");
  }
}

}  // namespace
