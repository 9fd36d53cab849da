#include "eval/report_distill.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "eval/report_text.h"

namespace edgepress::eval {

namespace {

using report_text::Esc;
using report_text::Fmt;

using Json = nlohmann::json;

double Number(const Json& j, const char* key, double fallback = 0) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}

// One evaluation ({top1, kd_loss}) as text: top-1 when the data had labels, else the KL
// loss to the teacher.
std::string EvalText(const Json& e) {
  if (!e.is_object()) return "n/a";
  if (e.contains("top1") && e["top1"].is_number())
    return Fmt("%.2f%%", e["top1"].get<double>() * 100);
  return "KD loss " + Fmt("%.4g", Number(e, "kd_loss"));
}

struct Step {
  std::string pass;
  Json d;  // the "distill" object
};
std::vector<Step> DistillSteps(const Report& r) {
  std::vector<Step> out;
  for (const auto& p : r.passes) {
    if (p.details.empty()) continue;
    Json d = Json::parse(p.details, nullptr, false);
    if (d.is_object() && d.contains("distill") && d["distill"].is_object())
      out.push_back({p.pass, d["distill"]});
  }
  return out;
}

const Json& Get(const Json& d, const char* key) {
  static const Json none;
  return d.contains(key) ? d[key] : none;
}

// The loss curve as an SVG line chart; each point is a <circle data-step data-loss>.
std::string LossChart(const Json& curve) {
  std::vector<std::pair<double, double>> pts;
  for (const Json& c : curve)
    if (c.is_object() && std::isfinite(Number(c, "loss", NAN)))
      pts.emplace_back(Number(c, "step"), Number(c, "loss"));
  if (pts.empty()) return "";
  const double w = 560, h = 180, left = 60, top = 30, bottom = 30;
  double max_step = 1, max_loss = 0;
  for (const auto& [s, l] : pts) max_step = std::max(max_step, s), max_loss = std::max(max_loss, l);
  if (max_loss <= 0) max_loss = 1;
  auto x = [&](double s) { return left + w * s / max_step; };
  auto y = [&](double l) { return top + h - h * l / max_loss; };
  std::string s =
      "<figure>\n<svg data-chart=\"distill-loss\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
      Fmt("%.0f", left + w + 20) + "\" height=\"" + Fmt("%.0f", top + h + bottom) +
      "\" role=\"img\">\n<title>Distillation loss per step</title>\n"
      "<text x=\"0\" y=\"18\" class=\"title\">Distillation loss per step</text>\n";
  s += "<line x1=\"" + Fmt("%.1f", left) + "\" y1=\"" + Fmt("%.1f", top + h) + "\" x2=\"" +
       Fmt("%.1f", left + w) + "\" y2=\"" + Fmt("%.1f", top + h) + "\" stroke=\"#999\"/>\n";
  s += "<text x=\"0\" y=\"" + Fmt("%.1f", top + 10) + "\">" + Fmt("%.3g", max_loss) + "</text>\n";
  s += "<text x=\"0\" y=\"" + Fmt("%.1f", top + h) + "\">0</text>\n";
  s += "<text x=\"" + Fmt("%.1f", left + w - 40) + "\" y=\"" + Fmt("%.1f", top + h + 20) +
       "\">step " + Fmt("%.0f", max_step) + "</text>\n";
  std::string line;
  for (const auto& [st, l] : pts) line += Fmt("%.1f", x(st)) + "," + Fmt("%.1f", y(l)) + " ";
  s += "<polyline fill=\"none\" stroke=\"#1e88e5\" stroke-width=\"2\" points=\"" + line + "\"/>\n";
  for (const auto& [st, l] : pts)
    s += "<circle cx=\"" + Fmt("%.1f", x(st)) + "\" cy=\"" + Fmt("%.1f", y(l)) +
         "\" r=\"2.5\" fill=\"#1e88e5\" data-step=\"" + Fmt("%.0f", st) + "\" data-loss=\"" +
         Fmt("%.6g", l) + "\"><title>step " + Fmt("%.0f", st) + ": loss " + Fmt("%.4g", l) +
         "</title></circle>\n";
  return s + "</svg>\n</figure>\n";
}

}  // namespace

std::string DistillMarkdown(const Report& r) {
  std::vector<Step> steps = DistillSteps(r);
  if (steps.empty()) return "";
  std::string s =
      "## Distillation\n\nThe student (the pipeline before the step) trained against the original "
      "model; "
      "accuracy of the float student on the evaluation data.\n\n"
      "| step | data | steps | teacher | before | after | training time | samples/s |\n"
      "|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const Step& st : steps) {
    const Json& d = st.d;
    s += "| " + st.pass + " | `" +
         (Get(d, "data").is_string() ? Get(d, "data").get<std::string>() : "") + "` | " +
         Fmt("%.0f", Number(d, "steps")) + " | " + EvalText(Get(d, "teacher")) + " | " +
         EvalText(Get(d, "before")) + " | " + EvalText(Get(d, "after")) + " | " +
         Fmt("%.1f s", Number(d, "seconds")) + " | " +
         Fmt("%.0f", Number(d, "samples_per_second")) + " |\n";
  }
  s += "\n";
  for (const Step& st : steps) {
    const Json& curve = Get(st.d, "loss_curve");
    if (!curve.is_array() || curve.empty()) continue;
    s += "Loss curve of `" + st.pass + "` (step: mean loss): ";
    std::string pts;
    for (const Json& c : curve)
      pts += (pts.empty() ? "" : ", ") + Fmt("%.0f", Number(c, "step")) + ": " +
             Fmt("%.4g", Number(c, "loss"));
    s += pts + "\n\n";
  }
  return s;
}

std::string DistillHtml(const Report& r) {
  std::vector<Step> steps = DistillSteps(r);
  if (steps.empty()) return "";
  std::string s =
      "<h2>Distillation</h2>\n<table "
      "id=\"distill\">\n<tr><th>step</th><th>data</th><th>steps</th><th>teacher</th>"
      "<th>before</th><th>after</th><th>training time</th><th>samples/s</th></tr>\n";
  for (const Step& st : steps) {
    const Json& d = st.d;
    auto top1 = [&](const char* key) {
      const Json& e = Get(d, key);
      return Fmt("%.6g", e.is_object() && e.contains("top1") && e["top1"].is_number()
                             ? e["top1"].get<double>()
                             : -1);
    };
    s += "<tr data-before=\"" + top1("before") + "\" data-after=\"" + top1("after") +
         "\" data-teacher=\"" + top1("teacher") + "\"><td>" + Esc(st.pass) + "</td><td>" +
         Esc(Get(d, "data").is_string() ? Get(d, "data").get<std::string>() : "") + "</td><td>" +
         Fmt("%.0f", Number(d, "steps")) + "</td><td>" + Esc(EvalText(Get(d, "teacher"))) +
         "</td><td>" + Esc(EvalText(Get(d, "before"))) + "</td><td>" +
         Esc(EvalText(Get(d, "after"))) + "</td><td>" + Fmt("%.1f s", Number(d, "seconds")) +
         "</td><td>" + Fmt("%.0f", Number(d, "samples_per_second")) + "</td></tr>\n";
  }
  s += "</table>\n";
  for (const Step& st : steps) {
    const Json& curve = Get(st.d, "loss_curve");
    if (curve.is_array()) s += LossChart(curve);
  }
  return s;
}

}  // namespace edgepress::eval
