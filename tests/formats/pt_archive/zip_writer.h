// A minimal zip writer for archive tests: the layout torch.jit.save writes (entries
// stored, or already deflated by the caller), CRCs left 0 since no reader under test
// checks them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgepress::test_util {

void Put(std::string& s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

struct Entry {
  std::string name, data;
  uint16_t method = 0;  // 8: `data` is already deflated
  uint64_t size = 0;    // uncompressed size of a deflated entry
};

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

}  // namespace edgepress::test_util
