// The .pt archive check (formats/torchscript/pt_archive.h) on small archives written
// here, one corrupted field at a time: truncation at every length, flipped directory
// bytes, lying sizes and offsets, missing or duplicate entries, malformed pickles. Plain
// C++ without LibTorch, so the sanitizer build runs it.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "formats/torchscript/pt_archive.h"
#include "ir/error.h"
#include "tests/formats/pt_archive/zip_writer.h"

using namespace edgepress;
using namespace edgepress::formats;
using namespace edgepress::test_util;

namespace {

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
  for (const char* entry : {"m/data.pkl", "m/constants.pkl", "m/version", "m/code/__torch__.py"}) {
    const std::string drop = entry;
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

}  // namespace
