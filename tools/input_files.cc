#include "tools/input_files.h"

#include <cstdio>
#include <set>

namespace edgepress::tools {

formats::NamedTensors KeepModelInputs(formats::NamedTensors inputs,
                                      const std::vector<std::string>& wanted,
                                      const std::string& file) {
  std::set<std::string> want(wanted.begin(), wanted.end());
  size_t present = 0;
  for (const auto& [name, t] : inputs) present += want.count(name);
  if (present != want.size() || inputs.size() == present) return inputs;
  formats::NamedTensors kept;
  for (auto& [name, t] : inputs) {
    if (want.count(name)) kept.emplace_back(name, std::move(t));
    else std::fprintf(stderr, "note: ignoring '%s' in %s: not an input of the model\n",
                      name.c_str(), file.c_str());
  }
  return kept;
}

}  // namespace edgepress::tools
