#include "tools/model_io.h"

#include <cctype>
#include <functional>
#include <vector>

#include "formats/onnx/onnx.h"
#include "ir/error.h"

namespace edgepress::tools {

namespace {

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

std::string ModelFormatName(const std::string& path) {
  const Format* f = FindFormat(path);
  return f ? f->name : "";
}

std::unique_ptr<ir::Model> LoadModel(const std::string& path) {
  const Format* f = FindFormat(path);
  if (!f) ThrowUnsupported(path + ": unknown model format (known: " + Known() + ")");
  return f->load(path);
}

void SaveModel(const ir::Model& m, const std::string& path, const SaveModelOptions& o) {
  const Format* f = FindFormat(path);
  if (!f)
    throw Error(ErrorCode::kUsage,
                path + ": cannot tell the output format from the extension (known: " + Known() + ")");
  f->save(m, path, o);
}

}  // namespace edgepress::tools
