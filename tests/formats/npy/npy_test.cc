// .npy/.npz: round trips for every dtype and rank 0..5, interop with numpy in both
// directions (through tests/fixtures/npy_interop.py; skipped without numpy), and hostile
// input — truncation at every byte, lying header lengths, shape overflows, pickles,
// corrupt zips, bad CRCs and zip-bomb sizes — each rejected with a clear Error.
#include <unistd.h>

#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <zlib.h>

#include "formats/npy/npy.h"
#include "ir/error.h"
#include "ir/file_util.h"

namespace edgepress::formats {
namespace {

using ir::DType;
using ir::Tensor;

struct Code {
  const char* code;
  DType dtype;
};
const Code kCodes[] = {
    {"f2", DType::kFloat16}, {"f4", DType::kFloat32},    {"f8", DType::kFloat64},
    {"i1", DType::kInt8},    {"i2", DType::kInt16},      {"i4", DType::kInt32},
    {"i8", DType::kInt64},   {"u1", DType::kUInt8},      {"u2", DType::kUInt16},
    {"u4", DType::kUInt32},  {"u8", DType::kUInt64},     {"b1", DType::kBool},
    {"c8", DType::kComplex64}, {"c16", DType::kComplex128},
};
const std::vector<std::vector<int64_t>> kShapes = {{},        {0},          {5},
                                                   {2, 3},    {2, 3, 4},    {1, 2, 3, 2},
                                                   {2, 1, 2, 3, 2}};

// The same formula as values() in tests/fixtures/npy_interop.py.
Tensor Expected(DType dt, const std::vector<int64_t>& shape) {
  Tensor t(dt, shape);
  for (uint64_t i = 0; i < t.numel(); ++i) {
    int64_t m = static_cast<int64_t>(i % 200);
    double f = static_cast<double>(i % 97) * 0.25 - 12.0;
    double im = 0.0 - static_cast<double>(i % 13) * 0.5;  // +0.0 like numpy, not -0.0
    void* p = t.mutable_raw();
    switch (dt) {
      case DType::kFloat16: static_cast<uint16_t*>(p)[i] = ir::FloatToHalf(static_cast<float>(f)); break;
      case DType::kFloat32: static_cast<float*>(p)[i] = static_cast<float>(f); break;
      case DType::kFloat64: static_cast<double*>(p)[i] = f; break;
      case DType::kInt8: static_cast<int8_t*>(p)[i] = static_cast<int8_t>(m - 100); break;
      case DType::kInt16: static_cast<int16_t*>(p)[i] = static_cast<int16_t>((m - 100) * 257); break;
      case DType::kInt32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>((m - 100) * 16777217); break;
      case DType::kInt64: static_cast<int64_t*>(p)[i] = (m - 100) * 8589934593LL; break;
      case DType::kUInt8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(m); break;
      case DType::kUInt16: static_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(m * 257); break;
      case DType::kUInt32: static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(m * 16777217); break;
      case DType::kUInt64: static_cast<uint64_t*>(p)[i] = static_cast<uint64_t>(m) * 8589934593ULL; break;
      case DType::kBool: static_cast<uint8_t*>(p)[i] = i % 3 == 0; break;
      case DType::kComplex64:
        static_cast<std::complex<float>*>(p)[i] = {static_cast<float>(f), static_cast<float>(im)};
        break;
      case DType::kComplex128: static_cast<std::complex<double>*>(p)[i] = {f, im}; break;
      default: ADD_FAILURE() << "no formula for " << ir::DTypeName(dt);
    }
  }
  return t;
}

std::string RankName(const Code& c, const std::vector<int64_t>& shape) {
  size_t k = 0;
  while (k < kShapes.size() && kShapes[k] != shape) ++k;
  return std::string(c.code) + "_s" + std::to_string(k);
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/edgepress_npy_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string operator/(const std::string& f) const { return path_ + "/" + f; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

bool HaveNumpy() {
  return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}
std::string Script() { return std::string(EDGEPRESS_SOURCE_DIR) + "/tests/fixtures/npy_interop.py"; }

// Runs `fn` and returns the Error message; fails the test when nothing is thrown.
std::string ErrorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()), "");
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "non-edgepress exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an Error, none thrown";
  return "";
}

std::string NpyBytes(const std::string& descr, const std::string& shape, bool fortran,
                     const std::string& data) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " +
                     (fortran ? "True" : "False") + ", 'shape': " + shape + ", }\n";
  std::string out = "\x93NUMPY\x01";
  out.push_back('\0');
  out.push_back(static_cast<char>(dict.size() & 0xFF));
  out.push_back(static_cast<char>(dict.size() >> 8));
  return out + dict + data;
}

