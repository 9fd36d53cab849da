// Malformed .pt files: the archive check (pt_archive.h) on a small archive written here,
// one corrupted field at a time, and ImportTorchScript on a real fixture truncated,
// bit-flipped, stripped of constants.pkl or given a bad pickle. Each must give an
// edgepress::Error naming the file, never a crash or another exception type.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "formats/torchscript/pt_archive.h"
#include "formats/torchscript/torchscript_import.h"
#include "ir/error.h"
#include "ir/file_util.h"
#include "tests/formats/torchscript/ts_fixtures.h"

namespace fs = std::filesystem;
using namespace edgepress;
using namespace edgepress::formats;
using namespace edgepress::test_util;

namespace {

void Put(std::string& s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

struct Entry {
  std::string name, data;
  uint16_t method = 0;  // 8: `data` is already deflated
  uint64_t size = 0;    // uncompressed size of a deflated entry
};

// A zip as torch.jit.save writes them (stored entries; code files may be deflated); the
// reader under test checks no CRC, so the CRC field is left 0.
std::string Zip(const std::vector<Entry>& entries) {
  std::string out, dir;
  for (const Entry& e : entries) {
    uint64_t off = out.size(), usize = e.method ? e.size : e.data.size();
    Put(out, 0x04034b50, 4); Put(out, 20, 2); Put(out, 0, 2); Put(out, e.method, 2); Put(out, 0, 4);
    Put(out, 0, 4); Put(out, e.data.size(), 4); Put(out, usize, 4);
    Put(out, e.name.size(), 2); Put(out, 0, 2);
    out += e.name + e.data;
    Put(dir, 0x02014b50, 4); Put(dir, 20, 2); Put(dir, 20, 2); Put(dir, 0, 2); Put(dir, e.method, 2);
    Put(dir, 0, 4); Put(dir, 0, 4); Put(dir, e.data.size(), 4); Put(dir, usize, 4);
    Put(dir, e.name.size(), 2); Put(dir, 0, 2); Put(dir, 0, 2); Put(dir, 0, 2); Put(dir, 0, 2);
    Put(dir, 0, 4); Put(dir, off, 4);
    dir += e.name;
  }
  uint64_t dir_off = out.size();
  out += dir;
  Put(out, 0x06054b50, 4); Put(out, 0, 2); Put(out, 0, 2); Put(out, entries.size(), 2);
  Put(out, entries.size(), 2); Put(out, dir.size(), 4); Put(out, dir_off, 4); Put(out, 0, 2);
  return out;
}

// A pickle of the dict {'a': 1} (protocol 2), as Python writes it.
const std::string kPickle = std::string("\x80\x02}q\x00X\x01\x00\x00\x00" "aq\x01K\x01s.", 17);

std::vector<Entry> Entries() {
  return {{"m/data.pkl", kPickle}, {"m/code/__torch__.py", "def forward(self):\n"},
          {"m/constants.pkl", std::string("\x80\x02).", 4)}, {"m/version", "3\n"}};
}

// The message of the Error that checking `bytes` throws ("" when it passes).
std::string CheckError(const std::string& bytes) {
  try {
    CheckPtArchiveBytes(bytes, "t.pt");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << e.what();
    EXPECT_NE(std::string(e.what()).find("t.pt"), std::string::npos) << e.what();
    return e.what();
  }
  return "";
}

TEST(PtArchive, AcceptsAWellFormedArchive) {
  PtArchive ar = CheckPtArchiveBytes(Zip(Entries()), "t.pt");
  EXPECT_EQ(ar.root, "m");
  ASSERT_NE(ar.Find("data.pkl"), nullptr);
  EXPECT_EQ(ar.Find("data.pkl")->size, kPickle.size());
}

TEST(PtArchive, TruncationAtEveryLengthIsAnError) {
  std::string good = Zip(Entries());
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_NE(CheckError(good.substr(0, n)), "") << "truncated to " << n << " bytes";
}

TEST(PtArchive, EveryFlippedByteOfTheDirectoryIsCaughtOrHarmless) {
  std::string good = Zip(Entries());
  size_t dir = good.find(std::string("\x50\x4b\x01\x02", 4));
  for (size_t i = dir; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0xff);
    CheckError(bad);  // must not crash; an Error of the right kind when it throws
  }
}

TEST(PtArchive, EachCorruptFieldHasItsOwnMessage) {
  std::string good = Zip(Entries());
  const size_t eocd = good.size() - 22;
  auto patched = [&](size_t at, uint64_t v, int n) {
    std::string s = good;
    for (int i = 0; i < n; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
  };
  EXPECT_NE(CheckError(patched(eocd, 0x12345678, 4)).find("no end-of-central-directory"), std::string::npos);
  EXPECT_NE(CheckError(patched(eocd + 16, 0xfffffff0, 4)).find("central directory"), std::string::npos);
  EXPECT_NE(CheckError(patched(eocd + 10, 60000, 2)).find("entry count"), std::string::npos);
  EXPECT_NE(CheckError(patched(eocd + 4, 1, 2)).find("multi-disk"), std::string::npos);
  // The first entry's size pushed past the directory.
  size_t dir = good.find(std::string("\x50\x4b\x01\x02", 4));
  EXPECT_NE(CheckError(patched(dir + 20, 100000, 4)).find("stored entry"), std::string::npos);
  std::string s = patched(dir + 20, 100000, 4);
  for (int i = 0; i < 4; ++i) s[dir + 24 + i] = s[dir + 20 + i];
  EXPECT_NE(CheckError(s).find("run into the central directory"), std::string::npos);
  EXPECT_NE(CheckError(patched(dir + 42, 5, 4)).find("no local header"), std::string::npos);
}

TEST(PtArchive, MissingEntriesAreNamed) {
  for (const std::string& drop : {"m/data.pkl", "m/constants.pkl", "m/version", "m/code/__torch__.py"}) {
    auto entries = Entries();
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [&](const Entry& e) { return e.name == drop; }),
                  entries.end());
    std::string err = CheckError(Zip(entries));
    std::string what = drop.substr(2, drop.find('/', 2) == std::string::npos ? std::string::npos : 5);
    EXPECT_NE(err.find(what), std::string::npos) << drop << ": " << err;
  }
  auto entries = Entries();
  entries.push_back({"m/data.pkl", kPickle, 0, 0});
  EXPECT_NE(CheckError(Zip(entries)).find("duplicate"), std::string::npos);
  entries = Entries();
  entries.push_back({"other/x", "1", 0, 0});
  EXPECT_NE(CheckError(Zip(entries)).find("two root folders"), std::string::npos);
}

