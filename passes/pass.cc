#include "passes/pass.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "ir/error.h"
#include "passes/registry.h"

namespace edgepress::passes {

OptionInfo Opt(std::string name, OptionInfo::Type type, std::string def, std::string help,
               std::vector<std::string> choices, double min, double max) {
  OptionInfo o;
  o.name = std::move(name);
  o.type = type;
  o.default_value = std::move(def);
  o.help = std::move(help);
  o.choices = std::move(choices);
  o.min = min;
  o.max = max;
  return o;
}

const char* OptionTypeName(OptionInfo::Type t) {
  switch (t) {
    case OptionInfo::Type::kBool: return "bool";
    case OptionInfo::Type::kInt: return "int";
    case OptionInfo::Type::kFloat: return "float";
    case OptionInfo::Type::kString: return "string";
    case OptionInfo::Type::kEnum: return "enum";
    case OptionInfo::Type::kStringList: return "list";
  }
  return "?";
}

namespace {
bool ParseBool(const std::string& s, bool* out) {
  if (s == "true" || s == "1" || s == "yes" || s == "on") return *out = true, true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return *out = false, true;
  return false;
}
bool ParseInt(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || *end) return false;
  *out = v;
  return true;
}
bool ParseFloat(const std::string& s, double* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno || *end || !std::isfinite(v)) return false;
  *out = v;
  return true;
}
std::vector<std::string> SplitList(const std::string& s) {
  // Lists are written "a|b|c" inside a pipeline (commas separate options) or "a,b" in YAML.
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == '|' || c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

void CheckValue(const PassInfo& info, const OptionInfo& o, const std::string& v) {
  auto bad = [&](const std::string& why) {
    ThrowInvalid("pass '" + info.name + "': option '" + o.name + "' = '" + v + "': " + why);
  };
  switch (o.type) {
    case OptionInfo::Type::kBool: {
      bool b;
      if (!ParseBool(v, &b)) bad("expected true or false");
      break;
    }
    case OptionInfo::Type::kInt: {
      int64_t i;
      if (!ParseInt(v, &i)) bad("expected an integer");
      if (i < o.min || i > o.max)
        bad("must be in [" + std::to_string(static_cast<int64_t>(o.min)) + ", " +
            std::to_string(static_cast<int64_t>(o.max)) + "]");
      break;
    }
    case OptionInfo::Type::kFloat: {
      double d;
      if (!ParseFloat(v, &d)) bad("expected a number");
      if (d < o.min || d > o.max)
        bad("must be in [" + std::to_string(o.min) + ", " + std::to_string(o.max) + "]");
      break;
    }
    case OptionInfo::Type::kEnum: {
      for (const auto& c : o.choices)
        if (c == v) return;
      std::string list;
      for (const auto& c : o.choices) list += (list.empty() ? "" : ", ") + c;
      std::string near = Nearest(v, o.choices);
      bad("expected one of " + list + (near.empty() ? "" : " (did you mean '" + near + "'?)"));
      break;
    }
    case OptionInfo::Type::kString:
    case OptionInfo::Type::kStringList:
      break;
  }
}
}  // namespace

PassOptions ParseOptions(const PassInfo& info,
                         const std::vector<std::pair<std::string, std::string>>& given) {
  std::vector<std::string> names;
  for (const auto& o : info.options) names.push_back(o.name);
  for (size_t i = 0; i < given.size(); ++i) {
    const auto& [k, v] = given[i];
    bool known = false;
    for (const auto& o : info.options) known |= o.name == k;
    if (!known) {
      std::string near = Nearest(k, names);
      ThrowInvalid("pass '" + info.name + "' has no option '" + k + "'" +
                   (near.empty() ? "" : " (did you mean '" + near + "'?)"));
    }
    for (size_t j = 0; j < i; ++j)
      if (given[j].first == k)
        ThrowInvalid("pass '" + info.name + "': option '" + k + "' given twice");
  }
  PassOptions out;
  out.pass_ = info.name;
  for (const auto& o : info.options) {
    std::string v = o.default_value;
    for (const auto& [k, gv] : given)
      if (k == o.name) v = gv;
    CheckValue(info, o, v);
    out.values_.emplace_back(o.name, v);
  }
  return out;
}

const std::string& PassOptions::Raw(const std::string& name) const {
  for (const auto& [k, v] : values_)
    if (k == name) return v;
  throw std::logic_error("pass '" + pass_ + "' reads undeclared option '" + name + "'");
}

bool PassOptions::GetBool(const std::string& name) const {
  bool b = false;
  ParseBool(Raw(name), &b);
  return b;
}
int64_t PassOptions::GetInt(const std::string& name) const {
  int64_t i = 0;
  ParseInt(Raw(name), &i);
  return i;
}
double PassOptions::GetFloat(const std::string& name) const {
  double d = 0;
  ParseFloat(Raw(name), &d);
  return d;
}
std::string PassOptions::GetString(const std::string& name) const { return Raw(name); }
std::vector<std::string> PassOptions::GetStringList(const std::string& name) const {
  return SplitList(Raw(name));
}

}  // namespace edgepress::passes
