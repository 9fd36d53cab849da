// Text helpers shared by the report writers (report.cc: JSON, JUnit; report_markdown.cc;
// report_html.cc; report_distill.cc): number formats, HTML escaping, and the side-by-side
// per-op-type profile rows. Internal to eval/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eval/report.h"

namespace edgepress::eval::report_text {

// printf-style formatting of one number.
std::string Fmt(const char* f, double v);
// %.6g.
std::string G(double v);
// 1536 -> "1.5 KiB".
std::string HumanBytes(double b);
// A budget value in its unit: bytes as "1.50 MiB (1572864)", ms, x, else %.6g.
std::string Value(const std::string& unit, double v);
// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string Esc(const std::string& s);
// A metric or "n/a".
std::string MetricText(const std::optional<double>& m);
// 1234567 -> "1.23M"; small counts stay exact.
std::string Count(int64_t n);
// "1.2k (45.0%)": the non-zero count and the sparsity it means.
std::string NonZeroText(int64_t nonzero, int64_t total);

// The per-op-type profiles of the original and the compressed model side by side: every op
// type of either, the slowest (in either model) first; ms < 0 where a model has no such op.
struct ProfileRow {
  std::string op;
  double original_ms = -1, original_share = 0, compressed_ms = -1, compressed_share = 0;
  std::vector<std::string> kernels;  // of the compressed model
};
std::vector<ProfileRow> ProfileRows(const Report& r);
// "1.234 ms (12%)", or "-" when ms < 0.
std::string MsShare(double ms, double share);
std::string JoinKernels(const std::vector<std::string>& k);
// Rows of the profile table in Markdown and HTML.
constexpr size_t kProfileRows = 15;

}  // namespace edgepress::eval::report_text
