// .epk load (formats/epk) and a run of the loaded graph on the native runtime. The input is
// written to a scratch file (LoadEpk maps files). Before that the harness rewrites the
// header's file_size and every CRC-32 (header and sections in bounds) to match the bytes,
// as a writer would: otherwise nearly every mutation dies at the checksum and the fuzzer
// never reaches the parsers behind it (the checksum checks keep their unit tests). Graphs load whatever their size; only the
// run is bounded: inputs get their declared shapes with symbolic dims set to 1, and a graph
// whose inputs would hold more than kMaxInputElements, or whose input types the harness
// cannot synthesise, is loaded and planned but not run. So is a graph with a pooling window
// over kMaxPoolWindow elements: pooling is O(outputs x window) (a 64K-element window slid over
// a padded 64K-element input is ~4e9 steps, minutes under ASan), which is finite work the
// model asked for, not a reader bug; the runtime bounds memory, not compute.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include <zlib.h>

#include "formats/epk/epk.h"
#include "fuzz/fuzz_util.h"
#include "runtime/session.h"

namespace {

constexpr int64_t kMaxInputElements = 1 << 16;
constexpr uint64_t kMaxTensorBytes = uint64_t{256} << 20;
constexpr int64_t kMaxPoolWindow = 4096;

// True when some pooling node (in any subgraph) slides a window of more than kMaxPoolWindow
// elements (or one whose kernel_shape does not fit in int64).
bool HasHugePoolWindow(const edgepress::ir::Graph& g) {
  for (const edgepress::ir::Node* n : g.nodes()) {
    for (const edgepress::ir::Graph* sub : n->subgraphs())
      if (HasHugePoolWindow(*sub)) return true;
    const std::string& op = n->op_type();
    if (op != "MaxPool" && op != "AveragePool" && op != "LpPool") continue;
    int64_t window = 1;
    for (int64_t k : n->attr_ints("kernel_shape", {}))
      if (k > kMaxPoolWindow || (window *= std::max<int64_t>(k, 1)) > kMaxPoolWindow) return true;
  }
  return false;
}

uint64_t Get(const std::string& b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(b[at + i]);
  return v;
}
void Put(std::string& b, size_t at, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[at + i] = static_cast<char>(v >> (8 * i));
}
uint32_t Crc(const std::string& b, size_t at, size_t n) {
  return static_cast<uint32_t>(
      crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(b.data() + at), n));
}

// Layout: docs/epk.md (32-byte header, then section_count 32-byte entries).
void FixChecksums(std::string& b) {
  if (b.size() < 32) return;
  Put(b, 16, b.size(), 8);
  uint64_t count = Get(b, 12, 4);
  if (count > 64 || 32 + 32 * count > b.size()) return;
  for (uint64_t i = 0; i < count; ++i) {
    size_t e = 32 + 32 * i;
    uint64_t off = Get(b, e + 8, 8), size = Get(b, e + 16, 8);
    if (off <= b.size() && size <= b.size() - off) Put(b, e + 24, Crc(b, off, size), 4);
  }
  Put(b, 24, 0, 4);
  Put(b, 24, Crc(b, 0, 32 + 32 * count), 4);
}

// Zero-filled inputs of the declared types; false when a declaration is not a plain tensor
// of bounded size.
bool MakeInputs(const edgepress::runtime::Session& s, edgepress::runtime::NamedTensors* out) {
  using namespace edgepress;
  for (const ir::Value* v : s.inputs()) {
    if (!v->type.is_tensor() || !v->type.shape || v->type.dtype == ir::DType::kUndefined ||
        v->type.dtype == ir::DType::kString)
      return false;
    std::vector<int64_t> dims;
    int64_t n = 1;
    for (const ir::Dim& d : *v->type.shape) {
      int64_t k = d.known() ? d.value : 1;
      if (k > kMaxInputElements || (n *= k) > kMaxInputElements) return false;
      dims.push_back(k);
    }
    out->emplace_back(v->name(), ir::Tensor(v->type.dtype, dims));
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgepress;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  FixChecksums(bytes);
  std::string path = fuzz::WriteScratch("fuzz.epk", bytes);
  try {
    formats::EpkMetadata meta;
    std::shared_ptr<const ir::Model> m = formats::LoadEpk(path, &meta);
    // The session's memory limit (item 5 of issue 10) keeps a graph whose shapes ask for
    // gigabytes to a clean Error, under libFuzzer's -rss_limit_mb.
    runtime::SessionOptions so;
    so.max_memory_bytes = kMaxTensorBytes;
    auto session = runtime::Session::Create(m, so);
    runtime::NamedTensors inputs;
    if (!HasHugePoolWindow(*m->graph) && MakeInputs(*session, &inputs))
      (void)session->Run(inputs);
  } catch (const Error& e) {
    fuzz::ExpectedError(e);
  }
  return 0;
}