TEST(NpyTest, RoundTripEveryDTypeAndRank) {
  NamedTensors all;
  for (const Code& c : kCodes) {
    for (const auto& shape : kShapes) {
      Tensor t = Expected(c.dtype, shape);
      Tensor back = ParseNpy(SerializeNpy(t), RankName(c, shape));
      EXPECT_EQ(back, t) << RankName(c, shape);
      EXPECT_EQ(back.shape(), shape);
      all.emplace_back(RankName(c, shape), t);
    }
  }
  for (bool compress : {false, true}) {
    std::string bytes = SerializeNpz(all, compress);
    EXPECT_EQ(bytes, SerializeNpz(all, compress)) << "npz bytes must be deterministic";
    NamedTensors back = ParseNpz(bytes, "mem.npz");
    ASSERT_EQ(back.size(), all.size());
    for (size_t i = 0; i < all.size(); ++i) {
      EXPECT_EQ(back[i].first, all[i].first);
      EXPECT_EQ(back[i].second, all[i].second) << all[i].first;
    }
  }
}

TEST(NpyTest, SaveLoadFilesAndTensorFile) {
  TempDir dir;
  Tensor t = Expected(DType::kFloat32, {2, 3});
  SaveNpy(t, dir / "weights.npy");
  EXPECT_EQ(LoadNpy(dir / "weights.npy"), t);
  NamedTensors one = LoadTensorFile(dir / "weights.npy");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].first, "weights");
  EXPECT_EQ(one[0].second, t);
  NamedTensors pair = {{"x", t}, {"y/z", Expected(DType::kInt64, {4})}};
  SaveNpz(pair, dir / "pair.npz", /*compress=*/true);
  NamedTensors back = LoadTensorFile(dir / "pair.npz");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].first, "y/z");
  EXPECT_EQ(back[1].second, pair[1].second);
  EXPECT_NE(ErrorOf([&] { LoadNpy(dir / "missing.npy"); }).find("missing.npy"), std::string::npos);
}

TEST(NpyTest, UnsupportedDTypesAreRefusedOnWrite) {
  for (DType dt : {DType::kBFloat16, DType::kInt4, DType::kTernary}) {
    std::string msg = ErrorOf([&] { SerializeNpy(Tensor(dt, {4})); });
    EXPECT_NE(msg.find("numpy has no such dtype"), std::string::npos) << msg;
  }
  Tensor t = Expected(DType::kFloat32, {1});
  EXPECT_NE(ErrorOf([&] { SerializeNpz({{"a", t}, {"a", t}}); }).find("appears twice"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] { SerializeNpz({{"", t}}); }).find("empty name"), std::string::npos);
}

