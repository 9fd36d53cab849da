#include "tools/model_io.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <vector>

#include "formats/epk/epk.h"
#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "ir/sha256.h"
#include "passes/registry.h"

#ifdef EDGEPRESS_HAVE_TORCHSCRIPT
#include "formats/torchscript/torchscript_import.h"
#endif
#ifdef EDGEPRESS_HAVE_TORCH
#include "formats/torchscript/torchscript_export.h"
#endif

namespace edgepress::tools {

namespace {

std::unique_ptr<ir::Model> LoadTorchScript(const std::string& path);  // below

struct Format {
  const char* name;
  const char* extension;
  std::function<std::unique_ptr<ir::Model>(const std::string&)> load;
  std::function<void(const ir::Model&, const std::string&, const SaveModelOptions&)> save;
};

const std::vector<Format>& Formats() {
  static const std::vector<Format> formats = {
      {"ONNX", ".onnx", [](const std::string& p) { return formats::LoadOnnx(p); },
       [](const ir::Model& m, const std::string& p, const SaveModelOptions& o) {
         formats::OnnxSaveOptions so;
         so.external_data = o.external_data;
         formats::SaveOnnx(m, p, so);
       }},
      // The edge artifact: what the runtime loads on a device (docs/epk.md).
      {"EPK", ".epk", [](const std::string& p) { return formats::LoadEpk(p); },
       [](const ir::Model& m, const std::string& p, const SaveModelOptions& o) {
         formats::EpkMetadata meta;
         meta.entries = o.metadata;
         formats::SaveEpk(m, p, meta);
       }},
      // TorchScript: written by formats/torchscript (source generated from the IR, weights
      // as parameters/buffers, quantized weights kept packed); reading .pt is the importer's.
      {"TorchScript", ".pt",
       [](const std::string& p) { return LoadTorchScript(p); },
       [](const ir::Model& m, const std::string& p, const SaveModelOptions&) {
#ifdef EDGEPRESS_HAVE_TORCH
         formats::SaveTorchScript(m, p);
#else
         ThrowUnsupported(p + ": writing TorchScript needs LibTorch; this edgepress was built "
                              "without it (configure with -DEDGEPRESS_WITH_TORCH=ON)");
#endif
       }},
  };
  return formats;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - suffix.size() + i])) != suffix[i])
      return false;
  return true;
}

const Format* FindFormat(const std::string& path) {
  for (const Format& f : Formats())
    if (EndsWith(path, f.extension)) return &f;
  return nullptr;
}

std::string Known() {
  std::string s;
  for (const Format& f : Formats()) s += (s.empty() ? "" : ", ") + std::string(f.extension);
  return s;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> ProvenanceFor(const std::string& source_path) {
  std::string base = source_path.substr(source_path.find_last_of('/') + 1);
  return {{"producer", "edgepress"},
          {"tool_version", EDGEPRESS_VERSION},
          {"source_model", base},
          {"source_model_sha256", Sha256File(source_path)}};
}

namespace {

// TorchScript (.pt, and .jit as silero-vad names it) is read by formats/torchscript
// when LibTorch is built in, with the shapes of --input-shape (docs/torchscript.md).
bool IsTorchScriptPath(const std::string& path) { return EndsWith(path, ".pt") || EndsWith(path, ".jit"); }

std::map<std::string, std::vector<int64_t>>& TorchScriptInputShapes() {
  static std::map<std::string, std::vector<int64_t>> shapes;
  return shapes;
}

std::unique_ptr<ir::Model> LoadTorchScript(const std::string& path) {
#ifdef EDGEPRESS_HAVE_TORCHSCRIPT
  formats::TorchScriptImportOptions options;
  options.input_shapes = TorchScriptInputShapes();
  return formats::ImportTorchScript(path, options);
#else
  ThrowUnsupported(path + ": reading TorchScript needs LibTorch; this edgepress was built without "
                          "it (configure with -DEDGEPRESS_WITH_TORCH=ON)");
#endif
}

}  // namespace

std::map<std::string, std::vector<int64_t>> ParseInputShapes(const std::vector<std::string>& texts) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const std::string& text : texts) {
    auto bad = [&](const std::string& why) {
      throw Error(ErrorCode::kUsage, "--input-shape '" + text + "': " + why +
                                         " (expected NAME=D0,D1,... with -1 for a symbolic dim)");
    };
    const size_t eq = text.rfind('=');
    if (eq == std::string::npos || eq == 0) bad("no NAME=");
    const std::string name = text.substr(0, eq), dims = text.substr(eq + 1);
    std::vector<int64_t> shape;
    size_t pos = 0;
    while (pos < dims.size()) {
      size_t end = dims.find(',', pos);
      if (end == std::string::npos) end = dims.size();
      const std::string d = dims.substr(pos, end - pos);
      char* stop = nullptr;
      errno = 0;
      const long long v = std::strtoll(d.c_str(), &stop, 10);
      if (d.empty() || *stop != '\0' || errno == ERANGE || v < -1 || v > (int64_t{1} << 40))
        bad("dim '" + d + "' is not a size");
      shape.push_back(v);
      pos = end + 1;
      if (end + 1 == dims.size()) bad("trailing ','");
    }
    if (shape.size() > 64) bad("more than 64 dims");
    if (!shapes.emplace(name, shape).second) bad("'" + name + "' is given twice");
  }
  return shapes;
}

void SetTorchScriptInputShapes(std::map<std::string, std::vector<int64_t>> shapes) {
  TorchScriptInputShapes() = std::move(shapes);
}

std::string ModelFormatName(const std::string& path) {
  if (IsTorchScriptPath(path)) return "TorchScript";
  const Format* f = FindFormat(path);
  return f ? f->name : "";
}

std::unique_ptr<ir::Model> LoadModel(const std::string& path) {
  if (IsTorchScriptPath(path)) return LoadTorchScript(path);
  const Format* f = FindFormat(path);
  if (!f) ThrowUnsupported(path + ": unknown model format (known: " + Known() + ")");
  return f->load(path);
}

std::unique_ptr<ir::Model> LoadModelForRun(const std::string& path, bool optimize) {
  std::unique_ptr<ir::Model> m = LoadModel(path);
  if (optimize) {
    passes::PassContext ctx;
    passes::RunPipeline(*m, passes::ParsePipeline(passes::kDefaultOptimizePipeline), ctx,
                        /*verify=*/false);
  }
  return m;
}

void SaveModel(const ir::Model& m, const std::string& path, const SaveModelOptions& o) {
  const Format* f = FindFormat(path);
  if (!f)
    throw Error(ErrorCode::kUsage,
                path + ": cannot tell the output format from the extension (known: " + Known() + ")");
  f->save(m, path, o);
}

}  // namespace edgepress::tools