TEST(PtArchive, BadPicklesAreRejected) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "PROTO"},
      {"garbage", "PROTO"},
      {std::string("\x80\x02}q\x00", 5), "no STOP"},                          // truncated
      {std::string("\x80\x02}.junk", 8), "bytes after STOP"},
      {std::string("\x80\x02X\xff\xff\xff\x00" "a.", 10), "past the end"},    // string length lies
      {std::string("\x80\x02h\x07.", 5), "memo slot 7"},                       // read before write
      {std::string("\x80\x02s.", 4), "underflow"},                             // SETITEM on empty stack
      {std::string("\x80\x02(K\x01.", 6), "STOP with"},                        // unbalanced MARK
      {std::string("\x80\x02\xfe.", 4), "unknown opcode 0xfe"},
      {std::string("\x80\x09N.", 4), "protocol 9"},
  };
  for (const auto& [bytes, want] : cases) {
    try {
      CheckPickle(bytes, "t.pt: m/data.pkl");
      ADD_FAILURE() << "accepted a bad pickle expecting '" << want << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("m/data.pkl"), std::string::npos) << e.what();
    }
  }
  auto entries = Entries();
  entries[0].data = std::string("\x80\x02}q\x00", 5);
  EXPECT_NE(CheckError(Zip(entries)).find("data.pkl: malformed pickle"), std::string::npos);
}

// --- the whole import on a real .pt ---------------------------------------------------

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