TEST(NpyTest, FortranOrderAndBigEndianHandMade) {
  // 2x3 int32 in Fortran order: columns (1,4), (2,5), (3,6), stored big-endian.
  std::string data;
  for (int32_t v : {1, 4, 2, 5, 3, 6}) {
    for (int b = 3; b >= 0; --b) data.push_back(static_cast<char>((v >> (8 * b)) & 0xFF));
  }
  Tensor t = ParseNpy(NpyBytes(">i4", "(2, 3)", true, data), "hand.npy");
  ASSERT_EQ(t.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.ToInt64(), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  // Python-2 style long dims and '?' bools are accepted, bools normalised to 0/1.
  Tensor b = ParseNpy(NpyBytes("|?", "(3L,)", false, std::string("\x00\x01\x07", 3)), "b.npy");
  EXPECT_EQ(b.dtype(), DType::kBool);
  EXPECT_EQ(b.ToInt64(), (std::vector<int64_t>{0, 1, 1}));
}

TEST(NpyTest, NumpyWritesCppReads) {
  if (!HaveNumpy()) GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  TempDir dir;
  ASSERT_EQ(std::system(("/usr/bin/python3 '" + Script() + "' write '" + dir.path() + "'").c_str()), 0);
  NamedTensors stored = LoadNpz(dir / "stored.npz");
  NamedTensors deflated = LoadNpz(dir / "deflated.npz");
  ASSERT_EQ(stored.size(), std::size(kCodes) * kShapes.size());
  ASSERT_EQ(deflated.size(), stored.size());
  size_t k = 0;
  for (const Code& c : kCodes) {
    for (const auto& shape : kShapes) {
      std::string name = RankName(c, shape);
      Tensor want = Expected(c.dtype, shape);
      EXPECT_EQ(LoadNpy(dir / (name + ".npy")), want) << name;
      // Our writer reproduces np.save byte for byte.
      EXPECT_EQ(SerializeNpy(want), ReadFileToString(dir / (name + ".npy"))) << name;
      if (shape.size() >= 2) {
        EXPECT_EQ(LoadNpy(dir / ("fortran_" + name + ".npy")), want) << name;
      }
      std::string big = dir / ("big_" + name + ".npy");
      if (FileExists(big)) {
        EXPECT_EQ(LoadNpy(big), want) << "big-endian " << name;
      }
      EXPECT_EQ(stored[k].first, name);
      EXPECT_EQ(stored[k].second, want) << name;
      EXPECT_EQ(deflated[k].first, name);
      EXPECT_EQ(deflated[k].second, want) << "deflated " << name;
      ++k;
    }
    for (const char* v : {"v2_", "v3_"})
      EXPECT_EQ(LoadNpy(dir / (v + std::string(c.code) + ".npy")), Expected(c.dtype, {2, 3}));
  }
  std::string msg = ErrorOf([&] { LoadNpy(dir / "object.npy"); });
  EXPECT_NE(msg.find("pickle"), std::string::npos) << msg;
  msg = ErrorOf([&] { LoadNpz(dir / "object.npz"); });
  EXPECT_NE(msg.find("bad.npy"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pickle"), std::string::npos) << msg;
  msg = ErrorOf([&] { LoadNpz(dir / "pickle_member.npz"); });
  EXPECT_NE(msg.find("evil.pkl"), std::string::npos) << msg;
}

TEST(NpyTest, CppWritesNumpyReads) {
  if (!HaveNumpy()) GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  TempDir dir;
  NamedTensors all;
  for (const Code& c : kCodes) {
    for (const auto& shape : kShapes) {
      Tensor t = Expected(c.dtype, shape);
      SaveNpy(t, dir / ("cpp_" + RankName(c, shape) + ".npy"));
      all.emplace_back(RankName(c, shape), t);
    }
  }
  SaveNpz(all, dir / "cpp_stored.npz", false);
  SaveNpz(all, dir / "cpp_deflated.npz", true);
  EXPECT_EQ(std::system(("/usr/bin/python3 '" + Script() + "' check '" + dir.path() + "'").c_str()), 0);
}

TEST(NpyBadInputTest, TruncationAtEveryByte) {
  std::string npy = SerializeNpy(Expected(DType::kInt16, {3, 2}));
  for (size_t n = 0; n < npy.size(); ++n) {
    std::string msg = ErrorOf([&] { ParseNpy(npy.substr(0, n), "cut.npy"); });
    EXPECT_NE(msg.find("cut.npy"), std::string::npos) << n << ": " << msg;
  }
  std::string npz = SerializeNpz({{"a", Expected(DType::kFloat32, {3})},
                                  {"b", Expected(DType::kUInt8, {2, 2})}},
                                 true);
  for (size_t n = 0; n < npz.size(); ++n)
    ErrorOf([&] { ParseNpz(npz.substr(0, n), "cut.npz"); });
}

TEST(NpyBadInputTest, OversizedHeaderAndShapes) {
  // 12 bytes claiming a 65535-byte header.
  std::string tiny = std::string("\x93NUMPY\x01\x00\xff\xff{'", 12);
  EXPECT_NE(ErrorOf([&] { ParseNpy(tiny, "tiny.npy"); }).find("runs past the end"), std::string::npos);
  std::string v2 = std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12);
  EXPECT_NE(ErrorOf([&] { ParseNpy(v2, "v2.npy"); }).find("limit"), std::string::npos);
  // Shapes whose element count overflows, or that need more bytes than present, fail
  // before anything is allocated.
  std::string msg =
      ErrorOf([&] { ParseNpy(NpyBytes("<f4", "(4294967296, 4294967296, 16)", false, ""), "o.npy"); });
  EXPECT_NE(msg.find("overflows"), std::string::npos) << msg;
  msg = ErrorOf([&] { ParseNpy(NpyBytes("<f8", "(2305843009213693952,)", false, ""), "o.npy"); });
  EXPECT_NE(msg.find("overflows"), std::string::npos) << msg;
  msg = ErrorOf([&] { ParseNpy(NpyBytes("<f4", "(1000000000000,)", false, "abcd"), "big.npy"); });
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  msg = ErrorOf([&] { ParseNpy(NpyBytes("<f4", "(99999999999999999999999,)", false, ""), "d.npy"); });
  EXPECT_NE(msg.find("64 bits"), std::string::npos) << msg;
  msg = ErrorOf([&] { ParseNpy(NpyBytes("<f4", "(1,)", false, "abcdEXTRA"), "t.npy"); });
  EXPECT_NE(msg.find("trailing"), std::string::npos) << msg;
}

TEST(NpyBadInputTest, MalformedHeadersAndDTypes) {
  struct Case {
    std::string bytes, expect;
  };
  std::vector<Case> cases = {
      {NpyBytes("|O", "(2,)", false, std::string(16, '\0')), "pickle"},
      {NpyBytes("<U3", "(1,)", false, std::string(12, 'a')), "not supported"},
      {NpyBytes("<f3", "(1,)", false, "abc"), "not supported"},
      {NpyBytes("<f4", "(-1,)", false, ""), "non-negative"},
      {NpyBytes("<f4", "[1]", false, ""), "expected '('"},
      {std::string("\x93NUMPY\x04\x00\x02\x00{}", 12), "version 4.0"},
      {std::string("\x93NUMPX\x01\x00\x02\x00{}", 12), "magic"},
  };
  std::string list = "\x93NUMPY\x01";
  list += std::string(1, '\0') + "\x30" + std::string(1, '\0') +
          "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }  \n";
  cases.push_back({list, "structured"});
  std::string dup = "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (), }\n";
  cases.push_back({"\x93NUMPY\x01" + std::string(1, '\0') + static_cast<char>(dup.size()) +
                       std::string(1, '\0') + dup + "abcd",
                   "twice"});
  for (const Case& c : cases) {
    std::string msg = ErrorOf([&] { ParseNpy(c.bytes, "bad.npy"); });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
  }
}

// Offsets into a stored npz made by SerializeNpz (fixed layout: 30-byte local header).
struct ZipLayout {
  std::string bytes;
  size_t cd = 0;  // central directory offset
};
ZipLayout MakeZip(bool compress) {
  ZipLayout z;
  z.bytes = SerializeNpz({{"a", Expected(DType::kFloat32, {64})},
                          {"b", Expected(DType::kInt32, {8})}},
                         compress);
  size_t eocd = z.bytes.size() - 22;
  z.cd = static_cast<uint8_t>(z.bytes[eocd + 16]) | static_cast<uint8_t>(z.bytes[eocd + 17]) << 8;
  return z;
}
void Put32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

TEST(NpyBadInputTest, CorruptZips) {
  {
    ZipLayout z = MakeZip(false);
    z.bytes[200] ^= 0x01;  // inside member a's array data
    EXPECT_NE(ErrorOf([&] { ParseNpz(z.bytes, "crc.npz"); }).find("CRC32"), std::string::npos);
  }
  {
    ZipLayout z = MakeZip(false);
    z.bytes[z.cd] = 'X';
    EXPECT_NE(ErrorOf([&] { ParseNpz(z.bytes, "sig.npz"); }).find("signature"), std::string::npos);
  }
  {
    ZipLayout z = MakeZip(false);
    Put32(z.bytes, z.bytes.size() - 22 + 16, 0x7FFFFFF0);  // central directory offset
    EXPECT_NE(ErrorOf([&] { ParseNpz(z.bytes, "cd.npz"); }).find("central directory"),
              std::string::npos);
  }
  {
    ZipLayout z = MakeZip(false);
    z.bytes[z.bytes.size() - 22 + 10] = '\xff';  // entry count 0x..ff
    ErrorOf([&] { ParseNpz(z.bytes, "count.npz"); });
  }
  {
    // Stored member whose sizes disagree.
    ZipLayout z = MakeZip(false);
    Put32(z.bytes, z.cd + 24, 5);
    EXPECT_NE(ErrorOf([&] { ParseNpz(z.bytes, "size.npz"); }).find("stored member"), std::string::npos);
  }
  {
    // Central name differs from the local header's.
    ZipLayout z = MakeZip(false);
    z.bytes[z.cd + 46] = 'q';
    EXPECT_NE(ErrorOf([&] { ParseNpz(z.bytes, "name.npz"); }).find("local header names"),
              std::string::npos);
  }
  {
    // Two members named alike: rename b to a in local and central headers.
    ZipLayout z = MakeZip(false);
    size_t local_b = z.bytes.find("b.npy");
    size_t central_b = z.bytes.find("b.npy", z.cd);
    z.bytes[local_b] = 'a';
    z.bytes[central_b] = 'a';
    EXPECT_NE(ErrorOf([&] { ParseNpz(z.bytes, "dup.npz"); }).find("more than once"), std::string::npos);
  }
  {
    // Second central entry points at the first member's bytes: overlap.
    ZipLayout z = MakeZip(false);
    size_t central_b = z.bytes.find("b.npy", z.cd) - 46;
    Put32(z.bytes, central_b + 42, 0);
    ErrorOf([&] { ParseNpz(z.bytes, "overlap.npz"); });
  }
  {
    // Encrypted and unknown-method members are refused as unsupported.
    ZipLayout z = MakeZip(false);
    z.bytes[z.cd + 8] = 1;
    EXPECT_NE(ErrorOf([&] { ParseNpz(z.bytes, "enc.npz"); }).find("encrypted"), std::string::npos);
    z = MakeZip(false);
    z.bytes[z.cd + 10] = 12;
    EXPECT_NE(ErrorOf([&] { ParseNpz(z.bytes, "bz.npz"); }).find("method 12"), std::string::npos);
  }
}

// The layout numpy/zipfile use for members past 4 GiB: 0xFFFFFFFF in every 32-bit size
// and offset field, real values in zip64 extra fields, and zip64 end records. Built by
// hand around a small member, since a test cannot write 4 GiB.
std::string Zip64Archive(const std::string& member, const std::string& npy) {
  auto put = [](std::string& s, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  uLong crc = crc32_z(0, reinterpret_cast<const Bytef*>(npy.data()), npy.size());
  std::string out;
  put(out, 0x04034b50, 4);
  put(out, 45, 2);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, 0x21, 2);
  put(out, crc, 4);
  put(out, 0xFFFFFFFFu, 4);
  put(out, 0xFFFFFFFFu, 4);
  put(out, member.size(), 2);
  put(out, 20, 2);
  out += member;
  put(out, 1, 2);
  put(out, 16, 2);
  put(out, npy.size(), 8);
  put(out, npy.size(), 8);
  out += npy;
  uint64_t cd = out.size();
  put(out, 0x02014b50, 4);
  put(out, 45, 2);
  put(out, 45, 2);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, 0x21, 2);
  put(out, crc, 4);
  put(out, 0xFFFFFFFFu, 4);
  put(out, 0xFFFFFFFFu, 4);
  put(out, member.size(), 2);
  put(out, 28, 2);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, 0, 4);
  put(out, 0xFFFFFFFFu, 4);
  out += member;
  put(out, 1, 2);
  put(out, 24, 2);
  put(out, npy.size(), 8);
  put(out, npy.size(), 8);
  put(out, 0, 8);
  uint64_t cd_size = out.size() - cd, z64 = out.size();
  put(out, 0x06064b50, 4);
  put(out, 44, 8);
  put(out, 45, 2);
  put(out, 45, 2);
  put(out, 0, 4);
  put(out, 0, 4);
  put(out, 1, 8);
  put(out, 1, 8);
  put(out, cd_size, 8);
  put(out, cd, 8);
  put(out, 0x07064b50, 4);
  put(out, 0, 4);
  put(out, z64, 8);
  put(out, 1, 4);
  put(out, 0x06054b50, 4);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, 0xFFFF, 2);
  put(out, 0xFFFF, 2);
  put(out, 0xFFFFFFFFu, 4);
  put(out, 0xFFFFFFFFu, 4);
  put(out, 0, 2);
  return out;
}

