#include "eval/report_text.h"

#include <algorithm>
#include <cstdio>

namespace edgepress::eval::report_text {

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
std::string G(double v) { return Fmt("%.6g", v); }

std::string HumanBytes(double b) {
  if (b >= 1024.0 * 1024) return Fmt("%.2f MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return Fmt("%.1f KiB", b / 1024.0);
  return Fmt("%.0f B", b);
}

std::string Value(const std::string& unit, double v) {
  if (unit == "bytes") return HumanBytes(v) + " (" + Fmt("%.0f", v) + ")";
  if (unit == "ms") return Fmt("%.3f ms", v);
  if (unit == "x") return Fmt("%.3fx", v);
  return G(v);
}

std::string Esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&#39;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

std::string MetricText(const std::optional<double>& m) { return m ? G(*m) : "n/a"; }

std::string Count(int64_t n) {
  double v = static_cast<double>(n);
  if (n >= 1000000000) return Fmt("%.2fG", v / 1e9);
  if (n >= 1000000) return Fmt("%.2fM", v / 1e6);
  if (n >= 10000) return Fmt("%.1fk", v / 1e3);
  return std::to_string(n);
}
std::string NonZeroText(int64_t nonzero, int64_t total) {
  return Count(nonzero) + " (" +
         (total > 0 ? Fmt("%.1f%%", 100.0 * (1.0 - double(nonzero) / double(total))) : "n/a") + ")";
}

std::vector<ProfileRow> ProfileRows(const Report& r) {
  std::vector<ProfileRow> rows;
  auto row = [&](const std::string& op) -> ProfileRow& {
    for (auto& x : rows)
      if (x.op == op) return x;
    rows.emplace_back();
    rows.back().op = op;
    return rows.back();
  };
  for (const OpTime& o : r.original_profile.op_types) {
    ProfileRow& x = row(o.op);
    x.original_ms = o.ms;
    x.original_share = o.share;
  }
  for (const OpTime& o : r.compressed_profile.op_types) {
    ProfileRow& x = row(o.op);
    x.compressed_ms = o.ms;
    x.compressed_share = o.share;
    x.kernels = o.kernels;
  }
  std::stable_sort(rows.begin(), rows.end(), [](const ProfileRow& a, const ProfileRow& b) {
    return std::max(a.original_ms, a.compressed_ms) > std::max(b.original_ms, b.compressed_ms);
  });
  return rows;
}
std::string MsShare(double ms, double share) {
  return ms < 0 ? "-" : Fmt("%.3f ms", ms) + Fmt(" (%.0f%%)", share);
}
std::string JoinKernels(const std::vector<std::string>& k) {
  std::string s;
  for (const auto& x : k) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace edgepress::eval::report_text