TEST(NpyTest, Zip64CentralDirectory) {
  Tensor t = Expected(DType::kFloat64, {3, 4});
  std::string zip = Zip64Archive("big.npy", SerializeNpy(t));
  NamedTensors back = ParseNpz(zip, "z64.npz");
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].first, "big");
  EXPECT_EQ(back[0].second, t);
  // Damaged zip64 records are caught like their 32-bit counterparts.
  std::string bad = zip;
  bad[bad.size() - 22 - 20] = 'X';  // locator signature
  EXPECT_NE(ErrorOf([&] { ParseNpz(bad, "z64.npz"); }).find("locator"), std::string::npos);
  bad = zip;
  bad[bad.size() - 22 - 20 + 8] = static_cast<char>(0xF0);  // zip64 end record offset
  EXPECT_NE(ErrorOf([&] { ParseNpz(bad, "z64.npz"); }).find("out of range"), std::string::npos);
  bad = zip;
  size_t extra = zip.find("big.npy", 40) + 7;
  bad[extra + 2] = 8;  // zip64 extra field too short for the three saturated fields
  ErrorOf([&] { ParseNpz(bad, "z64.npz"); });
}

TEST(NpyBadInputTest, ZipBombDeclaredSizes) {
  {
    // A deflated member that claims 4 GB from a few hundred bytes is refused before
    // any allocation.
    ZipLayout z = MakeZip(true);
    Put32(z.bytes, z.cd + 24, 0xFFFFFFF0u);
    std::string msg = ErrorOf([&] { ParseNpz(z.bytes, "bomb.npz"); });
    EXPECT_NE(msg.find("more than deflate can produce"), std::string::npos) << msg;
  }
  {
    // Declared size smaller than what the stream inflates to.
    ZipLayout z = MakeZip(true);
    uint32_t usize = static_cast<uint8_t>(z.bytes[z.cd + 24]) |
                     static_cast<uint8_t>(z.bytes[z.cd + 25]) << 8;
    Put32(z.bytes, z.cd + 24, usize - 16);
    Put32(z.bytes, 22, usize - 16);  // local header agrees
    std::string msg = ErrorOf([&] { ParseNpz(z.bytes, "short.npz"); });
    EXPECT_NE(msg.find("declared"), std::string::npos) << msg;
  }
  {
    // Corrupt deflate stream.
    ZipLayout z = MakeZip(true);
    for (size_t i = 40; i < 48; ++i) z.bytes[i] = '\xff';
    ErrorOf([&] { ParseNpz(z.bytes, "inflate.npz"); });
  }
}

}  // namespace
}  // namespace edgepress::formats
